# ruff: noqa: E501, W291  (real log lines are kept verbatim, trailing blanks included)
"""Field truth on real kernel output: one table per family the parsers once lost.

Every row is text from a public address (cited above its rows) and EVERY field its
records decode to (:func:`decoded`: None and empty fields left out, the DIMM location
flattened, MCE registers as their non-zero values), so a field that starts decoding
wrongly, or stops, fails. Edits to the text are named beside the citation; nothing
is synthetic. The families are the recall and wrong-number findings of the ingestion
audit: prefixes, user-access UEs, older EDAC forms, fatal poison consumption, AMD SMCA
blocks, the 3.5 mc_event form, GHES blocks slower than a second, arm64 page sizes,
page actions (CE-collector soft offlines, kills, ``Memory failure:`` variants), the
count each MCA flavour and EDAC print means, and identical lines printed twice.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from memras.ingest.mca import mce_to_memory_error
from memras.ingest.parsers import KernelLogParser, parse_kernel_log, strip_prefixes
from memras.ingest.parsers._common import ParserStats, edac_error_count
from memras.ingest.parsers.kernel_log import _boot_instant, page_shift_from_size
from memras.ingest.parsers.trace_events import parse_mc_event
from memras.records import ErrorType, MceRegisters, Record, Source
from memras.store.store import _identity
from tests.corpus.loader import REAL_DIR, load


def decoded(record: Record) -> dict[str, Any]:
    """Every field the parser decoded, as plain data."""
    out: dict[str, Any] = {"kind": type(record).__name__}
    for f in dataclasses.fields(record):
        value = getattr(record, f.name)
        if f.name in ("source", "raw") or value is None or value in ("", ()):
            continue
        if f.name == "repeat" and value == 0:
            continue
        if f.name == "location":
            out.update({k: v for k, v in dataclasses.asdict(value).items() if v is not None})
        elif f.name == "mce":
            out["mce"] = {k: v for k, v in dataclasses.asdict(value).items() if v}
        elif f.name == "timestamp":
            out["timestamp"] = value.isoformat()
        elif f.name == "error_type":
            out["error_type"] = value.value
        else:
            out[f.name] = value
    out["raw_lines"] = len(record.raw.splitlines())
    return out


def klog(text: str, **kw: Any) -> list[dict[str, Any]]:
    return [decoded(r) for r in parse_kernel_log(text.strip("\n").splitlines(), **kw)]


# ---- prefixes: what wraps the message, and the stamp it carries --------------------------

PREFIXES = [
    # syslog with a space-padded day AND the printk stamp (lore.kernel.org/all/a9e3120d-8b79-4435-b113-ceb20aa45ee2@alu.unizg.hr/)
    ("Mar  9 19:48:24 defiant kernel: [77187.055103] MCE: Killing uffd-unit-tests:1321817 due to hardware memory corruption fault at 4631e000",
     "MCE: Killing uffd-unit-tests:1321817 due to hardware memory corruption fault at 4631e000", 77187.055103, None),
    # syslog + printk stamp, another host (github.com/openstreetmap/operations/issues/300)
    ("May  7 06:45:12 errol kernel: [21584690.529877] EDAC MC0: 4 CE error on CPU#0Channel#2_DIMM#0 (channel:2 slot:0 page:0x0 offset:0x0 grain:8 syndrome:0x0)",
     "EDAC MC0: 4 CE error on CPU#0Channel#2_DIMM#0 (channel:2 slot:0 page:0x0 offset:0x0 grain:8 syndrome:0x0)", 21584690.529877, None),
    # console stamps: printk caller ids glued to the stamp (lore.kernel.org/all/aJUB0gQZ6cH1zMRE@CMGLRV3/)
    ("[1533553.998160] [      C7] ipmi_si IPI0001:00: KCS in invalid state 6",
     "ipmi_si IPI0001:00: KCS in invalid state 6", 1533553.998160, None),
    ("[1533554.019973] [T1844873] ipmi_si IPI0001:00: KCS in invalid state 9",
     "ipmi_si IPI0001:00: KCS in invalid state 9", 1533554.019973, None),
    # a capture indented in a mail (lore.kernel.org/all/20230425201239.324476-1-hristo@venev.name/)
    ("    [  313.747594] mce: [Hardware Error]: Machine check events logged",
     "mce: [Hardware Error]: Machine check events logged", 313.747594, None),
    # dmesg -T wall clock (github.com/grondo/edac-utils/issues/10)
    ("[Mon Jan 27 19:27:15 2020] EDAC sbridge MC0: HANDLING MCE MEMORY ERROR",
     "EDAC sbridge MC0: HANDLING MCE MEMORY ERROR", None, "2020-01-27T19:27:15"),
]


@pytest.mark.parametrize(("line", "message", "uptime", "wall"), PREFIXES)
def test_prefix_variants(line: str, message: str, uptime: float | None, wall: str | None) -> None:
    p = strip_prefixes(line)
    assert p is not None
    assert (p.message, p.uptime_s) == (message, uptime)
    assert (None if p.timestamp is None else p.timestamp.isoformat()) == wall


def test_prefix_layers_a_syslog_relay_adds() -> None:
    """The same OSM #300 line as a host-only relay ("errol kernel: …", no date) and as
    journalctl's short-monotonic form: both layers come off, the stamp is kept."""
    line = "[21584690.529877] EDAC MC0: 4 CE error on CPU#0Channel#2_DIMM#0 (channel:2 slot:0 page:0x0 offset:0x0 grain:8 syndrome:0x0)"
    for wrapped in (f"errol kernel: {line}", f"[21584690.529877] errol kernel:  {line[18:]}",
                    f"May 7 06:45:12 errol  kernel:  {line}"):
        p = strip_prefixes(wrapped)
        assert p is not None and p.message.startswith("EDAC MC0: 4 CE error on")
        assert p.uptime_s == 21584690.529877


