"""Record → ``memras_error`` row, and the statements the ingest hot path runs.

Why not ``conn.execute(table.insert(), list_of_dicts)``: SQLAlchemy then builds and
processes a parameter dict per row, which cost more than SQLite's own insert. Here the
statements are compiled ONCE for the connection's dialect (so the SQL and its
paramstyle stay portable: qmark on SQLite, named on PostgreSQL), rows are plain
tuples in the compiled column order, the dialect's own bind processors are applied
only to the columns that have one (DateTime on SQLite), and the batch goes to the
driver's ``executemany`` in one call.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, bindparam, select, update
from sqlalchemy.engine import Dialect

from memras.records import MemoryFailureEvent, Record
from memras.store import rasdaemon_schema as rs
from memras.store.models import ErrorCountRow, ErrorRow
from memras.store.results import MEMORY_FAILURE_TYPE

LOCATION_FIELDS = ("socket", "mc", "channel", "slot", "csrow", "rank", "bank_group", "bank",
                   "row", "column", "device", "label", "top_layer", "middle_layer",
                   "lower_layer")
# memras_error columns written by the hot path, in the order error_row() builds them.
ERROR_COLUMNS = (
    "time", "uptime", "source", "type", "count", "address", "page", "normalized_address",
    "grain_bits", "syndrome", *LOCATION_FIELDS, "message", "driver", "driver_detail",
    "dimm_id", "dedup_key", "identity", "raw", "rasdaemon_table", "rasdaemon_id",
)
_MC, _TOP, _MID, _LOW = (ERROR_COLUMNS.index(n) for n in
                         ("mc", "top_layer", "middle_layer", "lower_layer"))
_TYPE, _LABEL, _COUNT = (ERROR_COLUMNS.index(n) for n in ("type", "label", "count"))
_EMPTY_LOCATION = (None,) * len(LOCATION_FIELDS)


def error_row(key: str, identity: str, record: Record, when_utc_naive: datetime,
              link: tuple[str, int] | None) -> tuple[Any, ...]:
    """The memras_error values of one record, in ERROR_COLUMNS order."""
    table, row_id = link if link else (None, None)
    if isinstance(record, MemoryFailureEvent):
        return (when_utc_naive, record.uptime_s, str(record.source), MEMORY_FAILURE_TYPE, 1,
                rs.as_int64(record.pfn << 12), record.pfn, None, None, None,
                *_EMPTY_LOCATION, f"{record.page_type}: {record.action_result}", "", "",
                None, key, identity, record.raw, table, row_id)
    loc = record.location
    address = record.address
    return (
        when_utc_naive, record.uptime_s, str(record.source), str(record.error_type),
        record.count, rs.as_int64(address), None if address is None else address >> 12,
        rs.as_int64(record.normalized_address), record.grain_bits, rs.as_int64(record.syndrome),
        loc.socket, loc.mc, loc.channel, loc.slot, loc.csrow, loc.rank, loc.bank_group,
        loc.bank, loc.row, loc.column, loc.device, loc.label, loc.top_layer,
        loc.middle_layer, loc.lower_layer, record.message, record.driver,
        record.driver_detail, None, key, identity, record.raw, table, row_id,
    )


def count_key(row: Sequence[Any]) -> tuple[str, str, int, int, int, int]:
    """The memras_error_count key of a row: NULLs as '' / -1 (see models.py)."""
    return (row[_TYPE], row[_LABEL] or "", rs.layer(row[_MC]), rs.layer(row[_TOP]),
            rs.layer(row[_MID]), rs.layer(row[_LOW]))


def row_count(row: Sequence[Any]) -> int:
    return row[_COUNT]


def _isoformat_us(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat(" ", "microseconds")


_PROBES = (datetime(2024, 12, 19, 3, 52, 38, 123456), datetime(1999, 1, 2, 0, 0, 0),
           datetime(2038, 6, 30, 23, 59, 59, 1), None)


def _faster_equivalent(proc: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """SQLite's DateTime bind processor formats with a %-dict per value (a few µs a row);
    ``isoformat`` writes the same text in C. Used only where it gives identical output
    on the probes, so every other dialect/type keeps its own processor."""
    try:
        same = all(proc(p) == _isoformat_us(p) for p in _PROBES)
    except (TypeError, ValueError, AttributeError):
        same = False
    return _isoformat_us if same else proc


@dataclass
class FastStatements:
    """memras_error's insert and dedup lookup, compiled once for one dialect."""

    insert_sql: str
    positional: bool
    processors: list[tuple[int, Callable[[Any], Any]]]
    lookup_sql: dict[int, str]
    dialect: Dialect
    _bump: _CountStatements | None = None

    @classmethod
    def for_dialect(cls, dialect: Dialect) -> FastStatements:
        table = ErrorRow.__table__
        compiled = table.insert().compile(dialect=dialect, column_keys=list(ERROR_COLUMNS))
        positional = bool(compiled.positional)
        if positional:  # we build tuples in ERROR_COLUMNS order; the SQL must agree
            assert tuple(compiled.positiontup or ()) == ERROR_COLUMNS
        processors = []
        for i, name in enumerate(ERROR_COLUMNS):
            proc = table.c[name].type.dialect_impl(dialect).bind_processor(dialect)
            if proc is not None:
                processors.append((i, _faster_equivalent(proc)))
        return cls(str(compiled), positional, processors, {}, dialect)

    def params(self, rows: list[tuple[Any, ...]]) -> list[Any]:
        if self.processors:
            processors = self.processors
            converted: list[Any] = []
            for row in rows:
                values = list(row)
                for i, proc in processors:
                    values[i] = proc(values[i])
                converted.append(tuple(values))
            rows = converted
        if self.positional:
            return rows
        return [dict(zip(ERROR_COLUMNS, row, strict=True)) for row in rows]

    def insert(self, conn: Connection, rows: list[tuple[Any, ...]]) -> None:
        conn.exec_driver_sql(self.insert_sql, self.params(rows))

    def known_keys(self, conn: Connection, keys: list[str]) -> list[tuple[str, str, str]]:
        """(dedup_key, source, identity) of stored rows with one of ``keys`` (index lookups).

        The key list is padded (repeating its last key) to a power of two: a distinct
        ``IN (?, …)`` length is a distinct statement, and the driver's statement cache
        held up to 128 of them, each prepared with hundreds of parameters — several MiB
        of a watcher's memory in a storm. Now there are at most ten shapes."""
        if not keys:
            return []
        size = 1 << max(0, len(keys) - 1).bit_length()
        keys = keys + keys[-1:] * (size - len(keys))
        sql = self.lookup_sql.get(size)
        if sql is None:
            c = ErrorRow.__table__.c
            names = [f"k{i}" for i in range(size)]
            stmt = select(c.dedup_key, c.source, c.identity).where(
                c.dedup_key.in_([bindparam(n) for n in names]))
            sql = str(stmt.compile(dialect=self.dialect))
            self.lookup_sql[size] = sql
        args: Any = (tuple(keys) if self.dialect.positional
                     else {f"k{i}": k for i, k in enumerate(keys)})
        return [tuple(r) for r in conn.exec_driver_sql(sql, args)]

    def bump_count(self, conn: Connection, key: tuple[Any, ...], events: int,
                   errors: int) -> None:
        """Add to one memras_error_count row, creating it if absent (a few per batch).

        Compiled once: building the Core UPDATE per DIMM per batch cost more than
        running it."""
        if self._bump is None:
            self._bump = _CountStatements.for_dialect(self.dialect)
        self._bump.bump(conn, key, events, errors)


