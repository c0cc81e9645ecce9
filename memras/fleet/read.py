"""The fleet's questions, answered from the central store with SELECTs only.

Every function takes a connection and only reads, so a role with ``SELECT`` on the
fleet tables (docs/user-guide.md, "Running memras on a fleet") runs every read command.

- :func:`hosts`: each host, its last contact, backlog and what the backlog policy skipped.
- :func:`dimms`: each DIMM's current verdict (its latest verdict row), most urgent
  first, with the module in the slot now (serial, part, manufacturer).
- :func:`failures`: modules per manufacturer and part number, how many failed (replaced,
  or judged replace-* while in the slot) and their age at failure.
- :func:`replacements`: every replacement with its host and the head of its audit trail.
- :func:`overview` (all four, for the TUI's fleet screen) and :func:`dimm_verdicts` (one
  DIMM's verdict history) take the engine: they connect, check the schema and turn a
  driver error into the one-line :func:`~memras.fleet.ship.central_error`.

The DIMMs query reads the verdict table only through its (host_id, dimm_id, local_id)
index: its cost grows with the number of verdict rows, not with the errors stored.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, and_, func, select
from sqlalchemy.exc import SQLAlchemyError

from memras.errors import StoreError
from memras.fleet.schema import CENTRAL, HOSTS, schema_problem
from memras.fleet.ship import central_error
from memras.health.module_registry import SOURCE_REPLACEMENT
from memras.health.verdict import VerdictState

VERDICTS = CENTRAL["memras_health_verdict"]
MODULES = CENTRAL["memras_dimm_module"]
ALERTS = CENTRAL["memras_alert"]
REPLACEMENTS = CENTRAL["memras_replacement"]
AUDIT = CENTRAL["memras_audit"]


@dataclass(frozen=True)
class HostRow:
    host_id: str
    hostname: str
    memras_version: str
    first_contact: datetime
    last_contact: datetime
    backlog: int
    dropped_errors: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def hosts(conn: Connection) -> list[HostRow]:
    rows = conn.execute(select(HOSTS).order_by(HOSTS.c.hostname, HOSTS.c.host_id)).mappings()
    return [HostRow(**dict(r)) for r in rows]


@dataclass(frozen=True)
class FleetDimm:
    hostname: str
    host_id: str
    dimm_id: str
    label: str | None
    serial: str | None
    part: str | None
    manufacturer: str | None
    verdict: str
    since: datetime
    evidence: str  # the verdict's first reason

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _rank(state: str) -> int:
    try:
        return VerdictState(state).rank
    except ValueError:
        return -1


def dimms(conn: Connection, *, include_ok: bool = False) -> list[FleetDimm]:
    """Each (host, DIMM)'s latest verdict, most urgent first (then longest standing)."""
    v = VERDICTS
    latest = (select(v.c.host_id, v.c.dimm_id, func.max(v.c.local_id).label("last"))
              .group_by(v.c.host_id, v.c.dimm_id).subquery())
    query = (select(v.c.host_id, v.c.dimm_id, v.c.state, v.c.time, v.c.reached_at,
                    v.c.reasons, HOSTS.c.hostname, MODULES.c.serial, MODULES.c.part,
                    MODULES.c.manufacturer)
             .join(latest, and_(v.c.host_id == latest.c.host_id,
                                v.c.local_id == latest.c.last))
             .join(HOSTS, HOSTS.c.host_id == v.c.host_id, isouter=True)
             .join(MODULES, and_(MODULES.c.host_id == v.c.host_id,
                                 MODULES.c.slot_id == v.c.dimm_id,
                                 MODULES.c.removed_at.is_(None)), isouter=True))
    if not include_ok:
        query = query.where(v.c.state != VerdictState.OK.value)
    labels = _labels(conn)
    out = []
    for r in conn.execute(query).mappings():
        out.append(FleetDimm(
            hostname=r["hostname"] or r["host_id"], host_id=r["host_id"],
            dimm_id=r["dimm_id"], label=labels.get((r["host_id"], r["dimm_id"])),
            serial=r["serial"], part=r["part"], manufacturer=r["manufacturer"],
            verdict=r["state"], since=r["reached_at"] or r["time"],
            evidence=_first_reason(r["reasons"])))
    out.sort(key=lambda d: (-_rank(d.verdict), d.since, d.hostname, d.dimm_id))
    return out


