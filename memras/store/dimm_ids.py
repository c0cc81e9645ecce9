"""Which DIMM a stored error is: ``memras_error.dimm_id``, filled after the insert.

The store does not know DIMMs (the inventory and the health keys live above it), so
it is told: :func:`fill_dimm_ids` groups the rows without a DIMM by location, asks the
caller (memras.health.dimm_names, with health's keys) once per distinct location, and
writes each answer with one ``UPDATE … WHERE <that location>``; only rows whose
location names no DIMM (a memory_failure page) are asked by address. Why after the
insert and not in the insert's rows: the insert is the ingest hot path
(memras.store.rows), and attribution may need the memory map (an address-only error);
a second short transaction keeps the insert's cost and shape as they are.

Reading by DIMM: :class:`DimmFilter` selects a DIMM's rows by its id, and the rows not
attributed yet (stored before memras filled the column) by their label or location;
:func:`stored_dimms` lists the distinct identities stored, which is what names a DIMM
when the database came from a machine whose inventory is not here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, func, or_, select, update

from memras.records import DimmLocation
from memras.store import rasdaemon_schema as rs
from memras.store.models import ErrorRow

if TYPE_CHECKING:
    from memras.store.store import Store

PAGE_ROWS = 20_000  # ids per window of fill_dimm_ids(): bounds a backfill's transactions
ID_CHUNK = 500  # ids per "id IN (…)": under SQLite's variable limit
# The columns that tell DIMMs apart when a row has no dimm_id yet (health's keys read
# these: mc and layers, socket/channel/slot, the label).
_KEY_FIELDS = ("label", "socket", "mc", "channel", "slot", "csrow", "top_layer",
               "middle_layer", "lower_layer")


@dataclass(frozen=True, slots=True)
class DimmFilter:
    """A DIMM's rows: attributed to one of ``ids``, or printed with one of ``labels``, or
    not attributed yet and at one of ``locations`` (only :data:`_KEY_FIELDS` compared).
    ``memdevs``: the CXL memdevs it is, whose memras_cxl_event records it also selects
    (memras.store.cxl.cxl_records)."""

    ids: tuple[str, ...] = ()
    labels: tuple[str, ...] = ()
    locations: tuple[DimmLocation, ...] = ()
    memdevs: tuple[str, ...] = ()

    def clause(self) -> Any:
        c = ErrorRow.__table__.c
        loose = [_at(loc) for loc in self.locations]
        either: list[Any] = [c.dimm_id.in_(self.ids)] if self.ids else []
        either += [c.label.in_(self.labels)] if self.labels else []
        if loose:
            either.append(and_(c.dimm_id.is_(None), or_(*loose)))
        return or_(*either) if either else c.id.is_(None)  # nothing named: no rows


def _equal(column: Any, value: object) -> Any:
    return column.is_(None) if value is None else column == value


@dataclass(frozen=True, slots=True)
class StoredDimm:
    """A distinct (dimm_id, label, location) stored, with its number of rows."""

    dimm_id: str | None
    location: DimmLocation
    events: int


def stored_dimms(store: Store, *, unattributed: bool = False) -> list[StoredDimm]:
    """The distinct DIMM identities in memras_error (one scan, grouped); ``unattributed``:
    of the rows without a dimm_id only (few, once the watcher or import has attributed
    them: only those are grouped)."""
    c = ErrorRow.__table__.c
    keys = [c.dimm_id, *(c[name] for name in _KEY_FIELDS)]
    query = select(*keys, func.count())
    if unattributed:
        query = query.where(c.dimm_id.is_(None))
    with store._read() as conn:
        rows = conn.execute(query.group_by(*keys)).all()
    return [StoredDimm(r[0], DimmLocation(**dict(zip(_KEY_FIELDS, r[1:-1], strict=True))),
                       r[-1]) for r in rows]


def last_error_id(store: Store) -> int:
    """The newest memras_error id (0 when empty): rows after it are the next batch's."""
    with store._read() as conn:
        return conn.scalar(select(func.max(ErrorRow.__table__.c.id))) or 0


DimmOf = Callable[[DimmLocation], "str | None"]  # a location -> its DIMM id
DimmAt = Callable[[DimmLocation, int], "str | None"]  # (location, address) -> DIMM id


def fill_dimm_ids(store: Store, after_id: int, dimm_of: DimmOf, dimm_at: DimmAt | None = None,
                  *, window: int = PAGE_ROWS) -> int:
    """Give the rows after ``after_id`` without a DIMM the id ``dimm_of`` names for their
    location, else (location naming none) the id ``dimm_at`` names for their address;
    returns the last row id covered (the caller's next ``after_id``).

    Per window of ids: one GROUP BY of the unattributed rows' locations, one question
    per distinct location, and one UPDATE per location answered (a 5000-event storm on
    four DIMMs is four); only rows whose location names no DIMM are read one by one."""
    last = last_error_id(store)
    while after_id < last:
        upto = min(after_id + window, last)
        _fill_window(store, (after_id, upto), dimm_of, dimm_at)
        after_id = upto
    return last


def _fill_window(store: Store, span: tuple[int, int], dimm_of: DimmOf,
                 dimm_at: DimmAt | None) -> None:
    c = ErrorRow.__table__.c
    open_rows = (c.id > span[0], c.id <= span[1], c.dimm_id.is_(None))
    keys = [c[name] for name in _KEY_FIELDS]
    with store._read() as conn:
        groups = conn.execute(select(*keys).where(*open_rows).group_by(*keys)).all()
    updates: list[tuple[str, Any]] = []
    for values in groups:
        location = DimmLocation(**dict(zip(_KEY_FIELDS, values, strict=True)))
        dimm_id = dimm_of(location)
        if dimm_id is not None:
            updates.append((dimm_id, _at(location)))
        elif dimm_at is not None:
            updates += _by_address(store, open_rows, location, dimm_at)
    if not updates:
        return
    t = ErrorRow.__table__
    # the store's own write transaction: BEGIN IMMEDIATE on SQLite, errors translated
    with store._write_translated("attribute errors to DIMMs") as conn:
        for dimm_id, where in updates:
            conn.execute(update(t).where(*open_rows, where).values(dimm_id=dimm_id))


def _at(location: DimmLocation) -> Any:
    c = ErrorRow.__table__.c
    return and_(*(_equal(c[name], getattr(location, name)) for name in _KEY_FIELDS))


def _by_address(store: Store, open_rows: tuple[Any, ...], location: DimmLocation,
                dimm_at: DimmAt) -> list[tuple[str, Any]]:
    """(DIMM id, rows) for the rows at ``location`` that only their address places."""
    c = ErrorRow.__table__.c
    with store._read() as conn:
        rows = conn.execute(select(c.id, c.address).where(
            *open_rows, _at(location), c.address.is_not(None))).all()
    ids: dict[str, list[int]] = {}
    answers: dict[int, str | None] = {}
    for row_id, stored in rows:
        address = rs.as_u64(stored) or 0
        if address not in answers:
            answers[address] = dimm_at(location, address)
        dimm_id = answers[address]
        if dimm_id is not None:
            ids.setdefault(dimm_id, []).append(row_id)
    return [(dimm_id, c.id.in_(chunk[i:i + ID_CHUNK]))
            for dimm_id, chunk in ids.items() for i in range(0, len(chunk), ID_CHUNK)]
