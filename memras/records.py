"""The records memras passes between its layers, declared once.

Parsers (``memras.ingest.parsers``) turn kernel/firmware text into these frozen
dataclasses; the store, the health engine, alert payloads, exports and TUI
columns all derive from their fields, so a field is added in exactly one place.

Conventions:
- ``address`` is a *system physical* byte address. An AMD UMC-normalized address
  (not mappable to a memory block) goes to ``normalized_address`` instead.
- Unknown values are ``None``, never -1; the rasdaemon adapter converts to -1.
- Text that came from the kernel or firmware (labels, messages, raw lines) is kept
  verbatim here; front ends escape it when they display it (``memras.text.escape``).
"""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol, final


class ErrorType(enum.StrEnum):
    """``enum hw_event_mc_err_type`` in include/linux/edac.h, as rasdaemon names it."""

    CORRECTED = "Corrected"
    UNCORRECTED = "Uncorrected"
    DEFERRED = "Deferred"
    FATAL = "Fatal"
    INFO = "Info"

    @property
    def is_uncorrected(self) -> bool:
        return self in (ErrorType.UNCORRECTED, ErrorType.FATAL, ErrorType.DEFERRED)

    @classmethod
    def from_kernel_index(cls, index: int) -> ErrorType:
        """Map the kernel's numeric error_type (0..4); unknown values become INFO."""
        order = [cls.CORRECTED, cls.UNCORRECTED, cls.DEFERRED, cls.FATAL, cls.INFO]
        return order[index] if 0 <= index < len(order) else cls.INFO


class Source(enum.StrEnum):
    """Where a record came from; part of the de-duplication key."""

    TRACE = "trace"  # tracefs text (mc_event, mce_record, memory_failure_event, extlog)
    KMSG = "kmsg"  # /dev/kmsg records or dmesg/journalctl text
    RASDAEMON = "rasdaemon"  # rows of a rasdaemon database
    MCELOG = "mcelog"  # mcelog's text log
    EDAC_COUNTER = "edac-counter"  # gap records from EDAC sysfs counters
    SIMULATOR = "simulator"  # the built-in simulated server
    LAB = "lab"  # injected in the QEMU lab (host side bookkeeping)
    # An MCE the platform firmware reported (APEI/GHES → MCA pseudo-bank 255), whatever
    # road it took: a second road to a fault the CPU may have logged itself
    FIRMWARE = "firmware"
    BMC = "bmc"  # the BMC's System Event Log (memras.bmc.sel), as the firmware logged it
    # the previous kernel's log kept by pstore (/sys/fs/pstore/dmesg-*): a second road
    # beside the kmsg lines a watcher may have stored before that kernel died
    PSTORE = "pstore"


class TimeSource(enum.StrEnum):
    """Where a record's wall-clock time came from (memras_error.time_source).

    A time memras could not learn is never invented: such a row is stored at the time
    it was imported (IMPORT) or placed by a guess (INFERRED), and the health engine
    keeps both out of rate thresholds (history, never a storm)."""

    KERNEL = "kernel"  # stamped by the kernel itself (MCE walltime, mcelog TIME)
    RASDAEMON = "rasdaemon"  # a rasdaemon row's timestamp (its local wall clock)
    SYSLOG = "syslog"  # the line's own wall-clock prefix (syslog, journal, dmesg -T, ISO)
    UPTIME_BOOT = "uptime+boot"  # kernel uptime + a boot time that is known or stated
    INFERRED = "inferred"  # uptime + a boot time guessed (this machine's, for a file)
    IMPORT = "import"  # no clock at all: the time memras stored it
    BMC = "bmc"  # the BMC's SEL clock: its own, often minutes off the host's

    @property
    def is_real(self) -> bool:
        """Whether rate thresholds may use the time (its spacing is the events')."""
        return self not in (TimeSource.INFERRED, TimeSource.IMPORT)