def _labels(conn: Connection) -> dict[tuple[str, str], str]:
    """Slot labels as the hosts' alerts named them (the DIMMs that matter have alerts)."""
    a = ALERTS
    rows = conn.execute(select(a.c.host_id, a.c.dimm_id, a.c.dimm_label)
                        .where(a.c.dimm_id.is_not(None), a.c.dimm_label.is_not(None))
                        .order_by(a.c.local_id))
    return {(h, d): label for h, d, label in rows if label}


def _first_reason(reasons: Any) -> str:
    try:
        values = json.loads(reasons) if isinstance(reasons, str) else reasons
    except ValueError:
        return str(reasons)
    if isinstance(values, list) and values:
        return str(values[0])
    return ""


@dataclass(frozen=True)
class FailureRate:
    manufacturer: str
    part: str
    modules: int
    failed: int
    # age at failure of the failed modules whose installation memras recorded (a
    # replacement put them in); None when it saw none installed
    median_age_days: float | None
    # of the others, in their slot before memras first saw them: the median of
    # first-seen -> failure, so their age is at least this (None: no such module)
    median_age_floor_days: float | None = None

    def age_text(self) -> str:
        """'412d' from known installations, else '>=380d' from first sightings,
        else '-'."""
        if self.median_age_days is not None:
            return f"{self.median_age_days:.0f}d"
        if self.median_age_floor_days is not None:
            return f">={self.median_age_floor_days:.0f}d"
        return "-"

    @property
    def rate(self) -> float:
        return self.failed / self.modules if self.modules else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "rate": round(self.rate, 6)}


def failures(conn: Connection) -> list[FailureRate]:
    """Per manufacturer and part number: modules seen, modules failed, median age at
    failure. A module failed when it was removed by a replacement, or when the latest
    verdict of its slot is replace-* while it is still in the slot.

    A module's age is known only when memras saw it installed (its row came from a
    replacement); one found in its slot by the inventory was there before memras
    started, for an unknown time, so its first sighting only bounds its age from below
    and is kept apart (median_age_floor_days) instead of passing for an age."""
    replace = {VerdictState.REPLACE_NOW.value, VerdictState.REPLACE_LATER.value}
    flagged = {(d.host_id, d.dimm_id, d.since) for d in dimms(conn) if d.verdict in replace}
    flagged_slots = {(h, s): since for h, s, since in flagged}
    known: dict[tuple[str, str], list[float]] = defaultdict(list)
    floors: dict[tuple[str, str], list[float]] = defaultdict(list)
    failed: dict[tuple[str, str], int] = defaultdict(int)
    seen: dict[tuple[str, str], int] = defaultdict(int)
    m = MODULES
    for r in conn.execute(select(m.c.host_id, m.c.slot_id, m.c.manufacturer, m.c.part,
                                 m.c.installed_at, m.c.removed_at, m.c.replacement_id,
                                 m.c.source)).mappings():
        key = (r["manufacturer"] or "", r["part"] or "")
        seen[key] += 1
        failed_at = None
        if r["removed_at"] is not None and r["replacement_id"] is not None:
            failed_at = r["removed_at"]
        elif r["removed_at"] is None and (r["host_id"], r["slot_id"]) in flagged_slots:
            failed_at = flagged_slots[(r["host_id"], r["slot_id"])]
        if failed_at is None:
            continue
        failed[key] += 1
        if r["installed_at"] is not None:
            days = (failed_at - r["installed_at"]).total_seconds() / 86400
            (known if r["source"] == SOURCE_REPLACEMENT else floors)[key].append(days)
    out = [FailureRate(key[0], key[1], n, failed[key], _median(known.get(key)),
                       _median(floors.get(key))) for key, n in seen.items()]
    out.sort(key=lambda f: (-f.rate, -f.failed, f.manufacturer, f.part))
    return out