# ---- the x86 core's line for poison consumed in user space -------------------------------

# Kun(llfl), 'device-dax: correct pgoff align in dax_set_mapping()': the lines wrapped by
# the mail at 72 columns, joined (lore.kernel.org/r/23c02a03e8d666fef11bbe13e85c69c8b4ca0624.1727421694.git.llfl@linux.alibaba.com)
USER_ACCESS_DAX = """
[ 3784.049006] mce: Uncorrected hardware memory error in user-access at 200c9742380
[ 3784.049190] Memory failure: 0x200c9742: recovery action for dax page: Recovered
"""

# Tony Luck, 'Re: Machine check recovery broken in v6.9-rc1' (lore.kernel.org/all/ZhCQPwgMWo9w3LlO@agluck-desk3/),
# the lines from the first MCE notice to the first "already poisoned": the CPER block's
# two sections name one address, the user-access line is that poison consumed (one
# fault); its page action follows
USER_ACCESS_GHES = """
[  183.645243] mce: [Hardware Error]: Machine check events logged
[  183.645940] {1}[Hardware Error]: Hardware error from APEI Generic Hardware Error Source: 0
[  183.645945] {1}[Hardware Error]: event severity: recoverable
[  183.645947] {1}[Hardware Error]:  Error 0, type: recoverable
[  183.645949] {1}[Hardware Error]:  fru_text: Card02, ChnA, DIMM0
[  183.645951] {1}[Hardware Error]:   section_type: memory error
[  183.645953] {1}[Hardware Error]:    error_status: Storage error in DRAM memory (0x0000000000000400)
[  183.645955] {1}[Hardware Error]:   physical_address: 0x00000008a398a400
[  183.645958] {1}[Hardware Error]:   node:1 card:0 module:0 rank:0 bank:2 device:0 row:1136 column:584
[  183.645959] {1}[Hardware Error]:   error_type: 14, scrub uncorrected error
[  183.645961] {1}[Hardware Error]:   DIMM location: NODE 4 CPU1_DIMM_A1
[  183.645962] {1}[Hardware Error]:  Error 1, type: recoverable
[  183.645963] {1}[Hardware Error]:   section_type: memory error
[  183.645964] {1}[Hardware Error]:    error_status: Storage error in DRAM memory (0x0000000000000400)
[  183.645965] {1}[Hardware Error]:   physical_address: 0x00000008a398a400
[  183.645965] {1}[Hardware Error]:   node:1
[  183.645966] {1}[Hardware Error]:   error_type: 3, multi-bit ECC
[  183.650625] mce: Uncorrected hardware memory error in user-access at 8a398a400
[  183.763844] Memory failure: 0x8a398a: recovery action for dirty LRU page: Recovered
[  183.778756] Memory failure: 0x8a398a: already hardware poisoned
"""

# Tony Luck, 'Re: [PATCH v6 1/2] mm,hwpoison: fix race with hugetlb page allocation'
# (lore.kernel.org/all/20210812152548.GA1579021@agluck-desk2.amr.corp.intel.com/), the
# user-access line through the page action: here the line comes BEFORE the GHES block
# that names its page, and is that block's fault
LUCK_2021 = load(REAL_DIR / "skx-adxl-ue-ghes-first-user-access-before-bank255-echo-luck-2021.toml").lines
LUCK_2021_GHES = LUCK_2021[5:15]  # the CPER block
USER_ACCESS_FIRST = "\n".join(LUCK_2021[4:16])  # the user-access line .. the page's recovery

# what the CPER block of LUCK_2021_GHES says
LUCK_2021_UE: dict[str, Any] = dict(
    kind="MemoryErrorEvent", error_type="Uncorrected", count=1, uptime_s=77.493225,
    address=0x7E025E400, message="single-symbol chipkill ECC", driver="ghes",
    driver_detail="node: 0 card: 6 module: 0 rank: 1 bank: 8 device: 0 row: 15105 column: 896",
    socket=0, rank=1, bank=8, row=15105, column=896, device=0, label="NODE 3 CPU0_DIMM_G1")

