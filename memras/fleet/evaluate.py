"""`memras fleet evaluate`: memras evaluate's replay and scoring on the central history.

History
    Every host's errors in ``fleet_error`` (each row read back as the host's store would,
    :func:`memras.store.store.stored_error`, then as the record health judges), keyed by
    hostname, so each host is replayed by its own engine as `memras evaluate` does. The
    replay names a DIMM as its host did: each row carries the ``dimm_id`` the host's
    engine gave it (its inventory id, ``mc0/dimm2``), and every row with the same EDAC
    location key gets that id (``History.dimm_ids``), including rows shipped before the
    host attributed them. A location no row of the host attributed keeps its key.

Labels ("tickets")
    By default the fleet's own replacements: each one is a failure at the time it was
    started, of the DIMM it names (``fleet_replacement.dimm_id``, the host's inventory
    id, the same id as its errors'), so the scores are per DIMM: a flagged DIMM that
    was not the one replaced is a false positive, and the lead time is the replaced
    DIMM's. A replacement stays a host-level ticket (:class:`HostLevel`, with why) when
    that DIMM cannot be told: no id recorded; an id neither in the host's shipped
    inventory (``fleet_dimm_module.slot_id``) nor among its errors' DIMMs; or an
    inventory DIMM with no errors while some of the host's errors are on DIMMs its
    inventory does not name (the replaced module may be one of them). A host with such
    a ticket is scored as one unit (:func:`memras.evaluate.metrics.evaluate_flags`,
    "mixed"), the others per DIMM. A tickets CSV (``--tickets``) may name a DIMM by the
    id evaluate prints, its location key, its EDAC label or its module's serial.

Cost: the whole error history is read into memory once (about 1 KB a row in Python), so
on a central store of tens of millions of rows run it for a time window (``since``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, RowMapping, Select, select

from memras.evaluate.history import HOST_LEVEL, History, Ticket
from memras.fleet.schema import CENTRAL, HOSTS
from memras.health.api import record_from_stored
from memras.health.keys import location_key
from memras.records import ErrorType, MemoryFailureEvent
from memras.store.store import stored_error
from memras.topology.naming import fold

ERRORS = CENTRAL["memras_error"]
REPLACEMENTS = CENTRAL["memras_replacement"]
MODULES = CENTRAL["memras_dimm_module"]


def _names(conn: Connection) -> dict[str, str]:
    return {h: name or h for h, name in conn.execute(select(HOSTS.c.host_id,
                                                            HOSTS.c.hostname))}


def fleet_history(conn: Connection, since: datetime | None = None) -> History:
    """Every host's memory errors (``since``: naive UTC), oldest first per host, with the
    DIMM id each host gave each location key (``History.dimm_ids``)."""
    names = _names(conn)
    history = History()
    query = select(ERRORS).order_by(ERRORS.c.host_id, ERRORS.c.time, ERRORS.c.local_id)
    if since is not None:
        query = query.where(ERRORS.c.time >= since)
    for row in _rows(conn, query):
        mapping = dict(row)
        mapping["id"] = mapping.pop("local_id")
        host = names.get(mapping.pop("host_id"), "")
        stored = stored_error(mapping)
        record = record_from_stored(stored)
        if isinstance(record, MemoryFailureEvent) or getattr(
                record, "error_type", None) not in (ErrorType.INFO, None):
            history.add(host, record)
            key = location_key(stored.location)
            if key is not None and stored.dimm_id:
                history.dimm_ids.setdefault(host, {})[key] = stored.dimm_id
    return history


def _rows(conn: Connection, query: Select[Any]) -> Iterator[RowMapping]:
    """The rows streamed in chunks (a server-side cursor on PostgreSQL)."""
    yield from conn.execution_options(yield_per=10_000).execute(query).mappings()


@dataclass(frozen=True)
class HostLevel:
    """A replacement that stays a failure of its host, and why its DIMM cannot be told."""

    host: str
    replacement_id: int
    dimm_id: str
    time: datetime
    why: str

    def as_dict(self) -> dict[str, Any]:
        return {"host": self.host, "replacement_id": self.replacement_id,
                "dimm_id": self.dimm_id, "time": self.time, "why": self.why}


@dataclass
class FleetTickets:
    """The replacements as tickets; ``host_level`` lists those naming no DIMM."""

    tickets: list[Ticket] = field(default_factory=list)
    host_level: list[HostLevel] = field(default_factory=list)


@dataclass
class _HostDimms:
    """One host's DIMMs as the central store knows them."""

    with_errors: set[str] = field(default_factory=set)  # the replay's ids of its DIMMs
    inventory: set[str] = field(default_factory=set)  # slot ids of its shipped modules
    names: dict[str, str] = field(default_factory=dict)  # folded name -> DIMM id


