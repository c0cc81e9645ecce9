"""EDAC gap reconciliation waits a grace period for late events, and memras's own
counter resets raise nothing (memras.ingest.edac_ledger). Time is a fake clock."""

from __future__ import annotations

from pathlib import Path

import pytest

from memras.host import Host
from memras.ingest.edac_ledger import (
    OWN_RESET_SLACK_S,
    Ledger,
    is_own_reset,
    note_own_reset,
    own_resets,
)
from memras.ingest.sources import EdacCounterSource
from tests.unit.ingest.test_edac_gaps import event_on_dimm0, make_edac_tree


class Clock:
    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


def source(root: Path, clock: Clock, *, grace_s: float = 30.0,
           marks: dict[str, str | None] | None = None) -> EdacCounterSource:
    """A source polled by hand (interval 0) on ``clock`` (monotonic and wall alike)."""
    marks = marks if marks is not None else {}
    src = EdacCounterSource(Host(root), interval_s=0, grace_s=grace_s,
                            own_resets=lambda: marks.get("text"), clock=clock,
                            wall_clock=clock)
    src.start(None)
    return src


def poll_at(src: EdacCounterSource, clock: Clock, at: float) -> list[tuple[int, str]]:
    clock.now = at
    src._next_poll = 0.0
    return [(g.count, g.error_type) for g in src.poll(0.0).gaps]


def watched(root: Path, ce: int = 0, grace_s: float = 30.0
            ) -> tuple[Clock, EdacCounterSource]:
    """A source that took its baseline (``ce`` counted) at t=1000."""
    clock = Clock()
    make_edac_tree(root, ce=ce)
    src = source(root, clock, grace_s=grace_s)
    poll_at(src, clock, 1000)
    return clock, src


def test_events_stored_after_the_counter_poll_within_grace_are_no_gap(tmp_path):
    clock, src = watched(tmp_path)
    make_edac_tree(tmp_path, ce=1)
    assert poll_at(src, clock, 1005) == []  # counted; its event is still on its way
    assert poll_at(src, clock, 1010) == []  # two polls, but within the grace period
    clock.now = 1025
    src.observe([event_on_dimm0()])  # the late event
    assert poll_at(src, clock, 1040) == [] and poll_at(src, clock, 1100) == []


def test_a_count_no_event_explains_within_grace_is_a_gap_once(tmp_path):
    clock, src = watched(tmp_path)
    make_edac_tree(tmp_path, ce=1)
    assert poll_at(src, clock, 1005) == []
    assert poll_at(src, clock, 1034) == []  # 29 s: still waiting
    assert poll_at(src, clock, 1036) == [(1, "Corrected")]
    clock.now = 1040
    src.observe([event_on_dimm0()])  # too late: it claims nothing, and is not negative
    assert poll_at(src, clock, 1045) == [] and poll_at(src, clock, 1200) == []


def test_a_short_grace_still_waits_for_a_second_poll(tmp_path):
    clock, src = watched(tmp_path, grace_s=1)
    make_edac_tree(tmp_path, ce=2)
    assert poll_at(src, clock, 1060) == []  # first read: older than grace, one poll only
    assert poll_at(src, clock, 1065) == [(2, "Corrected")]


def test_a_steady_stream_whose_events_trail_the_counter_raises_no_gap(tmp_path):
    """Each poll sees one more count than the events stored so far: a running deficit
    never reaches zero, yet every count is explained within seconds."""
    clock, src = watched(tmp_path)
    for n in range(1, 40):
        make_edac_tree(tmp_path, ce=n)
        assert poll_at(src, clock, 1000 + 5 * n) == []
        clock.now += 2
        src.observe([event_on_dimm0()])  # the event of this poll's count, 2 s later


def test_an_event_stored_before_the_poll_that_reads_its_count_explains_it(tmp_path):
    clock, src = watched(tmp_path, ce=3)
    clock.now = 1002
    src.observe([event_on_dimm0(2)])
    make_edac_tree(tmp_path, ce=5)
    assert [poll_at(src, clock, t) for t in (1005, 1040, 1100)] == [[], [], []]