USER_ACCESS = [
    ("dax-llfl-2024", USER_ACCESS_DAX, [
        # the user-access line is held for the GHES block or MCE that may follow and
        # claim it (skx-adxl-ue-ghes-first-user-access-before-bank255-echo-luck-2021);
        # none does here, so it is its own record, returned after the page action
        dict(kind="MemoryFailureEvent", pfn=0x200C9742, page_type="dax page",
             action_result="Recovered", uptime_s=3784.049190, raw_lines=1),
        dict(kind="MemoryErrorEvent", error_type="Uncorrected", count=1, uptime_s=3784.049006,
             address=0x200C9742380, message="memory error consumed in user access", driver="mce",
             driver_detail="Uncorrected hardware memory error in user-access", raw_lines=1),
    ]),
    ("ghes-after-user-access-luck-2021", USER_ACCESS_FIRST, [
        dict(kind="MemoryFailureEvent", pfn=0x7E025E, page_type="unknown page",
             action_result="Ignored", uptime_s=77.568135, raw_lines=1),
        dict(LUCK_2021_UE, raw_lines=11),  # the user-access line and the block
    ]),
    ("ghes-luck-2024", USER_ACCESS_GHES, [
        # a page action is returned at once; the fault when its group closes (end of log)
        dict(kind="MemoryFailureEvent", pfn=0x8A398A, page_type="dirty LRU page",
             action_result="Recovered", uptime_s=183.763844, raw_lines=1),
        dict(kind="MemoryErrorEvent", error_type="Uncorrected", count=1, uptime_s=183.645940,
             address=0x8A398A400, message="scrub uncorrected error", driver="ghes",
             driver_detail="node:1 card:0 module:0 rank:0 bank:2 device:0 row:1136 column:584",
             socket=1, rank=0, bank=2, device=0, row=1136, column=584,
             label="NODE 4 CPU1_DIMM_A1", raw_lines=18),  # block, user-access, "already poisoned"
    ]),
]


@pytest.mark.parametrize(("case", "text", "expected"), USER_ACCESS, ids=[c[0] for c in USER_ACCESS])
def test_user_access_ue(case: str, text: str, expected: list[dict]) -> None:
    assert klog(text) == expected


# ---- older EDAC forms --------------------------------------------------------------------

OLD_EDAC = [
    # e752x, 2.6.16 (lore.kernel.org/all/441A85CF.7030902@artenumerica.com/); the mail's wrap joined
    ("e752x-esteves-2006",
     'Mar  7 15:25:08 localhost kernel: [182069.699559] EDAC MC0: CE page 0x9c334, offset 0x0, grain 4096, syndrome 0x2510, row 2, channel 1, label "": e752x CE',
     [dict(kind="MemoryErrorEvent", error_type="Corrected", count=1, uptime_s=182069.699559,
           address=0x9C334000, page_shift=12, grain_bits=12, syndrome=0x2510,
           driver_detail="e752x CE", mc=0, channel=1, csrow=2, raw_lines=1)]),
    # k8_edac, quoted in a vendor KB whose page runs the lines together: split at
    # "EDAC" (www.aslab.com/support/kb/123.html)
    ("k8-aslab-kb123",
     "EDAC k8 MC1: extended error code: ECC error\n"
     "EDAC k8 MC1: general bus error: participating processor(local node response), time-out(no timeout) memory transaction type(generic read), mem or i/o(mem access), cache level(generic)\n"
     'EDAC MC1: CE page 0xcc9db, offset 0xd38, grain 8, syndrome 0x80, row 0, channel 1, label "": k8_edac',
     [dict(kind="MemoryErrorEvent", error_type="Corrected", count=1, address=0xCC9DBD38,
           page_shift=12, grain_bits=3, syndrome=0x80, driver="k8_edac",
           driver_detail="k8_edac", mc=1, channel=1, csrow=0, raw_lines=1)]),
]


OLD_EDAC.append(
    # k8_edac, 2.6.19: a located CE, then the overflow the driver could not place
    # (Orion Poplawski, 'Re: EDAC chipkill messages', lore.kernel.org/all/45B0F5B7.4080703@cora.nwra.com/;
    # the quoted lines' '>> ' markers removed, the mail's wraps joined)
    ("k8-overflow-no-info-poplawski-2007",
     "EDAC k8 MC1: general bus error: participating processor(local node origin), time-out(no timeout) memory transaction type(generic read), mem or i/o(mem access), cache level(generic)\n"
     'EDAC MC1: CE page 0xfbf6f, offset 0x4d0, grain 8, syndrome 0xc8f4, row 1, channel 0, label "": k8_edac\n'
     "EDAC MC1: CE - no information available: k8_edac Error Overflow set\n"
     "EDAC k8 MC1: extended error code: ECC chipkill x4 error",
     [dict(kind="MemoryErrorEvent", error_type="Corrected", count=1, address=0xFBF6F4D0,
           page_shift=12, grain_bits=3, syndrome=0xC8F4, driver="k8_edac",
           driver_detail="k8_edac", mc=1, channel=0, csrow=1, raw_lines=1),
      dict(kind="MemoryErrorEvent", error_type="Corrected", count=1,
           driver_detail="k8_edac Error Overflow set", mc=1, raw_lines=1)]))


