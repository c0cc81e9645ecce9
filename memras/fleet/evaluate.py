"""`memras fleet evaluate`: memras evaluate's replay and scoring on the central history.

The history is every host's errors in ``fleet_error`` (each row read back as the host's
store would, :func:`memras.store.store.stored_error`, then as the record health judges),
keyed by hostname, so each host is replayed by its own engine as `memras evaluate` does.
The labels ("tickets") are by default the fleet's own replacements: each one is a failure
of its host at the time it was started. A replacement names an inventory slot, not the
EDAC location the replay keys DIMMs by, so these tickets are host-level and the scores
are per host (memras.evaluate.metrics: a host is flagged when its first DIMM was); a
tickets CSV with DIMM ids (`--tickets`) scores per DIMM instead.

Cost: the whole error history is read into memory once (about 1 KB a row in Python), so
on a central store of tens of millions of rows run it for a time window (``since``).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, RowMapping, Select, select

from memras.evaluate.history import HOST_LEVEL, History, Ticket
from memras.fleet.schema import CENTRAL, HOSTS
from memras.health.api import record_from_stored
from memras.records import ErrorType, MemoryFailureEvent
from memras.store.store import stored_error

ERRORS = CENTRAL["memras_error"]
REPLACEMENTS = CENTRAL["memras_replacement"]


def _names(conn: Connection) -> dict[str, str]:
    return {h: name or h for h, name in conn.execute(select(HOSTS.c.host_id,
                                                            HOSTS.c.hostname))}


def fleet_history(conn: Connection, since: datetime | None = None) -> History:
    """Every host's memory errors (``since``: naive UTC), oldest first per host."""
    names = _names(conn)
    history = History()
    query = select(ERRORS).order_by(ERRORS.c.host_id, ERRORS.c.time, ERRORS.c.local_id)
    if since is not None:
        query = query.where(ERRORS.c.time >= since)
    for row in _rows(conn, query):
        mapping = dict(row)
        mapping["id"] = mapping.pop("local_id")
        host = names.get(mapping.pop("host_id"), "")
        record = record_from_stored(stored_error(mapping))
        if isinstance(record, MemoryFailureEvent) or getattr(
                record, "error_type", None) not in (ErrorType.INFO, None):
            history.add(host, record)
    return history


def _rows(conn: Connection, query: Select[Any]) -> Iterator[RowMapping]:
    """The rows streamed in chunks (a server-side cursor on PostgreSQL)."""
    yield from conn.execution_options(yield_per=10_000).execute(query).mappings()


def fleet_tickets(conn: Connection) -> list[Ticket]:
    """Each replacement as a failure of its host at the time it started."""
    names = _names(conn)
    r = REPLACEMENTS
    return [Ticket(names.get(host, host), HOST_LEVEL, created.replace(tzinfo=UTC))
            for host, created in conn.execute(select(r.c.host_id, r.c.created_at)
                                              .order_by(r.c.created_at))]