def test_events_the_counter_never_counted_expire_and_hide_no_later_gap(tmp_path):
    clock, src = watched(tmp_path)
    src.observe([event_on_dimm0(5)])  # e.g. an imported history: never counted here
    poll_at(src, clock, 1005)
    poll_at(src, clock, 1040)  # the unclaimed events are dropped
    make_edac_tree(tmp_path, ce=1)
    poll_at(src, clock, 1045)
    assert poll_at(src, clock, 1080) == [(1, "Corrected")]


def test_a_restart_waits_again_for_counts_that_were_pending(tmp_path):
    clock, src = watched(tmp_path, ce=4)
    make_edac_tree(tmp_path, ce=6)
    clock.now = 1005
    src._next_poll = 0.0
    cursor = src.poll(0.0).cursor
    again = EdacCounterSource(Host(tmp_path), interval_s=0, grace_s=30, clock=clock,
                              wall_clock=clock)
    again.start(cursor)
    assert poll_at(again, clock, 1010) == []
    assert poll_at(again, clock, 1045) == [(2, "Corrected")]


def _reset_scene(tmp_path: Path, clock: Clock, marks: dict[str, str | None]
                 ) -> EdacCounterSource:
    make_edac_tree(tmp_path, ce=7, since_reset=500)
    src = source(tmp_path, clock, marks=marks)
    poll_at(src, clock, 1000)
    return src


def test_a_reset_memras_made_raises_nothing(tmp_path):
    clock, marks = Clock(), {}
    src = _reset_scene(tmp_path, clock, marks)
    marks["text"] = note_own_reset(None, 0, 1003.0)  # the workflow, before its write
    make_edac_tree(tmp_path, ce=0, since_reset=1)
    assert poll_at(src, clock, 1005) == []
    make_edac_tree(tmp_path, ce=0, since_reset=40)
    assert poll_at(src, clock, 1040) == [] and poll_at(src, clock, 1080) == []


def test_a_foreign_reset_is_still_reported_and_counts_restart_at_zero(tmp_path):
    clock, marks = Clock(), {"text": note_own_reset(None, 0, 900.0)}  # an older reset
    src = _reset_scene(tmp_path, clock, marks)
    make_edac_tree(tmp_path, ce=2, since_reset=3)  # two errors since the reset
    assert poll_at(src, clock, 1005) == [(0, "reset")]
    assert poll_at(src, clock, 1040) == [(2, "Corrected")]  # counted from zero


def test_a_reset_of_another_controller_is_not_ours(tmp_path):
    clock, marks = Clock(), {"text": note_own_reset(None, 1, 1003.0)}
    src = _reset_scene(tmp_path, clock, marks)
    make_edac_tree(tmp_path, ce=0, since_reset=1)
    assert poll_at(src, clock, 1005) == [(0, "reset")]


@pytest.mark.parametrize(("at", "previous", "now", "ours"), [
    (1003.0, 1000.0, 1005.0, True),
    (1000.0 - OWN_RESET_SLACK_S / 2, 1000.0, 1005.0, True),  # marked just before a poll
    (990.0, 1000.0, 1005.0, False),  # before the previous reading: another reset
    (1006.0, 1000.0, 1005.0, False),  # in the future of this reading
    (1003.0, None, 1005.0, False),  # previous reading unknown: not provably ours
])
def test_is_own_reset_window(at, previous, now, ours):
    assert is_own_reset({0: at}, 0, previous, now) is ours


@pytest.mark.parametrize("text", [None, "", "not json", "[1, 2]", '{"x": 1, "0": "soon"}',
                                  '{"0": true}'])
def test_unreadable_marks_are_no_marks(text):
    assert own_resets(text) == {}


def test_marks_keep_other_controllers():
    text = note_own_reset(note_own_reset(None, 0, 5.0), 2, 7.5)
    assert own_resets(note_own_reset(text, 0, 9.0)) == {0: 9.0, 2: 7.5}


def test_ledger_matches_oldest_first():
    ledger = Ledger()
    ledger.count(0.0, 2)
    ledger.count(10.0, 3)
    ledger.event(11.0, 4)
    assert ledger.overdue(12.0, 30.0) == 0 and ledger.unexplained == 1
    assert ledger.overdue(35.0, 30.0) == 0  # the older count was the one explained
    assert ledger.overdue(41.0, 30.0) == 1 and not ledger
