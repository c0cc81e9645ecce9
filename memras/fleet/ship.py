"""Shipping: what is new in this host's SQLite, copied to the central store.

What it decides: which local rows the central store has not seen, in what order, and
when a row counts as delivered. The local database stays the authority; the central
store is a copy that may lag.

Structure, per pass (:meth:`Shipper.ship_once`), table by table in :data:`SHIPPED` order:

- append-only tables (errors, verdicts, audit): the rows whose key is above the table's
  cursor, oldest first, in batches of ``batch_rows``, each written as COPY CSV by SQLite
  itself (:func:`copy_csv_select`) and stored in one central transaction, a COPY
  straight into the table; only after its commit is the cursor saved locally
  (``memras_source_cursor`` row ``fleet:<table>``). A crash between the two re-sends
  that batch: its COPY fails on the first row stored already, and the batch goes again
  through a temporary twin and ``INSERT … ON CONFLICT (host_id, local_id) DO NOTHING``
  (:func:`copy_new`). Delivery is at-least-once, storage exactly-once.
- mutable tables (DIMM modules, alerts, replacements: a few rows a host, changed in
  place): a digest of the whole table is the cursor; when it differs, every row is
  upserted (``ON CONFLICT DO UPDATE``) and the new digest saved.
- then the host's ``fleet_host`` row: name, version, last contact, backlog.

Backlog policy, for a central store that is down for days: nothing is queued in memory;
the backlog is the local rows above the cursors, so it is bounded by the local store and
its retention (``[store] keep``). Errors beyond ``max_error_backlog`` unshipped rows are
skipped oldest first when shipping resumes (a CE storm during an outage must not take
hours to drain before the newest errors arrive), counted in ``fleet_host.dropped_errors``;
verdicts, alerts, replacements, the audit trail and the inventory are never skipped.

Cost to local ingestion: the shipper has its own thread and its own connections; on
SQLite it reads under WAL (readers never block the writer) and writes only its cursor,
one short transaction a batch.

Why not a queue table or triggers: the local tables already are the log (ascending keys),
so a cursor per table is all the state shipping needs, and nothing is written twice.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Connection,
    Engine,
    Float,
    Integer,
    LargeBinary,
    Table,
    create_engine,
    func,
    select,
    text,
)
from sqlalchemy.dialects import sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from memras import __version__
from memras.config import ConfigFile, duration_seconds, read_secret_file
from memras.errors import StoreError, UsageError
from memras.fleet.identity import HostIdentity
from memras.fleet.schema import CENTRAL, HOSTS, SHIPPED, Shipped, schema_problem
from memras.store import Store
from memras.text import redact

log = logging.getLogger("memras.fleet")

BATCH_ROWS = 2000  # rows per central transaction
DEFAULT_INTERVAL_S = 30.0
DEFAULT_MAX_ERROR_BACKLOG = 1_000_000
MAX_BACKOFF_S = 300.0  # the longest wait between tries while the central store is down
CURSOR_PREFIX = "fleet:"
_SQLITE = sqlite.dialect()
DROPPED_CURSOR = "fleet:dropped_errors"


@dataclass(frozen=True)
class FleetConfig:
    url: str
    password_file: str | None = None
    interval_s: float = DEFAULT_INTERVAL_S
    max_error_backlog: int = DEFAULT_MAX_ERROR_BACKLOG

    @classmethod
    def of(cls, config: ConfigFile) -> FleetConfig | None:
        """``[fleet]`` of the (already checked) file; None when no url is set."""
        section = config.section("fleet")
        url = section.get("url")
        if not url:
            return None
        return cls(str(url), section.get("password_file"),
                   duration_seconds(section.get("interval", "30s")) or DEFAULT_INTERVAL_S,
                   int(section.get("max_error_backlog", DEFAULT_MAX_ERROR_BACKLOG)))


def central_engine(url: str, password_file: str | None = None) -> Engine:
    """The engine of the central database; a bad URL or secret is one UsageError."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise UsageError(f"[fleet] url {redact(url)!r} is not a database URL: {exc}",
                         hint="postgresql+psycopg://USER@HOST/DB") from None
    if password_file:
        parsed = parsed.set(password=read_secret_file(password_file, "[fleet] password_file"))
    options: dict[str, Any] = {"pool_pre_ping": True}  # a restarted server: fresh connections
    if parsed.get_backend_name() == "postgresql":
        options["connect_args"] = {"connect_timeout": 10}
    try:
        return create_engine(parsed, **options)
    except (SQLAlchemyError, ImportError, ValueError) as exc:
        hint = ("pip install 'memras[fleet]' (the psycopg driver)"
                if isinstance(exc, ImportError) else "postgresql+psycopg://USER@HOST/DB")
        raise UsageError(f"[fleet] url {redact(url)!r}: {exc}", hint=hint) from None


