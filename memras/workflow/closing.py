"""The operator's repair record: ``memras repaired`` / ``memras acquit``, and the record
of a module swapped while memras was not looking (powered off).

Each closing does three things, in this order:

1. health writes the closing and the slot's "ok" verdict (:mod:`memras.health.closing`):
   from then on the errors stored before it no longer count toward the slot's verdict;
2. the slot's open and acknowledged alerts are resolved, their resolution naming the
   closing (``closing_id``, kind, reason), as a replacement names its id;
3. one audit row (``verdict_repaired`` / ``verdict_acquitted`` /
   ``module_replaced_outside``) appended through :class:`~memras.audit.service.AuditTrail`,
   so the anchor moves with it.

The audit key is checked before anything is written (a closing must not happen without
its row). A swap is marked recorded only after its audit row, so a crash in between
audits it again at the next start rather than never.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from memras.alerts.alert import Alert
from memras.alerts.service import AlertService
from memras.audit.service import Actor, AuditTrail
from memras.errors import UsageError
from memras.health.api import replay_verdicts
from memras.health.closing import (
    ACQUITTED,
    REPAIRED,
    Swap,
    close_verdict,
    read_closings,
    record_swap,
    unrecorded_swaps,
)
from memras.health.config import load_config
from memras.health.module_registry import module_boundaries
from memras.health.verdict import Verdict, VerdictState

if TYPE_CHECKING:
    from memras.host import Host
    from memras.store.dimm_ids import DimmFilter
    from memras.store.store import Store

AUDIT_ACTIONS = {REPAIRED: "verdict_repaired", ACQUITTED: "verdict_acquitted"}
SWAP_ACTION = "module_replaced_outside"
CLOSE_AFTER = timedelta(milliseconds=1)  # a closing's time past the newest error it closes
VERBS = {REPAIRED: "repaired", ACQUITTED: "acquitted (a false alarm)"}


@dataclass
class ClosingPlan:
    """What closing a DIMM's verdict closes (the dry run prints it; the real run does it)."""

    dimm_id: str
    dimm_name: str
    kind: str
    reason: str
    verdict: Verdict | None  # as `memras verdicts` replays it now
    alerts: list[Alert]  # open and acknowledged, to be resolved
    errors_closed: int  # stored errors that count now and will not
    counting_since: datetime | None  # the last cut before (replacement or closing)
    newest_error: datetime | None  # the newest of them (its clock may run ahead of ours)
    closing_id: int | None = None
    audit_seq: int | None = None
    resolved: list[int] = field(default_factory=list)

    @property
    def open(self) -> bool:
        """Whether there is anything to close."""
        return ((self.verdict is not None and self.verdict.state != VerdictState.OK)
                or bool(self.alerts) or self.errors_closed > 0)

    def to_dict(self) -> dict[str, Any]:
        v = self.verdict
        return {"dimm": self.dimm_id, "dimm_name": self.dimm_name, "action": self.kind,
                "reason": self.reason,
                "verdict": None if v is None else {"state": v.state.value,
                                                   "rules": list(v.rules),
                                                   "since": v.since.isoformat()},
                "alerts": [a.id for a in self.alerts],
                "errors_closed": self.errors_closed,
                "counting_since": self.counting_since.isoformat()
                if self.counting_since else None,
                "closing_id": self.closing_id, "audit_seq": self.audit_seq,
                "alerts_resolved": self.resolved}


def plan_closing(store: Store, *, dimm_id: str, dimm_name: str, kind: str, reason: str,
                 errors: DimmFilter | str, config_path: str | Path | None,
                 host: Host | None) -> ClosingPlan:
    """What :func:`close` would close on ``dimm_id``; ``errors`` selects its stored rows."""
    if not reason.strip():
        raise UsageError("--reason is empty", hint="say what was done, e.g. "
                         "--reason 'reseated, contacts cleaned'")
    verdicts, _ = replay_verdicts(store, load_config(config_path), host=host)
    cuts = [c.at for c in read_closings(store, dimm_id) if c.cuts]
    cuts += module_boundaries(store).get(dimm_id, [])
    since = max(cuts, default=None)
    service = AlertService.open(store, host=host)
    try:
        alerts = service.unresolved_for_dimm(dimm_id)
    finally:
        service.close()
    counting = store.errors(since=since, dimm=errors)
    newest = max((e.time for e in counting), default=None)
    return ClosingPlan(dimm_id, dimm_name, kind, reason, verdicts.get(dimm_id), alerts,
                       len(counting), since, newest)


