"""The engine: performs one workflow step at a time and records it before and after.

Drive it step by step (the TUI wizard) or to the end (``memras replace``)::

    rep = Replacement.start(host, store, "P1-DIMMB1", ReplaceOptions(operator="Ada"),
                            progress=on_progress, say=show, cancel=cancel_event)
    while not rep.finished:
        outcome = rep.next_step()        # StepOutcome: step, ok, state, message, data
    rep.abort()                          # rolls back what can be rolled back
    Replacement.active(host, store)      # the in-progress one, after a crash (--resume)

Persistence: before a step's action the row's ``current_step`` is set; after it, the
new ``state`` is written and ``current_step`` cleared. A step interrupted by a crash is
therefore re-run on resume, and every action is idempotent against the machine. Block
rows are committed ``offlining`` before each kernel write and get the result after it
(offline: one transaction per block, see :mod:`memras.workflow.journal`).

For the crash tests, ``MEMRAS_TEST_CRASH_AT=<point>`` makes the process ``os._exit(137)``
at that point (``step:NAME:before|after``, ``block:N:offline:before|after``…),
``MEMRAS_TEST_KILL_AT=<point>`` sends it a real SIGKILL there (the lab's kill -9 at an
exact point of a step), and ``MEMRAS_TEST_CRASH_LOG=<file>`` appends every point reached.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from memras.alerts.service import AlertService
from memras.audit.service import Actor, AuditTrail, store_session
from memras.bmc.led import WORKFLOW_LED, slot_names, workflow_led
from memras.errors import MemrasError, StoreError, WorkflowError
from memras.health.api import current_verdicts
from memras.health.module_registry import (
    ModuleIdentity,
    module_history,
    of_removed_module,
    record_replacement,
)
from memras.ingest.edac_ledger import OWN_RESETS_CURSOR, note_own_reset
from memras.jsonenc import json_safe
from memras.topology.inventory import dimm_inventory, resolve_dimm
from memras.topology.memory_map import MAPPED, blocks_for_dimm, read_memory_map
from memras.topology.naming import display_names
from memras.topology.units import (
    GOES_OUT_WHOLE,
    Unit,
    describe,
    find_unit,
    replaceable_units,
    smallest_unit,
)
from memras.workflow import cxl, lock
from memras.workflow.backends import Backend, BackendContext, Target, load_backend
from memras.workflow.detect import (
    ModuleWatch,
    block_ids,
    new_blocks_present,
    old_blocks_present,
)
from memras.workflow.journal import block_journal
from memras.workflow.models import ReplacementBlockRow, ReplacementRow
from memras.workflow.offline import (
    BlockResult,
    Progress,
    RetryPolicy,
    online_state_for,
    run_blocks,
    set_block_state,
)
from memras.workflow.pending import kernel_where, where_text
from memras.workflow.preflight import Check, PreflightInput, run_preflight
from memras.workflow.states import HAPPY_PATH, Event, State, Step, advance, step_named
from memras.workflow.verify import (
    VerifyReport,
    check_mem_total,
    check_module_identity,
    check_new_blocks,
    edac_baseline,
    module_serial,
    new_identity,
)

if TYPE_CHECKING:
    from memras.host import Host
    from memras.store.store import Store

ON_FAILURE_CHOICES = ("rollback", "leave")
CRASH_ENV, CRASH_LOG_ENV = "MEMRAS_TEST_CRASH_AT", "MEMRAS_TEST_CRASH_LOG"
KILL_ENV = "MEMRAS_TEST_KILL_AT"


def crash_point(label: str) -> None:
    """Test hook: record and, when asked, die here as kill -9 would."""
    log = os.environ.get(CRASH_LOG_ENV)
    if log:
        with open(log, "a") as fh:
            fh.write(label + "\n")
    if os.environ.get(CRASH_ENV) == label:
        os._exit(137)
    if os.environ.get(KILL_ENV) == label:
        os.kill(os.getpid(), signal.SIGKILL)


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


@dataclass
class ReplaceOptions:
    backend: str | None = None  # default: "simulated" on a simulated root, else "acpi"
    on_failure: str = "rollback"
    operator: str | None = None
    force_zone: bool = False
    reserve_bytes: int | None = None
    force_node: bool = False  # --force-node: a node may lose its reserve / last Movable memory
    whole_region: bool = False  # --whole-region: a CXL memdev's interleaved region goes too
    node_reserve: str | int | None = None  # [workflow] node_reserve (None: 10 %)
    soft_offline: bool = True
    reset_edac: bool = True
    detect_timeout_s: float = 600.0
    policy: dict[str, Any] = field(default_factory=dict)  # RetryPolicy fields (int and float)
    backend_options: dict[str, Any] = field(default_factory=dict)  # e.g. {"qmp": path}
    # --config: its [alerts] hooks hear of resolved alerts; its [audit] anchors and keys rows
    alerts_config: str | None = None

    def retry_policy(self) -> RetryPolicy:
        return RetryPolicy(**self.policy)

    def validate(self) -> None:
        if self.on_failure not in ON_FAILURE_CHOICES:
            raise WorkflowError(f"--on-failure must be rollback or leave, not "
                                f"{self.on_failure!r}")


@dataclass(frozen=True, slots=True)
class StepOutcome:
    step: str
    ok: bool
    state: State
    message: str
    seconds: float = 0.0
    data: dict[str, Any] = field(default_factory=dict)


class StepFailed(WorkflowError):
    """An action failed; ``data`` is recorded in the audit with the message."""

    def __init__(self, msg: str, *, hint: str | None = None, data: dict | None = None):
        super().__init__(msg, hint=hint)
        self.data = data or {}


def default_backend(host: Host, target: Target) -> str:
    """The backend when none is named: ``simulated`` on a simulated root, else ``cxl``
    for a CXL memdev and ``acpi`` for the rest."""
    if host.is_simulated:
        return "simulated"
    return "cxl" if target.cxl else "acpi"


def resolve_target(host: Host, dimm_text: str, *,
                   whole_region: bool = False) -> tuple[Target, str, str]:
    """The module or unit the engineer named, its blocks, and the mapping status and reason.

    A CXL memdev (``mem0``, or its serial) is a unit of its own: its blocks are those of
    its regions' DAX devices (:mod:`memras.workflow.cxl`); an interleaved region maps
    only with ``whole_region``.

    A replaceable unit (:mod:`memras.topology.units`) named by its ACPI device is the
    target itself when it holds other than one DIMM. A DIMM that cannot go alone
    becomes the smallest ejectable unit holding it, and the reason names every module
    that goes out with it; when no unit can be removed, the reason names the smallest
    unit that holds it (the preflight then refuses)."""
    memdev = cxl.find_memdev(host, dimm_text)
    if memdev is not None:
        return _cxl_target(host, memdev, whole_region)
    cxl.refuse_unknown_memdev(host, dimm_text)
    mm = read_memory_map(host)
    inventory = dimm_inventory(host, memory_map=mm)
    units = replaceable_units(mm, inventory)
    names = display_names(inventory)
    unit = find_unit(units, dimm_text)
    if unit is not None and unit.ejectable and len(unit.dimms) != 1:
        return _unit_target(host, unit), MAPPED, (
            f"{GOES_OUT_WHOLE}: unit {describe(unit, names)}" if unit.dimms else
            f"{GOES_OUT_WHOLE}: unit {describe(unit, names)} ({unit.how})")
    dimm = resolve_dimm(host, dimm_text, inventory=inventory)
    mapping = blocks_for_dimm(host, dimm.ref, memory_map=mm)
    status, reason = mapping.status, mapping.reason
    blocks, acpi_device = mapping.blocks, mapping.acpi_device
    if status != MAPPED:
        best = smallest_unit(units, dimm.id)
        if (best is not None and best.ejectable and best.acpi_device
                and set(mapping.blocks) <= set(best.blocks)):
            status, blocks, acpi_device = MAPPED, best.blocks, best.acpi_device
            reason = (f"{names.get(dimm.id, dimm.id)} cannot go alone ({reason}); its unit "
                      f"{GOES_OUT_WHOLE}: {describe(best, names)}")
        elif best is not None:
            reason += (f"; the smallest unit that holds it is {describe(best, names)}"
                       + ("" if best.ejectable else
                          ", and no ACPI memory device can remove it"))
        else:
            unknown = [u for u in units if u.ejectable and not u.dimms]
            if unknown:
                reason += ("; which unit holds it is unknown, these hold unknown DIMMs: "
                           + ", ".join(describe(u, names) for u in unknown)
                           + " (replace one by its name when you know the module is in it)")
    uid = acpi_path = None
    if acpi_device:
        try:
            acpi = host.acpi.read(acpi_device)
            uid, acpi_path = acpi.uid or None, acpi.path or None
        except MemrasError:
            uid = None
    dev = dimm.smbios
    target = Target(dimm_id=str(dimm.id), label=dimm.label or "",
                    locator=dev.locator if dev else "", serial=dev.serial if dev else "",
                    part=dev.part_number if dev else "",
                    blocks=tuple(blocks) if status == MAPPED else (),
                    block_size=host.memory.block_size(), acpi_device=acpi_device,
                    slot=uid, acpi_path=acpi_path,
                    block_ids=block_ids(host, blocks) if status == MAPPED else ())
    return target, status, reason


def _cxl_target(host: Host, memdev: Any, whole_region: bool) -> tuple[Target, str, str]:
    record, blocks, status, reason = cxl.resolve(host, memdev, whole_region=whole_region)
    return Target(dimm_id=f"label:{memdev.name}", label=memdev.name, locator=memdev.host,
                  serial=cxl.serial_text(memdev.serial), part="",
                  blocks=blocks if status == MAPPED else (),
                  block_size=host.memory.block_size(), slot=record["slot"],
                  block_ids=block_ids(host, blocks) if status == MAPPED else (),
                  cxl=record), status, reason


def _unit_target(host: Host, unit: Unit) -> Target:
    """A unit of several (or unknown) DIMMs as the target: named by its ACPI device."""
    path = None
    if unit.acpi_device:
        try:
            path = host.acpi.read(unit.acpi_device).path or None
        except MemrasError:
            path = None
    return Target(dimm_id=unit.id, label=unit.id, locator="", serial="", part="",
                  blocks=unit.blocks, block_size=host.memory.block_size(),
                  acpi_device=unit.acpi_device, slot=unit.acpi_uid, acpi_path=path,
                  block_ids=block_ids(host, unit.blocks))


def verdict_for(store: Store, dimm_id: str) -> dict[str, Any] | None:
    """The health verdict and its rules at decision time; None when the DIMM has none."""
    verdict = current_verdicts(store, [dimm_id]).get(dimm_id)
    return None if verdict is None else json_safe(asdict(verdict))


class Replacement:
    """One replacement, persisted; every method re-reads the database first."""

    def __init__(self, host: Host, store: Store, replacement_id: int, *,
                 progress: Callable[[Progress], None] | None = None,
                 say: Callable[[str], None] | None = None,
                 cancel: threading.Event | None = None) -> None:
        self.host, self.store, self.id = host, store, replacement_id
        self.progress = progress
        self.say = say or (lambda text: None)
        self.cancel = cancel or threading.Event()
        self._process_lock = lock.ProcessLock(lock.lock_file_for(host.root,
                                                                 is_real=host.is_real))
        self._process_lock.acquire()
        row = self._row()
        self._blocks = list((row.target or {}).get("target", {}).get("blocks") or [])
        self.options = ReplaceOptions(**row.options)
        # its [audit]; a simulated server's steps are no real event for the journal
        self.audit = AuditTrail.configured(store, self.options.alerts_config,
                                           journal=not host.is_simulated)
        self.actor = Actor(uid=row.uid, user=row.user, operator=row.operator, host=row.host)
        self._backend: Backend | None = None
        self._watch: ModuleWatch | None = None  # the module's uevents, from its removal on

    # --- construction -------------------------------------------------------------
    @classmethod
    def start(cls, host: Host, store: Store, dimm_text: str, options: ReplaceOptions,
              **kw: Any) -> Replacement:
        """Select the DIMM and record a NEW replacement (takes the lock)."""
        options.validate()
        target, status, reason = resolve_target(host, dimm_text,
                                                whole_region=options.whole_region)
        options.backend = options.backend or default_backend(host, target)
        actor = Actor.current(options.operator, host.hostname())
        # a bad [audit] key_file stops us before a replacement is recorded without its rows
        AuditTrail.configured(store, options.alerts_config).check_can_append()
        with store_session(store) as s:
            holder = lock.holder(s)
            if holder is not None:
                raise WorkflowError(
                    f"replacement #{holder.replacement_id} is still in progress",
                    hint="finish it with `memras replace --resume` or undo it with "
                         "`memras replace --abort`")
            row = _new_row(host, target, status, reason, options, actor)
            s.add(row)
            s.flush()
            lock.take(s, row.id)
            for block in target.blocks:
                s.add(ReplacementBlockRow(replacement_id=row.id, role="old", block=block,
                                          status=host.memory.state(block),
                                          updated_at=_now()))
            s.commit()
            new_id = row.id
        rep = cls(host, store, new_id, **kw)
        rep.audit.append("select", {"target": target.as_dict(), "mapping": status,
                                    "mapping_reason": reason,
                                    "verdict": verdict_for(store, target.dimm_id),
                                    "backend": options.backend, "options": asdict(options)},
                         actor=actor, replacement_id=new_id)
        return rep

    @classmethod
    def active(cls, host: Host, store: Store, **kw: Any) -> Replacement:
        """The replacement in progress (the lock holder), for --resume and --abort."""
        with store_session(store) as s:
            holder = lock.holder(s)
            rid = holder.replacement_id if holder else None
        if rid is None:
            raise WorkflowError("no replacement is in progress",
                                hint="start one with `memras replace DIMM`")
        return cls(host, store, rid, **kw)

    @classmethod
    def latest(cls, host: Host, store: Store, **kw: Any) -> Replacement | None:
        """The most recent replacement, in progress or not (None if there was none)."""
        with store_session(store) as s:
            rid = s.scalars(select(ReplacementRow.id).order_by(
                ReplacementRow.id.desc())).first()
        return None if rid is None else cls(host, store, rid, **kw)

    def close(self) -> None:
        """Let go of the process lock (the DB lock stays until a terminal state)."""
        if self._watch is not None:
            self._watch.close()
            self._watch = None
        self._process_lock.release()

    def watch(self) -> ModuleWatch:
        """The watch of the old module's removal and the new one's arrival (opened once,
        before the removal, so the uevents of a fast swap are all seen)."""
        if self._watch is None:
            self._watch = ModuleWatch(self.host, self.target)
        return self._watch

    # --- state --------------------------------------------------------------------
    def _row(self) -> ReplacementRow:
        with store_session(self.store) as s:
            row = s.get(ReplacementRow, self.id)
            if row is None:
                raise WorkflowError(f"no replacement #{self.id}")
            s.expunge(row)
            return row

    @property
    def state(self) -> State:
        return State(self._row().state)

    @property
    def finished(self) -> bool:
        return self.state.terminal

    @property
    def target(self) -> Target:
        return Target.from_dict(self._row().target["target"])

    def blocks(self, role: str) -> list[ReplacementBlockRow]:
        with store_session(self.store) as s:
            rows = list(s.scalars(select(ReplacementBlockRow).where(
                ReplacementBlockRow.replacement_id == self.id,
                ReplacementBlockRow.role == role).order_by(ReplacementBlockRow.block)))
            for r in rows:
                s.expunge(r)
            return rows

    def snapshot(self) -> dict[str, Any]:
        """Everything a front end shows: state, step, target, blocks, checks, result."""
        row = self._row()
        return {"id": row.id, "state": row.state, "current_step": row.current_step,
                "dimm": row.dimm_label, "backend": row.backend, "operator": row.operator,
                "target": row.target, "checks": row.checks, "result": row.result,
                "error": row.error, "where": self.where_is_memory(),
                "blocks": {role: [{"block": b.block, "status": b.status,
                                   "attempts": b.attempts, "error": b.last_error}
                                  for b in self.blocks(role)] for role in ("old", "new")}}

    def plan(self) -> list[Step]:
        return list(HAPPY_PATH)

    @property
    def backend(self) -> Backend:
        if self._backend is None:
            row = self._row()
            ctx = BackendContext(host=self.host, options=dict(self.options.backend_options),
                                 say=self.say, cancel=self.cancel,
                                 timeout_s=self.options.detect_timeout_s)
            self._backend = load_backend(row.backend, ctx)
        return self._backend

    def _update(self, **fields: Any) -> None:
        with store_session(self.store) as s:
            row = s.get(ReplacementRow, self.id)
            assert row is not None  # the runner's replacement row is never deleted under it
            for key, value in fields.items():
                setattr(row, key, value)
            row.updated_at = _now()
            s.commit()

    def _set_block(self, role: str, block: int, status: str, *, attempts: int | None = None,
                   error: str | None = None) -> None:
        with store_session(self.store) as s:
            row = s.scalars(select(ReplacementBlockRow).where(
                ReplacementBlockRow.replacement_id == self.id,
                ReplacementBlockRow.role == role, ReplacementBlockRow.block == block)).first()
            if row is None:
                row = ReplacementBlockRow(replacement_id=self.id, role=role, block=block,
                                          status=status, attempts=0, updated_at=_now())
                s.add(row)
            row.status, row.updated_at = status, _now()
            if attempts is not None:
                row.attempts = (row.attempts or 0) + attempts
            row.last_error = error
            s.commit()

    # --- driving ------------------------------------------------------------------
    def next_step(self) -> StepOutcome:
        """Perform exactly one step (the interrupted one first, after a crash)."""
        row = self._row()
        state = State(row.state)
        step = step_named(row.current_step) if row.current_step else advance(state, Event.NEXT)
        return self._perform(step, state)

    def run(self, *, on_step: Callable[[StepOutcome], None] | None = None) -> StepOutcome:
        """Perform steps until a terminal state; returns the last outcome."""
        outcome = StepOutcome("none", True, self.state, "nothing to do")
        while not self.finished:
            outcome = self.next_step()
            if on_step:
                on_step(outcome)
        self.close()
        return outcome

    def abort(self) -> StepOutcome:
        """Undo what can be undone from here and stop; says where the memory is."""
        row = self._row()
        state = State(row.state)
        step = advance(state, Event.ABORT)
        self.audit.append("abort-requested", {"state": state.value, "step": step.name},
                          actor=self.actor, replacement_id=self.id)
        self.cancel = threading.Event()  # undo must not see the cancel that stopped us
        outcome = self._perform(step, state)
        while not self.finished and self._row().current_step:
            outcome = self.next_step()
        self.close()
        return outcome

    def _perform(self, step: Step, state: State) -> StepOutcome:
        self._update(current_step=step.name)
        crash_point(f"step:{step.name}:before")
        started = time.monotonic()
        try:
            led = _slot_led(self, step.name, before=True)  # [bmc]: "pull this module"
            data = ACTIONS[step.action](self) or {}
            led = led or _slot_led(self, step.name, before=False)
        except (MemrasError, OSError) as exc:
            return self._failed(step, state, exc, time.monotonic() - started)
        if led:
            data["led"] = led  # a BMC problem is a warning in the audit, never a failure
        seconds = time.monotonic() - started
        fields: dict[str, Any] = {"state": step.target.value, "current_step": None}
        if step.target.terminal:
            fields["finished_at"] = _now()
        message = data.pop("message", step.name)
        redirect = data.pop("redirect", None)  # an undo found nothing to undo (swap done)
        action = step.name
        if redirect is not None:
            fields["state"] = redirect.value
            fields.pop("finished_at", None)
            action = data.pop("audit_action", step.name)
        # Audit first: a crash before the state update re-runs the (idempotent) step and
        # audits it twice, which is visible; the other order could lose the entry.
        self.audit.append(action, {"outcome": "ok", "state": fields["state"],
                                   "seconds": round(seconds, 3), "message": message,
                                   **data}, actor=self.actor, replacement_id=self.id)
        self._update(**fields)
        crash_point(f"step:{step.name}:after")
        return StepOutcome(step.name, True, State(fields["state"]), message, seconds, data)

    def _failed(self, step: Step, state: State, exc: Exception,
                seconds: float) -> StepOutcome:
        msg = exc.msg if isinstance(exc, MemrasError) else f"{type(exc).__name__}: {exc}"
        data = getattr(exc, "data", {})
        undo_step = step.name in ("refuse", "rollback", "leave_offline", "online_new")
        event = Event.FAIL_LEAVE if self.options.on_failure == "leave" else Event.FAIL
        try:
            follow = None if undo_step else advance(state, event)
        except WorkflowError as stuck:  # nothing to undo (module already removed): stay
            self._update(current_step=None, error=msg)
            self.audit.append(step.name, {"outcome": "failed", "state": state.value,
                                          "error": msg, "seconds": round(seconds, 3),
                                          "next": "retry", **data},
                              actor=self.actor, replacement_id=self.id)
            raise WorkflowError(f"{step.name} failed: {msg}; {stuck.msg}",
                                hint=stuck.hint) from None
        self._update(current_step=follow.name if follow else step.name, error=msg)
        self.audit.append(step.name, {"outcome": "failed", "state": state.value,
                                      "error": msg, "seconds": round(seconds, 3),
                                      "next": follow.name if follow else "retry", **data},
                          actor=self.actor, replacement_id=self.id)
        if undo_step:  # an undo that fails must be visible and retried, never skipped
            raise WorkflowError(f"{step.name} failed: {msg}",
                                hint="fix the cause, then `memras replace --resume`")
        return StepOutcome(step.name, False, state, msg, seconds, data)

    # --- where the memory is --------------------------------------------------------
    def where_is_memory(self) -> str:
        row = self._row()
        return where_text(State(row.state),
                          [(b.block, b.status) for b in self.blocks("old")],
                          [(b.block, b.status) for b in self.blocks("new")])

    def where_now(self) -> str:
        """Where the memory is, for a command that stops half-way: from the database's
        rows, or from the kernel alone when the database cannot be read (locked, gone)."""
        try:
            return self.where_is_memory()
        except StoreError:
            return kernel_where(self.host, self._blocks)


def _new_row(host: Host, target: Target, status: str, reason: str, options: ReplaceOptions,
             actor: Actor) -> ReplacementRow:
    zones = {}
    for block in target.blocks:
        b = host.memory.read(block)
        zones[str(block)] = b.zone or (b.valid_zones[0] if b.valid_zones else "")
    return ReplacementRow(
        dimm_id=target.dimm_id, dimm_label=target.label or target.locator,
        state=State.NEW.value, current_step=None, backend=options.backend or "",
        on_failure=options.on_failure, operator=options.operator, uid=actor.uid,
        user=actor.user, host=actor.host, root=str(host.root), options=asdict(options),
        target={"target": target.as_dict(), "mapping": status, "reason": reason,
                "zones": zones, "mem_total_before": host.meminfo.read().total},
        created_at=_now(), updated_at=_now())


# --- actions: one function per Step.action; each idempotent ----------------------------

def _preflight(rep: Replacement) -> dict[str, Any]:
    row = rep._row()
    with store_session(rep.store) as s:
        holder = lock.holder(s)
        holder_id = holder.replacement_id if holder else None
    other = holder_id if holder_id not in (None, rep.id) else None
    checks = run_preflight(PreflightInput(
        host=rep.host, target=rep.target, mapping_status=row.target["mapping"],
        mapping_reason=row.target["reason"], backend=rep.backend,
        force_zone=rep.options.force_zone, reserve_bytes=rep.options.reserve_bytes,
        other_replacement=other, force_node=rep.options.force_node,
        node_reserve=rep.options.node_reserve))
    rep._update(checks=[c.as_dict() for c in checks])
    failed = [c for c in checks if not c.ok]
    data = {"checks": [c.as_dict() for c in checks]}
    if failed:
        raise StepFailed(f"preflight refused: {failed[0].name}: {failed[0].detail}", data=data)
    return {"message": "preflight passed", **data}


def _refuse(rep: Replacement) -> dict[str, Any]:
    with store_session(rep.store) as s:
        lock.release(s, rep.id)
        s.commit()
    return {"message": f"refused; nothing was changed ({rep._row().error})"}


def _soft_offline_pages(rep: Replacement) -> dict[str, Any]:
    if not rep.options.soft_offline or not rep.host.memory.has_soft_offline():
        return {"message": "no soft offline (disabled or not supported)", "pages": []}
    target = rep.target
    pages = sorted(_known_bad_pages(rep.store, target.start, target.size, target.dimm_id))
    done, failed = [], []
    for page in pages:
        try:
            rep.host.memory.soft_offline_page(page)
            done.append(page)
        except (OSError, MemrasError) as exc:  # best effort: the block goes offline anyway
            failed.append({"page": hex(page), "error": str(exc)})
    return {"message": f"soft-offlined {len(done)} of {len(pages)} known bad pages",
            "pages": [hex(p) for p in done], "failed_pages": failed}


def _known_bad_pages(store: Store, start: int, size: int, slot_id: str | None = None) -> set[int]:
    """Pages with errors in the module's range, counting only errors of the module in
    the slot now: a module replaced earlier had the same addresses (module registry)."""
    try:
        errors = store.errors()
        history = module_history(store, slot_id) if slot_id else []
    except Exception:
        return set()
    return {e.address & ~0xFFF for e in errors
            if e.address is not None and start <= e.address < start + size
            and (e.time is None or not of_removed_module(history, e.time))}


def _offline_blocks(rep: Replacement) -> dict[str, Any]:
    """Each block's row is committed ``offlining`` before its kernel write (see
    :mod:`memras.workflow.journal` for how that stays cheap and why it is durable)."""
    with block_journal(rep.store, rep.id, "old") as journal:
        blocks = journal.blocks()

        def before(block: int) -> None:
            journal.before(block, "offlining")
            crash_point(f"block:{block}:offline:before")

        def after(result: BlockResult) -> None:
            crash_point(f"block:{result.block}:offline:after")
            if result.ok:  # recorded with the next block's "offlining", or at the end
                journal.after(result.block, "offline", attempts=result.attempts)
                return
            journal.after(result.block, rep.host.memory.state(result.block),
                          attempts=result.attempts, error=result.error, defer=False)

        def skip(block: int) -> bool:
            if rep.host.memory.state(block) != "offline":
                return False
            journal.after(block, "offline", defer=False)  # already done (a resume)
            return True

        batch = run_blocks(rep.host, blocks, "offline", step="offline_blocks",
                           policy=rep.options.retry_policy(), cancel=rep.cancel,
                           before=before, after=after, progress=rep.progress, skip=skip)
    data = {"blocks": [asdict(r) for r in batch.results]}
    if batch.cancelled:
        raise StepFailed("offlining cancelled by the operator", data=data)
    if batch.failed:
        bad = batch.failed[0]
        raise StepFailed(f"memory{bad.block} could not be taken offline after "
                         f"{bad.attempts} attempts: {bad.error}", data=data)
    return {"message": f"{len(blocks)} blocks offline", **data}


def _already(rep: Replacement, role: str, block: int, state: str) -> bool:
    if rep.host.memory.state(block) != state:
        return False
    rep._set_block(role, block, state)
    return True


def _remove_module(rep: Replacement) -> dict[str, Any]:
    """Remove the old module and know it is gone: its blocks' ``remove`` uevents, or
    sysfs (absent, or re-created as other objects: a new module already in the slot)."""
    target = rep.target
    if target.cxl:
        return _remove_cxl(rep)
    watch = rep.watch()  # opened before the removal
    present = old_blocks_present(rep.host, target)
    if present:
        still_online = [b for b in present if rep.host.memory.state(b) != "offline"]
        if still_online:
            raise StepFailed(f"memory{still_online[0]} is online again; not removing")
        rep.backend.ctx.watch = watch
        result = rep.backend.remove(target)
        if not result.ok:
            raise StepFailed(f"{rep.backend.name} could not remove the module: {result.detail}",
                             data=result.data)
        detail, data = result.detail, result.data
        how = watch.wait_gone(timeout_s=rep.options.detect_timeout_s, cancel=rep.cancel)
    else:
        how = watch.gone() or "sysfs: the blocks are absent"
        detail, data = f"already removed ({how})", {}
    for block in target.blocks:
        rep._set_block("old", block, "gone")
    return {"message": detail, "backend": data, "old_module": target.identity(),
            "observed": {"removed": how, **watch.observed()}}


def _remove_cxl(rep: Replacement) -> dict[str, Any]:
    """A CXL memdev: gone when no memdev has its serial (its blocks went with its
    regions' teardown, which the backend does first)."""
    target = rep.target
    cx = target.cxl or {}
    if cxl.memdev_present(rep.host, cx.get("serial"), cx.get("memdev", "")):
        still_online = [b for b in old_blocks_present(rep.host, target)
                        if rep.host.memory.state(b) != "offline"]
        if still_online:
            raise StepFailed(f"memory{still_online[0]} is online again; not removing")
        result = rep.backend.remove(target)
        if not result.ok:
            raise StepFailed(f"{rep.backend.name} could not remove the device: "
                             f"{result.detail}", data=result.data)
        detail, data = result.detail, result.data
    else:
        detail, data = (f"already removed (no memdev has serial "
                        f"{target.serial or '?'})"), {}
    for block in target.blocks:
        rep._set_block("old", block, "gone")
    return {"message": detail, "backend": data, "old_module": target.identity()}


def _insert_cxl(rep: Replacement) -> dict[str, Any]:
    """A new CXL memdev: the backend waits for it and makes its regions (idempotent: a
    resumed step finds them made); its blocks are those the backend names."""
    result = rep.backend.insert(rep.target)
    if not result.ok:
        raise StepFailed(f"no new device: {result.detail}", data=result.data)
    blocks = list(result.data.get("blocks") or [])
    for block in blocks:
        rep._set_block("new", block, rep.host.memory.state(block))
    return {"message": result.detail, "new_blocks": blocks, "backend": result.data}


def _insert_module(rep: Replacement) -> dict[str, Any]:
    """Get a new module in; its blocks are those of the range that are not the old
    module's objects (``add`` uevents after the removal, cross-checked in sysfs)."""
    target = rep.target
    if target.cxl:
        return _insert_cxl(rep)
    watch = rep.watch()
    how = watch.inserted()
    detail, data = f"new module already present ({how})", {}
    if how is None:
        result = rep.backend.insert(target)
        if not result.ok:
            raise StepFailed(f"no new module: {result.detail}", data=result.data)
        detail, data = result.detail, result.data
        how = watch.wait_inserted(timeout_s=rep.options.detect_timeout_s, cancel=rep.cancel)
    blocks = new_blocks_present(rep.host, target)
    for block in blocks:
        rep._set_block("new", block, rep.host.memory.state(block))
    return {"message": detail, "new_blocks": blocks, "backend": data,
            "observed": {"inserted": how, **watch.observed()}}


def _online_blocks(rep: Replacement, role: str = "new", step: str = "online_blocks",
                   rows: list[int] | None = None) -> dict[str, Any]:
    blocks = rows if rows is not None else [b.block for b in rep.blocks(role)]
    zones = rep._row().target.get("zones", {})
    results = []
    for block in blocks:
        info = rep.host.memory.read(block)
        if info.state == "online":
            rep._set_block(role, block, "online")
            continue
        if role == "old" and zones.get(str(block)) not in ("Movable", None, ""):
            state = "online_kernel"  # restoring a --force-zone block to where it was
        else:
            state = online_state_for(info.valid_zones)
        rep._set_block(role, block, "onlining")
        crash_point(f"block:{block}:{step}:before")

        result = set_block_state(rep.host, block, state, rep.options.retry_policy(),
                                 threading.Event())
        crash_point(f"block:{block}:{step}:after")
        rep._set_block(role, block, "online" if result.ok else "offline",
                       attempts=result.attempts, error=result.error)
        results.append(asdict(result))
        if not result.ok:
            raise StepFailed(f"memory{block} could not be onlined: {result.error}",
                             data={"blocks": results})
    return {"message": f"{len(blocks)} blocks online", "blocks": results}


def _verify(rep: Replacement) -> dict[str, Any]:
    row, target = rep._row(), rep.target
    report = VerifyReport()
    new_blocks = [b.block for b in rep.blocks("new")]
    if target.cxl and not target.cxl.get("regions"):
        report.checks.append(Check("new blocks", True, "the old device had no region: no "
                                                       "blocks expected"))
    else:
        report.checks.append(check_new_blocks(rep.host, new_blocks))
    report.checks.append(check_mem_total(rep.host, row.target.get("mem_total_before", 0)))
    report.checks.append(check_module_identity(rep.host, target, new_blocks))
    if target.cxl:
        ident, check = _cxl_identity(rep, target.cxl)
    else:
        ident, check = new_identity(rep.host, target.locator or target.label, target.serial)
        ident["module_serial"], ident["serial_source"] = module_serial(
            ident, target.serial, _backend_serial(rep))
    report.identity = ident
    report.checks.append(check)
    report.edac = edac_baseline(rep.host, target.label, reset_allowed=rep.options.reset_edac,
                                before_reset=lambda mc: _mark_own_reset(rep, mc))
    rep._update(new_identity=ident, result=report.as_dict())
    if not report.ok:
        bad = next(c for c in report.checks if not c.ok)
        raise StepFailed(f"verification failed: {bad.name}: {bad.detail}",
                         data=report.as_dict())
    return {"message": "verified", **report.as_dict()}


def _backend_insert(rep: Replacement) -> dict[str, Any]:
    """What the backend reported when it inserted the module ({} if nothing)."""
    for entry in reversed(rep.audit.list(replacement_id=rep.id)):
        if entry.action == "insert_module" and entry.data.get("outcome") == "ok":
            return dict(entry.data.get("backend") or {})
    return {}


def _backend_serial(rep: Replacement) -> str:
    """The serial the backend reported when it inserted the module ("" if none)."""
    return str(_backend_insert(rep).get("serial") or "")


def _cxl_identity(rep: Replacement, cx: dict[str, Any]) -> tuple[dict[str, Any], Check]:
    """The new memdev's identity (serial, name, regions) and the check that it is a new
    device in committed regions; the audit keeps the old and new serials."""
    data = _backend_insert(rep)
    new_serial = data.get("new_serial")
    ok, detail = cxl.check_new_memdev(rep.host, cx, new_serial, list(data.get("regions", [])))
    serial = cxl.serial_text(new_serial)
    ident = {"memdev": data.get("memdev"), "serial": serial,
             "old_serial": cxl.serial_text(cx.get("serial")),
             "regions": data.get("regions", []), "dax": data.get("dax", []),
             "module_serial": serial, "serial_source": "cxl" if serial else "none"}
    return ident, Check("cxl device", ok, detail)


def _record_new_module(rep: Replacement) -> None:
    """The slot now holds a new DIMM: close the old module in the registry, open the new
    one and give the slot an "ok" verdict (rule "replaced"); idempotent by replacement."""
    target, ident = rep.target, rep._row().new_identity or {}
    serial = ident.get("module_serial", "")
    from_smbios = ident.get("serial_source") == "smbios"
    new = ModuleIdentity.of(serial, ident.get("part", "") if from_smbios else "",
                            ident.get("manufacturer", "") if from_smbios else "")
    record_replacement(rep.store, slot_id=target.dimm_id, replacement_id=rep.id,
                       old=ModuleIdentity.of(target.serial, target.part), new=new,
                       at=_now())


def _mark_own_reset(rep: Replacement, mc: int) -> None:
    """Tell the watcher's EDAC source that memras resets ``mc`` now: it is no alert."""
    marks = rep.store.get_cursor(OWN_RESETS_CURSOR)
    rep.store.set_cursor(OWN_RESETS_CURSOR, note_own_reset(marks, mc, time.time()))


def _release_lock(rep: Replacement) -> None:
    with store_session(rep.store) as s:
        lock.release(s, rep.id)
        s.commit()


def _resolve_old_alerts(rep: Replacement) -> dict[str, Any]:
    """The old module's open and acknowledged alerts are about a module that is gone:
    resolved, saying which replacement did it. An alert problem never fails the close."""
    try:
        service = AlertService.configured(rep.store, rep.options.alerts_config,
                                          host=rep.host)  # hooks hear the slot label
        try:
            changes = service.resolve_for_dimm(
                rep.target.dimm_id, reason=f"resolved by replacement #{rep.id}",
                reference={"replacement_id": rep.id}, by=rep.actor.operator or rep.actor.user)
        finally:
            service.close()
    except MemrasError as exc:
        return {"error": exc.msg}
    return {"resolved": [a.id for a in changes.changed]}


def _close(rep: Replacement) -> dict[str, Any]:
    _record_new_module(rep)
    alerts = _resolve_old_alerts(rep)
    _release_lock(rep)
    return {"message": "replacement complete", "new_identity": rep._row().new_identity,
            "alerts": alerts}


def _rollback(rep: Replacement) -> dict[str, Any]:
    restored = _restore_cxl(rep)
    if restored is not None:
        return restored
    gone = _swap_already_happened(rep)
    if gone is not None:
        return gone
    touched = [b.block for b in rep.blocks("old") if b.status in ("offlining", "offline",
                                                                  "onlining")]
    present = set(old_blocks_present(rep.host, rep.target))  # never the new module's
    data = _online_blocks(rep, role="old", step="rollback",
                          rows=[b for b in touched if b in present])
    _release_lock(rep)
    where = rep.where_is_memory()
    return {"message": f"rolled back: {where}", "blocks": data["blocks"]}


def _restore_cxl(rep: Replacement) -> dict[str, Any] | None:
    """A CXL device still in its slot whose regions were already torn down (the removal
    failed after the teardown): its regions are made again on it and their blocks
    onlined. None when that is not the case (nothing torn down, or the device gone)."""
    target = rep.target
    cx = target.cxl
    if not cx or not cx.get("regions") or not target.blocks \
            or old_blocks_present(rep.host, target):
        return None
    memdev = next((m for m in rep.host.cxl.memdevs() if m.serial == cx.get("serial")
                   and cx.get("serial") is not None), None)
    if memdev is None:
        return None  # the device is gone: the swap happened (_swap_already_happened)
    up = cxl.bring_up(rep.host, cx, memdev.name, timeout_s=rep.options.detect_timeout_s,
                      cancel=threading.Event())
    results = []
    for block in up["blocks"]:
        info = rep.host.memory.read(block)
        if info.state != "online":
            result = set_block_state(rep.host, block, online_state_for(info.valid_zones),
                                     rep.options.retry_policy(), threading.Event())
            results.append(asdict(result))
            if not result.ok:
                raise StepFailed(f"memory{block} could not be onlined: {result.error}",
                                 data={"blocks": results, "restore": up})
        rep._set_block("old", block, "online")
    _release_lock(rep)
    return {"message": f"rolled back: {memdev.name}'s region "
                       f"{', '.join(up['regions'])} made again, {len(up['blocks'])} blocks "
                       "online", "restore": up, "blocks": results}


def _swap_already_happened(rep: Replacement) -> dict[str, Any] | None:
    """Before a rollback: is the old module gone? Then there is nothing to roll back to,
    and blocks with its numbers belong to another module. The replacement goes on from
    REMOVED (or INSERTED, when the new module is in) to verify the new one; the audit
    row is ``swap-observed``, not ``rollback``."""
    target = rep.target
    if not target.blocks or old_blocks_present(rep.host, target):
        return None
    watch = rep.watch()
    how = watch.gone() or "sysfs: the blocks are absent"
    for block in target.blocks:
        rep._set_block("old", block, "gone")
    new = new_blocks_present(rep.host, target)
    inserted = len(new) >= len(target.blocks)
    if inserted:
        for block in new:
            rep._set_block("new", block, rep.host.memory.state(block))
    state = State.INSERTED if inserted else State.REMOVED
    return {"message": "not rolled back: the old module is gone, so the swap already "
                       "happened (" + how + "); " + (
                           "a new module is in its place: `memras replace --resume` "
                           "onlines and verifies it" if inserted else
                           "insert the new module, then `memras replace --resume`"),
            "redirect": state, "audit_action": "swap-observed", "instead_of": "rollback",
            "old_module": target.identity(), "new_blocks": new,
            "observed": {"removed": how, **watch.observed()}}


def _leave_offline(rep: Replacement) -> dict[str, Any]:
    gone = _swap_already_happened(rep)
    if gone is not None:
        return {**gone, "instead_of": "leave_offline"}
    _release_lock(rep)
    return {"message": f"left as is on request: {rep.where_is_memory()}"}


def _online_new(rep: Replacement) -> dict[str, Any]:
    data = _online_blocks(rep, role="new", step="online_new")
    _release_lock(rep)
    return {"message": f"stopped with the new module online: {rep.where_is_memory()}",
            "blocks": data["blocks"]}


def _slot_led(rep: Replacement, step: str, *, before: bool) -> dict[str, Any] | None:
    """The slot LED move of ``step`` (memras.bmc.led.WORKFLOW_LED: lit before the
    removal, cleared after verify/rollback/online_new), told to the operator."""
    if WORKFLOW_LED.get(step) is not before:
        return None
    target = rep.target
    led = workflow_led(rep.options.alerts_config, step,
                       slot_names(target.label, target.locator))
    if led:
        rep.say(f"warning: {led['warning']}" if led.get("warning") else str(led["detail"]))
    return led


ACTIONS: dict[str, Callable[[Replacement], dict[str, Any] | None]] = {
    "preflight": _preflight, "refuse": _refuse, "soft_offline_pages": _soft_offline_pages,
    "offline_blocks": _offline_blocks, "remove_module": _remove_module,
    "insert_module": _insert_module, "online_blocks": _online_blocks, "verify": _verify,
    "close": _close, "rollback": _rollback, "leave_offline": _leave_offline,
    "online_new": _online_new,
}

__all__ = ["ACTIONS", "ReplaceOptions", "Replacement", "StepOutcome",
           "crash_point", "resolve_target"]
