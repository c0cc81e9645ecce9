"""One replacement driven step by step for an interactive front end (the TUI wizard).

Each method is what one background call of the front end does. It holds the
:class:`Replacement` being driven and turns the engine's answers into
:class:`WizardUpdate` values for the screen to render; no Textual, kernel or SQL here
(it lived under tui/widgets/, but nothing in it is a widget). Where the wizard pauses
is data (:data:`PAUSES`): after preflight for the typed confirmation, once the
blocks are offline for the physical swap, at the end.

A refusal that an option of `memras replace` can lift (:data:`OVERRIDES`: blocks not in
ZONE_MOVABLE, a NUMA node's reserve or last Movable memory, a CXL memdev in an
interleaved region, the MemAvailable reserve) is offered again with that option
(:func:`overrides_for`, :meth:`WizardDriver.retry`): a new replacement, started with the
options changed, so its select row in the audit trail holds the override and who chose
it, as the CLI's flags do. A refusal no option lifts (the lock, privileges, a DIMM
interleaved with others, the backend) is offered nothing: its cause must be fixed.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from memras.config import node_reserve_setting
from memras.errors import MemrasError, WorkflowError
from memras.text import format_bytes
from memras.workflow.cxl import INTERLEAVED
from memras.workflow.offline import Progress
from memras.workflow.preflight import SKIPPED
from memras.workflow.runner import Replacement, ReplaceOptions, StepOutcome
from memras.workflow.states import State

if TYPE_CHECKING:
    from memras.host import Host
    from memras.store.store import Store

# Where the wizard stops and waits for the engineer.
CONFIRM_AT = frozenset({State.CHECKED})
SWAP_AT = frozenset({State.OFFLINE})
PAUSES = CONFIRM_AT | SWAP_AT


@dataclass(frozen=True, slots=True)
class Override:
    """One preflight refusal the engineer may lift, as `memras replace`'s ``flag`` does:
    the checks it lifts, what it does, and what it risks (said before they accept it)."""

    key: str  # the wizard's key for it
    option: str  # the ReplaceOptions field it sets
    flag: str  # the CLI's flag for the same
    checks: tuple[str, ...]  # the preflight checks it lifts
    does: str
    risk: str
    size: bool = False  # the engineer enters a size (--reserve SIZE) instead of a yes

    def lifts(self, check: dict[str, Any], snapshot: dict[str, Any]) -> bool:
        """Whether this override can turn the failed ``check`` of ``snapshot`` into a pass."""
        if check["name"] not in self.checks:
            return False
        if self.option == "whole_region":  # a CXL memdev's region, not a DIMM's interleave
            target = snapshot.get("target") or {}
            return bool((target.get("target") or {}).get("cxl")) and \
                target.get("mapping") == INTERLEAVED
        # a node check that failed reading the nodes (a bad [workflow] node_reserve) has
        # no figures: forcing would not get past it
        return not (check["name"] == "node reserve" and "nodes" not in check)


OVERRIDES: tuple[Override, ...] = (
    Override("z", "force_zone", "--force-zone", ("zones",),
             "try to offline blocks that are not in ZONE_MOVABLE",
             "blocks outside ZONE_MOVABLE hold kernel allocations that usually cannot "
             "move: the kernel may refuse to offline them or take long, and the "
             "replacement then rolls back"),
    Override("n", "force_node", "--force-node", ("node reserve", "node movable"),
             "remove though a NUMA node falls below its reserve or loses its last "
             "Movable memory",
             "a workload bound to that node may be pushed into reclaim or OOM, and its "
             "movable pages have to move to another node (slower memory for it)"),
    Override("w", "whole_region", "--whole-region", ("mapping",),
             "take the memdev's whole interleaved region offline and make it again with "
             "the new device",
             "the memory of every memdev in the region goes offline while the device is "
             "out, not only this one's"),
    Override("s", "reserve_bytes", "--reserve SIZE", ("memory reserve",),
             "set the MemAvailable to keep after the removal (default: max(2G, 10% "
             "of MemTotal))",
             "less memory is left free while the module is out: the workload may be "
             "pushed into reclaim, or the OOM killer may end a process", size=True),
)


def overrides_for(snapshot: dict[str, Any]) -> list[Override]:
    """The overrides that lift every failed check of a refused replacement's preflight;
    none when one failed check is not theirs to lift (retrying would be refused again).
    A check skipped for want of blocks is not counted: it runs again once the mapping
    is lifted."""
    failed = [c for c in snapshot.get("checks") or []
              if not c["ok"] and c["detail"] != SKIPPED]
    if snapshot.get("state") != State.REFUSED.value or not failed:
        return []
    chosen: list[Override] = []
    for check in failed:
        lifting = next((o for o in OVERRIDES if o.lifts(check, snapshot)), None)
        if lifting is None:
            return []
        if lifting not in chosen:
            chosen.append(lifting)
    return chosen


def override_value(override: Override, size: int | None = None) -> Any:
    """The option's value when the engineer chose ``override``: the size they typed for
    the reserve, else True."""
    if override.size:
        if size is None:
            raise WorkflowError(f"{override.flag} needs a size")
        return size
    return True


def overridden(options: ReplaceOptions) -> list[str]:
    """The overrides ``options`` carries, as the CLI's flags (``--force-zone``,
    ``--reserve 128M``): what the confirmation says preflight was told."""
    defaults = ReplaceOptions()
    out = []
    for o in OVERRIDES:
        value = getattr(options, o.option)
        if value != getattr(defaults, o.option):
            out.append(o.flag.replace("SIZE", format_bytes(value)) if o.size else o.flag)
    return out


def configured_options(config_path: str | Path | None) -> ReplaceOptions:
    """The options a replacement started from the TUI runs with: the config file's, as
    `memras replace --config` reads it ([audit] and the alert hooks through
    ``alerts_config``, ``[workflow] node_reserve``); no override. A bad node_reserve is
    one UsageError, as on the command line."""
    return ReplaceOptions(alerts_config=str(config_path) if config_path else None,
                          node_reserve=node_reserve_setting(config_path))


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
        self.asked: str | None = None  # the name begin() was given, for a retry
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
        self.asked = dimm
        self.rep = Replacement.start(self.host, self.store, dimm, self.options, **self._kw())
        return self.run_until(PAUSES)

    def retry(self, override: Override, value: Any) -> WizardUpdate:
        """Preflight again with ``override`` set to ``value`` (and every override chosen
        before): a new replacement of the same module, its options recorded in its select
        row as the CLI's are. Only after a refusal, which changed nothing."""
        if self.rep is None or self.rep.state is not State.REFUSED:
            raise WorkflowError("only a replacement preflight refused can be tried again")
        name = self.asked or _name_of(self.rep.snapshot())
        self.options = dataclasses.replace(self.options, **{override.option: value})
        return self.begin(name)

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


def _name_of(snapshot: dict[str, Any]) -> str:
    """How to name a replacement's module again (one resumed, so no name was given):
    a CXL memdev by its name, anything else by its id."""
    target = (snapshot.get("target") or {}).get("target") or {}
    cx = target.get("cxl") or {}
    return str(cx.get("memdev") or target.get("dimm_id") or snapshot.get("dimm"))
