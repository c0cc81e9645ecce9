"""Closing a DIMM's verdict: the operator's repair record (FMA's ``fmadm repaired`` /
``fmadm acquit``), and the record of a module swapped while memras was not looking.

What it decides
    From when a slot's evidence counts. ``memras repaired`` (the fault was fixed outside
    memras: reseated, cleaned, replaced by hand) and ``memras acquit`` (the evidence was
    wrong: a false alarm) write a closing at a moment; the errors stored before it stay
    stored and visible as history, but no verdict counts them again. The engine treats
    a closing as it treats a module boundary (:mod:`.module_registry`): at the closing's
    time the slot's buckets, window and crossings are cut and its verdict becomes "ok"
    with the closing's rule (``repaired`` / ``acquitted``), sticky replace-* included.
    Unlike a boundary, the module stays the same: its page states are still its own, so
    a page it had offlined is not offlined twice.

Records
    :func:`close_verdict` writes, in one transaction, a ``memras_verdict_closing`` row and
    the slot's "ok" verdict row (``verdicts --history`` and the TUI's verdict panel show
    it, reason and operator in its evidence). The audit row and the alerts are the
    caller's (``memras.workflow.closing``: health sits below alerts and audit).
    A swap seen in the inventory (:func:`~.module_registry.register_modules`) already
    cuts at its module boundary; :func:`unrecorded_swaps` lists the swaps no closing of
    kind ``replaced`` records yet, so the watcher audits each once and resolves its
    alerts, and :func:`record_swap` marks one done.

Cost
    The engine reads every closing once per batch with the module boundaries: one query
    over a table of a few rows per slot over a server's life.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import inspect, select
from sqlalchemy.exc import SQLAlchemyError

from memras.errors import StoreError
from memras.health.keys import naive_utc
from memras.health.models import DimmModuleRow as M
from memras.health.models import HealthVerdictRow, VerdictClosingRow
from memras.health.module_registry import SOURCE_INVENTORY
from memras.health.verdict import VerdictState

if TYPE_CHECKING:
    from memras.store.store import Store

REPAIRED, ACQUITTED, REPLACED = "repaired", "acquitted", "replaced"
# The verdict rule each closing writes (and the engine's cut gives): "replaced" is
# health.verdict.REPLACED_RULE, written by the module registry itself.
CLOSING_RULES = {REPAIRED: "repaired", ACQUITTED: "acquitted"}
CUT_REASONS = {REPAIRED: "repaired by the operator: earlier errors no longer count",
               ACQUITTED: "acquitted by the operator (a false alarm): earlier errors "
                          "no longer count"}


@dataclass(frozen=True, slots=True)
class Closing:
    """One ``memras_verdict_closing`` row (time aware UTC)."""

    id: int
    dimm_id: str
    at: datetime
    kind: str
    reason: str
    operator: str | None
    previous_state: str | None
    module_id: int | None

    @classmethod
    def of(cls, row: VerdictClosingRow) -> Closing:
        return cls(row.id, row.dimm_id, row.time.replace(tzinfo=UTC), row.kind, row.reason,
                   row.operator, row.previous_state, row.module_id)

    @property
    def cuts(self) -> bool:
        """Whether the engine cuts at it (a swap is cut at its module boundary already)."""
        return self.kind in CLOSING_RULES

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "dimm": self.dimm_id, "time": self.at.isoformat(),
                "kind": self.kind, "reason": self.reason, "operator": self.operator,
                "previous_verdict": self.previous_state, "module_id": self.module_id}


def _has_table(store: Store) -> bool:
    with store.engine.connect() as conn:
        return inspect(conn).has_table(VerdictClosingRow.__tablename__)


def read_closings(store: Store, dimm_id: str | None = None) -> list[Closing]:
    """Every closing (of ``dimm_id`` only, when given), oldest first. A database from
    before closings existed, opened read-only, has none (the table is missing)."""
    query = select(VerdictClosingRow).order_by(VerdictClosingRow.time, VerdictClosingRow.id)
    if dimm_id is not None:
        query = query.where(VerdictClosingRow.dimm_id == dimm_id)
    try:
        with store.session(write=False) as s:
            return [Closing.of(r) for r in s.scalars(query)]
    except (StoreError, SQLAlchemyError):
        if _has_table(store):
            raise
        return []


def cut_times(closings: Iterable[Closing]) -> dict[str, list[datetime]]:
    """Slot -> the times evidence was closed (the engine's cuts besides module changes)."""
    out: dict[str, list[datetime]] = {}
    for c in closings:
        if c.cuts:
            out.setdefault(c.dimm_id, []).append(c.at)
    return out


def merged(*boundaries: dict[str, list[datetime]]) -> dict[str, list[datetime]]:
    """Several slot -> times maps as one, each slot's times sorted."""
    out: dict[str, list[datetime]] = {}
    for b in boundaries:
        for slot, times in b.items():
            out.setdefault(slot, []).extend(times)
    return {slot: sorted(times) for slot, times in out.items()}


def close_verdict(store: Store, *, dimm_id: str, kind: str, reason: str,
                  operator: str | None, at: datetime | None = None,
                  evidence: dict[str, Any] | None = None) -> Closing:
    """Close ``dimm_id``'s verdict (``kind`` repaired or acquitted) at ``at`` (now):
    the closing row and the slot's "ok" verdict row, in one transaction."""
    if kind not in CLOSING_RULES:
        raise ValueError(f"not a closing kind: {kind!r}")
    when = naive_utc(at or datetime.now(UTC))
    with store.session() as s:
        previous = s.scalars(select(HealthVerdictRow.state).where(
            HealthVerdictRow.dimm_id == dimm_id).order_by(HealthVerdictRow.id.desc())).first()
        module = s.scalars(select(M.id).where(M.slot_id == dimm_id,
                                              M.removed_at.is_(None))).first()
        row = VerdictClosingRow(dimm_id=dimm_id, time=when, kind=kind, reason=reason,
                                operator=operator, previous_state=previous, module_id=module)
        s.add(row)
        s.flush()
        s.add(HealthVerdictRow(
            dimm_id=dimm_id, time=when, state=VerdictState.OK.value, previous_state=previous,
            rules=json.dumps([CLOSING_RULES[kind]]),
            reasons=json.dumps([f"{CUT_REASONS[kind]} ({reason})"]), reached_at=when,
            evidence=json.dumps({"closing_id": row.id, "operator": operator,
                                 "reason": reason, **(evidence or {})})))
        return Closing.of(row)


@dataclass(frozen=True, slots=True)
class Swap:
    """A module the inventory showed replaced (a new real serial in the slot)."""

    slot_id: str
    at: datetime  # aware UTC: when memras first saw the new module
    old_serial: str
    new_serial: str
    new_module_id: int

    def to_dict(self) -> dict[str, Any]:
        return {"dimm": self.slot_id, "time": self.at.isoformat(),
                "old_serial": self.old_serial, "new_serial": self.new_serial,
                "module_id": self.new_module_id}


def unrecorded_swaps(store: Store) -> list[Swap]:
    """Swaps seen in the inventory that no closing of kind ``replaced`` records yet."""
    with store.session(write=False) as s:
        done = set(s.scalars(select(VerdictClosingRow.module_id).where(
            VerdictClosingRow.kind == REPLACED)))
        out: list[Swap] = []
        for old in s.scalars(select(M).where(M.replaced_by.is_not(None))):
            new = s.get(M, old.replaced_by)
            if new is None or new.id in done or new.source != SOURCE_INVENTORY:
                continue
            out.append(Swap(old.slot_id, new.installed_at.replace(tzinfo=UTC), old.serial,
                            new.serial, new.id))
    return sorted(out, key=lambda w: (w.at, w.new_module_id))


def record_swap(store: Store, swap: Swap, reason: str) -> Closing:
    """Mark ``swap`` recorded (audited, alerts resolved): a closing of kind ``replaced``.
    The slot's verdict row is the registry's (rule ``replaced``); none is added here."""
    with store.session() as s:
        row = VerdictClosingRow(dimm_id=swap.slot_id, time=naive_utc(swap.at), kind=REPLACED,
                                reason=reason, operator=None, previous_state=None,
                                module_id=swap.new_module_id)
        s.add(row)
        s.flush()
        return Closing.of(row)