def central_error(what: str, exc: Exception) -> StoreError:
    reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return StoreError(f"central database: cannot {what}: {reason[0] if reason else exc}",
                      hint="check [fleet] url and that the server is up; the host keeps "
                           "everything locally and ships it when it can")


def _insert(conn: Connection, table: Table) -> Any:
    """The dialect's INSERT with ON CONFLICT (PostgreSQL; SQLite for a local try-out)."""
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects import postgresql

        return postgresql.insert(table)
    if conn.dialect.name == "sqlite":
        from sqlalchemy.dialects import sqlite

        return sqlite.insert(table)
    raise StoreError(f"the central store must be PostgreSQL, not {conn.dialect.name}",
                     hint="[fleet] url = postgresql+psycopg://…")


def _insert_new(conn: Connection, table: Table, host_id: str, rows: Sequence[Any]) -> None:
    """``rows`` (tuples in ``table``'s column order after host_id) inserted unless there,
    by ``executemany``: a SQLite central store, a local try-out (PostgreSQL is sent COPY,
    :func:`copy_new`)."""
    names = [c.name for c in table.columns]
    conn.execute(_insert(conn, table).on_conflict_do_nothing(),
                 [dict(zip(names, (host_id, *r), strict=True)) for r in rows])


# ---- COPY CSV built by SQLite ----------------------------------------------------------
#
# A batch goes to PostgreSQL as COPY ... (FORMAT csv) text that SQLite writes itself, a
# batch at a time, so no Python runs per row or per value. The host's cost of a shipped
# row was ~70 us of Python (the row read through SQLAlchemy, psycopg's write_row), which
# 200 hosts simulated on two cores paid under one GIL; SQLite's C does it in ~7 us of CPU
# with the GIL released (bench/fleet_ingest.py, docs/performance.md). CSV rather than
# COPY's text format: a value needs one replace() (its quotes doubled) instead of four
# (backslash, tab, newline, CR), and SQLite's printf() joins a row's fields in one call
# where `||` copies the growing line once a field (CPU a row of the bench's CE storm:
# 5.6 us, 7.4 with the NUL test, against 12.2 us for COPY text joined by `||`).

_CSV_NULL = "''"  # an unquoted empty field is NULL in COPY's CSV format; "" is ''
_MAX_PRINTF_ARGS = 100  # SQLite's default limit of a function's arguments is 127


def _quoted(column: str) -> str:
    """A value as a quoted CSV field, its quotes doubled."""
    return f"""'"' || replace({column}, '"', '""') || '"'"""


def _holds_nul(column: str, type_: Any) -> str | None:
    """SQLite's test that ``column``'s value, when it goes quoted, holds a NUL: printf
    would end the value there (and break the line's framing), and replace() cannot
    find a NUL (it takes a pattern starting with one for an empty pattern); instr()
    can. None: the value is never quoted text (bytes go as hex)."""
    if isinstance(type_, LargeBinary):
        return None
    if isinstance(type_, Integer | Boolean | Float):
        return f"(typeof({column}) IN ('text', 'blob') AND instr({column}, char(0)))"
    return f"instr({column}, char(0))"