def _host_dimms(conn: Connection, history: History) -> dict[str, _HostDimms]:
    names = _names(conn)
    out: dict[str, _HostDimms] = defaultdict(_HostDimms)
    for host, events in history.events.items():
        ids, known = history.dimm_ids.get(host, {}), out[host]
        for e in events:
            location = getattr(e, "location", None)  # a memory_failure record has none
            key = None if location is None else location_key(location)
            if location is None or key is None:
                continue
            dimm = ids.get(key, key)
            known.with_errors.add(dimm)
            known.names.setdefault(fold(key), dimm)
            if location.label:
                known.names.setdefault(fold(location.label), dimm)
    m = MODULES
    for host_id, slot, serial in conn.execute(select(m.c.host_id, m.c.slot_id, m.c.serial)):
        known = out[names.get(host_id, host_id)]
        if slot:
            known.inventory.add(slot)
            if serial:
                known.names.setdefault(fold(serial), slot)
    for known in out.values():
        known.names.update({fold(d): d for d in known.with_errors | known.inventory})
    return out


def _why_host_level(dimm_id: str, known: _HostDimms) -> str | None:
    """Why a replacement of ``dimm_id`` cannot be laid on one DIMM; None when it can."""
    if not dimm_id:
        return "the replacement names no DIMM (recorded before memras kept its id)"
    if dimm_id in known.with_errors:
        return None
    if dimm_id not in known.inventory:
        return (f"{dimm_id} is neither in the host's shipped inventory nor among the "
                "DIMMs of its errors")
    strays = sorted(known.with_errors - known.inventory)
    if strays:
        return (f"{dimm_id} has no errors, and errors of the host are on DIMMs its "
                f"inventory does not name ({', '.join(strays[:3])}"
                f"{', …' if len(strays) > 3 else ''}): the replaced module may be one")
    return None


def fleet_tickets(conn: Connection, history: History) -> FleetTickets:
    """Each replacement as a failure, at the time it started, of the DIMM it replaced
    where that DIMM can be told (see the module docstring), else of its host."""
    names = _names(conn)
    known = _host_dimms(conn, history)
    r = REPLACEMENTS
    out = FleetTickets()
    for host_id, local_id, dimm_id, created in conn.execute(
            select(r.c.host_id, r.c.local_id, r.c.dimm_id, r.c.created_at)
            .order_by(r.c.created_at, r.c.host_id, r.c.local_id)):
        host, at = names.get(host_id, host_id), created.replace(tzinfo=UTC)
        why = _why_host_level(dimm_id or "", known[host])
        if why is None:
            out.tickets.append(Ticket(host, dimm_id, at))
        else:
            out.tickets.append(Ticket(host, HOST_LEVEL, at))
            out.host_level.append(HostLevel(host, local_id, dimm_id or "", at, why))
    return out


def named_tickets(conn: Connection, history: History, tickets: Iterable[Ticket]
                  ) -> list[Ticket]:
    """A tickets CSV's DIMMs as the replay names them: a ticket may name a DIMM by its
    id, location key, EDAC label or module serial; a name the host does not know is
    kept as it is (a DIMM with no events: a failure no rule could catch)."""
    known = _host_dimms(conn, history)
    out = []
    for t in tickets:
        names = known[t.host].names if t.host in known else {}
        dimm = t.dimm if t.dimm == HOST_LEVEL else names.get(fold(t.dimm), t.dimm)
        out.append(replace(t, dimm=dimm))
    return out