def close(store: Store, plan: ClosingPlan, *, operator: str | None,
          config_path: str | Path | None, database: str | Path | None = None,
          host: Host | None = None) -> ClosingPlan:
    """Close ``plan``'s verdict: the closing, its alerts resolved, its audit row."""
    if not plan.open:
        raise UsageError(f"{plan.dimm_name}: nothing to close (verdict ok, no open alerts, "
                         "no errors counting)", hint="see `memras verdicts`")
    trail = AuditTrail.configured(store, config_path, database=database,
                                  journal=host is None or not host.is_simulated)
    trail.check_can_append()  # a closing never happens without its audit row
    actor = Actor.current(operator)
    previous = plan.verdict
    # after every error counted now, even one whose time is ahead of this clock
    at = datetime.now(UTC)
    if plan.newest_error is not None:
        at = max(at, plan.newest_error.astimezone(UTC) + CLOSE_AFTER)
    closing = close_verdict(store, dimm_id=plan.dimm_id, kind=plan.kind, reason=plan.reason,
                            operator=operator or actor.user, at=at,
                            evidence={"errors_closed": plan.errors_closed,
                                      "replayed_verdict": previous.state.value
                                      if previous else None})
    plan.closing_id = closing.id
    reference = {"closing_id": closing.id, "closing": plan.kind}
    plan.resolved = _resolve(store, plan.dimm_id, config_path, host,
                             f"{plan.kind} by {operator or actor.user}: {plan.reason}",
                             reference, operator or actor.user)
    entry = trail.append(AUDIT_ACTIONS[plan.kind], {
        "outcome": "closed", "dimm": plan.dimm_id, "dimm_name": plan.dimm_name,
        "message": f"{plan.dimm_name}: verdict {VERBS[plan.kind]}: {plan.reason}",
        "reason": plan.reason, "closing_id": closing.id,
        "previous_verdict": previous.state.value if previous else None,
        "previous_rules": list(previous.rules) if previous else [],
        "errors_closed": plan.errors_closed, "alerts_resolved": plan.resolved}, actor=actor)
    plan.audit_seq = entry.seq
    return plan


def _resolve(store: Store, dimm_id: str, config_path: str | Path | None, host: Host | None,
             reason: str, reference: dict[str, Any], by: str,
             service: AlertService | None = None) -> list[int]:
    """Resolve the slot's unresolved alerts (hooks hear of it); their ids."""
    own = service is None
    service = service or AlertService.configured(store, config_path, host=host)
    try:
        changes = service.resolve_for_dimm(dimm_id, reason=reason, reference=reference, by=by)
    finally:
        if own:
            service.close()
    return [a.id for a in changes.changed if a.id is not None]


def record_swaps(store: Store, *, config_path: str | Path | None, host: Host | None = None,
                 alerts: AlertService | None = None) -> list[dict[str, Any]]:
    """Audit each module swap the inventory showed (a new serial in a slot, made while
    memras was not looking) and resolve the old module's alerts, once per swap."""
    swaps: Sequence[Swap] = unrecorded_swaps(store)
    if not swaps:
        return []
    trail = AuditTrail.configured(store, config_path,
                                  journal=host is None or not host.is_simulated)
    actor = Actor.current(None)
    done = []
    for swap in swaps:
        message = (f"{swap.slot_id}: replaced outside memras (serial "
                   f"{swap.old_serial or '?'} → {swap.new_serial or '?'})")
        resolved = _resolve(store, swap.slot_id, config_path, host,
                            "the module was replaced outside memras "
                            f"(serial {swap.old_serial or '?'} → {swap.new_serial or '?'})",
                            {"module_id": swap.new_module_id, "closing": "replaced"},
                            actor.user, alerts)
        entry = trail.append(SWAP_ACTION, {
            "outcome": "recorded", "message": message, "dimm": swap.slot_id,
            "old_serial": swap.old_serial, "new_serial": swap.new_serial,
            "seen_at": swap.at.astimezone(UTC).isoformat(), "module_id": swap.new_module_id,
            "alerts_resolved": resolved}, actor=actor)
        closing = record_swap(store, swap, message)
        done.append({**swap.to_dict(), "closing_id": closing.id, "audit_seq": entry.seq,
                     "alerts_resolved": resolved})
    return done