def _csv_field(column: str, type_: Any) -> str:
    """SQLite's expression of one CSV field of ``column`` (of SQLAlchemy type ``type_``).

    Bytes (``texts``, compressed) as bytea's hex input, ``\\x`` and the hex digits; an
    integer as its digits; a REAL with 21 significant digits (``%!.20e``, SQLite's own
    form where 15 digits are not enough) and SQLite's Inf as PostgreSQL's Infinity: 17
    digits would do if SQLite rounded them correctly, but its printf computes in long
    double and missed the 17th digit of 522 of 400,000 random doubles (the server then
    read a neighbouring double); with 21 the error is far below half a double's step,
    and 2.5 million random doubles all came back exact. Every other value is quoted:
    times are SQLAlchemy's naive-UTC text (``2026-11-01 00:00:00.010000``), which a
    ``timestamp`` reads as it is; a JSON column is its stored JSON text. A value of a
    type the column does not declare (SQLite lets a row hold one) goes quoted, so it
    can never break the row's framing."""
    if isinstance(type_, LargeBinary):
        return f"CASE WHEN {column} IS NULL THEN {_CSV_NULL} ELSE '\\x' || hex({column}) END"
    if isinstance(type_, Float):
        return (f"CASE typeof({column}) WHEN 'real' THEN "
                f"CASE WHEN {column} > 1.7976931348623157e308 THEN 'Infinity' "
                f"WHEN {column} < -1.7976931348623157e308 THEN '-Infinity' "
                f"ELSE printf('%!.20e', {column}) END "
                f"WHEN 'integer' THEN {column} WHEN 'null' THEN {_CSV_NULL} "
                f"ELSE {_quoted(column)} END")
    if isinstance(type_, Integer | Boolean):
        return (f"CASE typeof({column}) WHEN 'integer' THEN {column} "
                f"WHEN 'null' THEN {_CSV_NULL} ELSE {_quoted(column)} END")
    return f"coalesce({_quoted(column)}, {_CSV_NULL})"


def _printf_line(fields: Sequence[str]) -> str:
    """One CSV line of ``fields`` (SQL expressions) by printf, in calls of at most
    :data:`_MAX_PRINTF_ARGS` arguments."""
    parts = []
    for start in range(0, len(fields), _MAX_PRINTF_ARGS):
        chunk = fields[start:start + _MAX_PRINTF_ARGS]
        parts.append(f"printf('{','.join(['%s'] * len(chunk))}', {', '.join(chunk)})")
    return " || ',' || ".join(parts) + " || char(10)"


def copy_csv_select(shipped: Shipped, central: Table) -> str:
    """The SQLite SELECT of one batch of ``shipped`` as COPY CSV for ``central``'s
    columns in their order (``host_id`` the bound ``:host``, already quoted): one row,
    (rows in the batch, the batch's last key, the CSV as bytes, rows left out of it).

    A batch is the ``:limit`` rows whose key is above ``:after``. The lines come in no
    particular order (COPY does not need one); the count and the last key say what the
    batch was. Every line starts with the quoted host id, so none is COPY's end marker
    ``\\.``. The text is cast to a BLOB: bytes, never decoded in Python. A row with a
    NUL in a quoted value is left out of the CSV and counted (the last column): the
    shipper then sends that batch through Python (:func:`copy_rows`)."""
    local = shipped.local
    quote = _SQLITE.identifier_preparer.quote
    key = quote(shipped.key)
    fields, nul_tests = [":host", key], []
    for column in central.columns:
        if column.name in ("host_id", "local_id"):
            continue
        name, type_ = quote(column.name), local.c[column.name].type
        fields.append(_csv_field(name, type_))
        if (test := _holds_nul(name, type_)) is not None:
            nul_tests.append(test)
    line = _printf_line(fields)
    if nul_tests:
        line = f"CASE WHEN {' OR '.join(nul_tests)} THEN NULL ELSE {line} END"
    return (f"SELECT count(*), max(k), CAST(group_concat(line, '') AS BLOB), "
            f"count(*) - count(line) FROM "
            f"(SELECT {key} AS k, {line} AS line FROM {quote(local.name)} "
            f"WHERE {key} > :after ORDER BY {key} LIMIT :limit)")


def _csv_quote(value: str) -> str:
    """A Python string as one quoted CSV field (as :func:`_quoted`)."""
    return '"' + value.replace('"', '""') + '"'


