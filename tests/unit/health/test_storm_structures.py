"""The structures that keep a CE storm linear: running window sums and grouped crossings."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

from memras.health.buckets import BucketSet, Scope, Severity, Threshold
from memras.health.classify import _cell_of
from memras.health.engine import SLIDING_SUM_SLOTS, HealthEngine, SlidingSum
from memras.health.verdict import ActiveCrossing, _scope_findings
from memras.records import DimmLocation, ErrorType, MemoryErrorEvent, Source


def test_sliding_sum_matches_a_recount():
    window = SlidingSum(10.0)
    events = [(0.0, 1), (3.0, 2), (9.9, 1), (10.0, 5), (19.95, 1), (25.0, 3)]
    for t, n in events:
        window.add(t, n)
        expected = sum(c for at, c in events if at <= t and t - at < 10.0)
        assert window.at(t) == expected, t


def test_sliding_sum_memory_is_bounded_and_never_expires_early():
    import random

    rng = random.Random(7)
    span = 3600.0
    window = SlidingSum(span)
    merge_s = span / SLIDING_SUM_SLOTS
    t, seen = 0.0, []
    for _ in range(200_000):  # a storm: 0-20 ms apart, 1-3 CEs each, over ~33 minutes
        t += rng.random() * 0.02
        n = rng.randint(1, 3)
        seen.append((t, n))
        window.add(t, n)
    assert len(window._items) <= SLIDING_SUM_SLOTS + 1
    for probe in (t, t + 0.8 * span, t + span - 1.0, t + span + merge_s):  # in time order
        exact = sum(c for at, c in seen if probe - at < span)
        late = sum(c for at, c in seen if probe - at < span + merge_s)
        assert exact <= window.at(probe) <= late, probe


def test_buckets_per_scope_are_bounded_least_recently_hit_replaced():
    buckets = BucketSet({(Scope.PAGE, Severity.CE): Threshold(2, 86400)}, max_per_scope=4)
    for i in range(4):
        assert buckets.account(Scope.PAGE, Severity.CE, f"p{i}", float(i)) is None
    assert buckets.account(Scope.PAGE, Severity.CE, "p0", 4.0) is not None  # 2nd CE: crosses
    buckets.account(Scope.PAGE, Severity.CE, "p4", 5.0)  # a fifth page replaces p1, not p0
    buckets.account(Scope.PAGE, Severity.CE, "p5", 6.0)  # and a sixth p2
    assert sorted(k[2] for k in buckets.buckets) == ["p0", "p3", "p4", "p5"]
    assert buckets.replaced == {Scope.PAGE: 2}
    # a replaced page starts again empty, as if its bucket had drained (replacing p3)
    assert buckets.account(Scope.PAGE, Severity.CE, "p1", 7.0) is None
    assert buckets.replaced == {Scope.PAGE: 3}
    assert buckets.account(Scope.PAGE, Severity.CE, "p4", 8.0) is not None  # kept: crosses
    assert buckets.prune(10 * 86400.0) == 4 and not buckets._recency[Scope.PAGE]


def test_replaced_page_counters_are_logged_once_per_tenfold(caplog) -> None:
    from memras.health.config import Config

    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    engine = HealthEngine(Config(page_counters=16))
    with caplog.at_level("WARNING", logger="memras.health.engine"):
        for start in range(0, 200, 20):  # 200 distinct pages through 16 counters
            engine.process([MemoryErrorEvent(
                ErrorType.CORRECTED, Source.TRACE, timestamp=t0 + timedelta(seconds=i),
                address=0x100000000 + i * 4096,
                location=DimmLocation(mc=0, top_layer=0, middle_layer=0, label="D0"))
                for i in range(start, start + 20)])
    notes = [r.getMessage() for r in caplog.records]
    assert engine.buckets.replaced[Scope.PAGE] == 200 - 16
    assert len(notes) == 2 and all("[page] counters = 16" in n for n in notes)
    assert "4 least recently hit page counters" in notes[0]  # the first batch past 16


def test_engine_memory_in_a_long_storm_is_bounded_not_per_event():
    """12k CEs on distinct pages, each with a 2 KB raw line: the engine used to keep every
    line (classifier window) and a bucket and five window entries per event."""
    import gc
    import tracemalloc

    from memras.health.config import Config

    t0 = datetime(2026, 1, 1, tzinfo=UTC)

    def batch(start: int) -> list[MemoryErrorEvent]:  # made as the watcher makes them:
        return [MemoryErrorEvent(  # fresh per batch, dropped once judged
            ErrorType.CORRECTED, Source.TRACE, timestamp=t0 + timedelta(milliseconds=5 * i),
            address=0x100000000 + i * 4096, raw=f"{i} " + "x" * 2000,
            message="memory read error", driver_detail=f"area:DRAM {i} " * 20,
            location=DimmLocation(mc=0, top_layer=0, middle_layer=0, label="D0", rank=0,
                                  bank=2, row=0x1A2F, column=i % 64))
            for i in range(start, start + 500)]

    engine = HealthEngine(Config(page_counters=1000))
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for start in range(0, 12_000, 500):
            engine.process(batch(start))
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert grown < 10 * 2**20, f"{grown / 2**20:.1f} MiB"  # the raw lines alone are 23 MiB
    assert engine.buckets.replaced[Scope.PAGE] == 12_000 - 1000


def test_many_page_crossings_are_one_finding():
    crossings = tuple(ActiveCrossing(Scope.PAGE, "page-ce-2/24h", f"{0x1000 * i:#x}", 2 + i % 3)
                      for i in range(500))
    findings = _scope_findings(crossings)
    page = [f for f in findings if f[1] == "page-ce-2/24h"]
    assert len(page) == 1
    assert "500 pages crossed" in page[0][2] and "4 CEs" in page[0][2]


def test_storm_over_many_pages_reports_the_page_count():
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    events = [MemoryErrorEvent(
        ErrorType.CORRECTED, Source.TRACE, timestamp=t0 + timedelta(seconds=i),
        address=0x100000000 + (i % 300) * 4096,
        location=DimmLocation(mc=0, top_layer=0, middle_layer=0, label="D0", rank=0, bank=2,
                              row=0x1A2F, column=i % 64)) for i in range(900)]
    engine = HealthEngine()
    engine.process(events)
    (verdict,) = engine.verdicts().values()
    page_reasons = [r for r in verdict.reasons if "pages" in r]
    assert page_reasons and "300 pages" in page_reasons[0]
    assert verdict.evidence["trend"]["last_24h"] == 900


def test_a_storm_over_new_cells_keeps_only_the_window_s_cells():
    """The set of cells a DIMM erred in followed every CE of a storm over new pages for
    as long as the watcher ran; it holds the classifier window's cells now."""
    engine = HealthEngine()
    window = engine.config.classify.window_events
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    events = [MemoryErrorEvent(
        ErrorType.CORRECTED, Source.TRACE, timestamp=t0 + timedelta(milliseconds=i),
        address=0x100000000 + i * 4096,
        location=DimmLocation(mc=0, top_layer=0, middle_layer=0, label="D0", rank=0,
                              bank=i % 16, row=i, column=i % 1024))
        for i in range(window + 3000)]
    for i in range(0, len(events), 500):
        engine.process(events[i:i + 500])
    (dimm,) = engine.dimms.values()
    assert len(dimm.records) == window
    # exactly the records' cells, each with its number of records in the window
    assert dimm.cells == dict(Counter(_cell_of(r) for _, r in dimm.records))
    assert sum(dimm.cells.values()) == window


