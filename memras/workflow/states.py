"""The replacement workflow as data: states, events, steps and a pure ``advance()``.

One replacement walks::

    NEW ─preflight→ CHECKED ─soft_offline_pages→ PAGES_ISOLATED ─offline_blocks→ OFFLINE
        ─remove_module→ REMOVED ─insert_module→ INSERTED ─online_blocks→ ONLINE
        ─verify→ VERIFIED ─close→ CLOSED

Failures and aborts branch off: before the module is removed, ``rollback`` re-onlines
every block memras offlined (Movable) and ends in ROLLED_BACK, or ``leave_offline``
ends in LEFT_OFFLINE when the operator chose ``--on-failure leave``. Once the old
module is gone there is nothing to roll back to: an abort then either waits for a new
module (REMOVED: the operator inserts one and resumes) or ``online_new`` brings the new
module's blocks online Movable and closes the replacement as ABORTED.

Every action is idempotent against the kernel's real state (blocks already offline are
skipped, a module already gone is not removed twice), which is what makes
``memras replace --resume`` after a crash a plain re-run of the current step.

The runner (:mod:`memras.workflow.runner`) performs a step's action and persists the
state named by ``Step.target``; nothing here touches the kernel or the database, so the
table below is the whole truth about which step follows which, and the tests, the TUI
and the docs render it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from memras.errors import WorkflowError


class State(enum.StrEnum):
    NEW = "new"  # a DIMM was selected; nothing changed yet
    CHECKED = "checked"  # preflight passed, the lock is held
    PAGES_ISOLATED = "pages-isolated"  # known-bad pages soft-offlined (or nothing to do)
    OFFLINE = "offline"  # every block of the module offline
    REMOVED = "removed"  # the backend removed the module; its blocks are gone
    INSERTED = "inserted"  # a new module is present and its blocks were detected
    ONLINE = "online"  # the new module's blocks are online (Movable)
    VERIFIED = "verified"  # zones, MemTotal and identity checked
    CLOSED = "closed"  # terminal: replaced
    ROLLED_BACK = "rolled-back"  # terminal: old module back online, nothing replaced
    LEFT_OFFLINE = "left-offline"  # terminal: offline blocks left offline on request
    ABORTED = "aborted"  # terminal: aborted after removal; new module onlined
    REFUSED = "refused"  # terminal: preflight refused; nothing was changed

    @property
    def terminal(self) -> bool:
        return self in TERMINAL_STATES


TERMINAL_STATES = frozenset(
    {State.CLOSED, State.ROLLED_BACK, State.LEFT_OFFLINE, State.ABORTED, State.REFUSED}
)


class Event(enum.StrEnum):
    NEXT = "next"  # the previous step succeeded: go on
    FAIL = "fail"  # the current step failed; policy: roll back
    FAIL_LEAVE = "fail-leave"  # the current step failed; policy: leave blocks offline
    ABORT = "abort"  # the operator asked to stop and undo what can be undone


@dataclass(frozen=True, slots=True)
class Step:
    """One unit of work: what it needs, what it does, how it is undone, what it records."""

    name: str
    target: State  # the state persisted once the action has succeeded
    action: str  # key of the runner's action table
    precondition: str  # what must hold before the action runs (shown in the TUI/docs)
    undo: str | None = None  # the step that reverses this one, if any
    persists: tuple[str, ...] = ()  # what the runner writes to the database
    destructive: bool = False  # changes the machine (needs confirmation, skipped on dry run)


PREFLIGHT = Step("preflight", State.CHECKED, "preflight",
                 "a DIMM was selected", persists=("checks", "lock", "blocks"))
REFUSE = Step("refuse", State.REFUSED, "refuse",
              "a preflight check failed", persists=("checks",))
SOFT_OFFLINE = Step("soft_offline_pages", State.PAGES_ISOLATED, "soft_offline_pages",
                    "preflight passed", persists=("pages",), destructive=True)
OFFLINE = Step("offline_blocks", State.OFFLINE, "offline_blocks",
               "every block online Movable (or --force-zone)", undo="rollback",
               persists=("block status before and after each write",), destructive=True)
REMOVE = Step("remove_module", State.REMOVED, "remove_module",
              "every block of the module offline", persists=("backend result",),
              destructive=True)
INSERT = Step("insert_module", State.INSERTED, "insert_module",
              "the old module is gone", persists=("new blocks",), destructive=True)
ONLINE = Step("online_blocks", State.ONLINE, "online_blocks",
              "the new module's blocks are present", undo="offline_blocks",
              persists=("block status before and after each write",), destructive=True)
VERIFY = Step("verify", State.VERIFIED, "verify",
              "the new blocks are online", persists=("new identity", "EDAC baseline"))
CLOSE = Step("close", State.CLOSED, "close",
             "verification passed", persists=("outcome", "lock released"))
ROLLBACK = Step("rollback", State.ROLLED_BACK, "rollback",
                "the old module is still present",
                persists=("block status before and after each write", "lock released"),
                destructive=True)
LEAVE = Step("leave_offline", State.LEFT_OFFLINE, "leave_offline",
             "the operator chose --on-failure leave", persists=("lock released",))
ONLINE_NEW = Step("online_new", State.ABORTED, "online_new",
                  "a new module is present after the old one was removed",
                  persists=("block status before and after each write", "lock released"),
                  destructive=True)

# (state, event) -> step. A missing pair is a refusal (see advance()).
TRANSITIONS: dict[tuple[State, Event], Step] = {
    (State.NEW, Event.NEXT): PREFLIGHT,
    (State.NEW, Event.FAIL): REFUSE,
    (State.NEW, Event.FAIL_LEAVE): REFUSE,
    (State.NEW, Event.ABORT): REFUSE,
    (State.CHECKED, Event.NEXT): SOFT_OFFLINE,
    (State.PAGES_ISOLATED, Event.NEXT): OFFLINE,
    (State.OFFLINE, Event.NEXT): REMOVE,
    (State.REMOVED, Event.NEXT): INSERT,
    (State.INSERTED, Event.NEXT): ONLINE,
    (State.ONLINE, Event.NEXT): VERIFY,
    (State.VERIFIED, Event.NEXT): CLOSE,
}
# Before the module is removed, failures and aborts undo the offlining.
for _state in (State.CHECKED, State.PAGES_ISOLATED, State.OFFLINE):
    TRANSITIONS[(_state, Event.FAIL)] = ROLLBACK
    TRANSITIONS[(_state, Event.ABORT)] = ROLLBACK
    TRANSITIONS[(_state, Event.FAIL_LEAVE)] = LEAVE
# After the new module is present, an abort brings it online and stops.
for _state in (State.INSERTED, State.ONLINE, State.VERIFIED):
    TRANSITIONS[(_state, Event.ABORT)] = ONLINE_NEW
    TRANSITIONS[(_state, Event.FAIL)] = ONLINE_NEW
    TRANSITIONS[(_state, Event.FAIL_LEAVE)] = ONLINE_NEW

HAPPY_PATH: tuple[Step, ...] = (PREFLIGHT, SOFT_OFFLINE, OFFLINE, REMOVE, INSERT, ONLINE,
                                VERIFY, CLOSE)
ALL_STEPS: tuple[Step, ...] = (*HAPPY_PATH, REFUSE, ROLLBACK, LEAVE, ONLINE_NEW)


def advance(state: State, event: Event) -> Step:
    """The step to perform in ``state`` on ``event``; WorkflowError if there is none."""
    if state.terminal:
        raise WorkflowError(f"the replacement is already {state.value}; nothing more to do",
                            hint="start a new replacement")
    step = TRANSITIONS.get((state, event))
    if step is not None:
        return step
    if state is State.REMOVED:
        raise WorkflowError(
            "the old module is already removed, so there is nothing to roll back to",
            hint="insert a new module and run `memras replace --resume`",
        )
    raise WorkflowError(f"no step follows {state.value} on {event.value}")


def step_named(name: str) -> Step:
    for step in ALL_STEPS:
        if step.name == name:
            return step
    raise WorkflowError(f"unknown workflow step {name!r}")