# The roads of a batch (:func:`copy_new`, counted in :attr:`Shipper.roads`)
DIRECT = "copy"  # COPYed straight into the central table
CONFLICT = "conflict"  # that COPY met a row stored already: rolled back, then merged
REFUSED = "refused"  # that COPY was refused (row-level security): merged
MERGED = "merge"  # merged without trying (COPY FROM was refused before)
ROWS = "rows"  # a SQLite central store: executemany … ON CONFLICT DO NOTHING
_UNIQUE_VIOLATION = "23505"
_NOT_SUPPORTED = "0A000"  # COPY FROM into a table under row-level security


def copy_rows(table: Table, host_id: str, rows: Sequence[Any]) -> list[list[Any]]:
    """``rows`` read through SQLAlchemy (a local store that is not SQLite, or a batch
    with a NUL in a text), as values for psycopg's ``write_row``: ``host_id`` in front,
    JSON values as their text, a NUL in a text (which no PostgreSQL text can hold; a
    trace string or a damaged log file can) as U+FFFD."""
    json_at = [i for i, c in enumerate(table.columns) if isinstance(c.type, JSON)]
    out = []
    for row in rows:
        values = [host_id, *row]
        for i in json_at:
            values[i] = None if values[i] is None else json.dumps(values[i])
        out.append([v.replace("\0", "\ufffd") if isinstance(v, str) else v
                    for v in values])
    return out


def _copy(conn: Connection, target: str, columns: Sequence[str],
          data: bytes | Sequence[Sequence[Any]]) -> None:
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        copy_sql = f"COPY {target} ({', '.join(columns)}) FROM STDIN"
        if isinstance(data, bytes):  # from copy_csv_select
            with cursor.copy(copy_sql + " (FORMAT csv)") as copy:
                copy.write(data)
        else:
            with cursor.copy(copy_sql) as copy:
                for row in data:
                    copy.write_row(row)
    finally:
        cursor.close()


def copy_new(central: Engine, table: Table, data: bytes | Sequence[Sequence[Any]], *,
             direct: bool = True) -> str:
    """A batch (COPY CSV, or rows from :func:`copy_rows`) stored in ``table`` unless
    there; the road it took (:data:`DIRECT`, :data:`CONFLICT`, :data:`REFUSED`, :data:`MERGED`).

    The common case has no row there yet, and goes by one COPY straight into the table
    in its own transaction (``direct``). A row that is there already (a batch re-sent:
    its commit happened but the cursor was not saved, or two shippers of one host) fails
    it with a unique violation, and a table under row-level security (host roles) refuses
    COPY FROM; either way that transaction is rolled back and the batch goes the merge
    road in a new one: COPY into a temporary twin of the table, then one
    ``INSERT … SELECT … ON CONFLICT DO NOTHING``. Every row is stored once either way."""
    quote = central.dialect.identifier_preparer.quote  # `column`, `row` are keywords
    columns = [quote(c.name) for c in table.columns]
    dbapi_error = central.dialect.loaded_dbapi.Error
    road = MERGED
    if direct:
        try:
            with central.begin() as conn:
                _copy(conn, table.name, columns, data)
            return DIRECT
        except dbapi_error as exc:
            state = getattr(exc, "sqlstate", None)
            if state not in (_UNIQUE_VIOLATION, _NOT_SUPPORTED):
                raise central_error("ship", exc) from exc
            road = CONFLICT if state == _UNIQUE_VIOLATION else REFUSED
    temp = f"_ship_{table.name}"
    try:
        with central.begin() as conn:
            driver = conn.connection.dbapi_connection
            driver.execute(f"CREATE TEMP TABLE IF NOT EXISTS {temp} "  # type: ignore[union-attr]
                           f"(LIKE {table.name}) ON COMMIT DELETE ROWS")
            _copy(conn, temp, columns, data)
            driver.execute(f"INSERT INTO {table.name} SELECT * FROM {temp} "  # type: ignore[union-attr]
                           "ON CONFLICT DO NOTHING")
    except dbapi_error as exc:  # the driver's own errors are not SQLAlchemy's
        raise central_error("ship", exc) from exc
    return road


