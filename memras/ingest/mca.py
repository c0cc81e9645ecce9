"""Machine-check (MCA) register decoding: is this MCE a memory error, where, how bad.

Decides, for one ``MCi_STATUS``/``MCi_MISC``/``MCi_ADDR`` triple:

- the STATUS bit fields (:func:`decode_status`), per Intel SDM Vol. 3B ch. 16
  "Machine-Check Architecture", Figure 16-6 (IA32_MCi_STATUS) and §16.3.2.2;
- the class of the architectural error code MCACOD (:func:`classify_mcacod`),
  SDM Table 16-8/16-9 "Compound error codes"; memory-controller errors are
  ``0000_0000_1MMM_CCCC`` (MMM = transaction, CCCC = channel, 0xf unspecified);
  Linux tests the same class as ``(status & 0xef80) == 0x80`` (mce/core.c
  ``mce_is_memory_error``; bit 12 is the corrected-error filtering bit);
- whether ADDR is a usable physical address (:func:`usable_address`), mirroring
  arch/x86/kernel/cpu/mce/core.c ``mce_usable_address``/``intel_mce_usable_address``:
  ADDRV and MISCV set, MISC address mode 2 (physical, SDM Table 16-3) and an
  address LSB (MISC[5:0]) no coarser than a page; the address is masked to the LSB;
- the kernel's severity grade (:func:`severity`), a table mirroring
  arch/x86/kernel/cpu/mce/severity.c ``severities[]`` for the cases that matter to
  memory: CE, UCNA, SRAO, SRAR and PANIC (PCC, or UC with OVER);
- and, combining all of it, :func:`mce_to_memory_error`.

AMD: SMCA unified memory controller banks (IPID hardware id 0x96, extended error
code 0) and legacy northbridge bank 4 with extended code 8 are memory errors
(mce/amd.c ``amd_mce_is_memory_error``); their SMCA ADDR is UMC-*normalized*, so it
goes to ``normalized_address``, never ``address``. An AMD family < 0x17 CPU without
those banks still gets the architectural Intel class test: QEMU's default TCG CPU is
AuthenticAMD family 15 and the lab injects architectural memory codes into it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime

from memras.records import DimmLocation, ErrorType, MceRegisters, MemoryErrorEvent, Source

# IA32_MCi_STATUS bits (SDM Vol. 3B Figure 16-6).
VAL = 1 << 63
OVER = 1 << 62
UC = 1 << 61
EN = 1 << 60
MISCV = 1 << 59
ADDRV = 1 << 58
PCC = 1 << 57
S = 1 << 56  # signalled as MCE (software error recovery, MCG_SER_P)
AR = 1 << 55  # action required
CE_COUNT_SHIFT = 38
CE_COUNT_MASK = 0x7FFF  # bits 52:38
MCG_SER_P = 1 << 24  # IA32_MCG_CAP: software error recovery supported
MCG_STATUS_RIPV = 1 << 0
MCG_STATUS_EIPV = 1 << 1
MCG_STATUS_MCIP = 1 << 2  # machine check in progress: found by the #MC handler

MISC_ADDR_MODE_PHYS = 2
PAGE_SHIFT_4K = 12

# struct cpuinfo_x86 x86_vendor numbers as the kernel prints them (mce_record "vendor"
# and "PROCESSOR: vendor:cpuid"); include/asm/processor.h X86_VENDOR_*.
X86_VENDOR_INTEL = 0
X86_VENDOR_AMD = 2
X86_VENDOR_HYGON = 9
SMCA_HWID_UMC = 0x96


@dataclass(frozen=True, slots=True)
class McaStatus:
    """The fields of one IA32_MCi_STATUS value."""

    raw: int
    val: bool
    over: bool
    uc: bool
    en: bool
    miscv: bool
    addrv: bool
    pcc: bool
    s: bool
    ar: bool
    corrected_count: int  # bits 52:38; valid with CMCI, 0 otherwise
    mscod: int  # model-specific error code, bits 31:16
    mcacod: int  # architectural error code, bits 15:0


def decode_status(status: int) -> McaStatus:
    """Split MCi_STATUS into its architectural fields (SDM Vol. 3B §16.3.2.2)."""
    status &= (1 << 64) - 1
    return McaStatus(
        raw=status,
        val=bool(status & VAL),
        over=bool(status & OVER),
        uc=bool(status & UC),
        en=bool(status & EN),
        miscv=bool(status & MISCV),
        addrv=bool(status & ADDRV),
        pcc=bool(status & PCC),
        s=bool(status & S),
        ar=bool(status & AR),
        corrected_count=(status >> CE_COUNT_SHIFT) & CE_COUNT_MASK,
        mscod=(status >> 16) & 0xFFFF,
        mcacod=status & 0xFFFF,
    )


class McaClass(enum.StrEnum):
    """Compound error-code classes (SDM Vol. 3B Table 16-9)."""

    NO_ERROR = "no error"
    SIMPLE = "simple"  # unclassified, microcode ROM parity, external, FRC, internal...
    GENERIC_CACHE = "generic cache hierarchy"
    TLB = "TLB"
    MEMORY_CONTROLLER = "memory controller"
    CACHE = "cache hierarchy"
    BUS = "bus and interconnect"
    UNKNOWN = "unknown"


class MemoryTransaction(enum.StrEnum):
    """MMM of a memory-controller error code (SDM Table 16-11), with the skx_edac wording."""

    GEN = "generic undef request error"
    RD = "memory read error"
    WR = "memory write error"
    AC = "address/command error"
    MS = "memory scrubbing error"
    RESERVED = "reserved memory transaction"


_TRANSACTIONS = [
    MemoryTransaction.GEN,
    MemoryTransaction.RD,
    MemoryTransaction.WR,
    MemoryTransaction.AC,
    MemoryTransaction.MS,
]


@dataclass(frozen=True, slots=True)
class McaCode:
    """A classified MCACOD."""

    mcacod: int
    kind: McaClass
    transaction: MemoryTransaction | None = None  # memory-controller class only
    channel: int | None = None  # CCCC; None when 0xf (unspecified)

    @property
    def is_memory(self) -> bool:
        return self.kind is McaClass.MEMORY_CONTROLLER

    @property
    def is_scrub(self) -> bool:
        """Linux MCACOD_SCRUB: ``(mcacod & 0xeff0) == 0xc0`` (severity.c)."""
        return (self.mcacod & 0xEFF0) == 0x00C0

    def mcelog_name(self) -> str:
        """mcelog's wording, e.g. ``MEMORY CONTROLLER RD_CHANNEL0_ERR``."""
        if not self.is_memory or self.transaction is None:
            return self.kind.value.upper()
        short = {v: k for k, v in MemoryTransaction.__members__.items()}[self.transaction]
        chan = "unspecified" if self.channel is None else str(self.channel)
        return f"MEMORY CONTROLLER {short}_CHANNEL{chan}_ERR"


