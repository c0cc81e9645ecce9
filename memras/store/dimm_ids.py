"""Which DIMM a stored error is: ``memras_error.dimm_id``, filled after the insert.

The store does not know DIMMs (the inventory and the health keys live above it), so
it is told: :func:`unattributed` hands the rows without a DIMM (grouped by their
location and address, so a storm on one DIMM is one question, not thousands), the
caller answers with health's key for each group (memras.health.dimm_names), and
:func:`set_dimm_ids` writes the answers, ``UPDATE … WHERE id IN (…)`` per DIMM.
Why after the insert and not in the insert's rows: the insert is the ingest hot path
(memras.store.rows), and attribution may need the memory map (an address-only error);
a second short transaction keeps the insert's cost and shape as they are.

Reading by DIMM: :class:`DimmFilter` selects a DIMM's rows by its id, and the rows not
attributed yet (stored before memras filled the column) by their label or location;
:func:`stored_dimms` lists the distinct identities stored, which is what names a DIMM
when the database came from a machine whose inventory is not here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, func, or_, select, update

from memras.records import DimmLocation
from memras.store import rasdaemon_schema as rs
from memras.store.models import ErrorRow
from memras.store.rows import LOCATION_FIELDS

if TYPE_CHECKING:
    from memras.store.store import Store

PAGE_ROWS = 20_000  # rows read per pass of unattributed(): bounds memory on a backfill
ID_CHUNK = 500  # ids per "id IN (…)": under SQLite's variable limit
# The columns that tell DIMMs apart when a row has no dimm_id yet (health's keys read
# these: mc and layers, socket/channel/slot, the label).
_KEY_FIELDS = ("label", "socket", "mc", "channel", "slot", "csrow", "top_layer",
               "middle_layer", "lower_layer")


@dataclass(frozen=True, slots=True)
class DimmFilter:
    """A DIMM's rows: attributed to one of ``ids``, or printed with one of ``labels``, or
    not attributed yet and at one of ``locations`` (only :data:`_KEY_FIELDS` compared)."""

    ids: tuple[str, ...] = ()
    labels: tuple[str, ...] = ()
    locations: tuple[DimmLocation, ...] = ()

    def clause(self) -> Any:
        c = ErrorRow.__table__.c
        loose = [and_(*(_equal(c[name], getattr(loc, name)) for name in _KEY_FIELDS))
                 for loc in self.locations]
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


def stored_dimms(store: Store) -> list[StoredDimm]:
    """The distinct DIMM identities in memras_error (one scan, grouped)."""
    c = ErrorRow.__table__.c
    keys = [c.dimm_id, *(c[name] for name in _KEY_FIELDS)]
    with store._read() as conn:
        rows = conn.execute(select(*keys, func.count()).group_by(*keys)).all()
    return [StoredDimm(r[0], DimmLocation(**dict(zip(_KEY_FIELDS, r[1:-1], strict=True))),
                       r[-1]) for r in rows]


def last_error_id(store: Store) -> int:
    """The newest memras_error id (0 when empty): rows after it are the next batch's."""
    with store._read() as conn:
        return conn.scalar(select(func.max(ErrorRow.__table__.c.id))) or 0


Groups = dict[tuple[DimmLocation, int | None], list[int]]


def unattributed(store: Store, after_id: int, limit: int = PAGE_ROWS) -> tuple[Groups, int]:
    """Rows with id > ``after_id`` and no dimm_id, at most ``limit`` of them, as
    (location, address) -> row ids; and the last id read (``after_id`` when none)."""
    c = ErrorRow.__table__.c
    columns = [c.id, c.address, *(c[name] for name in LOCATION_FIELDS)]
    query = (select(*columns).where(c.id > after_id, c.dimm_id.is_(None))
             .order_by(c.id).limit(limit))
    with store._read() as conn:
        rows = conn.execute(query).all()
    groups: Groups = {}
    for row in rows:
        location = DimmLocation(**dict(zip(LOCATION_FIELDS, row[2:], strict=True)))
        groups.setdefault((location, rs.as_u64(row[1])), []).append(row[0])
    return groups, (rows[-1][0] if rows else after_id)


def set_dimm_ids(store: Store, ids_by_dimm: Mapping[str, Iterable[int]]) -> int:
    """Write each DIMM id on its rows (only where none is set yet); rows updated."""
    t = ErrorRow.__table__
    done = 0
    # the store's own write transaction: BEGIN IMMEDIATE on SQLite, errors translated
    with store._write_translated("attribute errors to DIMMs") as conn:
        for dimm_id, ids in ids_by_dimm.items():
            ordered = sorted(ids)
            for i in range(0, len(ordered), ID_CHUNK):
                done += conn.execute(update(t).where(
                    t.c.id.in_(ordered[i:i + ID_CHUNK]), t.c.dimm_id.is_(None)
                ).values(dimm_id=dimm_id)).rowcount
    return done
