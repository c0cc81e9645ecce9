"""Scoring rules against tickets, and the memras-database input, without the CLI."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from memras.evaluate import evaluate
from memras.evaluate.history import Ticket, read_memras_db
from memras.evaluate.metrics import quantile, score_rule
from memras.evaluate.replay import MCELOG_RULE, DimmFlags
from memras.records import DimmLocation, ErrorType, MemoryErrorEvent, Source
from memras.store import Store

T0 = datetime(2024, 1, 10, tzinfo=UTC)


@pytest.mark.parametrize(("values", "q", "expected"), [
    ([], 0.5, None), ([5.0], 0.1, 5.0), ([1.0, 3.0], 0.5, 2.0),
    ([30.0, 10.0, 20.0], 0.9, 28.0), ([10.0, 20.0, 30.0, 40.0], 0.1, 13.0),
])
def test_quantile_interpolates_between_order_statistics(values, q, expected) -> None:
    assert quantile(values, q) == expected


def _flags(dimm: str, hours_before: float | None) -> DimmFlags:
    d = DimmFlags("h", dimm)
    if hours_before is not None:
        d.flag("r", T0 - timedelta(hours=hours_before))
    return d


# (flag hours before T0 or None, failed at T0?, horizon hours) -> tp, fp, fn, late, early
CASES = [
    ("flag before failure", 5, True, None, (1, 0, 0, 0, 0)),
    ("flag at failure is late", 0, True, None, (0, 0, 1, 1, 0)),
    ("flag after failure is late", -3, True, None, (0, 0, 1, 1, 0)),
    ("never flagged", None, True, None, (0, 0, 1, 0, 0)),
    ("flag on a healthy DIMM", 5, False, None, (0, 1, 0, 0, 0)),
    ("flag within horizon", 24, True, 24, (1, 0, 0, 0, 0)),
    ("flag beyond horizon", 25, True, 24, (0, 0, 1, 0, 1)),
]


@pytest.mark.parametrize(("hours", "failed", "horizon_h", "expected"),
                         [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_score_rule_cases(hours, failed, horizon_h, expected) -> None:
    failures = {("h", "D1"): T0} if failed else {}
    s = score_rule("r", "r", [_flags("D1", hours)], failures,
                   None if horizon_h is None else horizon_h * 3600)
    assert (s.tp, s.fp, s.fn, s.late, s.early) == expected
    assert s.leads_s == ((hours * 3600,) if expected[0] else ())


def test_memras_database_input_replays_like_the_csv(tmp_path) -> None:
    loc = DimmLocation(socket=0, channel=1, slot=0, rank=0, bank_group=0, bank=3, row=0x40)
    events = [MemoryErrorEvent(ErrorType.CORRECTED, Source.TRACE, timestamp=T0 + timedelta(
        minutes=i), address=0x10000000 + 0x2000 * i, location=DimmLocation(
            **{**{f: getattr(loc, f) for f in ("socket", "channel", "slot", "rank",
                                                "bank_group", "bank", "row")},
               "column": i})) for i in range(12)]
    url = str(tmp_path / "m.db")
    with Store.open(url) as store:
        store.add_events(events)
    history = read_memras_db(url, "db1")
    result, replayed = evaluate(history, [Ticket("db1", "S0:C1:D0", T0 + timedelta(days=2))])
    assert history.total == 12 and list(replayed.dimms) == [("db1", "S0:C1:D0")]
    mcelog = result.score(MCELOG_RULE)
    assert (mcelog.tp, mcelog.fp) == (1, 0)
    assert mcelog.leads_s == ((timedelta(days=2) - timedelta(minutes=9)).total_seconds(),)