@dataclass(frozen=True, slots=True)
class DimmLocation:
    """Where on the hardware an error was decoded to. Every field is optional."""

    socket: int | None = None
    mc: int | None = None  # EDAC memory controller index (global on skx/i10nm)
    channel: int | None = None
    slot: int | None = None  # DIMM slot on the channel
    csrow: int | None = None  # csrow-based drivers (amd64_edac)
    rank: int | None = None
    bank_group: int | None = None
    bank: int | None = None
    row: int | None = None
    column: int | None = None
    device: int | None = None  # DRAM device (x4/x8 chip) when the source knows it
    label: str | None = None  # EDAC dimm_label / SMBIOS locator, verbatim
    # EDAC's raw layer numbers (mc_event location:top:mid:low); None = -1 in rasdaemon
    top_layer: int | None = None
    middle_layer: int | None = None
    lower_layer: int | None = None

    def merged(self, other: DimmLocation) -> DimmLocation:
        """Fields of ``self`` filled in from ``other`` where ``self`` has None."""
        values = {
            f.name: getattr(self, f.name)
            if getattr(self, f.name) is not None
            else getattr(other, f.name)
            for f in dataclasses.fields(self)
        }
        return DimmLocation(**values)

    def is_empty(self) -> bool:
        return all(getattr(self, f.name) is None for f in dataclasses.fields(self))


@dataclass(frozen=True, slots=True)
class MceRegisters:
    """The raw machine-check record (``struct mce`` / tracepoint mce_record)."""

    status: int
    bank: int
    addr: int = 0
    misc: int = 0
    mcgcap: int = 0
    mcgstatus: int = 0
    ip: int = 0
    tsc: int = 0
    walltime: int = 0
    cpu: int = 0
    cpuid: int = 0
    apicid: int = 0
    socketid: int = 0
    cs: int = 0
    cpuvendor: int = 0
    ipid: int = 0
    synd: int = 0
    ppin: int = 0
    microcode: int = 0


class LocatedError(Protocol):
    """What health analysis reads of a memory error: a MemoryErrorEvent, or the compact
    copy the health engine keeps in its classifier window (memras.health.engine)."""

    @property
    def error_type(self) -> ErrorType: ...
    @property
    def count(self) -> int: ...
    @property
    def address(self) -> int | None: ...
    @property
    def page_address(self) -> int | None: ...
    @property
    def location(self) -> DimmLocation: ...
    @property
    def timestamp(self) -> datetime | None: ...
    @property
    def uptime_s(self) -> float | None: ...


# final: nothing subclasses a record, so the hot paths' ``type(record) is ...`` tests
# narrow the Record union for mypy in both branches.
@final
@dataclass(frozen=True, slots=True)
class MemoryErrorEvent:
    """One memory error as reported by one source: the unit memras stores and judges."""

    error_type: ErrorType
    source: Source
    count: int = 1
    timestamp: datetime | None = None  # wall clock, timezone-aware when known
    uptime_s: float | None = None  # kernel timestamp (printk/trace clock) when known
    address: int | None = None  # system physical address
    normalized_address: int | None = None  # AMD UMC-normalized; never mapped to a block
    page_shift: int | None = None  # when the source's page: field was used
    grain_bits: int | None = None  # log2 of the grain in bytes (rasdaemon convention)
    syndrome: int | None = None
    message: str = ""  # e.g. "memory read error"
    driver: str = ""  # e.g. "skx_edac", "ghes", "mce"
    driver_detail: str = ""  # the kernel's detail text, verbatim
    location: DimmLocation = field(default_factory=DimmLocation)
    mce: MceRegisters | None = None
    kmsg_seq: int | None = None  # /dev/kmsg sequence number, for resume
    raw: str = ""  # the text the record was parsed from (joined lines for blocks)
    # 1, 2… for the 2nd, 3rd… line of identical text (same stamp) the kernel printed:
    # distinct errors the store must not take for one record read twice
    repeat: int = 0
    time_source: TimeSource | None = None  # None: judged from ``source`` by the store
    # values the parser could not take as given ("err_type:unknown"), kept with the row
    # in memras_error.flags (memras.store.bounds adds its own)
    flags: tuple[str, ...] = ()

    @property
    def page_address(self) -> int | None:
        """The 4 KiB page (``addr & ~0xfff``), the unit of page offlining."""
        return None if self.address is None else self.address & ~0xFFF


@final
@dataclass(frozen=True, slots=True)
class MemoryFailureEvent:
    """``ras:memory_failure_event`` / ``Memory failure: 0x…: recovery action…``."""

    pfn: int
    page_type: str
    action_result: str  # Ignored | Failed | Delayed | Recovered; Killed (a kill, no outcome line)
    source: Source
    timestamp: datetime | None = None
    uptime_s: float | None = None
    kmsg_seq: int | None = None
    raw: str = ""
    repeat: int = 0  # as MemoryErrorEvent.repeat
    time_source: TimeSource | None = None  # as MemoryErrorEvent.time_source
    flags: tuple[str, ...] = ()  # as MemoryErrorEvent.flags
    # log2 of the logging kernel's page size when the source says (a 64 KiB arm64 or
    # POWER kernel prints 64 KiB PFNs); None: 4 KiB, x86's and the default.
    page_shift: int | None = None

    @property
    def address(self) -> int:
        """The page's first byte: the PFN in the logging kernel's pages."""
        return self.pfn << (self.page_shift or 12)