def classify_mcacod(mcacod: int) -> McaCode:
    """Name the class of an architectural error code; bit 12 (filtering) is ignored."""
    code = mcacod & 0xEFFF
    if code == 0:
        return McaCode(mcacod, McaClass.NO_ERROR)
    if code & 0xF800 == 0x0800:  # 0000 1PPT RRRR IILL
        return McaCode(mcacod, McaClass.BUS)
    if code & 0xFF00 == 0x0100:  # 0000 0001 RRRR TTLL
        return McaCode(mcacod, McaClass.CACHE)
    if code & 0xFF80 == 0x0080:  # 0000 0000 1MMM CCCC
        mmm = (code >> 4) & 0x7
        cccc = code & 0xF
        transaction = _TRANSACTIONS[mmm] if mmm < len(_TRANSACTIONS) else MemoryTransaction.RESERVED
        return McaCode(
            mcacod,
            McaClass.MEMORY_CONTROLLER,
            transaction=transaction,
            channel=None if cccc == 0xF else cccc,
        )
    if code & 0xFFF0 == 0x0010:  # 0000 0000 0001 TTLL
        return McaCode(mcacod, McaClass.TLB)
    if code & 0xFFFC == 0x000C:  # 0000 0000 0000 11LL
        return McaCode(mcacod, McaClass.GENERIC_CACHE)
    if code < 0x10:
        return McaCode(mcacod, McaClass.SIMPLE)
    return McaCode(mcacod, McaClass.UNKNOWN)


def misc_address_lsb(misc: int) -> int:
    """MCi_MISC[5:0]: the lowest valid bit of MCi_ADDR (SDM §16.3.2.4)."""
    return misc & 0x3F


def misc_address_mode(misc: int) -> int:
    """MCi_MISC[8:6]: 0 segment offset, 1 linear, 2 physical, 3 memory, 7 generic."""
    return (misc >> 6) & 0x7


def usable_address(status: int, misc: int, addr: int | None = None) -> int | None:
    """The physical address the record vouches for, masked to its LSB, or None.

    Mirrors ``intel_mce_usable_address`` (mce/core.c): ADDRV and MISCV must be set,
    the MISC address mode must be physical, and the LSB must not be coarser than a
    4 KiB page. With ``addr`` None the answer is only "usable or not" (returns 0).
    """
    if not (status & ADDRV and status & MISCV):
        return None
    lsb = misc_address_lsb(misc)
    if lsb > PAGE_SHIFT_4K or misc_address_mode(misc) != MISC_ADDR_MODE_PHYS:
        return None
    if addr is None:
        return 0
    return addr & ~((1 << lsb) - 1) & ((1 << 64) - 1)