@dataclass(frozen=True)
class Batch:
    """One batch of an append-only table, read and ready to send
    (:meth:`Shipper.read_batch`): its rows in ``data`` (COPY CSV, or rows), how many,
    and the last local key (the cursor once it is stored)."""

    shipped: Shipped
    count: int
    last: int
    data: bytes | Sequence[Any]


@dataclass
class PassResult:
    """One pass: rows sent per central table, what is left, what the policy skipped."""

    shipped: dict[str, int] = field(default_factory=dict)
    backlog: int = 0
    dropped_now: int = 0
    dropped_total: int = 0
    complete: bool = True  # False: stopped before the backlog was drained

    def as_dict(self) -> dict[str, object]:
        return {"shipped": self.shipped, "backlog": self.backlog,
                "dropped_now": self.dropped_now, "dropped_total": self.dropped_total,
                "complete": self.complete}


class Shipper:
    """Ships one host's local store to the central engine (one pass: :meth:`ship_once`)."""

    def __init__(self, local: Store, central: Engine, identity: HostIdentity, *,
                 max_error_backlog: int = DEFAULT_MAX_ERROR_BACKLOG,
                 batch_rows: int = BATCH_ROWS) -> None:
        self.local = local
        self.central = central
        self.identity = identity
        self.max_error_backlog = max_error_backlog
        self.batch_rows = batch_rows
        self._schema_checked = False
        # the batches stored by each road (:func:`copy_new`): DIRECT is the common case
        self.roads: Counter[str] = Counter()
        self._copy_refused: set[str] = set()  # tables under row-level security
        self._selects: dict[str, str] = {}
        self._copy_csv = (local.engine.dialect.name == "sqlite"
                           and central.dialect.name == "postgresql")

    def ship_once(self, stop: threading.Event | None = None) -> PassResult:
        """Ship everything new (until ``stop``); raises StoreError when the central
        store cannot be reached, after saving the cursors of the batches it committed."""
        result = PassResult()
        try:
            self._check_schema()
            for shipped in SHIPPED:
                if stop is not None and stop.is_set():
                    result.complete = False
                    break
                sent = (self._ship_mutable(shipped) if shipped.mutable
                        else self._ship_append(shipped, result, stop))
                result.shipped[shipped.name] = sent
            result.backlog = self.backlog()
            result.dropped_total = int(self.local.get_cursor(DROPPED_CURSOR) or 0)
            self.contact(result)
        except SQLAlchemyError as exc:
            raise central_error("ship", exc) from exc
        return result

    def backlog(self) -> int:
        """Local rows of the append-only tables not shipped yet."""
        total = 0
        with self.local.engine.connect() as conn:
            for shipped in SHIPPED:
                if not shipped.mutable:
                    total += self._unshipped(conn, shipped)
        return total

    # ---- steps ----------------------------------------------------------------------

    def _check_schema(self) -> None:
        if self._schema_checked:
            return
        with self.central.connect() as conn:
            problem = schema_problem(conn)
        if problem is not None:
            raise StoreError(f"central database: {problem}",
                             hint="`memras fleet init` creates or upgrades the fleet tables")
        self._schema_checked = True

    def _cursor(self, shipped: Shipped) -> str | None:
        return self.local.get_cursor(CURSOR_PREFIX + shipped.local.name)

    def _unshipped(self, conn: Connection, shipped: Shipped) -> int:
        key = shipped.local.c[shipped.key]
        after = int(self._cursor(shipped) or 0)
        return int(conn.scalar(select(func.count()).select_from(shipped.local)
                               .where(key > after)) or 0)

    def _apply_backlog_policy(self, shipped: Shipped, after: int) -> tuple[int, int]:
        """The errors cursor moved past the oldest unshipped rows beyond the bound:
        (new cursor, rows skipped)."""
        key = shipped.local.c[shipped.key]
        with self.local.engine.connect() as conn:
            newest = conn.scalar(select(func.max(key)))  # an index's end, not a count
            if newest is None or int(newest) - after <= self.max_error_backlog:
                return after, 0  # keys are unique integers: no more rows than that
            waiting = int(conn.scalar(select(func.count()).select_from(shipped.local)
                                      .where(key > after)) or 0)
            excess = waiting - self.max_error_backlog
            if excess <= 0:
                return after, 0
            last_skipped = conn.scalar(select(key).where(key > after).order_by(key)
                                       .offset(excess - 1).limit(1))
        dropped = int(self.local.get_cursor(DROPPED_CURSOR) or 0) + excess
        self.local.set_cursor(CURSOR_PREFIX + shipped.local.name, str(last_skipped))
        self.local.set_cursor(DROPPED_CURSOR, str(dropped))
        log.warning("fleet: %d unshipped errors beyond the backlog bound (%d) skipped",
                    excess, self.max_error_backlog)
        return int(str(last_skipped)), excess

    def _ship_append(self, shipped: Shipped, result: PassResult,
                     stop: threading.Event | None) -> int:
        after = int(self._cursor(shipped) or 0)
        if shipped.local.name == "memras_error":
            after, skipped = self._apply_backlog_policy(shipped, after)
            result.dropped_now += skipped
        sent = 0
        while True:
            batch = self.read_batch(shipped, after)
            if not batch.count:
                return sent
            self.store_batch(batch)
            after = batch.last  # the cursor, saved only now that the batch is committed
            self.local.set_cursor(CURSOR_PREFIX + shipped.local.name, str(after))
            sent += batch.count
            if batch.count < self.batch_rows:
                return sent
            if stop is not None and stop.is_set():
                result.complete = False
                return sent

    def read_batch(self, shipped: Shipped, after: int) -> Batch:
        """The next ``batch_rows`` rows above ``after``, ready to send (the host's side of
        a batch; :meth:`store_batch` is the central store's).

        SQLite to PostgreSQL (every real host): the batch is COPY CSV SQLite wrote
        (:func:`copy_csv_select`); otherwise (or when a text of the batch holds a NUL)
        rows, read through SQLAlchemy."""
        local, central = shipped.local, CENTRAL[shipped.local.name]
        key = local.c[shipped.key]
        params = {"after": after, "limit": self.batch_rows}
        with self.local.engine.connect() as conn:
            if self._copy_csv:
                sql = self._selects.get(local.name)
                if sql is None:
                    sql = self._selects[local.name] = copy_csv_select(shipped, central)
                count, last, data, held = conn.execute(
                    text(sql), {**params, "host": _csv_quote(self.identity.host_id)}).one()
                if not held:
                    return Batch(shipped, int(count), int(last or 0), data or b"")
                # a NUL in a text of some row: this batch goes through Python
            # the local columns in the central table's order: its key first (local_id)
            columns = [key, *(local.c[c.name] for c in central.columns
                              if c.name not in ("host_id", "local_id"))]
            rows = conn.execute(select(*columns).where(key > after).order_by(key)
                                .limit(self.batch_rows)).all()
        if not rows:
            return Batch(shipped, 0, after, rows)
        last = int(rows[-1][0])
        if self.central.dialect.name == "postgresql":
            return Batch(shipped, len(rows), last,
                         copy_rows(central, self.identity.host_id, rows))
        return Batch(shipped, len(rows), last, rows)

    def store_batch(self, batch: Batch) -> None:
        """One batch in its central transaction(s), the statements the central store
        receives for it; :attr:`roads` counts the road taken. The caller saves the
        cursor (``batch.last``) after it returns."""
        central = CENTRAL[batch.shipped.local.name]
        if self.central.dialect.name != "postgresql":  # a SQLite try-out
            with self.central.begin() as conn:
                _insert_new(conn, central, self.identity.host_id, batch.data)
            self.roads[ROWS] += 1
            return
        road = copy_new(self.central, central, batch.data,
                        direct=central.name not in self._copy_refused)
        if road == REFUSED:  # row-level security: COPY FROM will be refused every time
            self._copy_refused.add(central.name)
        self.roads[road] += 1

    def _ship_mutable(self, shipped: Shipped) -> int:
        local, central = shipped.local, CENTRAL[shipped.local.name]
        with self.local.engine.connect() as conn:
            rows = conn.execute(select(local).order_by(local.c[shipped.key])).mappings().all()
        payload = [self._central_row(shipped, r) for r in rows]
        digest = hashlib.sha256(json.dumps(payload, default=str, sort_keys=True)
                                .encode()).hexdigest()
        if not payload or digest == self._cursor(shipped):
            return 0
        updated = [c.name for c in central.columns if c.name not in ("host_id", "local_id")]
        for start in range(0, len(payload), self.batch_rows):
            with self.central.begin() as conn:
                stmt = _insert(conn, central)
                conn.execute(stmt.on_conflict_do_update(
                    index_elements=["host_id", "local_id"],
                    set_={c: stmt.excluded[c] for c in updated}),
                    payload[start:start + self.batch_rows])
        self.local.set_cursor(CURSOR_PREFIX + local.name, digest)
        return len(payload)

    def _central_row(self, shipped: Shipped, row: Any) -> dict[str, Any]:
        out = dict(row)
        out["local_id"] = out.pop(shipped.key)
        out["host_id"] = self.identity.host_id
        return out

    def contact(self, result: PassResult) -> None:
        """The host's ``fleet_host`` row upserted: the last statement of a pass."""
        now = datetime.now(UTC).replace(tzinfo=None)
        values = {"host_id": self.identity.host_id, "hostname": self.identity.hostname,
                  "memras_version": __version__, "first_contact": now, "last_contact": now,
                  "backlog": result.backlog, "dropped_errors": result.dropped_total}
        with self.central.begin() as conn:
            stmt = _insert(conn, HOSTS).values(values)
            conn.execute(stmt.on_conflict_do_update(
                index_elements=["host_id"],
                set_={k: stmt.excluded[k] for k in values if k not in ("host_id",
                                                                        "first_contact")}))


