"""Table-driven tests: every corpus line decodes to exactly the expected fields."""

from __future__ import annotations

import dataclasses

import pytest

from memras.ingest.parsers import (
    KernelLogParser,
    NonMemoryMce,
    ParserStats,
    parse_kernel_log,
    parse_trace_line,
)
from memras.records import MemoryErrorEvent, MemoryFailureEvent, Source
from tests.unit.parsers.corpus_kernel_log import KLOG_CORPUS, KLOG_DECOYS
from tests.unit.parsers.corpus_trace import NON_MEMORY_TRACE, TRACE_CORPUS


def assert_fields(record: object, expected: dict) -> None:
    expected = dict(expected)
    loc = expected.pop("loc", {})
    mce = expected.pop("mce", {})
    raw_lines = expected.pop("raw_lines", None)
    for name, value in expected.items():
        assert getattr(record, name) == value, name
    for name, value in loc.items():
        assert getattr(record.location, name) == value, f"location.{name}"
    for name, value in mce.items():
        assert record.mce is not None
        assert getattr(record.mce, name) == value, f"mce.{name}"
    if raw_lines is not None:
        assert len(record.raw.splitlines()) == raw_lines


@pytest.mark.parametrize(("line", "expected"), [c[1:] for c in TRACE_CORPUS],
                         ids=[c[0] for c in TRACE_CORPUS])  # fmt: skip
def test_trace_corpus(line: str, expected: dict) -> None:
    record = parse_trace_line(line)
    assert isinstance(record, MemoryErrorEvent | MemoryFailureEvent)
    assert record.source is Source.TRACE
    assert record.raw == line
    assert_fields(record, expected)


@pytest.mark.parametrize("line", [c[1] for c in NON_MEMORY_TRACE])
def test_non_memory_mce_is_distinct(line: str) -> None:
    result = parse_trace_line(line)
    assert isinstance(result, NonMemoryMce)
    assert result.mce.status == 0x9000000000000135


@pytest.mark.parametrize(
    "line",
    [
        "",
        "# tracer: nop",
        "kworker/0:1-9 [000] .... 1.0: sched_switch: prev_comm=a",
        "kworker/0:1-9 [000] .... 1.0: mc_event: garbage",
        "kworker/0:1-9 [000] .... 1.0: mce_record: CPU: 0, MCGc/s: 0/0",
    ],
)
def test_trace_other_lines_are_none(line: str) -> None:
    assert parse_trace_line(line) is None


def test_trace_without_flags_and_with_tgid() -> None:
    line = ("bash-1 (    1) [002] 9.5: mc_event: 1 Corrected error: x on L (mc:3 location:1:2:3"
            " address:0x1000 grain:1 syndrome:0x0)")  # fmt: skip
    record = parse_trace_line(line)
    assert isinstance(record, MemoryErrorEvent)
    assert (record.location.mc, record.grain_bits, record.uptime_s) == (3, 0, 9.5)
    assert record.message == "x" and record.driver_detail == ""


@pytest.mark.parametrize(("text", "expected"), [c[1:] for c in KLOG_CORPUS],
                         ids=[c[0] for c in KLOG_CORPUS])  # fmt: skip
def test_kernel_log_corpus(text: str, expected: list[dict]) -> None:
    stats = ParserStats()
    records = list(parse_kernel_log(text.splitlines(), stats=stats))
    assert len(records) == len(expected)
    for record, fields in zip(records, expected, strict=True):
        assert record.source is Source.KMSG
        assert_fields(record, fields)
    assert stats.records == len(expected)
    assert stats.malformed == 0


def test_decoys_produce_nothing_and_are_counted() -> None:
    stats = ParserStats()
    assert list(parse_kernel_log(KLOG_DECOYS, stats=stats)) == []
    assert stats.records == 0
    assert stats.ignored == len(KLOG_DECOYS)


def test_same_fault_lines_give_one_record_and_streaming_matches_batch() -> None:
    text = "\n".join(c[1] for c in KLOG_CORPUS)
    batch = list(parse_kernel_log(text.splitlines()))
    parser = KernelLogParser()
    streamed = [r for line in text.splitlines() for r in parser.feed(line)] + parser.flush()
    assert batch == streamed
    assert len(batch) == sum(len(c[2]) for c in KLOG_CORPUS)


def test_page_shift_64k_pages() -> None:
    line = ("EDAC MC0: 1 CE memory read error on DIMM_0 (channel:0 slot:0 page:0x10 offset:0x20"
            " grain:8 syndrome:0x0)")  # fmt: skip
    (record,) = parse_kernel_log([line], page_shift=16)
    assert record.address == (0x10 << 16) | 0x20
    assert record.page_shift == 16


def test_fake_injection_is_not_an_error() -> None:
    lines = [
        # NixOS/nixpkgs#85039 (edac fake_inject), then the EDAC line it generates
        "[ 1270.140728] Generating 1 CE fake error to 0.0.0 to test core handling. NOTE: this"
        " won't test the driver-specific decoding logic.",
        "[ 1270.140800] EDAC MC0: 1 CE FAKE ERROR on mc#0csrow#0channel#0 (csrow:0 channel:0"
        " page:0x0 offset:0x0 grain:1 syndrome:0x0)",
    ]
    stats = ParserStats()
    assert list(parse_kernel_log(lines, stats=stats)) == []
    assert stats.ignored == 2


def test_interleaved_edac_line_keeps_only_certain_fields() -> None:
    line = ("[ 50.0] EDAC MC0: 1 CE memory read error on CPU_SrcID#0_MC#0_Chan#1_DIMM#0 (channel:1"
            " slot:0 page:0x10de60 offset:0x0 gr[ 50.1] usb 1-1: new device"
            "ain:32 syndrome:0x0 - err_code:0x0080:0x0091)")  # fmt: skip
    stats = ParserStats()
    (record,) = parse_kernel_log([line], stats=stats)
    assert record.address == 0x10DE60000
    assert record.grain_bits is None and record.syndrome == 0
    assert record.location.mc == 0 and record.location.channel is None
    assert record.raw == line
    assert stats.salvaged == 1 and stats.malformed_samples == [line]


def test_kmsg_continuation_lines_ignored() -> None:
    parser = KernelLogParser()
    assert parser.feed(" SUBSYSTEM=edac") == []
    assert parser.stats.ignored == 1


def test_record_fields_all_known() -> None:
    """Guard: the corpus names only real record fields (a typo would pass silently)."""
    names = {f.name for f in dataclasses.fields(MemoryErrorEvent)}
    names |= {f.name for f in dataclasses.fields(MemoryFailureEvent)}
    names |= {"loc", "mce", "raw_lines"}
    for _, _, expected in TRACE_CORPUS:
        assert set(expected) <= names
    for _, _, records in KLOG_CORPUS:
        for expected in records:
            assert set(expected) <= names
