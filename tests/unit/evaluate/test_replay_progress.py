"""``memras evaluate`` on a long history: progress on stderr, Ctrl-C stops the replay."""

from __future__ import annotations

import io
import os
import signal
import threading
from pathlib import Path

import pytest

import memras.cli.evaluate as evaluate_cli
from memras.cli import main
from memras.cli.context import Context
from memras.cli.evaluate import PLAIN_EVERY_S, ReplayProgress
from memras.cli.progress import ProgressDisplay
from memras.errors import EXIT_INTERRUPTED
from memras.evaluate import ReplayCancelled, ReplayWatch, evaluate
from memras.evaluate import history as H

DATA = Path(__file__).parents[2] / "data" / "evaluate"
ARGS = ["evaluate", "--csv", str(DATA / "errors.csv"), "--tickets", str(DATA / "tickets.csv")]


def _history() -> tuple[H.History, list[H.Ticket]]:
    errors = H.read_events_csv(DATA / "errors.csv")
    return errors, H.read_tickets_csv(DATA / "tickets.csv", errors.skipped)


def test_the_watch_hears_of_every_event_once_and_in_order() -> None:
    errors, tickets = _history()
    seen: list[int] = []
    watch = ReplayWatch(seen.append)
    evaluate(errors, tickets, watch=watch)
    assert seen == sorted(seen) and seen[-1] == errors.total == watch.events
    assert watch.hosts == len(errors.events)


def test_a_cancel_stops_the_replay_between_batches_and_says_how_far() -> None:
    errors, tickets = _history()
    cancel = threading.Event()
    watch = ReplayWatch(lambda done: cancel.set(), cancel)  # "Ctrl-C" at the first batch
    with pytest.raises(ReplayCancelled) as stopped:
        evaluate(errors, tickets, watch=watch)
    first_host = len(errors.events[sorted(errors.events)[0]])
    assert (stopped.value.events, stopped.value.hosts) == (first_host, 0)
    assert 0 < stopped.value.events < errors.total


class _CtrlC:
    """A ReplayProgress that presses Ctrl-C (a real SIGINT) at the first batch."""

    def __init__(self, shown: ProgressDisplay, total: int) -> None:
        pass

    def __call__(self, done: int) -> None:
        os.kill(os.getpid(), signal.SIGINT)


@pytest.mark.parametrize("json_flag", [[], ["--json"]])
def test_ctrl_c_ends_with_one_line_and_130(capsys, monkeypatch, json_flag) -> None:
    monkeypatch.setattr(evaluate_cli, "ReplayProgress", _CtrlC)
    code = main([*json_flag, *ARGS])
    out, err = capsys.readouterr()
    assert code == EXIT_INTERRUPTED == 130
    assert out == ""  # no table, no JSON: nothing was scored
    assert "Traceback" not in err
    stop = [line for line in err.splitlines() if "events replayed" in line]
    assert len(stop) == 1 and "of 66 events replayed (0 of 2 hosts)" in stop[0]
    assert "nothing was scored" in stop[0]


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _progress(json: bool) -> tuple[ReplayProgress, _Clock, io.StringIO]:
    err = io.StringIO()  # not a terminal: plain lines
    ctx = Context(root=Path("/"), db="", json=json, config=None, out=io.StringIO(), err=err)
    clock = _Clock()
    return ReplayProgress(ProgressDisplay(ctx, "evaluate"), 10_000, clock), clock, err


def test_a_pipe_gets_a_line_every_ten_seconds_with_rate_and_time_left() -> None:
    progress, clock, err = _progress(json=False)
    clock.now += 2
    progress(500)
    assert err.getvalue() == ""  # a quick run prints nothing
    clock.now += PLAIN_EVERY_S - 2
    progress(2_000)
    assert err.getvalue() == ("evaluate: 2,000 of 10,000 events replayed, 200 events/s, "
                              "~40s left\n")
    clock.now += 1
    progress(2_200)
    assert err.getvalue().count("\n") == 1  # not again before another 10 s


def test_json_keeps_stderr_quiet() -> None:
    progress, clock, err = _progress(json=True)
    for done in (1_000, 5_000, 9_000):
        clock.now += 3 * PLAIN_EVERY_S
        progress(done)
    assert err.getvalue() == ""