class Severity(enum.StrEnum):
    """The kernel's grades (mce/internal.h ``MCE_*_SEVERITY``), named as the SDM does."""

    NOT_ENABLED = "not enabled"  # MCE_NO_SEVERITY: EN clear, or no valid record
    CE = "corrected"  # MCE_KEEP_SEVERITY for corrected errors
    UCNA = "uncorrected no action required"  # MCE_UCNA/DEFERRED
    SOME = "action optional, unknown MCACOD"  # MCE_SOME_SEVERITY
    SRAO = "action optional"  # MCE_AO_SEVERITY (e.g. patrol scrub)
    SRAR = "action required"  # MCE_AR_SEVERITY (e.g. data load)
    PANIC = "panic"  # MCE_PANIC_SEVERITY (PCC, lost events, illegal combination)

    @property
    def error_type(self) -> ErrorType:
        return _SEVERITY_TO_TYPE[self]


_SEVERITY_TO_TYPE = {
    Severity.NOT_ENABLED: ErrorType.INFO,
    Severity.CE: ErrorType.CORRECTED,
    Severity.UCNA: ErrorType.DEFERRED,  # the kernel aliases MCE_DEFERRED to UCNA
    Severity.SOME: ErrorType.UNCORRECTED,
    Severity.SRAO: ErrorType.UNCORRECTED,
    Severity.SRAR: ErrorType.UNCORRECTED,
    Severity.PANIC: ErrorType.FATAL,
}


def severity(status: int, mcgstatus: int = 0, *, ser: bool = True) -> Severity:
    """Grade a record as severity.c's ``severities[]`` would, first match wins.

    ``ser`` is MCG_CAP.MCG_SER_P; without it every UC error is fatal ("NOSER" rows).
    Simplified: the instruction-fetch/data-load distinction of SRAR is not drawn.
    """
    st = decode_status(status)
    if not st.val:
        return Severity.NOT_ENABLED
    if st.pcc:
        return Severity.PANIC  # "Processor context corrupt"
    if not st.uc:
        return Severity.CE  # EN is often clear on CMCI/polled corrected errors
    if not st.en:
        return Severity.NOT_ENABLED  # "Not enabled": a UC bank the OS did not enable
    if not ser or st.over:
        return Severity.PANIC  # NOSER UC, or "Overflowed uncorrected"/lost events
    if not st.s:
        return Severity.PANIC if st.ar else Severity.UCNA  # AR without S is illegal
    if st.ar:
        ripv = bool(mcgstatus & MCG_STATUS_RIPV)
        eipv = bool(mcgstatus & MCG_STATUS_EIPV)
        # "Action required: ... unaffected thread is continuable" needs neither lost
        # context (no RIPV and no EIPV means the kernel cannot resume: panic).
        return Severity.SRAR if (ripv or eipv) else Severity.PANIC
    return Severity.SRAO if classify_mcacod(st.mcacod).is_scrub else Severity.SOME


def _amd_is_memory(regs: MceRegisters) -> bool | None:
    """True/False on AMD memory-bank evidence; None when the AMD rules don't decide."""
    hwid = (regs.ipid >> 32) & 0xFFF
    xec = (regs.status >> 16) & 0x3F
    if regs.ipid:
        return hwid == SMCA_HWID_UMC and xec == 0
    if regs.bank == 4 and ((regs.status >> 16) & 0x1F) == 0x8:
        return True
    return None


def is_amd(regs: MceRegisters) -> bool:
    return regs.cpuvendor in (X86_VENDOR_AMD, X86_VENDOR_HYGON)


def is_memory_error(regs: MceRegisters, *, umc: bool = False) -> bool:
    """Does this MCE report a memory error (see the module docstring for AMD)?
    ``umc``: the source named the bank a Unified Memory Controller, IPID not given."""
    if is_amd(regs):
        amd = ((regs.status >> 16) & 0x3F) == 0 if umc else _amd_is_memory(regs)
        if amd is not None:
            return amd
    code = classify_mcacod(regs.status & 0xFFFF)
    return code.is_memory or _poison_consumed(regs, code)


MCACOD_DATA = 0x0134  # DCU data read, L0 (severity.c): a load consumed poison
MCACOD_INSTR = 0x0150  # IFU instruction fetch: a fetch consumed poison


