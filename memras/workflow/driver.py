"""One replacement driven step by step for an interactive front end (the TUI wizard).

Each method is what one background call of the front end does. It holds the
:class:`Replacement` being driven and turns the engine's answers into
:class:`WizardUpdate` values for the screen to render; no Textual, kernel or SQL here
(it lived under tui/widgets/, but nothing in it is a widget). Where the wizard pauses
is data (:data:`PAUSES`): after preflight for the typed confirmation, once the
blocks are offline for the physical swap, at the end.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from memras.errors import MemrasError, WorkflowError
from memras.workflow.offline import Progress
from memras.workflow.runner import Replacement, ReplaceOptions, StepOutcome
from memras.workflow.states import State

if TYPE_CHECKING:
    from memras.host import Host
    from memras.store.store import Store

# Where the wizard stops and waits for the engineer.
CONFIRM_AT = frozenset({State.CHECKED})
SWAP_AT = frozenset({State.OFFLINE})
PAUSES = CONFIRM_AT | SWAP_AT


@dataclass
class WizardUpdate:
    """What the engine said after a call: state, snapshot, the steps performed."""

    state: State
    snapshot: dict[str, Any]
    outcomes: list[StepOutcome] = field(default_factory=list)
    error: str = ""

    @property
    def finished(self) -> bool:
        return self.state.terminal


class WizardDriver:
    """Drives one replacement step by step for the wizard (one per wizard screen)."""

    def __init__(self, host: Host, store: Store, options: ReplaceOptions | None = None) -> None:
        self.host, self.store = host, store
        self.options = options or ReplaceOptions()
        self.rep: Replacement | None = None
        self.on_progress: Callable[[Progress], object] | None = None  # what it returns is unused
        self.on_step: Callable[[StepOutcome], object] | None = None
        self.cancel = threading.Event()

    def _progress(self, progress: Progress) -> None:
        if self.on_progress is not None:
            self.on_progress(progress)

    def _kw(self) -> dict[str, Any]:
        return {"progress": self._progress, "cancel": self.cancel}

    def update(self, outcomes: list[StepOutcome] | None = None, error: str = "") -> WizardUpdate:
        assert self.rep is not None
        return WizardUpdate(self.rep.state, self.rep.snapshot(), outcomes or [], error)

    # --- the calls the workers make ------------------------------------------------------
    def interrupted(self) -> WizardUpdate | None:
        """The replacement left in progress (crash, kill -9, closed wizard), if any."""
        try:
            self.rep = Replacement.active(self.host, self.store, **self._kw())
        except WorkflowError as exc:
            if "no replacement is in progress" in exc.msg:
                return None
            raise
        return self.update()

    def begin(self, dimm: str) -> WizardUpdate:
        """Record the replacement and run preflight (nothing on the machine changes)."""
        self.rep = Replacement.start(self.host, self.store, dimm, self.options, **self._kw())
        return self.run_until(PAUSES)

    def run_until(self, pauses: frozenset[State] = PAUSES) -> WizardUpdate:
        """Perform steps until a pause or a terminal state (failures roll back on the way)."""
        assert self.rep is not None
        outcomes: list[StepOutcome] = []
        try:
            while not self.rep.finished:
                outcome = self.rep.next_step()
                outcomes.append(outcome)
                if self.on_step is not None:
                    self.on_step(outcome)
                if outcome.ok and outcome.state in pauses:
                    break
        except MemrasError as exc:
            return self.update(outcomes, error=exc.msg + (f" ({exc.hint})" if exc.hint else ""))
        finally:
            self.cancel.clear()
        if self.rep.finished:
            self.rep.close()
        return self.update(outcomes)

    def abort(self) -> WizardUpdate:
        """Undo what can be undone (blocks back online) and stop."""
        assert self.rep is not None
        try:
            outcome = self.rep.abort()
        except MemrasError as exc:
            return self.update(error=exc.msg + (f" ({exc.hint})" if exc.hint else ""))
        return self.update([outcome])

    def close(self) -> None:
        if self.rep is not None:
            self.rep.close()