_COUNT_KEY = ("type", "label", "mc", "top_layer", "middle_layer", "lower_layer")


@dataclass
class _CountStatements:
    update_sql: str
    update_names: tuple[str, ...] | None  # bind order when positional
    insert_sql: str
    insert_names: tuple[str, ...] | None

    @classmethod
    def for_dialect(cls, dialect: Dialect) -> _CountStatements:
        t = ErrorCountRow.__table__
        match = and_(*(t.c[n] == bindparam(f"k_{n}") for n in _COUNT_KEY))
        update_stmt = update(t).where(match).values(
            events=t.c.events + bindparam("d_events"), errors=t.c.errors + bindparam("d_errors"))
        insert_stmt = t.insert().values(
            **{n: bindparam(f"k_{n}") for n in _COUNT_KEY},
            events=bindparam("d_events"), errors=bindparam("d_errors"))
        up, ins = update_stmt.compile(dialect=dialect), insert_stmt.compile(dialect=dialect)
        return cls(str(up), _order(up), str(ins), _order(ins))

    def bump(self, conn: Connection, key: tuple[Any, ...], events: int, errors: int) -> None:
        values = {f"k_{n}": v for n, v in zip(_COUNT_KEY, key, strict=True)}
        values["d_events"], values["d_errors"] = events, errors
        done = conn.exec_driver_sql(self.update_sql, _args(values, self.update_names))
        if done.rowcount == 0:
            conn.exec_driver_sql(self.insert_sql, _args(values, self.insert_names))


def _order(compiled: Any) -> tuple[str, ...] | None:
    return tuple(compiled.positiontup) if compiled.positional else None


def _args(values: dict[str, Any], order: tuple[str, ...] | None) -> Any:
    return values if order is None else tuple(values[n] for n in order)