@pytest.mark.parametrize(("case", "text", "expected"), OLD_EDAC, ids=[c[0] for c in OLD_EDAC])
def test_older_driver_forms(case: str, text: str, expected: list[dict]) -> None:
    assert klog(text) == expected


# ---- fatal poison consumption: a cache-hierarchy code that is a memory error -------------

# Qiuxu Zhuo, 'x86/lib: Revert to _ASM_EXTABLE_UA() for {get,put}_user() fixups' (lore.kernel.org/r/20240129063842.61584-1-qiuxu.zhuo@intel.com)
FATAL_GET_USER = """
mce: [Hardware Error]: CPU 296: Machine Check Exception: f Bank 1: bd80000000100134
mce: [Hardware Error]: RIP 10:<ffffffff821b9776> {__get_user_nocheck_4+0x6/0x20}
mce: [Hardware Error]: TSC 411a93533ed ADDR 346a8730040 MISC 86
mce: [Hardware Error]: PROCESSOR 0:a06d0 TIME 1706000767 SOCKET 1 APIC 211 microcode 80001490
mce: [Hardware Error]: Run the above through 'mcelog --ascii'
mce: [Hardware Error]: Machine check: Data load in unrecoverable area of kernel
Kernel panic - not syncing: Fatal local machine check
"""

# Tony Luck, '[PATCH 0/2] Dump stack after certain machine checks': lines out of order,
# no STATUS line (lore.kernel.org/all/20220922195136.54575-1-tony.luck@intel.com/)
FATAL_NO_STATUS = """
[69608.047771] mce: [Hardware Error]: Machine check: Data load in unrecoverable area of kernel
[69608.021729] mce: [Hardware Error]: TSC 7874eb580177 ADDR 43bb84bd00 MISC 86 PPIN 9f061818e1a92082 
[69608.047773] Kernel panic - not syncing: Fatal local machine check
[69608.021720] mce: [Hardware Error]: RIP 10:<ffffffff8b767517> {copy_page+0x7/0x10}
"""

FATAL_POISON = [
    ("get_user-qiuxu-2024", FATAL_GET_USER, [
        dict(kind="MemoryErrorEvent", error_type="Fatal", count=1,
             timestamp="2024-01-23T09:06:07+00:00", address=0x346A8730040, grain_bits=6,
             message="memory error", driver="mce",
             driver_detail="CACHE HIERARCHY bank:1 severity:action required", socket=1,
             mce=dict(status=0xBD80000000100134, bank=1, addr=0x346A8730040, misc=0x86,
                      mcgstatus=0xF, tsc=0x411A93533ED, walltime=1706000767, cpu=296,
                      cpuid=0xA06D0, apicid=0x211, socketid=1, microcode=0x80001490),
             raw_lines=6),  # "Run the above through 'mcelog --ascii'" is not kept
    ]),
    ("copy_page-luck-2022", FATAL_NO_STATUS, [
        dict(kind="MemoryErrorEvent", error_type="Fatal", count=1, uptime_s=69608.047771,
             address=0x43BB84BD00, message="memory error consumed", driver="mce",
             driver_detail="Machine check: Data load in unrecoverable area of kernel",
             raw_lines=4),
    ]),
]


@pytest.mark.parametrize(("case", "text", "expected"), FATAL_POISON, ids=[c[0] for c in FATAL_POISON])
def test_fatal_poison_consumption(case: str, text: str, expected: list[dict]) -> None:
    assert klog(text) == expected


# ---- AMD SMCA: no trailing "DRAM ECC error"/cache-level line; the count is not 256 ----------

# Frederick Lawler (Cloudflare), 'Re: [BUG] ipmi_si: watchdog: Watchdog detected hard LOCKUP'
# (lore.kernel.org/all/aJUB0gQZ6cH1zMRE@CMGLRV3/): the block ends at "Ext. Error Code: 0"
SMCA_NO_TRAILER = """
[1533534.869508] [Hardware Error]: Corrected error, no action required.
[1533534.884635] [Hardware Error]: CPU:1 (17:31:0) MC18_STATUS[Over|CE|MiscV|AddrV|-|-|SyndV|CECC|-|-|-]: 0xdc2040000000011b
[1533534.912122] [Hardware Error]: Error Addr: 0x0000000313c7a020
[1533534.926641] [Hardware Error]: IPID: 0x0000009600350f00, Syndrome: 0x9fec08000a800a01
[1533534.943278] [Hardware Error]: Unified Memory Controller Ext. Error Code: 0
[1533534.946635] EDAC MC0: 1 CE Cannot decode normalized address on mc#0csrow#1channel#3 (csrow:1 channel:3 page:0x0 offset:0x0 grain:64 syndrome:0x800)
[1533535.369487] INFO: task cat:1844873 blocked for more than 10 seconds.
"""

