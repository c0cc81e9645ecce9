"""The structures that keep a CE storm linear: running window sums and grouped crossings."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from memras.health.buckets import Scope
from memras.health.engine import HealthEngine, SlidingSum
from memras.health.verdict import ActiveCrossing, _scope_findings
from memras.records import DimmLocation, ErrorType, MemoryErrorEvent, Source


def test_sliding_sum_matches_a_recount():
    window = SlidingSum(10.0)
    events = [(0.0, 1), (3.0, 2), (9.9, 1), (10.0, 5), (19.95, 1), (25.0, 3)]
    for t, n in events:
        window.add(t, n)
        expected = sum(c for at, c in events if at <= t and t - at < 10.0)
        assert window.at(t) == expected, t


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
