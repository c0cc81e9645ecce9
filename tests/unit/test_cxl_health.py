"""A CXL memdev's verdict from its own severity and health info (memras.health.cxl)."""

from __future__ import annotations

from memras.health.cxl import judge_cxl
from memras.health.rules import rule_for
from memras.health.verdict import VerdictState
from memras.ingest.parsers.cxl import HDR_FLAGS, parse_cxl_event
from memras.records import CxlEvent

HDR = ("memdev=mem0 host=0000:0d:00.0 serial=0 log={log} : time=1 "
       "uuid=fe927475-dd59-4339-a586-79bab113b774 len=128 flags='{flags}' handle=1 "
       "related_handle=0 maint_op_class=0 : ")
MODULE = ("event_type='Health Status Change' health_status='{health}' media_status='{media}' "
          "as_life_used=Normal as_dev_temp=Normal as_cor_vol_err_cnt=Normal "
          "as_cor_per_err_cnt=Normal life_used={life} device_temp=40 dirty_shutdown_cnt={dirty} "
          "cor_vol_err_cnt=0 cor_per_err_cnt=0")


def module(log: str = "Informational", flags: str = "", health: str = "", media: str = "Normal",
           life: int = 10, dirty: int = 0) -> CxlEvent:
    ev = parse_cxl_event("cxl_memory_module", HDR.format(log=log, flags=flags) + MODULE.format(
        health=health, media=media, life=life, dirty=dirty))
    assert ev is not None
    return ev


def test_a_healthy_module_is_ok() -> None:
    v = judge_cxl([module()])["mem0"]
    assert v.state is VerdictState.OK and v.rules == []


def test_each_reason_and_its_state() -> None:
    cases = [
        (module(log="Fatal"), VerdictState.REPLACE_NOW, "cxl-fatal-log"),
        (module(log="Failure"), VerdictState.REPLACE_LATER, "cxl-failure-log"),
        (module(flags="HARDWARE_REPLACEMENT_NEEDED"), VerdictState.REPLACE_NOW,
         "cxl-replacement-needed"),
        (module(health="REPLACEMENT_NEEDED"), VerdictState.REPLACE_NOW, "cxl-replacement-needed"),
        (module(health="MAINTENANCE_NEEDED"), VerdictState.WATCH, "cxl-maintenance-needed"),
        (module(flags="PERFORMANCE_DEGRADED"), VerdictState.WATCH, "cxl-performance-degraded"),
        (module(life=95), VerdictState.REPLACE_LATER, "cxl-life-used-90"),
        (module(media="All Data Lost"), VerdictState.REPLACE_NOW, "cxl-media-data-lost"),
    ]
    for ev, state, rule in cases:
        v = judge_cxl([ev])["mem0"]
        assert (v.state, v.rules) == (state, [rule]), rule
        assert rule_for(rule) is not None, rule  # documented in the one rule table


def test_dirty_shutdowns_count_only_when_they_rise() -> None:
    v = judge_cxl([module(dirty=3), module(dirty=3)])["mem0"]
    assert v.state is VerdictState.OK
    v = judge_cxl([module(dirty=3), module(dirty=4)])["mem0"]
    assert (v.state, v.rules) == (VerdictState.WATCH, ["cxl-dirty-shutdown"])
    assert "3 -> 4" in v.reasons[0]


def test_the_worst_reason_wins_and_all_are_kept() -> None:
    flags = HDR_FLAGS["MAINTENANCE_NEEDED"]
    assert flags == 8
    v = judge_cxl([module(flags="MAINTENANCE_NEEDED"), module(log="Fatal"),
                   CxlEvent(event="poison", memdev="mem1", trace_type="List", dpa=0x1000)])
    assert v["mem0"].state is VerdictState.REPLACE_NOW
    assert v["mem0"].rules == ["cxl-maintenance-needed", "cxl-fatal-log"]
    assert (v["mem1"].state, v["mem1"].rules) == (VerdictState.REPAIR, ["cxl-poison"])
    assert rule_for("cxl-life-used-80") is not None  # a site's other limit


def test_a_memdev_verdict_joins_the_engines_and_the_devices(tmp_path) -> None:
    """Media errors go through the same engine as a DIMM's (id ``label:mem0``); the
    memdev's own records add their rules; the worse state wins."""
    from datetime import UTC, datetime

    from memras.health.cxl import memdev_verdicts
    from memras.health.engine import HealthEngine
    from memras.ingest.parsers.cxl import memory_error
    from memras.store import Store

    dram = parse_cxl_event("cxl_dram", HDR.format(log="Informational", flags="") + (
        "dpa=1000 dpa_flags='' descriptor='UNCORRECTABLE_EVENT' type='ECC Error' "
        "transaction_type='Host Read' channel=2 rank=1 nibble_mask=0 bank_group=3 bank=2 "
        "row=4660 column=288 cor_mask=00 validity_flags='CHANNEL|RANK|BANK GROUP|BANK|ROW|"
        "COLUMN' hpa=ffffffffffffffff region= region_uuid=00000000-0000-0000-0000-000000000000"))
    assert dram is not None
    when = datetime(2024, 12, 5, tzinfo=UTC)
    error = memory_error(dram)
    assert error is not None
    error = error.__class__(**{**{f: getattr(error, f) for f in error.__slots__},
                               "timestamp": when})
    store = Store.open(tmp_path / "m.db")
    try:
        result = store.add_events([error, module(health="MAINTENANCE_NEEDED", dirty=1)])
        assert (result.inserted, result.cxl_inserted) == (1, 1)
        HealthEngine(store=store).process(result.new_events)
        v = memdev_verdicts(store, ["mem0", "mem9"])
        assert v["mem0"].state is VerdictState.REPLACE_NOW  # a UE the device could not correct
        assert "ue" in v["mem0"].rules and "cxl-maintenance-needed" in v["mem0"].rules
        assert any(r.startswith("media errors: ") for r in v["mem0"].reasons)
        assert (v["mem9"].state, v["mem9"].rules) == (VerdictState.OK, [])
    finally:
        store.close()


def test_a_media_errors_own_severity_counts_too(tmp_path) -> None:
    """A corrected DRAM error from the device's Failure log with HARDWARE_REPLACEMENT_NEEDED:
    the engine sees one CE, the device says replace."""
    from datetime import UTC, datetime

    from memras.health.cxl import memdev_verdicts
    from memras.ingest.parsers.cxl import memory_error
    from memras.store import Store

    dram = parse_cxl_event("cxl_dram", HDR.format(
        log="Failure", flags="HARDWARE_REPLACEMENT_NEEDED") + (
        "dpa=1000 dpa_flags='' descriptor='' type='ECC Error' transaction_type='Host Read' "
        "channel=2 rank=1 nibble_mask=0 bank_group=3 bank=2 row=4660 column=288 cor_mask=00 "
        "validity_flags='CHANNEL|RANK|BANK GROUP|BANK|ROW|COLUMN' hpa=ffffffffffffffff "
        "region= region_uuid=00000000-0000-0000-0000-000000000000"))
    assert dram is not None
    error = memory_error(dram)
    assert error is not None
    error = error.__class__(**{**{f: getattr(error, f) for f in error.__slots__},
                               "timestamp": datetime(2024, 12, 5, tzinfo=UTC)})
    store = Store.open(tmp_path / "m.db")
    try:
        store.add_events([error])
        v = memdev_verdicts(store, ["mem0"])["mem0"]
        assert v.state is VerdictState.REPLACE_NOW
        assert v.rules[:2] == ["cxl-failure-log", "cxl-replacement-needed"]
    finally:
        store.close()