SMCA_REGS = dict(status=0xDC2040000000011B, bank=18, cpu=1, cpuvendor=2,
                 ipid=0x9600350F00, synd=0x9FEC08000A800A01)


def test_smca_block_without_trailing_line() -> None:
    assert klog(SMCA_NO_TRAILER) == [
        dict(kind="MemoryErrorEvent", error_type="Corrected", count=1, uptime_s=1533534.946635,
             normalized_address=0x313C7A020, grain_bits=6, syndrome=0x800,
             message="Cannot decode normalized address", mc=0, channel=3, csrow=1,
             label="mc#0csrow#1channel#3", top_layer=1, middle_layer=3, mce=SMCA_REGS,
             raw_lines=6),  # the EDAC line's stamp: the record is its report
    ]


def test_smca_ce_count_is_one_not_bit_46() -> None:
    """STATUS bits 52:38 are Intel's CE count; on SMCA bit 46 is CECC (256 if read as one)."""
    event = mce_to_memory_error(MceRegisters(**SMCA_REGS, addr=0x313C7A020), source=Source.KMSG)
    assert event is not None and event.count == 1
    assert event.normalized_address == 0x313C7A020 and event.address is None


# ---- printed counts: "0 CE" and "n UE" ---------------------------------------------------

def test_printed_counts_follow_the_kernel() -> None:
    """skx/sb/i7core print MCi_STATUS[52:38] (the bank's CE counter) as the count: 0 when
    the record did not come from CMCI, and the earlier CEs on a UE. One error was logged."""
    assert edac_error_count(0, ErrorType.CORRECTED) == 1
    assert edac_error_count(20, ErrorType.CORRECTED) == 20
    assert edac_error_count(3, ErrorType.UNCORRECTED) == 1
    assert edac_error_count(2, ErrorType.DEFERRED) == 1
    # Intel keeps its count (OSM #300 burst: "4 CE" = four errors)
    p = strip_prefixes(PREFIXES[1][0])
    assert p is not None and klog(PREFIXES[1][0])[0]["count"] == 4


# ---- the first mc_event form (3.5) -------------------------------------------------------

def test_old_mc_event_form() -> None:
    """Commit 53f2d0289875 'RAS: Add a tracepoint for reporting memory controller events'
    (git.kernel.org/torvalds/c/53f2d0289875), its commit message's sample line."""
    body = "1 Corrected error:memory read on memory stick DIMM_1A (mc:0 location:0:0:0 page:0x586b6e offset:0xa66 grain:32 syndrome:0x0 area:DMA)"
    event = parse_mc_event(body)
    assert event is not None
    assert decoded(event) == dict(
        kind="MemoryErrorEvent", error_type="Corrected", count=1, address=0x586B6EA66,
        page_shift=12, grain_bits=5, syndrome=0, message="memory read", driver_detail="area:DMA",
        mc=0, label="DIMM_1A", top_layer=0, middle_layer=0, lower_layer=0,
        raw_lines=1)


# ---- a GHES block printed over more than a second ----------------------------------------

# Dongjiu Geng, '[PATCH RESEND v26 00/10] Add ARMv8 RAS virtualization support in QEMU'
# (lore.kernel.org/r/20200508021930.37955-1-gengdongjiu@huawei.com): 1.44 s from header to address
GHES_SLOW = """
[ 1552.516170] Synchronous External Abort: synchronous external abort (0x92000410) at 0x000000003751c6b4
[ 1553.074073] {1}[Hardware Error]: Hardware error from APEI Generic Hardware Error Source: 8
[ 1553.081654] {1}[Hardware Error]: event severity: recoverable
[ 1554.034191] {1}[Hardware Error]:  Error 0, type: recoverable
[ 1554.037934] {1}[Hardware Error]:   section_type: memory error
[ 1554.513261] {1}[Hardware Error]:   physical_address: 0x0000000040fa6000
[ 1554.513944] {1}[Hardware Error]:   error_type: 0, unknown
[ 1555.041451] Memory failure: 0x40fa6: Killing mca-recover:1296 due to hardware memory corruption
[ 1555.373116] Memory failure: 0x40fa6: recovery action for dirty LRU page: Recovered
"""


