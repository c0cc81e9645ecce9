"""``Store``: the memras database — rasdaemon's tables beside memras's own.

One writer (the watcher or ``memras import``) adds events in batches; the CLI and TUI
read. Each :meth:`Store.add_events` call is one short transaction that

1. drops events already stored: the same record read again (same source and raw
   text under its key), or a fault another source already reported (the parsers'
   ``dedup_keys``: this and the previous time bucket). The key is NOT unique: it
   deliberately maps two faults on one page within a bucket together, and a source
   reporting two lines there has seen two faults — both are kept (never lost data),
2. inserts the new ones into ``memras_error`` and, on SQLite, the matching
   rasdaemon-format row (mc_event / mce_record / memory_failure_event) so that the
   real ``ras-mc-ctl`` reads a memras database as its own,
3. bumps the per-DIMM counts in ``memras_error_count`` (what ``summary`` reads), and
4. moves the source's cursor — all or nothing, so a resumed source neither loses nor
   doubles an event.

Hot path cost: one ``SELECT … IN`` per 500 keys, one ``executemany`` per table, one
UPDATE per distinct DIMM in the batch; no ORM objects per row.

On SQLite: WAL, busy_timeout 5000 ms, foreign keys, a 4 MiB page cache (the dedup
index's hot pages are its newest: keys start with their time bucket), and write
transactions start with ``BEGIN IMMEDIATE`` so the rasdaemon row ids memras allocates
cannot race another writer. Everything outside the rasdaemon mirror is portable SQLAlchemy Core.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
import sqlite3
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    create_engine,
    event,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.exc import OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool

from memras.errors import StoreError
from memras.records import (
    CxlEvent,
    DimmLocation,
    ErrorType,
    MemoryErrorEvent,
    Record,
    Source,
    TimeSource,
)
from memras.store import rasdaemon_schema as rs
from memras.store.base import Base
from memras.store.bounds import BoundsChecker, Checked
from memras.store.checkpoint import WalCheckpointer
from memras.store.cxl import add_cxl_events
from memras.store.dimm_ids import DimmFilter
from memras.store.files import secure_database_files
from memras.store.migrations import migrate, recorded_versions, schema_problem
from memras.store.models import (
    ErrorCountRow,
    ErrorRow,
    GapRow,
    SkippedRow,
    SourceCursorRow,
)
from memras.store.packed_texts import unpack
from memras.store.quick import readonly_uri, sqlite_path, summary_group
from memras.store.results import (
    AddResult,
    StoredError,
    Summary,
)
from memras.store.rows import LOCATION_FIELDS, ROW_BUILDERS, FastStatements, RowBuilder

SAMPLE_CHARS = 500  # of a skipped record's text kept in memras_skipped
KEY_CHUNK = 512  # keys per "dedup_key IN (...)" — well under SQLite's variable limit
SQLITE_BUSY_TIMEOUT_MS = 5000
# 4 MiB: with time-ordered dedup keys the index's hot pages are its newest ones, so
# a large cache no longer buys anything at 1M rows; 64 MiB was most of a storm's RSS.
SQLITE_CACHE_KIB = 4096
SQLITE_AUTOCHECKPOINT_PAGES = 1000  # SQLite's default, restored if the checkpointer fails

KeyFn = Callable[[Record], tuple]  # record -> its dedup key
KeysFn = Callable[[Record], tuple[tuple, tuple | None]]  # -> (key, previous bucket's key)


# The parsers own the dedup key's meaning. Their package is imported lazily, here and in
# _reporter_code: readers of the store (status, dimms, summary, the TUI) never load it.
def _default_keys_fn() -> KeysFn:
    from memras.ingest.parsers.dedup import dedup_keys  # lazy: see above

    return dedup_keys


def _default_parts_fn() -> Callable[..., tuple[str, int] | None]:
    from memras.ingest.parsers.dedup import dedup_key_parts  # lazy: see _default_keys_fn

    return dedup_key_parts


def _default_generic_fn() -> Callable[..., tuple]:
    from memras.ingest.parsers.dedup import dedup_key  # lazy: see _default_keys_fn

    return dedup_key


_DIGEST_CHARS = 24


def _digest(text: str) -> str:
    return hashlib.blake2b(text.encode(), digest_size=12).hexdigest()


_BUCKET_MASK = 0xFFFFFFFF


def _key_text(key: tuple) -> str:
    """The indexed text of a dedup key: its time bucket, then a digest of the rest.

    Why the bucket first: a digest alone scatters consecutive events over the whole
    dedup index, so at 1M rows every insert and lookup touched a different B-tree page
    (page-cache misses, and each batch rewrote most leaf pages into the WAL). With the
    bucket first, a storm's keys land together at the index's growing end. 8 + 24 hex
    characters fit the column's String(32). Keys without an int bucket stay a digest.
    """
    bucket = key[-1] if key else None
    if type(bucket) is int:
        return f"{bucket & _BUCKET_MASK:08x}{_digest(repr(key[:-1]))}"
    return _digest(repr(key))


def _key_texts(key: tuple, previous: tuple | None) -> tuple[str, str | None]:
    """:func:`_key_text` of a key and of its previous-bucket twin, hashing once when the
    twin differs only in the bucket (as the parsers' ``dedup_keys`` builds it)."""
    if previous is None:
        return _key_text(key), None
    bucket = key[-1] if key else None
    if type(bucket) is int and previous[-1] == bucket - 1 and previous[:-1] == key[:-1]:
        digest = _digest(repr(key[:-1]))
        return (f"{bucket & _BUCKET_MASK:08x}{digest}",
                f"{(bucket - 1) & _BUCKET_MASK:08x}{digest}")
    return _key_text(key), _key_text(previous)


def _identity(record: Record) -> str:
    """Same source + same raw text = the same record read twice (e.g. after a resume);
    ``repeat`` tells apart identical lines the kernel printed more than once. Prefixed
    by the code of the record's reporter (``e:…``), so a stored row's road is known
    without another column (see _drop_known)."""
    raw = record.raw or repr(record)
    text = f"{raw}\n#{record.repeat}" if record.repeat else raw
    return f"{_reporter_code(record)}:{_digest(repr((str(record.source), text)))}"


def _reporter_code(record: Record) -> str:
    global _REPORTER_CODE
    if _REPORTER_CODE is None:  # the parsers package, loaded on the first write only
        from memras.ingest.parsers.dedup import REPORTERS, reporter

        def code(record: Record) -> str:
            return REPORTERS[reporter(record)]

        _REPORTER_CODE = code
    return _REPORTER_CODE(record)


_REPORTER_CODE: Callable[[Record], str] | None = None


def _neighbour_texts(key: tuple) -> tuple[str, tuple[str, ...]]:
    """:func:`_key_text` of a key and of its twins one bucket either side."""
    bucket = key[-1] if key else None
    if type(bucket) is not int:
        return _key_text(key), ()
    digest = _digest(repr(key[:-1]))
    return (f"{bucket & _BUCKET_MASK:08x}{digest}",
            (f"{(bucket - 1) & _BUCKET_MASK:08x}{digest}",
             f"{(bucket + 1) & _BUCKET_MASK:08x}{digest}"))


def _utc_naive(when: datetime) -> datetime:
    aware = when if when.tzinfo is not None else when.astimezone()
    return aware.astimezone(UTC).replace(tzinfo=None)


def database_url(url_or_path: str | Path) -> str:
    """A URL unchanged; a bare path becomes ``sqlite:///<absolute path>``."""
    text = str(url_or_path)
    if "://" in text:
        return text
    return f"sqlite:///{Path(text).expanduser().absolute()}"


def _readonly_connect(path: Path) -> sqlite3.Connection:
    """A SQLite connection that can only read ``path`` and creates no file beside it
    (:func:`memras.store.quick.readonly_uri` says how)."""
    return sqlite3.connect(readonly_uri(path), uri=True, check_same_thread=False)


def _new_engine(url: str, target: str | None = None, **options: Any) -> Engine:
    """The engine for ``url`` (or ``target`` with ``options``, e.g. a read-only creator);
    a URL SQLAlchemy cannot use is one StoreError naming the URL the user gave."""
    try:
        return create_engine(target or url, **options)
    except (SQLAlchemyError, ImportError, ValueError) as exc:
        raise StoreError(f"bad database URL {url!r}: {exc}",
                         hint="use a path or sqlite:///PATH") from exc


def _configure_sqlite(engine: Engine, *, readonly: bool = False) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # SQLAlchemy's "begin" hook issues BEGIN itself
        cur = dbapi_conn.cursor()
        # Setting WAL writes the file's header: a reader leaves the mode as it is.
        cur.execute("PRAGMA query_only=1" if readonly else "PRAGMA journal_mode=WAL")
        cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA synchronous=NORMAL")  # WAL-safe; see module docstring
        cur.execute(f"PRAGMA cache_size=-{SQLITE_CACHE_KIB}")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        write = conn.get_execution_options().get("memras_write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")




# A record ready to store: (hashed dedup key, hashed keys of the neighbour time buckets,
# identity, record, aware UTC time, where that time came from). A plain tuple: a
# NamedTuple's constructor is a Python-level call, paid per record on the hot path.
_Prepared = tuple[str, tuple[str, ...], str, Record, datetime, TimeSource]
# A time further ahead than this is a foreign clock (a file from another machine or
# boot): stored at import time instead, never in the future.
FUTURE_SLACK = timedelta(minutes=5)
MATCHED_KEYS_KEPT = 65_536  # Store._matched: ~100 bytes a key
_DEFAULT_TIME_SOURCE = {Source.RASDAEMON: TimeSource.RASDAEMON, Source.KMSG: TimeSource.SYSLOG}


class Store:
    """The memras database. Open with :meth:`Store.open`; close with :meth:`close`."""

    def __init__(self, engine: Engine, *, key_fn: KeyFn | None = None) -> None:
        self.engine = engine
        self._keys_fn: KeysFn | None = (
            None if key_fn is None else (lambda record: (key_fn(record), None)))
        self.mirrors_rasdaemon = engine.dialect.name == "sqlite"
        self._statements: FastStatements | None = None
        self._default_keys = key_fn is None
        self._rows = RowBuilder()  # its caches are bounded and kept across batches
        # key -> {road: reports} matched to another road's row and not stored: a later
        # batch's report on that road is then a further error, not the same one again
        # (see _drop_known). Bounded: the oldest keys go first (they are past matching).
        self._matched: dict[str, dict[str, int]] = {}
        self._bounds = BoundsChecker()
        # The event writer's WAL checkpoints run on a thread of their own (see
        # memras.store.checkpoint), started by the first add_events on a file database.
        database = engine.url.database if self.mirrors_rasdaemon else None
        self._wal_path = Path(database) if database and database != ":memory:" else None
        self._checkpointer: WalCheckpointer | None = None
        self._tables_known = 0  # how many registered tables this store has created
        self.readonly = False  # set by open_readonly: nothing may be written

    # ---- opening ----------------------------------------------------------------

    @classmethod
    def open(cls, url_or_path: str | Path, *, create: bool = True,
             key_fn: KeyFn | None = None, readonly: bool = False) -> Store:
        """Open (and by default create and migrate) the database at a URL or path.

        ``readonly=True`` is for commands that only read: see :meth:`open_readonly`.
        """
        if readonly:
            return cls.open_readonly(url_or_path)
        url = database_url(url_or_path)
        if url.startswith("sqlite:///") and not url.endswith(":memory:"):
            path = Path(url.removeprefix("sqlite:///"))
            if not create and not path.exists():
                raise StoreError(f"no memras database at {path}",
                                 hint="run `memras import` or `memras watch` first, or pass --db")
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreError(f"cannot create {path.parent}: {exc.strerror}",
                                 hint="pass --db PATH to a writable place") from exc
            secure_database_files(path)  # created 0640, group memras (memras.store.files)
        engine = _new_engine(url)
        if engine.dialect.name == "sqlite":
            _configure_sqlite(engine)
        store = cls(engine, key_fn=key_fn)
        store._migrate()
        if store._wal_path is not None:  # the -wal/-shm its first write made
            secure_database_files(store._wal_path)
        return store

    @classmethod
    def open_readonly(cls, url_or_path: str | Path) -> Store:
        """Open an existing database for reading only: nothing is created or migrated.

        On SQLite every connection is opened with the URI ``mode=ro`` (see
        :func:`_readonly_connect` for WAL files), so it works for a user who may only read
        the file, on read-only media, and can never change it. The schema is checked
        once: a database an older memras wrote (migrations missing) or a newer one did
        (migrations this memras does not know) is refused in one line that says what to
        do, instead of failing later on a missing column. A table an area needs that is
        missing (an older database, or a dropped table) is reported when it is read
        (:func:`_store_error`). Writing through such a store raises StoreError.
        """
        url = database_url(url_or_path)
        path = sqlite_path(url) if url.startswith("sqlite:") else None
        if url.startswith("sqlite:") and path is None:
            raise StoreError(f"cannot open {url!r} read-only",
                             hint="pass --db with the path of a database file")
        if path is None:
            engine = _new_engine(url)
        elif not path.is_file():
            raise StoreError(f"no memras database at {path}",
                             hint="run `memras import` or `memras watch` first, or pass --db")
        else:
            engine = _new_engine(url, "sqlite://", creator=lambda: _readonly_connect(path),
                                 poolclass=NullPool)
        if engine.dialect.name == "sqlite":
            _configure_sqlite(engine, readonly=True)
        store = cls(engine)
        store.readonly = True
        store._check_schema(str(path or url))
        return store

    def quick_check(self, max_problems: int = 5) -> list[str]:
        """SQLite's ``PRAGMA quick_check``: [] when the file is sound, else its first
        problems (a page or index that does not add up: mid-file corruption). It reads
        the whole file once (O(size), no index cross-check); other backends: []."""
        if self.engine.dialect.name != "sqlite":
            return []
        try:
            with self.engine.connect() as conn:
                rows = conn.exec_driver_sql(f"PRAGMA quick_check({int(max_problems)})").all()
        except SQLAlchemyError as exc:  # a header too broken to start the check
            return [str(getattr(exc, "orig", None) or exc).splitlines()[0]]
        lines = [line for r in rows for line in str(r[0]).splitlines()]
        if lines == ["ok"]:
            return []
        return [line for line in lines if not line.startswith("*** ")][:max_problems]

    def check_sound(self) -> None:
        """Raise StoreError (one line, what to do) when :meth:`quick_check` finds damage."""
        problems = self.quick_check()
        if problems:
            more = f" (+{len(problems) - 1} more)" if len(problems) > 1 else ""
            raise StoreError(
                f"the database is damaged: PRAGMA quick_check says {problems[0]!r}{more}",
                hint="stop memras, keep a copy of the file, then restore it from a backup or "
                     "rescue what is readable (`sqlite3 memras.db .recover | sqlite3 new.db`) "
                     "and point --db at the result; `memras doctor` re-checks")

    def _check_schema(self, where: str) -> None:
        """Refuse a database this memras cannot read as it is (read-only open)."""
        try:
            with self.engine.connect() as conn:
                versions = recorded_versions(conn)
        except SQLAlchemyError as exc:
            raise _store_error("read", exc) from exc
        problem = schema_problem(versions)
        if problem is not None:
            msg, hint = problem
            raise StoreError(f"{where}: {msg}", hint=hint)

    def _migrate(self) -> None:
        try:
            with self._write() as conn:
                migrate(conn)
                self._create_registered_tables(conn)
        except SQLAlchemyError as exc:
            raise _store_error("prepare the database", exc) from exc

    def _create_registered_tables(self, conn: Connection) -> None:
        """Every table registered on Base so far: each area declares its tables in its own
        models module, imported by the area's code that uses them."""
        Base.metadata.create_all(conn, checkfirst=True)
        self._tables_known = len(Base.metadata.tables)

    def _create_tables_registered_since(self) -> None:
        """An area whose models were imported after this store was opened gets its tables
        on its first session, so the order of imports never decides what exists."""
        if len(Base.metadata.tables) == self._tables_known or self.readonly:
            return  # read-only: a missing table is reported when read (_store_error)
        try:
            with self._write() as conn:
                self._create_registered_tables(conn)
        except SQLAlchemyError as exc:
            raise _store_error("prepare the database", exc) from exc

    def close(self) -> None:
        if self._checkpointer is not None:
            self._checkpointer.close()
            self._checkpointer = None
        self.engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        if self.readonly:
            raise _readonly_refusal()
        with self.engine.connect() as conn:
            conn = conn.execution_options(memras_write=True)
            with conn.begin():
                yield conn

    @contextmanager
    def session(self, *, write: bool = True) -> Iterator[Session]:
        """An ORM session for other areas; commits on success, rolls back on error.

        A write session takes SQLite's write lock when it begins (BEGIN IMMEDIATE), so a
        read-then-write waits for the watcher's commit (busy_timeout) instead of failing
        at once with "database is locked", which a deferred BEGIN does once another
        connection committed in between. Pure readers pass ``write=False``.

        On a read-only store every session reads (its connections cannot write: see
        :meth:`open_readonly`), so an area's reader that asks for the default still
        works; a write through it fails with one line saying the command only reads.
        """
        write = write and not self.readonly
        self._create_tables_registered_since()
        bind = self.engine.execution_options(memras_write=True) if write else self.engine
        with Session(bind) as session:
            try:
                yield session
                session.commit()
            except SQLAlchemyError as exc:
                session.rollback()
                if self.readonly and "readonly database" in str(exc):
                    raise _readonly_refusal() from exc
                raise _store_error("write" if write else "read", exc) from exc

    # ---- writing events -----------------------------------------------------------

    def add_events(self, events: Iterable[Record | CxlEvent], *,
                   cursor: tuple[str, str] | None = None,
                   boot_time: datetime | None = None) -> AddResult:
        """Store one batch atomically; returns how many were new, duplicates, flagged
        and skipped.

        ``cursor`` = (source name, position) is saved in the same transaction.
        ``boot_time`` turns an event's uptime into wall time when it has no timestamp.

        No record fails its batch: values out of their domain are clamped or blanked and
        the row flagged (:mod:`memras.store.bounds`); a record that still cannot be
        prepared or inserted is skipped, counted in memras_skipped (``store:<source>``)
        with its reason, and the others are stored with the cursor. ``new_events`` are
        the records as stored (in bounds), which is what health judges. A CxlEvent
        (a CXL record that is not a memory error) goes to memras_cxl_event
        (:mod:`memras.store.cxl`), counted in ``cxl_inserted``/``cxl_duplicates``.
        """
        given = list(events)
        batch = [e for e in given if not isinstance(e, CxlEvent)]
        if len(batch) < len(given):  # CXL events that are not memory errors: their table
            cxl_new, cxl_known = add_cxl_events(
                self, [e for e in given if isinstance(e, CxlEvent)], boot_time=boot_time)
            result = self.add_events(batch, cursor=cursor, boot_time=boot_time)
            return dataclasses.replace(result, cxl_inserted=cxl_new, cxl_duplicates=cxl_known)
        checked = self._bounds.check_batch(_date_left_over(batch, boot_time))
        prepared, rejected, flags = self._prepare_each(checked, boot_time)
        rejected = checked.rejected + rejected
        try:
            with self._write() as conn:
                self._checkpoint_elsewhere(conn)
                fresh = self._drop_reported_before_boot(conn, self._drop_known(conn, prepared))
                duplicates = len(prepared) - len(fresh)
                if fresh:
                    failed = self._insert_isolated(conn, fresh, flags)
                    if failed:
                        lost = {id(record) for record, _ in failed}
                        fresh = [p for p in fresh if id(p[3]) not in lost]
                        rejected += failed
                self._count_rejected(conn, rejected)
                if cursor is not None:
                    self._set_cursor(conn, *cursor)
        except SQLAlchemyError as exc:
            raise _store_error("store events", exc) from exc
        if self._checkpointer is not None:
            self._checkpointer.batch_committed()
        reasons: dict[str, int] = {}
        for _, reason in rejected:
            reasons[reason] = reasons.get(reason, 0) + 1
        new_events = [p[3] for p in fresh]
        flag_reasons: dict[str, int] = {}
        flagged = [flags[id(r)] for r in new_events if id(r) in flags] if flags else []
        for text in flagged:
            for flag in text.split(","):
                flag_reasons[flag] = flag_reasons.get(flag, 0) + 1
        return AddResult(inserted=len(fresh), duplicates=duplicates, new_events=new_events,
                         flagged=len(flagged), skipped=len(rejected), skip_reasons=reasons,
                         flag_reasons=flag_reasons)

    def _drop_reported_before_boot(self, conn: Connection, fresh: list[_Prepared]
                                   ) -> list[_Prepared]:
        """One uncorrected error that crashed the machine, reported on both sides of the
        reboot, is one row. Before: the crashing kernel's own lines (pstore, a live
        watcher) or the firmware's Boot Error Record. After: the next kernel's boot-time
        copy from the bank (:func:`memras.ingest.mca.is_left_over`), dated at its boot
        (``inferred``). Their clocks never meet in a dedup key, so the pair is matched
        by address and order: a left-over with an uncorrected error at its address in
        the LEFT_OVER_LOOKBACK before its boot is a duplicate, and so is a before-boot
        report (pstore, firmware) with an inferred uncorrected row at its address in the
        LEFT_OVER_LOOKBACK after it."""
        from memras.ingest.mca import is_left_over  # lazy, as the dedup keys (see above)

        kept: list[_Prepared] = []
        for p in fresh:
            record, when = p[3], p[4]
            if (type(record) is not MemoryErrorEvent or record.address is None
                    or not record.error_type.is_uncorrected):
                kept.append(p)
                continue
            if is_left_over(record):
                lo, hi, inferred = when - LEFT_OVER_LOOKBACK, when, False
            elif record.source in _BEFORE_BOOT_SOURCES:
                lo, hi, inferred = when, when + LEFT_OVER_LOOKBACK, True
            else:
                kept.append(p)
                continue
            if not self._uncorrected_at(conn, kept, record.address, lo, hi, inferred):
                kept.append(p)
        return kept

    def _uncorrected_at(self, conn: Connection, batch: list[_Prepared], address: int,
                        lo: datetime, hi: datetime, inferred: bool) -> bool:
        """Whether an uncorrected error at ``address`` with a time in [lo, hi) is stored
        or earlier in this batch (``inferred``: only rows dated by a guess)."""
        for p in batch:
            r = p[3]
            if (type(r) is MemoryErrorEvent and r.address == address and lo <= p[4] < hi
                    and r.error_type.is_uncorrected
                    and (not inferred or p[5] is TimeSource.INFERRED)):
                return True
        t = ErrorRow.__table__
        query = select(t.c.id).where(
            t.c.address == rs.as_int64(address), t.c.type.in_(_UNCORRECTED_TYPES),
            t.c.time >= lo.replace(tzinfo=None), t.c.time < hi.replace(tzinfo=None))
        if inferred:
            query = query.where(t.c.time_source == TimeSource.INFERRED.value)
        return conn.execute(query.limit(1)).first() is not None

    def _prepare_each(self, checked: Checked, boot_time: datetime | None
                      ) -> tuple[list[_Prepared], list[tuple[Record, str]], dict[int, str]]:
        """:meth:`_prepare` of the batch; when it fails, record by record, so that one
        record it cannot handle is skipped with its reason instead of losing the batch.
        Also the flags re-keyed by the prepared records (preparing may date a record,
        which makes it a new object)."""
        records, flags = checked.records, checked.flags
        rejected: list[tuple[Record, str]] = []
        try:
            prepared = self._prepare(records, boot_time)
            pairs = zip(records, prepared, strict=True)
        except Exception:  # noqa: BLE001 - whatever it is, it is found and counted below
            prepared = []
            kept = []
            for record in records:
                try:
                    prepared += self._prepare([record], boot_time)
                    kept.append(record)
                except Exception as exc:  # noqa: BLE001 - counted with its reason
                    rejected.append((record, _failure_reason("prepare", exc)))
            pairs = zip(kept, prepared, strict=True)
        if flags:
            flags = {id(p[3]): flags[id(r)] for r, p in pairs if id(r) in flags}
        return prepared, rejected, flags

    def _insert_isolated(self, conn: Connection, fresh: list[_Prepared],
                         flags: dict[int, str]) -> list[tuple[Record, str]]:
        """:meth:`_insert` of the batch under a savepoint; if a record's values fail it,
        the batch is rolled back to the savepoint and inserted record by record, each
        under its own, so only the failing ones are left out. A failure of the database
        itself (locked, full, I/O) is not a record's: it fails the batch as before."""
        try:
            with conn.begin_nested():
                self._insert(conn, fresh, flags)
            return []
        except OperationalError:
            raise
        except Exception:  # noqa: BLE001 - isolated record by record below
            pass
        failed: list[tuple[Record, str]] = []
        for one in fresh:
            try:
                with conn.begin_nested():
                    self._insert(conn, [one], flags)
            except OperationalError:
                raise
            except Exception as exc:  # noqa: BLE001 - counted with its reason
                failed.append((one[3], _failure_reason("insert", exc)))
        return failed

    def _count_rejected(self, conn: Connection, rejected: list[tuple[Record, str]]) -> None:
        """Skipped records into memras_skipped, one row per ``store:<source>``."""
        by_source: dict[str, list[tuple[Record, str]]] = {}
        for record, reason in rejected:
            by_source.setdefault(f"store:{record.source}", []).append((record, reason))
        for source, items in by_source.items():
            record, reason = items[-1]
            self._count_skipped(conn, source, (record.raw or repr(record))[:SAMPLE_CHARS],
                                reason=reason, n=len(items))

    def _checkpoint_elsewhere(self, conn: Connection) -> None:
        """Hand this connection's WAL checkpoints to the checkpointer thread (automatic
        checkpoints off), or give them back to SQLite once that thread has failed."""
        if self._wal_path is None:
            return
        if self._checkpointer is None:
            self._checkpointer = WalCheckpointer(self._wal_path)
        pages = 0 if self._checkpointer.failed is None else SQLITE_AUTOCHECKPOINT_PAGES
        info = conn.connection.info  # kept with the pooled DBAPI connection
        if info.get("memras_autocheckpoint") != pages:
            conn.exec_driver_sql(f"PRAGMA wal_autocheckpoint={pages}")
            info["memras_autocheckpoint"] = pages

    def _prepare(self, batch: list[Record], boot_time: datetime | None) -> list[_Prepared]:
        if self._keys_fn is None:
            self._keys_fn = _default_keys_fn()
        keys_fn = self._keys_fn
        # The parsers' own keys: their text is built directly (dedup_key_parts), hashed
        # once for the key and its neighbour buckets. A custom key_fn, or a record the
        # fast form does not cover, takes the generic path.
        parts_fn = _default_parts_fn() if self._default_keys else None
        generic = _default_generic_fn() if self._default_keys else None
        now = datetime.now(UTC)
        out: list[_Prepared] = []
        append = out.append
        for record in batch:
            when, time_source = _clock(record, boot_time, now)
            wall_s = when.timestamp() if time_source.is_real else None
            parts = None if parts_fn is None else parts_fn(record, wall_s=wall_s)
            near: tuple[str, ...]
            if parts is not None:
                digest = _digest(parts[0])
                bucket = parts[1]
                key = f"{bucket & _BUCKET_MASK:08x}{digest}"
                near = (f"{(bucket - 1) & _BUCKET_MASK:08x}{digest}",
                        f"{(bucket + 1) & _BUCKET_MASK:08x}{digest}")
            elif generic is not None:
                key, near = _neighbour_texts(generic(record, wall_s=wall_s))
            else:
                key, previous = _key_texts(*keys_fn(record))
                near = () if previous is None else (previous,)
            identity = _identity(record)
            if record.timestamp is None or (
                    not time_source.is_real and record.time_source is not time_source):
                # health judges the record, not the row: give it the row's time and source
                record = dataclasses.replace(record, timestamp=when, time_source=time_source)
            append((key, near, identity, record, when, time_source))
        return out

    def _drop_known(self, conn: Connection, prepared: list[_Prepared]) -> list[_Prepared]:
        """Keep a record unless it was read before (same identity under its key or a
        neighbour bucket's) or it is another road's report of an error already stored:
        some other road has more rows under those keys *at the record's address* than
        this record's road has (memras.ingest.parsers.dedup: one error seen by two roads
        is one row; two errors one road printed separately are two rows). The key names
        the page; rows are counted per full address under it (:func:`_at`), so two CEs
        of one page never pair with each other's report on another road, however the
        roads' clocks are skewed within the tolerance."""
        lookup = list({k for p in prepared for k in (p[0], *p[1])})
        # key@address -> what is stored there (see _remember): O(1) per record even when
        # a stuck cell puts thousands of rows under one key.
        seen: dict[str, Any] = {}
        for start in range(0, len(lookup), KEY_CHUNK):
            for key, source, identity, address in self._fast(conn).known_keys(
                    conn, lookup[start:start + KEY_CHUNK]):
                _remember(seen, _at(key, address), *_stored_road(source, identity))
        matched = self._matched
        if matched:
            for at in {_at(k, p[3].address) for p in prepared for k in (p[0], *p[1])}:
                for road, n in matched.get(at, {}).items():
                    for _ in range(n):
                        _remember(seen, at, road, "")  # no digest: never a re-read
        fresh = []
        get = seen.get
        for p in prepared:
            address, identity = p[3].address, p[2]
            key = _at(p[0], address)
            road, digest = f"{p[3].source}/{identity[0]}", identity[2:]
            entries = [e for e in (get(key), *(get(_at(k, address)) for k in p[1]))
                       if e is not None]
            if not entries:
                seen[key] = (digest, road)  # _remember's first-row form, inline
                fresh.append(p)
                continue
            reread = digest in _digests(entries)
            duplicate = reread or _seen_before(entries, road, digest)
            _remember(seen, key, road, digest)
            if not duplicate:
                fresh.append(p)
            elif not reread:  # another road's report of a stored error
                counts = matched.setdefault(key, {})
                counts[road] = counts.get(road, 0) + 1
                if len(matched) > MATCHED_KEYS_KEPT:
                    del matched[next(iter(matched))]
        return fresh

    def _fast(self, conn: Connection) -> FastStatements:
        if self._statements is None:
            self._statements = FastStatements.for_dialect(conn.dialect)
        return self._statements

    def _insert(self, conn: Connection, fresh: list[_Prepared],
                flags: dict[int, str] | None = None) -> None:
        """memras_error rows, the rasdaemon-format mirror (ids allocated under the write
        lock: BEGIN IMMEDIATE) and the count bumps of one batch."""
        statements = self._fast(conn)

        def first_id(table: str) -> int:
            return (conn.exec_driver_sql(f"SELECT max(id) FROM {table}").scalar() or 0) + 1

        rows = self._rows.build(fresh,
                                time_processor=statements.time_processor,
                                uptime_processor=statements.uptime_processor,
                                first_id=first_id if self.mirrors_rasdaemon else None,
                                flags=flags)
        for table, params in rows.rasdaemon.items():
            conn.exec_driver_sql(rs.insert_sql(table, ROW_BUILDERS[table][1]), params)
        statements.insert(conn, rows.rows)
        self._bump_counts(conn, rows.counts)

    def _bump_counts(self, conn: Connection, counts: dict[tuple, list[int]]) -> None:
        statements = self._fast(conn)
        for key, (events, errors) in counts.items():
            statements.bump_count(conn, key, events, errors)

    # ---- cursors, gaps, skipped input ----------------------------------------------

    def get_cursor(self, name: str) -> str | None:
        with self._read() as conn:
            return conn.scalar(select(SourceCursorRow.position)
                               .where(SourceCursorRow.name == name))

    def set_cursor(self, name: str, position: str) -> None:
        with self._write_translated("save a cursor") as conn:
            self._set_cursor(conn, name, position)

    def _set_cursor(self, conn: Connection, name: str, position: str) -> None:
        t = SourceCursorRow.__table__
        now = datetime.now(UTC).replace(tzinfo=None)
        done = conn.execute(update(t).where(t.c.name == name)
                            .values(position=position, updated=now))
        if done.rowcount == 0:
            conn.execute(t.insert().values(name=name, position=position, updated=now))

    def add_gap(self, source: str, subject: str, count: int, error_type: str, *,
                message: str = "", time: datetime | None = None) -> None:
        """Record that the kernel counted ``count`` errors on ``subject`` no event reported."""
        when = _utc_naive(time or datetime.now(UTC))
        with self._write_translated("record a gap") as conn:
            conn.execute(GapRow.__table__.insert().values(
                time=when, source=source, subject=subject, count=count,
                error_type=error_type, message=message))

    def gaps(self) -> list[dict[str, Any]]:
        with self._read() as conn:
            rows = conn.execute(select(GapRow.__table__).order_by(GapRow.id)).mappings()
            return [dict(r) for r in rows]

    def count_skipped(self, source: str, sample: str, *, reason: str = "", n: int = 1) -> None:
        """Count ``n`` malformed inputs from ``source``, keeping the latest as a sample."""
        with self._write_translated("count skipped input") as conn:
            self._count_skipped(conn, source, sample, reason=reason, n=n)

    def _count_skipped(self, conn: Connection, source: str, sample: str, *, reason: str,
                       n: int) -> None:
        t = SkippedRow.__table__
        now = datetime.now(UTC).replace(tzinfo=None)
        done = conn.execute(update(t).where(t.c.source == source).values(
            count=t.c.count + n, sample=sample, reason=reason, updated=now))
        if done.rowcount == 0:
            conn.execute(t.insert().values(source=source, count=n, sample=sample,
                                           reason=reason, updated=now))

    def skipped(self) -> dict[str, int]:
        with self._read() as conn:
            return dict(conn.execute(select(SkippedRow.source, SkippedRow.count)).all())

    @contextmanager
    def _write_translated(self, what: str) -> Iterator[Connection]:
        try:
            with self._write() as conn:
                yield conn
        except SQLAlchemyError as exc:
            raise _store_error(what, exc) from exc

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        try:
            with self.engine.connect() as conn:
                yield conn
        except SQLAlchemyError as exc:
            raise _store_error("read", exc) from exc

    # ---- reading -----------------------------------------------------------------

    def errors(self, since: datetime | None = None, until: datetime | None = None,
               dimm: str | DimmFilter | None = None, type: str | Iterable[str] | None = None,
               limit: int | None = None) -> list[StoredError]:
        """Stored events, oldest first; ``limit`` keeps the newest ``limit`` of them."""
        t = ErrorRow.__table__
        query = select(t).where(*_filters(since, until, dimm, type))
        query = query.order_by(t.c.time.desc(), t.c.id.desc())
        if limit is not None:
            query = query.limit(limit)
        with self._read() as conn:
            rows = conn.execute(query).mappings().all()
        return [_stored_error(r) for r in reversed(rows)]

    def summary(self, since: datetime | None = None, until: datetime | None = None,
                dimm: str | DimmFilter | None = None,
                type: str | Iterable[str] | None = None) -> Summary:
        """Per type/label/location counts like ``ras-mc-ctl --summary``, plus totals by type.

        Without filters it reads the maintained ``memras_error_count`` table; with
        filters it groups ``memras_error`` (same result shape, slower on big tables).
        """
        with self._read() as conn:
            if since is None and until is None and dimm is None and type is None:
                c = ErrorCountRow.__table__.c
                rows = conn.execute(select(c.type, c.label, c.mc, c.top_layer, c.middle_layer,
                                           c.lower_layer, c.events, c.errors)).all()
            else:
                rows = conn.execute(_grouped_query(since, until, dimm, type)).all()
        groups = [summary_group(*row) for row in rows]
        groups.sort(key=lambda g: (g.type, g.label or "", g.location))
        return Summary.from_groups(groups)

    def count(self, *, after_id: int = 0) -> int:
        """Stored events; ``after_id``: only those stored after that row (what one import
        committed, even when it stopped early)."""
        t = ErrorRow.__table__
        query = select(func.count()).select_from(t)
        if after_id:
            query = query.where(t.c.id > after_id)
        with self._read() as conn:
            return conn.scalar(query) or 0


# ---- helpers (module level: pure, no Store state) ---------------------------------


def _remember(seen: dict[str, Any], key: str, road: str, digest: str) -> None:
    """Note a row (or a report matched to one) under ``key``. The entry is ``(digest,
    road)`` for one row (a storm's keys are almost all new: nothing built per record)
    and becomes ``[set of digests, {road: rows}]`` from the second on."""
    entry = seen.get(key)
    if entry is None:
        seen[key] = (digest, road)
    elif type(entry) is tuple:
        roads = {entry[1]: 1}
        roads[road] = roads.get(road, 0) + 1
        seen[key] = [{entry[0], digest}, roads]
    else:
        entry[0].add(digest)
        entry[1][road] = entry[1].get(road, 0) + 1


def _at(key: str, address: int | None) -> str:
    """A dedup key narrowed to one address (the key names a page): the unit that roads'
    reports are counted and matched in. The address as the row stores it (int64) or as a
    record carries it (u64) gives one text."""
    return key if address is None else f"{key}@{address & _U64:x}"


_U64 = (1 << 64) - 1


def _seen_before(entries: list[Any], road: str, digest: str) -> bool:
    """This record read again (its digest is stored), or another road's report of an
    error stored already: some other road has more rows under the keys than this road."""
    own = 0
    others: dict[str, int] = {}
    for entry in entries:
        if type(entry) is tuple:
            if entry[0] == digest:
                return True
            counts = {entry[1]: 1}
        else:
            if digest in entry[0]:
                return True
            counts = entry[1]
        for other, rows in counts.items():
            if other == road:
                own += rows
            else:
                others[other] = others.get(other, 0) + rows
    return max(others.values(), default=0) > own


def _digests(entries: list[Any]) -> set[str]:
    out: set[str] = set()
    for entry in entries:
        if type(entry) is tuple:
            out.add(entry[0])
        else:
            out |= entry[0]
    return out


def _stored_road(source: str, identity: str) -> tuple[str, str]:
    """(road, digest) of a stored row: its identity is ``reporter code:digest``; rows
    stored before roads existed have a bare digest and an unknown reporter ``?``."""
    if len(identity) == _DIGEST_CHARS + 2 and identity[1] == ":":
        return f"{source}/{identity[0]}", identity[2:]
    return f"{source}/?", identity


# How far apart the two sides of a crash's reboot may be: a machine check, the panic,
# the firmware's reboot (server POST can take many minutes) and the next kernel's boot.
LEFT_OVER_LOOKBACK = timedelta(hours=1)
_BEFORE_BOOT_SOURCES = frozenset({Source.PSTORE, Source.FIRMWARE})
_UNCORRECTED_TYPES = [t.value for t in ErrorType if t.is_uncorrected]


def _date_left_over(batch: list[Record], boot_time: datetime | None) -> list[Record]:
    """A boot-time copy of a bank's left-over error (memras.ingest.mca.is_left_over)
    happened before this boot, at a time nobody recorded: it is placed at the boot, as
    ``inferred`` (history for verdicts, never part of a rate)."""
    from memras.ingest.mca import is_left_over  # lazy, as the dedup keys

    out = batch
    for i, record in enumerate(batch):
        if not is_left_over(record):
            continue
        assert isinstance(record, MemoryErrorEvent) and record.uptime_s is not None
        boot = (record.timestamp - timedelta(seconds=record.uptime_s)
                if record.timestamp is not None else boot_time)
        if boot is None:
            continue
        if out is batch:
            out = list(batch)
        out[i] = dataclasses.replace(record, timestamp=boot, time_source=TimeSource.INFERRED)
    return out


def _clock(record: Record, boot_time: datetime | None,
           now: datetime) -> tuple[datetime, TimeSource]:
    """A record's wall-clock time (aware UTC) and where it came from. No time is
    invented: without its own clock or a stated boot time a record is stored at ``now``
    as ``import``; a time more than FUTURE_SLACK ahead (a foreign clock) likewise."""
    when = record.timestamp
    source = record.time_source
    if when is not None:
        if source is None:
            source = _DEFAULT_TIME_SOURCE.get(record.source, TimeSource.KERNEL)
            if record.source is Source.RASDAEMON:
                pass
            elif type(record) is MemoryErrorEvent and record.mce is not None \
                    and record.mce.walltime > 0:
                source = TimeSource.KERNEL  # the MCE's own TIME (parsers date by it)
            elif record.uptime_s is not None and record.source is not Source.KMSG:
                source = TimeSource.UPTIME_BOOT  # dated by a source from the boot time
        if when.tzinfo is not UTC:
            when = (when if when.tzinfo is not None else when.astimezone()).astimezone(UTC)
    elif record.uptime_s is not None and boot_time is not None:
        when, source = boot_time + timedelta(seconds=record.uptime_s), TimeSource.UPTIME_BOOT
        if when.tzinfo is not UTC:
            when = when.astimezone(UTC)
    else:
        return now, TimeSource.IMPORT
    if when - now > FUTURE_SLACK:
        return now, TimeSource.IMPORT
    return when, source


def _type_values(type: str | Iterable[str]) -> list[str]:
    return [type] if isinstance(type, str) else list(type)


def _filters(since: datetime | None, until: datetime | None, dimm: str | DimmFilter | None,
             type: str | Iterable[str] | None) -> list[Any]:
    c = ErrorRow.__table__.c
    clauses: list[Any] = []
    if since is not None:
        clauses.append(c.time >= _utc_naive(since))
    if until is not None:
        clauses.append(c.time < _utc_naive(until))
    if dimm is not None:
        # a DimmFilter: a resolved DIMM (memras.health.dimm_names); text: label or id as is
        clauses.append(dimm.clause() if isinstance(dimm, DimmFilter)
                       else or_(c.label == dimm, c.dimm_id == dimm))
    if type is not None:
        clauses.append(c.type.in_(_type_values(type)))
    return clauses


def _grouped_query(since: datetime | None, until: datetime | None, dimm: str | DimmFilter | None,
                   type: str | Iterable[str] | None) -> Any:
    c = ErrorRow.__table__.c
    keys = (c.type, func.coalesce(c.label, ""), func.coalesce(c.mc, -1),
            func.coalesce(c.top_layer, -1), func.coalesce(c.middle_layer, -1),
            func.coalesce(c.lower_layer, -1))
    return (select(*keys, func.count(), func.sum(c.count))
            .where(*_filters(since, until, dimm, type)).group_by(*keys))


def stored_error(row: Any) -> StoredError:
    """A ``memras_error`` row (a mapping of its columns) as the store reads it back; the
    fleet's central copy of the table (memras.fleet) reads its rows through this too."""
    return _stored_error(row)


def _stored_error(r: Any) -> StoredError:
    location = DimmLocation(**{name: r[name] for name in LOCATION_FIELDS})
    message, detail, raw = r["message"], r["driver_detail"], r["raw"]
    if r["texts"] is not None:  # packed (memras.store.packed_texts): the columns are ''
        message, detail, raw = unpack(r["texts"])
    return StoredError(
        id=r["id"], time=r["time"].replace(tzinfo=UTC), uptime=r["uptime"], source=r["source"],
        type=r["type"], count=r["count"], address=rs.as_u64(r["address"]), page=r["page"],
        normalized_address=rs.as_u64(r["normalized_address"]), location=location,
        message=message, driver=r["driver"], driver_detail=detail,
        dimm_id=r["dimm_id"], raw=raw, rasdaemon_table=r["rasdaemon_table"],
        rasdaemon_id=r["rasdaemon_id"], flags=r["flags"], time_source=r["time_source"])


def _failure_reason(step: str, exc: Exception) -> str:
    """A short, stable reason for memras_skipped: the step and the exception's kind and
    first line (no traceback; the sample row keeps the record's text)."""
    first = (str(exc).splitlines() or [""])[0][:120]
    return f"{step}: {type(exc).__name__}: {first}" if first else f"{step}: {type(exc).__name__}"


def _readonly_refusal() -> StoreError:
    return StoreError("this command opened the database read-only and cannot change it",
                      hint="a bug in memras: please report it")


_NO_TABLE = re.compile(r"no such table: (\S+)")


def _store_error(what: str, exc: SQLAlchemyError) -> StoreError:
    detail = (str(getattr(exc, "orig", None) or exc).splitlines() or [""])[0]
    if missing := _NO_TABLE.search(detail):
        return StoreError(
            f"cannot {what}: the database has no table {missing.group(1)} (an older memras "
            "wrote it, or the table was dropped)",
            hint="run `memras doctor`; `memras watch --once` as the database's owner "
                 "creates the tables this memras uses")
    if "readonly database" in detail:
        hint = "this user may not write the database or its directory; run the command " \
               "as the database's owner (`memras doctor` shows the permissions)"
    elif "locked" in detail:
        hint = "another memras may hold the lock; retry"
    else:
        hint = "check the --db path and its permissions"
    return StoreError(f"cannot {what}: {detail}", hint=hint)
