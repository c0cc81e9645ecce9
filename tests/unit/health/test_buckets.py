"""Leaky buckets: mcelog's syntax and algorithm, at the events' own times."""

from __future__ import annotations

import pytest

from memras.errors import UsageError
from memras.health.buckets import (
    DEFAULT_THRESHOLDS,
    BucketSet,
    LeakyBucket,
    Scope,
    Severity,
    Threshold,
    parse_threshold,
)

DAY_S = 86400

SYNTAX = [
    ("10 / 24h", Threshold(10, 24 * 3600)),
    ("10/24h", Threshold(10, 24 * 3600)),
    ("1 / 24h", Threshold(1, 86400)),
    ("2k / 1d", Threshold(2000, 86400)),
    ("1m / 30m", Threshold(1_000_000, 1800)),
    ("3g / 2", Threshold(3_000_000_000, 2)),
    ("5 / 3600", Threshold(5, 3600)),
    ("  7  /  7d ", Threshold(7, 7 * 86400)),
    ("10 / 24H", Threshold(10, 86400)),
]


@pytest.mark.parametrize(("text", "expected"), SYNTAX)
def test_syntax(text: str, expected: Threshold) -> None:
    assert parse_threshold(text) == expected


@pytest.mark.parametrize("text", ["off", "OFF", "none"])
def test_off_disables(text: str) -> None:
    assert parse_threshold(text) is None


BAD = [
    ("10 / 24s", "unit 's' is not allowed (use m, h or d, or none for seconds)"),
    ("0 / 24h", "must both be above 0"),
    ("10 / 0h", "must both be above 0"),
    ("10x / 24h", "count suffix 'x' is not allowed"),
    ("ten per day", "not a threshold"),
    ("10", "not a threshold"),
    ("-1 / 24h", "not a threshold"),
]


@pytest.mark.parametrize(("text", "message"), BAD)
def test_bad_syntax_is_one_clear_line(text: str, message: str) -> None:
    where = "memras.toml: [thresholds.dimm] ce"
    with pytest.raises(UsageError) as info:
        parse_threshold(text, where)
    assert message in info.value.msg
    assert info.value.msg.startswith(f"{where} = {text!r}")
    assert "\n" not in info.value.msg


def test_nth_event_fires_and_every_capacityth_after() -> None:
    bucket = LeakyBucket(Threshold(10, DAY_S))
    fired = [bucket.account(float(i)) for i in range(30)]
    assert [i for i, f in enumerate(fired) if f] == [9, 19, 29]
    assert bucket.count == 0 and bucket.excess == 30


def test_error_count_of_a_record_is_added() -> None:
    bucket = LeakyBucket(Threshold(10, DAY_S))
    assert not bucket.account(0.0, errors=9)
    assert bucket.account(1.0, errors=3)
    assert bucket.excess == 12


AGING = [
    # (event times in hours, capacity/agetime_h, index of events that fire)
    ([0, 1, 2], (3, 24), [2]),
    ([0, 1, 30], (3, 24), []),  # 30 h later: floor(29/24*3)=3 drained -> count 1
    ([0, 1, 24, 25], (3, 24), []),  # aged at 24 h: count 2 - 3 -> 0, then 1, 2
    ([0, 1, 24, 25, 26], (3, 24), [4]),
    ([0, 12, 13, 14], (2, 24), [1, 3]),
    ([0, 10, 20, 100, 101], (2, 24), [1, 4]),
]


@pytest.mark.parametrize(("hours", "spec", "fires"), AGING)
def test_aging(hours: list[int], spec: tuple[int, int], fires: list[int]) -> None:
    capacity, agetime_h = spec
    bucket = LeakyBucket(Threshold(capacity, agetime_h * 3600))
    fired = [i for i, h in enumerate(hours) if bucket.account(h * 3600.0)]
    assert fired == fires


def test_aging_resets_excess_and_partial_drain() -> None:
    bucket = LeakyBucket(Threshold(10, 100))
    for t in range(8):
        bucket.account(float(t))
    assert bucket.count == 8
    bucket.account(150.0)  # diff 150 >= 100: drain floor(1.5*10)=15 -> 0, then +1
    assert (bucket.count, bucket.excess, bucket.tstamp_s) == (1, 0, 150.0)


def test_time_is_event_time_not_wall_clock() -> None:
    """A year-old replay fires exactly at the 10th event's own second."""
    set_ = BucketSet(dict(DEFAULT_THRESHOLDS))
    year_ago = 1_600_000_000.0
    crossings = [set_.account(Scope.DIMM, Severity.CE, "mc0:0:0:-1", year_ago + 60 * i)
                 for i in range(10)]
    assert crossings[:9] == [None] * 9
    assert crossings[9] is not None and crossings[9].time_s == year_ago + 540
    assert crossings[9].rule_id == "mcelog-dimm-ce-10/24h"


def test_disabled_scope_never_fires_and_site_rule_id() -> None:
    thresholds = dict(DEFAULT_THRESHOLDS)
    thresholds[(Scope.DIMM, Severity.CE)] = Threshold(5, DAY_S)
    set_ = BucketSet(thresholds)
    assert all(set_.account(Scope.BANK, Severity.CE, "b", float(i)) is None for i in range(5000))
    hits = [c for i in range(5) if (c := set_.account(Scope.DIMM, Severity.CE, "d", float(i)))]
    assert [c.rule_id for c in hits] == ["site-dimm-ce-5/24h"]


def test_prune_drops_only_drained_buckets_and_changes_no_result() -> None:
    set_ = BucketSet(dict(DEFAULT_THRESHOLDS))
    for i in range(5):
        set_.account(Scope.DIMM, Severity.CE, "old", float(i))
    set_.account(Scope.DIMM, Severity.CE, "new", 3 * DAY_S)
    assert set_.prune(3 * DAY_S + 1) == 1
    assert set(k[2] for k in set_.buckets) == {"new"}