def test_ghes_block_grouped_by_record_not_time() -> None:
    assert klog(GHES_SLOW) == [
        dict(kind="MemoryErrorEvent", error_type="Uncorrected", count=1, uptime_s=1553.074073,
             address=0x40FA6000, message="unknown", driver="ghes", raw_lines=6),
        dict(kind="MemoryFailureEvent", pfn=0x40FA6, page_type="dirty LRU page",
             action_result="Recovered", uptime_s=1555.373116, raw_lines=2),  # with its kill
    ]


# ---- arm64 page sizes --------------------------------------------------------------------

# Robert Richter, 'EDAC/ghes: Setup DIMM label from DMI and use it in error reports' (ThunderX2)
# (lore.kernel.org/all/20200616172737.30171-2-bp@alien8.de/): the mail's wraps joined
RICHTER_GHES_EDAC = "EDAC MC0: 1 CE Single-bit ECC on N0 DIMM_A0 (node:0 card:0 module:0 rank:1 bank:515 col:14 bit_pos:16 DIMM location:N0 DIMM_A0 page:0x99223d8 offset:0x0 grain:1 syndrome:0x0 - APEI location: node:0 card:0 module:0 rank:1 bank:515 col:14 bit_pos:16 DIMM location:N0 DIMM_A0 status(0x0000000000000400): Storage error in DRAM memory)"
# a RHEL 10 64K-page kernel's name in a warning on a BlueField SoC (Luis Chamberlain,
# 'Re: [PATCH V4] block: make segment size limit workable for > 4K PAGE_SIZE',
# lore.kernel.org/all/Z7jeOpW882Old2Eh@bombadil.infradead.org/; his '> ' quote removed)
RHEL_64K = "CPU: 2 UID: 0 PID: 397 Comm: (udev-worker) Not tainted 6.12.0-39.el10.aarch64+64k #1"


@pytest.mark.parametrize(("lines", "page_shift", "shift"), [
    ([RICHTER_GHES_EDAC], None, 12),  # arm64 says nothing of its page size: 4 KiB
    ([RICHTER_GHES_EDAC], 16, 16),  # the caller knows (memras import --page-size 65536)
    ([RHEL_64K, RICHTER_GHES_EDAC], None, 16),  # the log names a 64K kernel
])
def test_arm64_page_size(lines: list[str], page_shift: int | None, shift: int) -> None:
    (event,) = parse_kernel_log(lines, page_shift=page_shift)
    assert event.address == 0x99223D8 << shift and event.page_shift == shift
    assert page_shift_from_size(65536) == 16 and page_shift_from_size(16384) == 14


def test_page_size_learned_from_ghes_and_its_edac_echo() -> None:
    """ghes_edac prints the GHES address as page:offset: the shift that joins them is
    the kernel's. Phytium S5000C (github.com/JackHuang021/JackHuang021.github.io/blob/
    19748ef84cd4e1287ebc80b618fbf279688dd5f3/source/_posts/059-acpi-apei-md.md)."""
    parser = KernelLogParser()
    for line in (
        "[  838.469270] EDAC MC0: 1 CE Single-bit ECC on BANK 0 DIMM 1 (node:0 card:1 module:0 bank:0 row:8192 col:0 bit_pos:5 DIMM location:BANK 0 DIMM 1 page:0x80000 offset:0x0 grain:4096 syndrome:0x0 - APEI location: n)",
        "[  838.469500] {2}[Hardware Error]: Hardware error from APEI Generic Hardware Error Source: 2",
        "[  838.469740] {2}[Hardware Error]:  Error 0, type: corrected",
        "[  838.469792] {2}[Hardware Error]:   section_type: memory error",
        "[  838.469825] {2}[Hardware Error]:   physical_address: 0x0000000080000000",
    ):
        parser.feed(line)
    (event,) = parser.flush()
    assert event.address == 0x80000000 and parser.effective_page_shift == 12


# ---- the firmware's records: the kernel's MCE copy of a CPER record, BERT -----------------

# Tony Luck 2021 (above): the GHES block, the memory controller's own CMCI decoded by the
# EDAC driver (bank 25), the SIGBUS, then the EDAC driver decoding pseudo-bank 255, the
# kernel's MCE copy of the CPER record (apei_mce_report_mem_error): one fault
GHES_THEN_APEI_ECHO = "\n".join(LUCK_2021_GHES + LUCK_2021[17:34])

# The BERT record quoted from Huang Ying and Tony Luck's 2016 BERT patch
# (firmwaresecurity.com/2016/07/01/acpiapei-bert-support-for-linux/): a previous boot's
# memory error, its address all ones (none), the block corrected but its section
# "recoverable" (the block's severity caps its sections')
BERT_MEMORY = """
BERT: Error records from previous boot:
[Hardware Error]: It has been corrected by h/w and requires no further action
[Hardware Error]: event severity: corrected
[Hardware Error]:  Error 0, type: recoverable
[Hardware Error]:   section_type: memory error
[Hardware Error]:   error_status: 0x0000000000000400
[Hardware Error]:   physical_address: 0xffffffffffffffff
[Hardware Error]:   card: 1 module: 2 bank: 3 row: 1 column: 2 bit_position: 5
[Hardware Error]:   error_type: 2, single-bit ECC
"""