class ShipperThread(threading.Thread):
    """The watcher's shipper: a pass every ``interval_s``; while the central store is
    unreachable, retries with a doubling wait (up to :data:`MAX_BACKOFF_S`), logging
    one warning per outage, never touching the watcher's thread or transactions."""

    def __init__(self, shipper: Shipper, interval_s: float = DEFAULT_INTERVAL_S) -> None:
        super().__init__(name="memras-fleet-ship", daemon=True)
        self.shipper = shipper
        self.interval_s = interval_s
        self.stop_event = threading.Event()
        self.passes = 0
        self.failures = 0
        self.last_error: str | None = None

    def run(self) -> None:
        wait = self.interval_s
        while not self.stop_event.is_set():
            try:
                self.shipper.ship_once(self.stop_event)
                self.passes += 1
                if self.last_error is not None:
                    log.info("fleet: the central database is back; shipping resumed")
                self.last_error = None
                wait = self.interval_s
            except Exception as exc:  # noqa: BLE001 - the watcher must outlive any failure
                self.failures += 1
                if self.last_error is None:
                    log.warning("fleet: %s (retrying; nothing is lost locally)", exc)
                self.last_error = str(exc)
                wait = min(max(wait, 1.0) * 2, MAX_BACKOFF_S)
            self.stop_event.wait(wait)

    def stop(self, timeout_s: float = 30.0, *, final_pass: bool = False) -> None:
        """Stop the thread; ``final_pass``: then ship what is left (``watch --once``),
        logging one warning when the central store is down (the rows wait locally)."""
        self.stop_event.set()
        if self.ident is not None:  # started as a thread (`memras fleet ship` runs it inline)
            self.join(timeout_s)
        if final_pass:
            try:
                self.shipper.ship_once()
            except Exception as exc:  # noqa: BLE001 - the local store keeps the rows
                log.warning("fleet: %s (shipped next time)", exc)


def open_shipper(local_db: str, config: FleetConfig, identity: HostIdentity,
                 ) -> Shipper:
    """A shipper with its own connections to the local database and the central one."""
    local = Store.open(local_db)
    return Shipper(local, central_engine(config.url, config.password_file), identity,
                   max_error_backlog=config.max_error_backlog)