def _median(values: list[float] | None) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[len(ordered) // 2]


@dataclass(frozen=True)
class FleetReplacement:
    hostname: str
    host_id: str
    replacement_id: int
    dimm_id: str
    dimm_label: str
    state: str
    created_at: datetime
    finished_at: datetime | None
    audit_entries: int
    audit_head: str | None  # the hash of the replacement's last audit entry

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def replacements(conn: Connection) -> list[FleetReplacement]:
    r, a = REPLACEMENTS, AUDIT
    heads: dict[tuple[str, int], tuple[int, str]] = {}
    for host, rid, _seq, digest in conn.execute(
            select(a.c.host_id, a.c.replacement_id, a.c.local_id, a.c.hash)
            .where(a.c.replacement_id.is_not(None)).order_by(a.c.local_id)):
        count = heads.get((host, rid), (0, ""))[0]
        heads[(host, rid)] = (count + 1, digest)
    out = []
    for row in conn.execute(
            select(r, HOSTS.c.hostname).join(HOSTS, HOSTS.c.host_id == r.c.host_id,
                                             isouter=True)
            .order_by(r.c.created_at, r.c.host_id, r.c.local_id)).mappings():
        count, head = heads.get((row["host_id"], row["local_id"]), (0, None))
        out.append(FleetReplacement(
            hostname=row["hostname"] or row["host_id"], host_id=row["host_id"],
            replacement_id=row["local_id"], dimm_id=row["dimm_id"],
            dimm_label=row["dimm_label"] or "", state=row["state"],
            created_at=row["created_at"], finished_at=row["finished_at"],
            audit_entries=count, audit_head=head))
    return out


def require_schema(conn: Connection) -> None:
    """StoreError (with what to run) unless this database holds the fleet schema we read."""
    problem = schema_problem(conn)
    if problem is not None:
        raise StoreError(f"central database: {problem}",
                         hint="run `memras fleet init` once as the database's owner")


@contextmanager
def reading(engine: Engine) -> Iterator[Connection]:
    """A connection to the central store whose schema was checked; a driver error (the
    server down, a refused login) leaves as the one-line StoreError of ``central_error``."""
    try:
        with engine.connect() as conn:
            require_schema(conn)
            yield conn
    except SQLAlchemyError as exc:
        raise central_error("read", exc) from exc


@dataclass(frozen=True)
class FleetOverview:
    """Every view of the fleet screen, read in one connection."""

    hosts: list[HostRow]
    dimms: list[FleetDimm]
    failures: list[FailureRate]
    replacements: list[FleetReplacement]


def overview(engine: Engine, *, include_ok: bool = False) -> FleetOverview:
    """``include_ok``: the DIMMs judged ok too (`memras fleet dimms --all`)."""
    with reading(engine) as conn:
        return FleetOverview(hosts(conn), dimms(conn, include_ok=include_ok), failures(conn),
                             replacements(conn))


@dataclass(frozen=True)
class FleetVerdict:
    """One verdict row of a DIMM, as its host judged it."""

    time: datetime
    state: str
    previous_state: str | None
    reached_at: datetime | None
    rules: list[str]
    reasons: list[str]
    evidence: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def dimm_verdicts(engine: Engine, host_id: str, dimm_id: str) -> list[FleetVerdict]:
    """One DIMM's verdicts on one host, newest first (its index: host, DIMM, local id)."""
    v = VERDICTS
    with reading(engine) as conn:
        rows = conn.execute(select(v.c.time, v.c.state, v.c.previous_state, v.c.reached_at,
                                   v.c.rules, v.c.reasons, v.c.evidence)
                            .where(v.c.host_id == host_id, v.c.dimm_id == dimm_id)
                            .order_by(v.c.local_id.desc())).mappings().all()
    return [FleetVerdict(r["time"], r["state"], r["previous_state"], r["reached_at"],
                         _json(r["rules"], list), _json(r["reasons"], list),
                         _json(r["evidence"], dict)) for r in rows]


def _json(value: Any, kind: Callable[[], Any]) -> Any:
    """A JSON text column as ``kind`` (list or dict); what does not parse, kept as text."""
    if not isinstance(value, str):
        return value if value is not None else kind()
    try:
        parsed = json.loads(value)
    except ValueError:
        parsed = value
    if isinstance(parsed, type(kind())):
        return parsed
    return [parsed] if kind is list else {"value": parsed}