# github.com/yangxiaohua2009/custom-kernel/issues/6: a fatal BERT record that is no
# memory error (an Intel crash-log reference); its first lines
BERT_CRASHLOG = """
[    2.345569] BERT: Error records from previous boot:
[    2.345575] [Hardware Error]: event severity: fatal
[    2.345577] [Hardware Error]:  Error 0, type: fatal
[    2.345580] [Hardware Error]:   section_type: Firmware Error Record Reference
[    2.345581] [Hardware Error]:   Firmware Error Record Type: SOC Firmware Error Record Type1 (Legacy CrashLog Support)
[    2.345583] [Hardware Error]:   Revision: 0
[    2.345584] [Hardware Error]:   Record Identifier: 3000100000000
[    2.345587] [Hardware Error]:   00000000: 00030001 00000001 00000608 00000000  ................
"""

FIRMWARE_RECORDS = [
    ("ghes-then-apei-bank255-echo-luck-2021", GHES_THEN_APEI_ECHO, [
        # the EDAC line adds the controller, channel, slot and bank group to the block's
        dict(LUCK_2021_UE, mc=3, channel=0, slot=0, bank_group=2,
             mce=dict(status=0xAC00000200A00090, bank=25, addr=0x7E025E400, misc=0x9000201D809C086,
                      tsc=0x18D57CE28F4F25, walltime=1628780833, cpuid=0x606A6),
             raw_lines=17),  # the block and the bank-25 decode; the bank-255 one is context
        dict(kind="MemoryFailureEvent", pfn=0x7E025E, page_type="process page",
             action_result="Killed", uptime_s=77.633611, raw_lines=2),  # + "already poisoned"
    ]),
    ("bert-memory-huang-2016", BERT_MEMORY, [
        dict(kind="MemoryErrorEvent", error_type="Corrected", count=1, message="single-bit ECC",
             driver="bert", driver_detail="card: 1 module: 2 bank: 3 row: 1 column: 2 bit_position: 5",
             bank=3, row=1, column=2, raw_lines=9),
    ]),
    # the same record without its (optional) error_type line: a pre-5.18 kernel prints
    # the status only as hex; the message is in the words 5.18+ prints for it
    ("bert-memory-huang-2016-no-error-type",
     BERT_MEMORY.replace("[Hardware Error]:   error_type: 2, single-bit ECC\n", ""), [
        dict(kind="MemoryErrorEvent", error_type="Corrected", count=1,
             message="Storage error in DRAM memory (0x0000000000000400)", driver="bert",
             driver_detail="card: 1 module: 2 bank: 3 row: 1 column: 2 bit_position: 5",
             bank=3, row=1, column=2, raw_lines=8),
    ]),
    ("bert-crashlog-custom-kernel-6", BERT_CRASHLOG, []),
]


def test_bert_records_are_placed_at_this_boots_start() -> None:
    """A BERT record is a fault of the previous boot: never dated at its print. The
    prefixes are real: custom-kernel#6's dmesg, mcelog#74's stacked ISO + uptime."""
    dmesg = strip_prefixes("[    2.345569] BERT: Error records from previous boot:")
    stacked = strip_prefixes("2019-08-19T04:18:38.274699-04:00 linux-dgwd kernel: [ 261.273240] x")
    assert dmesg is not None and stacked is not None
    assert _boot_instant(dmesg) == (0.0, None)
    uptime, when = _boot_instant(stacked)
    assert uptime == 0.0 and when is not None
    assert when.isoformat() == "2019-08-19T04:14:17.001459-04:00"


@pytest.mark.parametrize(("case", "text", "expected"), FIRMWARE_RECORDS,
                         ids=[c[0] for c in FIRMWARE_RECORDS])  # fmt: skip
def test_firmware_records(case: str, text: str, expected: list[dict]) -> None:
    assert klog(text) == expected


# ---- powerpc machine checks -----------------------------------------------------------------

# Mahesh Salgaonkar 2019 (the corpus file): powerpc's one-line machine checks, two SLB
# multihits (no memory error, counted) around a UE on a user load with its paddr
PPC = load(REAL_DIR / "ppc64-mce-ue-load-store-paddr-and-slb-decoys-salgaonkar-2019.toml").lines


def test_powerpc_machine_checks() -> None:
    stats = ParserStats()
    assert klog("\n".join(PPC), stats=stats) == [
        dict(kind="MemoryErrorEvent", error_type="Uncorrected", count=1, uptime_s=1001.831517,
             address=0xF8E260000, message="UE Load/Store", driver="mce",
             driver_detail="machine check (Severe) Host UE Load/Store DAR: 00007fffc6079a80 "
                           "paddr: 0000000f8e260000 [Not recovered]",
             raw_lines=3),  # its PID/NIP and error-class lines
    ]
    assert stats.non_memory_mce == 2


