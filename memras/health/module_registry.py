"""The module registry: which physical module sits in each slot, and since when.

What it decides
    Whether the module in a slot is still the one health has been judging. Errors
    name slots (the inventory id: ``mc0/dimm2``, ``PNP0C80:00``), so verdicts are
    keyed by slot; but a replaced module is a new DIMM with its own history. The
    registry records each slot's modules in turn, and the moments they changed
    (``module_boundaries``) are where the health engine cuts a slot's state and
    where ``memras verdicts --history`` draws the line between two modules.

Identity
    ``serial:<SMBIOS serial>`` when the firmware gives a real serial, else
    ``location:<slot id>`` (no firmware identity: only a replacement tells one
    module from the next). Placeholder serials firmware writes for unknown or empty
    slots count as none. Part and manufacturer are kept beside it but are not part
    of the key: the backend of a replacement often knows only the serial, and the
    same module must not look new when SMBIOS later adds its part number.

Writers
    :func:`register_modules` (the watcher at start; dimms/status only read) syncs
    the registry from the inventory. It is idempotent: a slot whose identity is
    unchanged costs one comparison. Only a real serial replacing another real serial
    is a swap (made while memras was not looking): the old row is closed, a new one
    opened and the slot gets the "ok"/"replaced" verdict. Everything weaker is not,
    because a false swap would erase a sticky replace-now verdict: a serial that
    disappears (the EDAC/SMBIOS join failed this time) changes nothing; a
    location-only module that now shows a serial just becomes identified; and the
    firmware still reporting the very module a replacement removed is stale SMBIOS
    (built at boot; many platforms never refresh it after a hot replacement).
    :func:`record_replacement` (the workflow's close step) is authoritative: it
    closes the old module and opens the new one even when both are location-only,
    and writes the slot's ``ok`` verdict with rule ``replaced``, all in one
    transaction. A crash re-runs the close step, so it is idempotent by
    replacement id.

Cost
    The engine reads ``module_boundaries`` once per batch: one indexed query over
    the rows of removed modules (a few per slot over a server's life).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from memras.health.keys import naive_utc
from memras.health.models import DimmModuleRow as M
from memras.health.models import HealthVerdictRow
from memras.health.verdict import REPLACED_RULE, VerdictState

if TYPE_CHECKING:
    from memras.store.store import Store
    from memras.topology.inventory import DimmInfo

SOURCE_INVENTORY, SOURCE_REPLACEMENT = "inventory", "replacement"
# What firmware writes into type 17 strings when it knows no serial (DSP0134 has no
# "unknown" value; these are the common BIOS defaults), compared case-folded.
PLACEHOLDER_SERIALS = frozenset({
    "", "not specified", "unknown", "no dimm", "none", "n/a", "na", "not available",
    "to be filled by o.e.m.", "serial#", "sernum0", "sernum1", "sernum2", "sernum3",
    "dimm_sn", "0x00000000"})


def real_serial(text: str | None) -> str:
    """``text`` stripped, or "" when it is a firmware placeholder (all 0s/Fs included)."""
    serial = (text or "").strip()
    if serial.casefold() in PLACEHOLDER_SERIALS or set(serial) <= {"0"} \
            or set(serial.upper()) <= {"F"}:
        return ""
    return serial


@dataclass(frozen=True, slots=True)
class ModuleIdentity:
    """What tells one physical module from another (see the module docstring)."""

    serial: str = ""
    part: str = ""
    manufacturer: str = ""

    @classmethod
    def of(cls, serial: str | None, part: str | None = "",
           manufacturer: str | None = "") -> ModuleIdentity:
        return cls(real_serial(serial), (part or "").strip(), (manufacturer or "").strip())

    @classmethod
    def of_dimm(cls, dimm: DimmInfo) -> ModuleIdentity:
        dev = dimm.smbios
        return cls() if dev is None else cls.of(dev.serial, dev.part_number, dev.manufacturer)

    def key(self, slot_id: str) -> str:
        return f"serial:{self.serial}" if self.serial else f"location:{slot_id}"


@dataclass(frozen=True, slots=True)
class ModuleRecord:
    """One module's tenure in a slot (a ``memras_dimm_module`` row, times aware UTC)."""

    id: int
    slot_id: str
    identity: str
    serial: str
    part: str
    manufacturer: str
    installed_at: datetime
    removed_at: datetime | None
    replaced_by: int | None
    source: str
    replacement_id: int | None

    @classmethod
    def of(cls, row: M) -> ModuleRecord:
        return cls(row.id, row.slot_id, row.identity, row.serial, row.part, row.manufacturer,
                   row.installed_at.replace(tzinfo=UTC),
                   row.removed_at.replace(tzinfo=UTC) if row.removed_at else None,
                   row.replaced_by, row.source, row.replacement_id)

    def holds(self, at: datetime) -> bool:
        """Whether this module was in its slot at ``at`` (installed_at <= at < removed_at).

        The first module of a slot holds everything before it was first seen, too:
        its errors were stored before anyone registered it.
        """
        return self.removed_at is None or at < self.removed_at

    def to_dict(self) -> dict[str, Any]:
        return {"slot": self.slot_id, "identity": self.identity, "serial": self.serial,
                "part": self.part, "manufacturer": self.manufacturer,
                "installed_at": self.installed_at.isoformat(),
                "removed_at": self.removed_at.isoformat() if self.removed_at else None,
                "replaced_by": self.replaced_by, "source": self.source,
                "replacement_id": self.replacement_id}


