# ruff: noqa: E501  (real log lines are kept verbatim)
"""MCA decoder (lab status values), mcelog, rasdaemon rows, dedup, and fuzzing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from memras.ingest.mca import (
    McaClass,
    MemoryTransaction,
    Severity,
    classify_mcacod,
    decode_status,
    severity,
    usable_address,
)
from memras.ingest.parsers import (
    KernelLogParser,
    dedup_key,
    dedup_keys,
    from_extlog_row,
    from_mc_event_row,
    from_mce_record_row,
    from_memory_failure_row,
    parse_mcelog,
    parse_trace_line,
)
from memras.records import ErrorType

# (status from lab-recipe.md / hotplug-and-qemu.md §4, mcgstatus, severity, transaction, chan)
MCA_TABLE = [
    (0x9C0000000000009F, 0, Severity.CE, MemoryTransaction.RD, None),
    (0xBD000000000000C0, 5, Severity.SRAO, MemoryTransaction.MS, 0),
    (0xBC0000000000009F, 5, Severity.UCNA, MemoryTransaction.RD, None),
    (0x8C00004000010092, 0, Severity.CE, MemoryTransaction.RD, 2),  # edac-utils#10
    (0xBD80000000800090, 5, Severity.SRAR, MemoryTransaction.RD, 0),  # Synth. S|AR
    (0xFE00000000800090, 5, Severity.PANIC, MemoryTransaction.RD, 0),  # OVER|UC
]


@pytest.mark.parametrize(("status", "mcg", "grade", "tx", "chan"), MCA_TABLE)
def test_status_classes(status, mcg, grade, tx, chan) -> None:
    assert severity(status, mcg) is grade
    code = classify_mcacod(decode_status(status).mcacod)
    assert code.kind is McaClass.MEMORY_CONTROLLER
    assert (code.transaction, code.channel) == (tx, chan)


def test_status_bits() -> None:
    st_ = decode_status(0x9C00004001010090)  # mcelog dump_mce example
    assert (st_.val, st_.over, st_.uc, st_.en, st_.miscv, st_.addrv, st_.pcc) == (
        True, False, False, True, True, True, False)  # fmt: skip
    assert (st_.corrected_count, st_.mscod, st_.mcacod) == (1, 0x0101, 0x0090)
    assert severity(0x9200000000000090) is Severity.PANIC  # PCC
    assert classify_mcacod(0x0135).kind is McaClass.CACHE
    assert classify_mcacod(0x0E0B).kind is McaClass.BUS
    assert classify_mcacod(0x0014).kind is McaClass.TLB
    assert classify_mcacod(0x109F).transaction is MemoryTransaction.RD  # filter bit 12


def test_usable_address_rules() -> None:
    ce = 0x9C0000000000009F
    assert usable_address(ce, 0x86, 0x100201234) == 0x100201200  # LSB 6
    assert usable_address(ce, 0x8C, 0x100201234) == 0x100201000  # LSB 12
    assert usable_address(ce, 0x8D, 0x100201234) is None  # LSB 13 > page
    assert usable_address(ce, 0x46, 0x100201234) is None  # mode 1 (linear)
    assert usable_address(ce & ~(1 << 59), 0x86, 0x100201234) is None  # no MISCV


MCELOG = """\
Mar 30 00:39:12 host mcelog[2226]: Hardware event. This is not a software error.
Mar 30 00:39:12 host mcelog[2226]: MCE 0
Mar 30 00:39:12 host mcelog[2226]: CPU 0 BANK 7 TSC b98e63765d2
Mar 30 00:39:12 host mcelog[2226]: MISC 200005c280201086 ADDR 20b5cf8880
Mar 30 00:39:12 host mcelog[2226]: TIME 1617035952 Tue Mar 30 00:39:12 2021
Mar 30 00:39:12 host mcelog[2226]: MCG status:
Mar 30 00:39:12 host mcelog[2226]: MCi status:
Mar 30 00:39:12 host mcelog[2226]: Corrected error
Mar 30 00:39:12 host mcelog[2226]: Error enabled
Mar 30 00:39:12 host mcelog[2226]: MCi_MISC register valid
Mar 30 00:39:12 host mcelog[2226]: MCi_ADDR register valid
Mar 30 00:39:12 host mcelog[2226]: MCA: MEMORY CONTROLLER RD_CHANNEL0_ERR
Mar 30 00:39:12 host mcelog[2226]: Transaction: Memory read error
Mar 30 00:39:12 host mcelog[2226]: M2M: MscodDataRdErr
Mar 30 00:39:12 host mcelog[2226]: STATUS 9c00004001010090 MCGSTATUS 0
Mar 30 00:39:12 host mcelog[2226]: MCGCAP f000c14 APICID 0 SOCKETID 0
Mar 30 00:39:12 host mcelog[2226]: PPIN 1234
Mar 30 00:39:12 host mcelog[2226]: CPUID Vendor Intel Family 6 Model 85
"""  # winddoing.github.io/post/3ae1a27e.html via kernel-error-sources.md §1.5


def test_mcelog_record() -> None:
    (event,) = parse_mcelog(MCELOG)
    assert event.address == 0x20B5CF8880 & ~0x3F
    assert event.error_type is ErrorType.CORRECTED and event.grain_bits == 6
    assert event.mce.bank == 7 and event.mce.status == 0x9C00004001010090
    assert event.mce.mcgcap == 0xF000C14 and event.mce.ppin == 0x1234
    assert event.timestamp == datetime(2021, 3, 29, 16, 39, 12, tzinfo=UTC)
    assert event.location.channel == 0 and event.location.socket == 0
    assert event.message == "memory read error"


def test_rasdaemon_rows() -> None:
    row = {"id": 1, "timestamp": "2024-12-19 03:52:38 +0100", "err_count": 2,
           "err_type": "Fatal", "err_msg": "memory read error",
           "label": "CPU_SrcID#0_MC#1_Chan#0_DIMM#1", "mc": 1, "top_layer": 0,
           "middle_layer": 1, "lower_layer": -1, "address": -2, "grain": 5,
           "syndrome": 0, "driver_detail": " err_code:0x0080:0x0090 Row:0x10"}  # fmt: skip
    event = from_mc_event_row(row)
    assert event.timestamp == datetime(2024, 12, 19, 3, 52, 38, tzinfo=timezone(timedelta(hours=1)))
    assert event.address == 2**64 - 2 and event.grain_bits == 5 and event.count == 2
    assert event.error_type is ErrorType.FATAL
    assert from_mc_event_row(row, mislabelled_068=True).error_type is ErrorType.DEFERRED
    loc = event.location
    assert (loc.mc, loc.top_layer, loc.middle_layer, loc.lower_layer) == (1, 0, 1, None)
    assert (loc.socket, loc.channel, loc.slot, loc.row) == (0, 0, 1, 0x10)

    mce = from_mce_record_row({"timestamp": "2024-01-01 00:00:00 +0000", "status":
                               0x9C0000000000009F - 2**64, "bank": 7, "addr": 0x100201000,
                               "misc": 0x86, "mcgcap": -1})  # fmt: skip
    assert mce.address == 0x100201000 and mce.mce.mcgcap == 0xFFFFFFFF
    assert from_mce_record_row({"status": 0x9000000000000135 - 2**64, "bank": 1}) is None
    mf = from_memory_failure_row(
        {
            "timestamp": None,
            "pfn": "0x19869",
            "page_type": "free buddy page",
            "action_result": "Delayed",
        }
    )
    assert (mf.pfn, mf.action_result) == (0x19869, "Delayed")
    ext = from_extlog_row({"etype": 2, "severity": 2, "address": 0x90BA03400,
                           "error_count": 1, "fru_text": "DIMM_A1 "})  # fmt: skip
    assert (ext.error_type, ext.message, ext.location.label) == (
        ErrorType.CORRECTED, "single-bit ECC", "DIMM_A1")  # fmt: skip


def test_dedup_trace_mce_matches_kmsg_mce_lines() -> None:
    trace = parse_trace_line(
        "kworker/1:0-22 [001] ..... 4.868755: mce_record: CPU: 0, MCGc/s: 0/0, MC7:"
        " 9c0000000000009f, IPID: 0000000000000000, ADDR/MISC/SYND:"
        " 0000000100201000/0000000000000086/0000000000000000, RIP: 00:<0000000000000000>,"
        " TSC: 52db3942f, PROCESSOR: 2:60fb1, TIME: 1795960395, SOCKET: 0, APIC: 0"
    )
    parser = KernelLogParser()
    parser.feed(
        "[    4.868700] mce: [Hardware Error]: CPU 0: Machine Check: 0 Bank 7: 9c0000000000009f"
    )
    parser.feed("[    4.868701] mce: [Hardware Error]: TSC 52db3942f ADDR 100201000 MISC 86")
    (kmsg,) = parser.flush()
    # the two meet on the wall clock: the trace record's own (TIME), the kmsg line's
    # boot + uptime (a boot time that puts the MCE at its TIME)
    assert trace.timestamp is not None and kmsg.uptime_s is not None
    boot_s = trace.timestamp.timestamp() - 4.868755
    assert dedup_key(trace) == dedup_key(kmsg, wall_s=boot_s + kmsg.uptime_s)
    assert dedup_key(kmsg)[-2:] == ("up", 2)  # no clock: its uptime, in its own namespace
    other = parse_trace_line(
        "kworker/1:0-22 [001] ..... 4.9: mc_event: 1 Corrected error: x on L (mc:0"
        " location:0:0:-1 address:0x200000000 grain:64 syndrome:0x0)"
    )
    assert dedup_key(other) != dedup_key(trace)
    key, previous = dedup_keys(trace, window_s=2.0)
    assert previous is not None and previous[-1] == key[-1] - 1


FUZZ = settings(max_examples=300, deadline=None)


@FUZZ
@given(st.text())
def test_fuzz_trace(text: str) -> None:
    parse_trace_line(text)


@FUZZ
@given(st.lists(st.text(), max_size=20))
def test_fuzz_kernel_log(lines: list[str]) -> None:
    parser = KernelLogParser()
    for line in lines:
        parser.feed(line)
    parser.flush()
    assert parser.stats.internal_errors == 0


@FUZZ
@given(st.binary())
def test_fuzz_bytes_replace(data: bytes) -> None:
    text = data.decode(errors="replace")
    parse_trace_line(text)
    parse_mcelog(text)
    parser = KernelLogParser()
    for line in text.splitlines():
        parser.feed(line)
    parser.flush()
    assert parser.stats.internal_errors == 0


@FUZZ
@given(st.sampled_from([
    "[ 1.0] EDAC MC0: 1 CE memory read error on X (channel:0 slot:0 page:0x1 offset:0x2 grain:8 syndrome:0x0)",
    "mce: [Hardware Error]: CPU 0: Machine Check: 0 Bank 7: 9c0000000000009f",
    "{1}[Hardware Error]:   node:6 card:1 module:0",
    "Hardware event. This is not a software error.\nSTATUS 9c0000000000009f\nCPU 0 BANK 1",
]), st.integers(0, 200), st.text(max_size=10))  # fmt: skip
def test_fuzz_mutated_real_lines(line: str, cut: int, splice: str) -> None:
    mutated = line[:cut] + splice + line[cut:]
    parse_trace_line(mutated)
    parse_mcelog(mutated)
    parser = KernelLogParser()
    for part in mutated.splitlines():
        parser.feed(part)
    parser.flush()
    assert parser.stats.internal_errors == 0  # no parser bug was caught by feed()'s net