# ---- page actions ------------------------------------------------------------------------

# The CE collector soft-offlining a page that memory-failure.c then refuses: a blog on an
# Inspur NF5270M3 ("talos", 2025-04-04) quoted in a public GitHub-hosted notes file (the
# source of corpus_public's talos entries; its address is not recorded there either)
CEC_TALOS = """
2025-04-04T18:24:01.695052+08:00 talos kernel: RAS: Soft-offlining pfn: 0x104e5c
2025-04-04T18:24:01.695094+08:00 talos kernel: Memory failure: 0x104e5c: unhandlable page.
"""

PAGE_ACTIONS = [
    ("cec-soft-offline-talos", CEC_TALOS, [
        dict(kind="MemoryFailureEvent", pfn=0x104E5C, page_type="soft offline (CE collector)",
             action_result="Failed", timestamp="2025-04-04T18:24:01.695052+08:00", raw_lines=2),
    ]),
    # a kill with no recovery line after it (Jane Chu, '[PATCH] mm, memory-failure:
    # clarify error message', lore.kernel.org/all/1558066095-9495-1-git-send-email-jane.chu@oracle.com/; wrap joined)
    ("kill-no-recovery-jane-chu-2019",
     "[188988.765862] Memory failure: 0x1840200: Killing cellsrv:33395 due to hardware memory corruption", [
        dict(kind="MemoryFailureEvent", pfn=0x1840200, page_type="process page",
             action_result="Killed", uptime_s=188988.765862, raw_lines=1),
    ]),
    # drivers/acpi/apei/ghes.c's own SIGBUS line (arm64 SEA), no "Memory failure:" prefix
    # (Junhao He, lore.kernel.org/all/9817f221-5b5f-7c25-ab94-cb04a854553a@h-partners.com/)
    ("ghes-sigbus-bare-pfn-hejunhao-2025",
     "[ 1430.305518][T54990] 0x1000093: Sending SIGBUS to devmem:54990 due to hardware memory corruption", [
        dict(kind="MemoryFailureEvent", pfn=0x1000093, page_type="process page",
             action_result="Killed", uptime_s=1430.305518, raw_lines=1),
    ]),
    # 3.x prefix "MCE 0x…: recovery action for" (github.com/nccgroup/TriforceLinuxSyscallFuzzer/issues/2)
    ("mce-prefix-triforce-2",
     "[   18.875920] Injecting memory failure for page 0x318 at 0x44f01d\n"
     "[   18.875920] MCE 0x318: recovery action for dirty LRU page: Recovered", [
        dict(kind="MemoryFailureEvent", pfn=0x318, page_type="dirty LRU page",
             action_result="Recovered", uptime_s=18.87592, raw_lines=1),
    ]),
]


@pytest.mark.parametrize(("case", "text", "expected"), PAGE_ACTIONS, ids=[c[0] for c in PAGE_ACTIONS])
def test_page_actions(case: str, text: str, expected: list[dict]) -> None:
    assert klog(text) == expected


def test_memory_failure_prefix_variants() -> None:
    """The pfn and outcome survive the prefixes the kernel and captures put before them."""
    for line in (
        "Memory failure: 0x8a398a: recovery action for dirty LRU page: Recovered",  # 4.x+ (Luck 2024)
        "MCE 0x8a398a: recovery action for dirty LRU page: Recovered",  # 2.6.3x-3.x
        "mce: Memory failure: 0x8a398a: recovery action for dirty LRU page: Recovered",
    ):
        (event,) = klog(line)
        assert (event["pfn"], event["action_result"]) == (0x8A398A, "Recovered"), line


# ---- identical lines the kernel printed twice --------------------------------------------

# OSM #300 (github.com/openstreetmap/operations/issues/300): two i7core CEs in 06:45:20,
# identical once the printk stamp is gone, as journalctl's short format prints them
# (the "[21584698.004044] "/"[21584698.752069] " column removed)
TWICE = [
    "May  7 06:45:20 errol kernel: EDAC MC0: 1 CE error on CPU#0Channel#2_DIMM#0 (channel:2 slot:0 page:0x0 offset:0x0 grain:8 syndrome:0x0)",
    "May  7 06:45:20 errol kernel: EDAC MC0: 1 CE error on CPU#0Channel#2_DIMM#0 (channel:2 slot:0 page:0x0 offset:0x0 grain:8 syndrome:0x0)",
]


def test_identical_lines_in_one_second_are_two_records() -> None:
    first, second = parse_kernel_log(TWICE)
    assert (first.repeat, second.repeat) == (0, 1)
    assert first.raw == second.raw and _identity(first) != _identity(second)
    again = list(parse_kernel_log(TWICE))  # re-importing the file: the same identities
    assert [_identity(r) for r in again] == [_identity(first), _identity(second)]