def _poison_consumed(regs: MceRegisters, code: McaCode) -> bool:
    """An uncorrected data-load or instruction-fetch error with a physical address:
    poisoned memory consumed (severity.c's SRAR rows and their in-kernel panics). The
    kernel's ``mce_is_memory_error`` counts every Intel cache-hierarchy code as memory;
    other cache errors stay non-memory here (a cache, not a DIMM, was at fault)."""
    if code.mcacod & 0xEFFF not in (MCACOD_DATA, MCACOD_INSTR) or not regs.status & UC:
        return False
    return usable_address(regs.status, regs.misc) is not None


def _message(regs: MceRegisters) -> str:
    code = classify_mcacod(regs.status & 0xFFFF)
    if code.transaction is not None:
        return code.transaction.value
    return "DRAM ECC error" if is_amd(regs) else "memory error"


def _corrected_count(regs: MceRegisters, st: McaStatus) -> int:
    """Errors this record stands for: Intel's corrected-error count (STATUS[52:38]) on a
    CE, else 1. AMD has no such field: on SMCA those bits are flags (bit 46 CECC, 45
    UECC, 44 Deferred, 43 Poison), so a CECC status read as a count gave 256."""
    if st.uc or is_amd(regs):
        return 1
    return max(1, st.corrected_count)


def mce_to_memory_error(
    regs: MceRegisters,
    *,
    source: Source,
    timestamp: datetime | None = None,
    uptime_s: float | None = None,
    socket_known: bool = True,
    kmsg_seq: int | None = None,
    raw: str = "",
    umc: bool = False,
) -> MemoryErrorEvent | None:
    """A MemoryErrorEvent for a memory MCE (address None if not usable), else None.

    ``count`` is Intel's corrected-error count (bits 52:38) when set, as skx_edac
    reports it (1 on AMD and for uncorrected errors); ``socket_known`` is False when
    the text the registers came from had no socket; ``umc`` as :func:`is_memory_error`.
    """
    if not (regs.status & VAL) or not is_memory_error(regs, umc=umc):
        return None
    st = decode_status(regs.status)
    ser = bool(regs.mcgcap & MCG_SER_P) if regs.mcgcap else True
    grade = severity(regs.status, regs.mcgstatus, ser=ser)
    code = classify_mcacod(st.mcacod)
    address = normalized = grain = None
    if is_amd(regs) and (regs.ipid or umc):
        if st.addrv:  # SMCA: ADDR[55:0] UMC-normalized, LSB in ADDR[61:56]
            lsb = (regs.addr >> 56) & 0x3F
            normalized = regs.addr & ((1 << 56) - 1) & ~((1 << lsb) - 1)
    elif is_amd(regs):
        address = regs.addr if st.addrv else None  # K8 northbridge: system address
    elif regs.mcgcap and not regs.mcgcap & MCG_SER_P:
        # Before MCG_SER_P (Nehalem/Westmere) MISC[8:0] is model-specific, not an address
        # mode: a memory controller's ADDR is the physical address (as mcelog reads it)
        address = regs.addr if st.addrv else None
    else:
        address = usable_address(regs.status, regs.misc, regs.addr)
        grain = misc_address_lsb(regs.misc) if address is not None else None
    return MemoryErrorEvent(
        error_type=grade.error_type,
        source=source,
        count=_corrected_count(regs, st),
        timestamp=timestamp,
        uptime_s=uptime_s,
        address=address,
        normalized_address=normalized,
        grain_bits=grain,
        message=_message(regs),
        driver="mce",
        driver_detail=f"{code.mcelog_name()} bank:{regs.bank} severity:{grade.value}",
        location=DimmLocation(socket=regs.socketid if socket_known else None, channel=code.channel),
        mce=regs,
        kmsg_seq=kmsg_seq,
        raw=raw,
    )


# A bank's uncorrected error survives a warm reset, and the next kernel logs it again
# while it boots: mce/core.c __mcheck_cpu_init_generic() polls every bank with
# MCP_UC ("Log the machine checks left over from the previous reset"), without
# MCP_TIMESTAMP, so the record's TSC is 0 and MCG_STATUS has no MCIP (no #MC is in
# progress). CPUs come up within seconds of the kernel's start; two minutes is ample.
LEFT_OVER_UPTIME_S = 120.0


def is_left_over(record: object) -> bool:
    """Whether a machine check is the kernel's boot-time copy of an uncorrected error
    left in its bank by the previous boot (the one that crashed): UC and valid, found by
    the boot poll (TSC 0, no MCIP), in the first LEFT_OVER_UPTIME_S of a boot. Its
    TIME is when this boot found it, not when it happened."""
    if type(record) is not MemoryErrorEvent or record.mce is None or record.uptime_s is None:
        return False
    regs = record.mce
    return (regs.status & (VAL | UC) == VAL | UC and regs.tsc == 0
            and not regs.mcgstatus & MCG_STATUS_MCIP
            and 0 <= record.uptime_s < LEFT_OVER_UPTIME_S)
