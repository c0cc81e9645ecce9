"""EDAC counter polling: unexplained increases become gaps; resets are detected."""

from __future__ import annotations

from pathlib import Path

from memras.host import Host
from memras.ingest.sources import EdacCounterSource
from memras.records import DimmLocation, ErrorType, MemoryErrorEvent, Source


def make_edac_tree(root: Path, ce: int = 0, ue: int = 0, since_reset: int = 100) -> None:
    mc = root / "sys/devices/system/edac/mc/mc0"
    dimm = mc / "dimm0"
    dimm.mkdir(parents=True, exist_ok=True)
    (mc / "mc_name").write_text("Skylake Socket#0 IMC#0\n")
    (mc / "ce_count").write_text(f"{ce}\n")
    (mc / "ue_count").write_text(f"{ue}\n")
    (mc / "seconds_since_reset").write_text(f"{since_reset}\n")
    (dimm / "dimm_label").write_text("CPU_SrcID#0_MC#0_Chan#0_DIMM#0\n")
    (dimm / "dimm_location").write_text("channel 0 slot 0 \n")
    (dimm / "dimm_ce_count").write_text(f"{ce}\n")
    (dimm / "dimm_ue_count").write_text(f"{ue}\n")


def event_on_dimm0(count: int = 1) -> MemoryErrorEvent:
    return MemoryErrorEvent(
        error_type=ErrorType.CORRECTED, source=Source.TRACE, count=count,
        location=DimmLocation(mc=0, top_layer=0, middle_layer=0, lower_layer=None),
    )


def poll(source: EdacCounterSource):
    source._next_poll = 0.0
    return source.poll(0.0)


def test_explained_increase_is_not_a_gap(tmp_path):
    make_edac_tree(tmp_path, ce=5)
    src = EdacCounterSource(Host(tmp_path), interval_s=0)
    src.start(None)
    assert poll(src).gaps == []  # baseline
    make_edac_tree(tmp_path, ce=8)
    src.observe([event_on_dimm0(3)])
    assert poll(src).gaps == []
    assert poll(src).gaps == []


def test_unexplained_increase_becomes_gap_after_two_polls(tmp_path):
    make_edac_tree(tmp_path, ce=5)
    src = EdacCounterSource(Host(tmp_path), interval_s=0, grace_s=0)  # polls alone
    src.start(None)
    poll(src)
    make_edac_tree(tmp_path, ce=9)
    src.observe([event_on_dimm0(1)])
    assert poll(src).gaps == []  # events may still be on their way
    gaps = poll(src).gaps
    assert [(g.count, g.error_type) for g in gaps] == [(3, "Corrected")]
    assert "CPU_SrcID#0_MC#0_Chan#0_DIMM#0" in gaps[0].message
    assert poll(src).gaps == []  # reported once


def test_reset_is_detected_and_not_a_negative_gap(tmp_path):
    make_edac_tree(tmp_path, ce=50, since_reset=1000)
    src = EdacCounterSource(Host(tmp_path), interval_s=0)
    src.start(None)
    poll(src)
    make_edac_tree(tmp_path, ce=2, since_reset=3)
    batch = poll(src)
    assert [g.error_type for g in batch.gaps] == ["reset"]
    make_edac_tree(tmp_path, ce=2, since_reset=10)
    assert poll(src).gaps == [] and poll(src).gaps == []


def test_cursor_round_trip_keeps_baseline(tmp_path):
    make_edac_tree(tmp_path, ce=5)
    src = EdacCounterSource(Host(tmp_path), interval_s=0)
    src.start(None)
    cursor = poll(src).cursor
    make_edac_tree(tmp_path, ce=7)
    again = EdacCounterSource(Host(tmp_path), interval_s=0, grace_s=0)
    again.start(cursor)
    poll(again)
    gaps = poll(again).gaps
    assert [(g.count, g.error_type) for g in gaps] == [(2, "Corrected")]