Record = MemoryErrorEvent | MemoryFailureEvent


@final
@dataclass(frozen=True, slots=True)
class CxlEvent:
    """One CXL trace event (``cxl:cxl_*``, drivers/cxl/core/trace.h) or rasdaemon row.

    Not part of :data:`Record`: a CXL media error also becomes a MemoryErrorEvent (the
    unit memras stores and judges, :func:`memras.ingest.parsers.cxl.memory_error`);
    this carries what only CXL has (the device's own severity, DPA, health info) for
    ``memras_cxl_event`` and the health rules. ``event`` is the tracepoint name
    without ``cxl_``; numbers are the spec's (CXL 3.1 r8.2.9.2), None when not given.
    """

    event: str  # general_media, dram, memory_module, poison, aer_uncorrectable_error…
    memdev: str
    host: str = ""
    serial: int | None = None
    log_type: str | None = None  # Informational | Warning | Failure | Fatal
    hdr_flags: int | None = None  # PERMANENT_CONDITION=4, MAINTENANCE_NEEDED=8, …
    hdr_uuid: str | None = None
    hdr_handle: int | None = None
    hdr_related_handle: int | None = None
    hdr_ts: int | None = None  # the device's timestamp, ns since the epoch
    hdr_length: int | None = None
    hdr_maint_op_class: int | None = None
    hdr_maint_op_sub_class: int | None = None
    dpa: int | None = None
    dpa_flags: int | None = None
    descriptor: int | None = None
    type: int | None = None
    sub_type: int | None = None
    transaction_type: int | None = None
    channel: int | None = None
    rank: int | None = None
    device: int | None = None
    nibble_mask: int | None = None
    bank_group: int | None = None
    bank: int | None = None
    row: int | None = None
    column: int | None = None
    sub_channel: int | None = None
    validity_flags: int | None = None
    hpa: int | None = None
    hpa_alias0: int | None = None
    region: str = ""
    region_uuid: str | None = None
    cme_threshold_ev_flags: int | None = None
    cme_count: int | None = None
    event_type: int | None = None  # memory module
    event_sub_type: int | None = None
    health_status: int | None = None
    media_status: int | None = None
    add_status: int | None = None
    life_used: int | None = None
    device_temp: int | None = None
    dirty_shutdown_cnt: int | None = None
    cor_vol_err_cnt: int | None = None
    cor_per_err_cnt: int | None = None
    trace_type: str | None = None  # poison: List | Inject | Clear
    source_text: str | None = None  # poison: Unknown | External | Internal | Injected…
    dpa_length: int | None = None
    poison_flags: int | None = None
    overflow_ts: int | None = None
    error_status: int | None = None  # AER
    first_error: int | None = None
    count: int | None = None  # overflow: records lost
    first_ts: int | None = None
    last_ts: int | None = None
    data: str = ""  # generic event: the record's bytes as hex
    source: Source = Source.TRACE
    timestamp: datetime | None = None
    uptime_s: float | None = None
    raw: str = ""


def event_evidence(event: MemoryErrorEvent) -> dict[str, Any]:
    """An error's fields under rasdaemon's names: the ``last_event`` of alert evidence.

    The health engine attaches it to every change an event causes, and the exec
    hook turns it into rasdaemon's trigger variables (TIMESTAMP, COUNT, LABEL…).
    """
    loc = event.location
    return {
        "timestamp": None if event.timestamp is None else event.timestamp.isoformat(),
        "count": event.count,
        "error_type": event.error_type.value,
        "message": event.message,
        "label": loc.label,
        "mc": loc.mc,
        "top_layer": loc.top_layer,
        "middle_layer": loc.middle_layer,
        "lower_layer": loc.lower_layer,
        "address": event.address,
        "grain_bits": event.grain_bits,
        "syndrome": event.syndrome,
        "driver_detail": event.driver_detail,
        "socket": loc.socket,
        "channel": loc.channel,
        "slot": loc.slot,
    }


# ---- CPER (UEFI Appendix N): one firmware record, read from its bytes or its print ------
# memras.host.bert decodes a CPER record's bytes; memras.ingest.parsers.ghes reads the
# kernel's printed copy of the same record (drivers/firmware/efi/cper.c). Where the two
# must reach the same verdict, the rule is here, once.

