"""Record → ``memras_error`` row, and the statements the ingest hot path runs.

Why not ``conn.execute(table.insert(), list_of_dicts)``: SQLAlchemy then builds and
processes a parameter dict per row, which cost more than SQLite's own insert. Here the
statements are compiled with SQLAlchemy for the connection's dialect (so the SQL and
its paramstyle stay portable: qmark on SQLite, named on PostgreSQL), rows are plain
tuples in the compiled column order, the dialect's own bind processors are applied
only to the columns that have one (DateTime on SQLite), and the batch goes to the
driver's ``executemany`` in one call.

Why a row leaves out its NULL columns: Python's sqlite3 binds a None through its
adapter registry (a tuple built, a dict probed, two attribute look-ups), ~375 ns a
parameter against ~90 for an int; an mc_event's memras_error row had about fifteen
of them (the location fields a driver does not decode). A row is therefore a *shape*
(the names of its non-NULL columns) plus the values; the shape's INSERT is compiled
once and cached, and consecutive rows of one shape (a storm's are all alike) go to
one ``executemany``, in order. Omitted columns have no default on the database side,
so they are NULL exactly as before, on every dialect.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from itertools import compress
from operator import is_not, itemgetter
from typing import Any

from sqlalchemy import Connection, and_, bindparam, select, update
from sqlalchemy.engine import Dialect

from memras.ingest.parsers.cxl import CXL_DRIVER
from memras.records import DimmLocation, MemoryFailureEvent, Record, TimeSource
from memras.store import rasdaemon_schema as rs
from memras.store.models import ErrorCountRow, ErrorRow
from memras.store.packed_texts import pack
from memras.store.results import MEMORY_FAILURE_TYPE

LOCATION_FIELDS = ("socket", "mc", "channel", "slot", "csrow", "rank", "bank_group", "bank",
                   "row", "column", "device", "label", "top_layer", "middle_layer",
                   "lower_layer")
# memras_error's written columns in the table's order, in the three runs a row is
# built from: before the location, the location, after it. dimm_id is never written
# here (the health engine fills it), so it is always left out.
FIRST_COLUMNS = ("time", "uptime", "source", "type", "count", "address", "page",
                 "normalized_address", "grain_bits", "syndrome")
LAST_COLUMNS = ("message", "driver", "driver_detail", "dedup_key", "identity", "raw", "texts",
                "time_source", "rasdaemon_table", "rasdaemon_id", "rasdaemon_mce_id", "flags")
ERROR_COLUMNS = (*FIRST_COLUMNS, *LOCATION_FIELDS, *LAST_COLUMNS)
_NONES = (None,) * len(LOCATION_FIELDS)

Shape = tuple[str, ...]  # names of a row's columns, in its values' order
CountKey = tuple[str, str, int, int, int, int]


class _LocationParts:
    """What rows need of a DimmLocation, computed once per location object: the
    parsers hand out one cached location per DIMM, so a storm's records share a few.
    Keyed by ``id()`` with the object kept alive in the entry (an id is not reused while
    its object lives); bounded, cleared when full."""

    MAX = 4096

    def __init__(self) -> None:
        self._by_id: dict[int, tuple[Any, ...]] = {}

    def get(self, loc: DimmLocation) -> tuple[Any, ...]:
        """(loc, its non-NULL memras_error column names, their values, the count key's
        label/mc/layers part, mc_event's label/mc/layers values)."""
        entry = self._by_id.get(id(loc))
        if entry is None or entry[0] is not loc:
            values = (loc.socket, loc.mc, loc.channel, loc.slot, loc.csrow, loc.rank,
                      loc.bank_group, loc.bank, loc.row, loc.column, loc.device, loc.label,
                      loc.top_layer, loc.middle_layer, loc.lower_layer)
            present = tuple(map(is_not, values, _NONES))
            layers = (rs.layer(loc.mc), rs.layer(loc.top_layer), rs.layer(loc.middle_layer),
                      rs.layer(loc.lower_layer))
            entry = (loc, tuple(compress(LOCATION_FIELDS, present)),
                     tuple(compress(values, present)), (loc.label or "", *layers),
                     (loc.label, *layers))
            if len(self._by_id) >= self.MAX:
                self._by_id.clear()
            self._by_id[id(loc)] = entry
        return entry


_EMPTY_LOCATION_COUNT = ("", -1, -1, -1, -1)
_SECONDS_KEPT = 4096  # per-second texts kept across batches; cleared when full
# Row shapes (and their compiled INSERTs) kept; a real stream has a handful (one per
# driver's set of decoded location fields), this only bounds a pathological one.
_SHAPES_KEPT = 256
_I64 = 1 << 63


_MC_EVENT_ONLY = ("mc_event",)  # returned as this object: the builder tests identity
_CXL_GENERAL_MEDIA = ("cxl_general_media_event",)
_CXL_DRAM = ("cxl_dram_event",)


def rasdaemon_tables(record: Record) -> tuple[str, ...]:
    """The rasdaemon tables a record belongs in; the first one is linked from memras_error.

    An error that an EDAC driver decoded (a label or layers) is an ``mc_event``, as
    rasdaemon stores the ras:mc_event for it; when the same fault's machine-check
    registers came with it (sb_edac/skx log blocks), rasdaemon also has its
    ``mce_record``. Writing only the latter left ras-mc-ctl without label or location.
    """
    if isinstance(record, MemoryFailureEvent):
        return ("memory_failure_event",)
    if record.driver == CXL_DRIVER:  # a CXL memdev's media error: its own table
        return _CXL_DRAM if " bank_group=" in record.driver_detail else _CXL_GENERAL_MEDIA
    if record.mce is None:
        return _MC_EVENT_ONLY
    loc = record.location
    if loc.label or loc.top_layer is not None:
        return ("mc_event", "mce_record")
    return ("mce_record",)


ROW_BUILDERS: dict[str, tuple[Callable[..., tuple], list[str]]] = {
    "mc_event": (rs.mc_event_row, rs.MC_EVENT_COLUMNS),
    "mce_record": (rs.mce_record_row, rs.MCE_RECORD_COLUMNS),
    "memory_failure_event": (rs.memory_failure_row, rs.MEMORY_FAILURE_COLUMNS),
    "cxl_general_media_event": (rs.cxl_media_row("cxl_general_media_event"),
                                rs.CXL_TABLE_COLUMNS["cxl_general_media_event"]),
    "cxl_dram_event": (rs.cxl_media_row("cxl_dram_event"), rs.CXL_TABLE_COLUMNS["cxl_dram_event"]),
}


@dataclass
class ErrorRows:
    """The rows of one batch: memras_error's as (shape, values) pairs in record order,
    the rasdaemon mirror's per table (rasdaemon column order, ids allocated), and the
    per-DIMM count deltas for memras_error_count."""

    rows: list[tuple[Shape, tuple[Any, ...]]] = field(default_factory=list)
    rasdaemon: dict[str, list[tuple[Any, ...]]] = field(default_factory=dict)
    counts: dict[CountKey, list[int]] = field(default_factory=dict)


class RowBuilder:
    """Builds a batch's rows in one pass per record; holds the per-location and
    per-shape caches. Values both tables need (type text, int64 address/syndrome, the
    location's layers) are computed once for both."""

    def __init__(self) -> None:
        self._locations = _LocationParts()
        self._shapes: dict[tuple[int, Shape], tuple[Shape, Any, Any]] = {}
        self._stamps = rs.LocalTimestamps()
        self._seconds: dict[int, list[str | None]] = {}  # see build(); bounded

    def build(self, batch: list[tuple[str, Any, str, Record, datetime, TimeSource]], *,
              time_processor: Callable[[Any], Any] | None = None,
              uptime_processor: Callable[[Any], Any] | None = None,
              first_id: Callable[[str], int] | None = None,
              flags: dict[int, str] | None = None) -> ErrorRows:
        """Rows for (key, neighbour keys, identity, record, UTC time, time source) items
        (the store's prepared records: the time is aware with tzinfo UTC; the neighbour
        keys are not stored). With ``first_id``
        (table -> the first free rasdaemon row id) the rasdaemon mirror is built too.
        ``flags`` (``id(record)`` -> text, from :mod:`memras.store.bounds`) marks the
        rows whose values were clamped or blanked; the records are already in bounds."""
        out = ErrorRows()
        rows, counts, mirror = out.rows, out.counts, out.rasdaemon
        shapes = self._shapes
        location_parts = self._locations.get
        seconds = self._seconds
        local_stamp = self._stamps.format_epoch
        next_ids: dict[str, int] = {}
        iso_text = time_processor is _isoformat_us
        t: Any  # text, or the dialect's value for a datetime
        values: tuple[Any, ...]  # the leading columns' values, of either record kind
        tail: tuple[Any, ...]  # the trailing ones
        for key, _, identity, record, when, time_source in batch:
            # One timestamp() per record gives both texts, kept per second of event time:
            # memras_error.time (naive UTC, isoformat with microseconds: exactly the
            # dialect processor's text when iso_text) and rasdaemon's local timestamp.
            us = when.microsecond
            epoch = when.timestamp()
            second = round(epoch - us / 1e6)  # exact: the float error is far below 0.5 s
            texts = seconds.get(second)
            if texts is None:
                if len(seconds) >= _SECONDS_KEPT:
                    seconds.clear()
                texts = seconds[second] = [
                    str(when.replace(microsecond=0, tzinfo=None)), None]
            if iso_text:
                t = f"{texts[0]}.{us:06d}"
            else:
                t = when.replace(tzinfo=None)
                if time_processor is not None:
                    t = time_processor(t)
            uptime = record.uptime_s
            if uptime_processor is not None and uptime is not None:
                uptime = uptime_processor(uptime)
            link_table = row_id = companion = None
            tables: tuple[str, ...] = ()
            if first_id is not None:
                tables = rasdaemon_tables(record)
                link_table = tables[0]
                for table in tables:
                    rid = next_ids.get(table)
                    if rid is None:
                        rid = first_id(table)
                    next_ids[table] = rid + 1
                    if table is link_table:
                        row_id = rid
                    else:  # the mce_record beside an mc_event: retention deletes it too
                        companion = rid
                    if table == "mc_event" and tables is _MC_EVENT_ONLY:
                        continue  # built below from the values memras_error needs too
                    if texts[1] is None:
                        texts[1] = local_stamp(when, epoch)
                    builder, _ = ROW_BUILDERS[table]
                    mirror.setdefault(table, []).append(builder(rid, texts[1], record))
            if type(record) is MemoryFailureEvent:
                type_ = MEMORY_FAILURE_TYPE
                count = 1
                source = str(record.source)
                a64 = rs.as_int64(record.address)
                values = (t, uptime, source, type_, 1, a64, record.pfn)
                mask = (uptime is None) | 0b11100  # no normalized address, grain, syndrome
                message = f"{record.page_type}: {record.action_result}"
                packed = pack(message, "", record.raw)
                tail = (("", "", "", key, identity, "", packed, time_source.value)
                        if packed is not None else
                        (message, "", "", key, identity, record.raw, None, time_source.value))
                loc_names, loc_values, counted = (), (), _EMPTY_LOCATION_COUNT
            else:
                type_ = str(record.error_type)
                count = record.count
                address = record.address
                norm = record.normalized_address
                grain = record.grain_bits
                synd = record.syndrome
                a64 = address if address is None or 0 <= address < _I64 else rs.as_int64(address)
                s64 = synd if synd is None or 0 <= synd < _I64 else rs.as_int64(synd)
                values = (t, uptime, str(record.source), type_, count, a64,
                          None if address is None else address >> 12,
                          norm if norm is None else rs.as_int64(norm), grain, s64)
                mask = ((uptime is None) | (address is None) << 1 | (norm is None) << 2
                        | (grain is None) << 3 | (synd is None) << 4)
                packed = pack(record.message, record.driver_detail, record.raw)
                tail = ((
                    "", record.driver, "", key, identity, "", packed, time_source.value)
                    if packed is not None else (
                    record.message, record.driver, record.driver_detail, key, identity,
                    record.raw, None, time_source.value))
                _, loc_names, loc_values, counted, mc_part = location_parts(record.location)
                if link_table == "mc_event" and tables is _MC_EVENT_ONLY:
                    if texts[1] is None:
                        texts[1] = local_stamp(when, epoch)
                    mirror.setdefault("mc_event", []).append(
                        (row_id, texts[1], count, type_, record.message, *mc_part, a64,
                         grain, s64, record.driver_detail))
            if row_id is None:
                mask |= 0b100000
            else:
                tail += (link_table, row_id)
                if companion is not None:
                    mask |= 0b10000000
                    tail += (companion,)
            if flags and (flagged := flags.get(id(record))) is not None:
                mask |= 0b1000000
                tail += (flagged,)
            entry = shapes.get((mask, loc_names))
            if entry is None:
                entry = self._shape(mask, loc_names)
            shape, pick_first, pick_last = entry
            rows.append((shape, pick_first(values) + loc_values + tail))
            acc = counts.get(ck := (type_, *counted))
            if acc is None:
                acc = counts[ck] = [0, 0]
            acc[0] += 1
            acc[1] += count
        return out

    def _shape(self, mask: int, loc_names: Shape) -> tuple[Shape, Any, Any]:
        """The column names of rows whose optional values are NULL per ``mask`` (bit i:
        the i-th of uptime, address+page, normalized_address, grain_bits, syndrome, the
        rasdaemon link; bit 6 set: flags present; bit 7 set: the link's mce_record
        companion present), and a picker of the non-NULL leading
        values."""
        optional = [("uptime",), ("address", "page"), ("normalized_address",),
                    ("grain_bits",), ("syndrome",)]
        first = ["time", "uptime", "source", "type", "count", "address", "page",
                 "normalized_address", "grain_bits", "syndrome"]
        for bit, names in enumerate(optional):
            if mask >> bit & 1:
                first = [n for n in first if n not in names]
        last = ["message", "driver", "driver_detail", "dedup_key", "identity", "raw", "texts",
                "time_source"]
        if not mask >> 5 & 1:
            last += ["rasdaemon_table", "rasdaemon_id"]
        if mask >> 7 & 1:
            last.append("rasdaemon_mce_id")
        if mask >> 6 & 1:
            last.append("flags")
        indexes = [FIRST_COLUMNS.index(n) for n in first]
        pick = itemgetter(*indexes)
        entry = ((*first, *loc_names, *last), pick, None)
        if len(self._shapes) >= _SHAPES_KEPT:
            self._shapes.clear()
        self._shapes[(mask, loc_names)] = entry
        return entry


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
class _InsertShape:
    sql: str
    processors: list[tuple[int, Callable[[Any], Any]]]  # (index in the shape, processor)
    order: Callable[[Any], tuple[Any, ...]] | None  # shape order -> the SQL's bind order


@dataclass
class FastStatements:
    """memras_error's inserts and dedup lookup, compiled once per shape for one dialect."""

    dialect: Dialect
    positional: bool
    processors: dict[str, Callable[[Any], Any]]  # column name -> bind processor
    time_processor: Callable[[Any], Any] | None
    uptime_processor: Callable[[Any], Any] | None
    lookup_sql: dict[int, str] = field(default_factory=dict)
    inserts: dict[Shape, _InsertShape] = field(default_factory=dict)
    _bump: _CountStatements | None = None

    @classmethod
    def for_dialect(cls, dialect: Dialect) -> FastStatements:
        table = ErrorRow.__table__
        processors = {}
        for name in ERROR_COLUMNS:
            proc = table.c[name].type.dialect_impl(dialect).bind_processor(dialect)
            if proc is not None:
                processors[name] = _faster_equivalent(proc)
        # The time and uptime processors (SQLite: datetime -> text, float()) are applied
        # as rows are built, saving a copy of every row; any other column's run per shape.
        time_processor = processors.pop("time", None)
        uptime_processor = processors.pop("uptime", None)
        return cls(dialect, bool(dialect.positional), processors, time_processor,
                   uptime_processor)

    def _shape(self, shape: Shape) -> _InsertShape:
        compiled = ErrorRow.__table__.insert().compile(dialect=self.dialect,
                                                       column_keys=list(shape))
        order = None
        if self.positional:  # values are built in table order, as SQLAlchemy renders it
            names = tuple(compiled.positiontup or ())
            if names != shape:
                order = itemgetter(*(shape.index(n) for n in names))
        procs = [(i, self.processors[n]) for i, n in enumerate(shape) if n in self.processors]
        if len(self.inserts) >= _SHAPES_KEPT:
            self.inserts.clear()
        made = self.inserts[shape] = _InsertShape(str(compiled), procs, order)
        return made

    def insert(self, conn: Connection, rows: list[tuple[Shape, tuple[Any, ...]]]) -> None:
        """Insert rows in order: one executemany per run of consecutive same-shape rows."""
        start = 0
        n = len(rows)
        while start < n:
            shape = rows[start][0]
            end = start + 1
            while end < n and rows[end][0] is shape:
                end += 1
            self._insert_run(conn, shape, [values for _, values in rows[start:end]])
            start = end

    def _insert_run(self, conn: Connection, shape: Shape, values: list[tuple[Any, ...]]) -> None:
        stmt = self.inserts.get(shape) or self._shape(shape)
        if stmt.processors:
            converted = []
            for given in values:
                row = list(given)
                for i, proc in stmt.processors:
                    row[i] = proc(row[i])
                converted.append(tuple(row))
            values = converted
        params: Any
        if not self.positional:
            params = [dict(zip(shape, row, strict=True)) for row in values]
        else:
            params = values if stmt.order is None else [stmt.order(row) for row in values]
        conn.exec_driver_sql(stmt.sql, params)

    def known_keys(self, conn: Connection, keys: list[str]
                   ) -> list[tuple[str, str, str, int | None]]:
        """(dedup_key, source, identity, address) of stored rows with one of ``keys`` (index
        lookups; the address tells CEs of one page apart: memras.store.store._at).

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
            stmt = select(c.dedup_key, c.source, c.identity, c.address).where(
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