def _new_row(slot_id: str, ident: ModuleIdentity, at: datetime, source: str,
             replacement_id: int | None = None) -> M:
    return M(slot_id=slot_id, identity=ident.key(slot_id), serial=ident.serial,
             part=ident.part, manufacturer=ident.manufacturer, installed_at=at,
             removed_at=None, replaced_by=None, source=source, replacement_id=replacement_id)


def _swap(s: Session, old: M, new: M) -> None:
    s.add(new)
    s.flush()  # the new row's id, for replaced_by
    old.removed_at, old.replaced_by = new.installed_at, new.id


def _is_stale(s: Session, row: M, key: str) -> bool:
    """The firmware still reports the module the replacement ``row`` came from."""
    if row.source != SOURCE_REPLACEMENT:
        return False
    before = s.scalars(select(M.identity).where(M.replaced_by == row.id)).first()
    return before == key


def register_modules(store: Store, inventory: Iterable[DimmInfo],
                     now: datetime | None = None) -> list[str]:
    """Sync the registry with the inventory; returns the slots whose module changed."""
    at = naive_utc(now or datetime.now(UTC))
    seen = {d.id: ModuleIdentity.of_dimm(d) for d in inventory}
    changed: list[str] = []
    with store.session() as s:
        current = {r.slot_id: r for r in s.scalars(select(M).where(M.removed_at.is_(None)))}
        for slot_id, ident in seen.items():
            row, key = current.get(slot_id), ident.key(slot_id)
            if row is None:
                s.add(_new_row(slot_id, ident, at, SOURCE_INVENTORY))
            elif row.identity == key or (not row.serial and ident.serial
                                         and not _is_stale(s, row, key)):
                row.identity, row.serial = key, ident.serial  # same module, maybe named now
                row.part = row.part or ident.part  # SMBIOS knows more than the backend did
                row.manufacturer = row.manufacturer or ident.manufacturer
            elif ident.serial and row.serial and not _is_stale(s, row, key):
                new = _new_row(slot_id, ident, at, SOURCE_INVENTORY)
                _swap(s, row, new)
                _add_replaced_verdict(s, slot_id, at, row, new, None)
                changed.append(slot_id)
    return changed