# cper_severity_str(): the words the kernel prints for CPER_SEV_* 0..3, in that order
CPER_SEVERITY_WORDS = ("recoverable", "fatal", "corrected", "info")
CPER_SEVERITY = {
    "recoverable": ErrorType.UNCORRECTED,
    "fatal": ErrorType.FATAL,
    "corrected": ErrorType.CORRECTED,
    "info": ErrorType.INFO,
}
CPER_NO_ADDRESS = (1 << 64) - 1  # a physical address of all ones: the firmware has none


def cper_error_type(section: str | None, block: str | None) -> ErrorType:
    """A CPER section's error type from its severity word and its block's.

    The section's own severity, but never above a corrected block's: the Generic Error
    Status Block's severity is the worst of its entries' (ACPI 6.x: "the error severity
    of the entire event"; UEFI N.2.1, the record header: it "corresponds to the most
    severe error section"), so a "recoverable" or "fatal" section in a block the
    firmware calls corrected (the kernel prints "It has been corrected by h/w") is the
    firmware's slip, and the block's word stands. A section whose word is none of the four
    (``cper_severity_str`` prints "unknown") takes the block's; neither known: INFO.
    """
    own = CPER_SEVERITY.get(section or "")
    if own is None:
        return CPER_SEVERITY.get(block or "", ErrorType.INFO)
    if block == "corrected" and own.is_uncorrected:
        return ErrorType.CORRECTED
    return own


# UEFI 2.x Appendix N.2.5, Memory Error Section, Error Status bits 8-15 ("Error Type",
# the Generic Error Status codes); kernels since 5.18 print the same words
# (cper_mem_err_status_str() in drivers/firmware/efi/cper.c), older ones only the hex.
CPER_ERROR_STATUS_TYPES = {
    1: "Error detected internal to the component",
    4: "Storage error in DRAM memory",
    5: "Storage error in TLB",
    6: "Storage error in cache",
    7: "Error in one or more functional units",
    8: "Component failed self test",
    9: "Overflow or undervalue of internal queue",
    16: "Error detected in the bus",
    17: "Virtual address not found on IO-TLB or IO-PDIR",
    18: "Improper access error",
    19: "Access to a memory address which is not mapped to any component",
    20: "Loss of Lockstep",
    21: "Response not associated with a request",
    22: "Bus parity error - must also set the A, C, or D Bits",
    23: "Detection of a protocol error",
    24: "Detection of a PATH_ERROR",
    25: "Bus operation timeout",
    26: "A read was issued to data that has been poisoned",
}


def cper_error_status_text(status: int) -> str:
    """A CPER Error Status word as a 5.18+ kernel prints it, whatever printed it:
    ``Storage error in DRAM memory (0x0000000000000400)``."""
    kind = CPER_ERROR_STATUS_TYPES.get((status >> 8) & 0xFF, "Reserved")
    return f"{kind} (0x{status:016x})"


def cper_address(value: int | None) -> int | None:
    """A CPER physical address, or None where the firmware gave none (all ones)."""
    return None if value is None or value == CPER_NO_ADDRESS else value


def cper_placed(stamp: datetime | None, boot: datetime | None
                ) -> tuple[datetime | None, TimeSource]:
    """Where a record of the previous boot (a BERT section) is placed in time: its
    entry's own CPER timestamp (the firmware's clock, ``kernel``), else this boot's
    start (``boot``; None when the caller dates it later), a guess: ``inferred``,
    history the health engine keeps out of rates — whichever road read the record."""
    if stamp is not None:
        return stamp, TimeSource.KERNEL
    return boot, TimeSource.INFERRED


def cper_datetime(century: int, year: int, month: int, day: int, hour: int, minute: int,
                  second: int) -> datetime | None:
    """A CPER timestamp's fields (UEFI N.2.1, out of BCD as the kernel's ``bcd2bin``
    takes them) as the firmware's clock read as UTC, the way Linux reads the RTC; None
    when they name no date. cper_print_tstamp prints each field in two digits: one of
    three (a byte that was no BCD) leaves the printed copy unreadable, so it is no date
    on either road."""
    fields = (century, year, month, day, hour, minute, second)
    if any(not 0 <= f <= 99 for f in fields):
        return None
    try:
        return datetime(century * 100 + year, month, day, hour, minute, second, tzinfo=UTC)
    except ValueError:
        return None