def test_a_storm_reports_a_bucket_s_crossing_as_its_count_doubles():
    """mcelog's bucket re-fires every 10 CEs; the changes (alert updates) come at its
    first crossing and each doubling, and again once the bucket drained."""
    engine = HealthEngine()
    t0 = datetime(2026, 1, 1, tzinfo=UTC)

    def burst(start: datetime, n: int, first: int) -> list[MemoryErrorEvent]:
        return [MemoryErrorEvent(
            ErrorType.CORRECTED, Source.TRACE, timestamp=start + timedelta(milliseconds=i),
            address=0x100000000 + (first + i) * 4096,
            location=DimmLocation(mc=0, top_layer=0, middle_layer=0, label="D0", rank=0,
                                  bank=i % 16, row=first + i, column=i % 1024))
            for i in range(n)]

    def dimm_totals(changes) -> list[int]:
        return [c.evidence["total_in_window"] for c in changes
                if c.rule_ids == ("mcelog-dimm-ce-10/24h",)]

    storm = engine.process(burst(t0, 1000, 0))
    assert dimm_totals(storm) == [10, 20, 40, 80, 160, 320, 640]
    later = engine.process(burst(t0 + timedelta(days=3), 30, 1000))  # the bucket drained
    assert dimm_totals(later) == [10, 20]
