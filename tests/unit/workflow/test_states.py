"""The transition table, as a table: (state, event) -> expected step."""

from __future__ import annotations

import pytest

from memras.errors import WorkflowError
from memras.workflow.states import (
    ALL_STEPS,
    HAPPY_PATH,
    TRANSITIONS,
    Event,
    State,
    advance,
    step_named,
)

CASES = [
    (State.NEW, Event.NEXT, "preflight", State.CHECKED),
    (State.NEW, Event.FAIL, "refuse", State.REFUSED),
    (State.CHECKED, Event.NEXT, "soft_offline_pages", State.PAGES_ISOLATED),
    (State.PAGES_ISOLATED, Event.NEXT, "offline_blocks", State.OFFLINE),
    (State.OFFLINE, Event.NEXT, "remove_module", State.REMOVED),
    (State.REMOVED, Event.NEXT, "insert_module", State.INSERTED),
    (State.INSERTED, Event.NEXT, "online_blocks", State.ONLINE),
    (State.ONLINE, Event.NEXT, "verify", State.VERIFIED),
    (State.VERIFIED, Event.NEXT, "close", State.CLOSED),
    (State.CHECKED, Event.FAIL, "rollback", State.ROLLED_BACK),
    (State.PAGES_ISOLATED, Event.FAIL, "rollback", State.ROLLED_BACK),
    (State.PAGES_ISOLATED, Event.FAIL_LEAVE, "leave_offline", State.LEFT_OFFLINE),
    (State.PAGES_ISOLATED, Event.ABORT, "rollback", State.ROLLED_BACK),
    (State.OFFLINE, Event.ABORT, "rollback", State.ROLLED_BACK),
    (State.OFFLINE, Event.FAIL_LEAVE, "leave_offline", State.LEFT_OFFLINE),
    (State.INSERTED, Event.ABORT, "online_new", State.ABORTED),
    (State.ONLINE, Event.FAIL, "online_new", State.ABORTED),
]


@pytest.mark.parametrize(("state", "event", "step", "target"), CASES)
def test_transition_table(state: State, event: Event, step: str, target: State) -> None:
    got = advance(state, event)
    assert got.name == step
    assert got.target is target


@pytest.mark.parametrize("state", sorted(s for s in State if s.terminal))
def test_terminal_states_refuse_every_event(state: State) -> None:
    for event in Event:
        with pytest.raises(WorkflowError, match="already"):
            advance(state, event)


def test_abort_after_removal_explains_where_the_memory_is() -> None:
    with pytest.raises(WorkflowError) as info:
        advance(State.REMOVED, Event.ABORT)
    assert "already removed" in info.value.msg
    assert "--resume" in (info.value.hint or "")


def test_happy_path_chains_from_new_to_closed() -> None:
    state = State.NEW
    for expected in HAPPY_PATH:
        step = advance(state, Event.NEXT)
        assert step is expected
        state = step.target
    assert state is State.CLOSED


def test_every_non_terminal_state_has_a_next_step_and_steps_are_named_uniquely() -> None:
    for state in State:
        if not state.terminal:
            assert (state, Event.NEXT) in TRANSITIONS
    names = [s.name for s in ALL_STEPS]
    assert len(names) == len(set(names))
    assert step_named("verify").target is State.VERIFIED
    with pytest.raises(WorkflowError):
        step_named("nope")