def _add_replaced_verdict(s: Session, slot_id: str, at: datetime, old: M, new: M,
                          replacement_id: int | None) -> None:
    """The slot's "ok" verdict that ends the old module's history."""
    previous = s.scalars(select(HealthVerdictRow.state).where(
        HealthVerdictRow.dimm_id == slot_id).order_by(HealthVerdictRow.id.desc())).first()
    how = (f"replacement #{replacement_id}" if replacement_id is not None
           else "a swap seen in the inventory")
    s.add(HealthVerdictRow(
        dimm_id=slot_id, time=at, state=VerdictState.OK.value, previous_state=previous,
        rules=json.dumps([REPLACED_RULE]),
        reasons=json.dumps([f"module replaced by {how} (serial {old.serial or '?'} -> "
                            f"{new.serial or '?'}); the new module starts with no history"]),
        evidence=json.dumps({"replacement_id": replacement_id,
                             "old_serial": old.serial or None,
                             "new_serial": new.serial or None,
                             "old_module": old.identity, "new_module": new.identity})))


def record_replacement(store: Store, *, slot_id: str, replacement_id: int,
                       old: ModuleIdentity, new: ModuleIdentity, at: datetime) -> bool:
    """Close the slot's module, open ``new`` and write the slot's "ok"/"replaced" verdict.

    Returns False when this replacement was recorded already (the close step re-ran).
    """
    when = naive_utc(at)
    with store.session() as s:
        if s.scalars(select(M.id).where(M.replacement_id == replacement_id)).first():
            return False
        row = s.scalars(select(M).where(M.slot_id == slot_id, M.removed_at.is_(None))).first()
        if row is None:  # never registered: it was there at least since its first verdict
            first = s.scalar(select(func.min(HealthVerdictRow.time)).where(
                HealthVerdictRow.dimm_id == slot_id))
            row = _new_row(slot_id, old, min(first or when, when), SOURCE_INVENTORY)
            s.add(row)
        installed = _new_row(slot_id, new, when, SOURCE_REPLACEMENT, replacement_id)
        _swap(s, row, installed)
        _add_replaced_verdict(s, slot_id, when, row, installed, replacement_id)
    return True


def module_boundaries(store: Store) -> dict[str, list[datetime]]:
    """Slot -> the (aware UTC) times its module changed, oldest first."""
    with store.session() as s:
        rows = s.execute(select(M.slot_id, M.removed_at).where(M.removed_at.is_not(None))
                         .order_by(M.removed_at)).all()
    out: dict[str, list[datetime]] = {}
    for slot_id, removed_at in rows:
        if removed_at is not None:  # the query asks for these only; the column allows NULL
            out.setdefault(slot_id, []).append(removed_at.replace(tzinfo=UTC))
    return out


def current_modules(store: Store, ids: Iterable[str] | None = None) -> dict[str, ModuleRecord]:
    """Slot -> the module in it now (only ``ids`` when given)."""
    query = select(M).where(M.removed_at.is_(None))
    if ids is not None:
        query = query.where(M.slot_id.in_(sorted(set(ids))))
    with store.session() as s:
        return {r.slot_id: ModuleRecord.of(r) for r in s.scalars(query)}


def module_history(store: Store, slot_id: str) -> list[ModuleRecord]:
    """Every module the slot held, oldest first."""
    with store.session() as s:
        return history_in(s, slot_id)


def history_in(s: Session, slot_id: str) -> list[ModuleRecord]:
    """:func:`module_history` inside an open session."""
    rows = s.scalars(select(M).where(M.slot_id == slot_id).order_by(M.installed_at, M.id))
    return [ModuleRecord.of(r) for r in rows]


def module_at(history: list[ModuleRecord], at: datetime) -> ModuleRecord | None:
    """The module of ``history`` that was in the slot at ``at``."""
    return next((m for m in history if m.holds(at)), None)


def of_removed_module(history: list[ModuleRecord], at: datetime) -> bool:
    """Whether something that happened in the slot at ``at`` (an error, a page action)
    belongs to a module that has since been removed: the slot's current module must
    not inherit it. False when the registry knows nothing of the slot."""
    module = module_at(history, at)
    return module is not None and module.removed_at is not None
