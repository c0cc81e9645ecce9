"""Block rows around kernel writes: durable before the write, cheap enough not to show.

The crash-safety contract of ``offline_blocks``: before each kernel write the block's
row says ``offlining`` in a COMMITTED transaction, so a process killed during or right
after the write leaves a database that names every block the kernel may have taken
offline (``--abort`` onlines them, ``--resume`` skips those already offline). The
result (``offline``, or the state the kernel left after a refusal) is recorded after
the write.

Cost. Written through ORM sessions this was two sessions per block (SELECT the row,
flush, commit; twice), ≈0.13 s per block under TCG, a third of the raw write itself.
:class:`BlockJournal` holds ONE connection for the whole step and runs ONE
prepared ``UPDATE ... WHERE replacement_id AND role AND block`` (no read-back: the
rows were created by ``select``); on SQLite straight on the driver's connection,
whose statement cache keeps it prepared, since SQLAlchemy's per-execute machinery
costs more than the UPDATE itself (other databases go through SQLAlchemy Core).
It folds a successful block's result into the transaction that marks the NEXT block
``offlining``: one transaction per block instead of two. A failed block's result is
written at once, the last block's at :meth:`flush`. Until then that block's row says
``offlining`` while the kernel already has it offline, which is exactly what a crash
at ``block:N:offline:after`` leaves in either design, and every reader already treats
``offlining`` as "maybe offline".

Durability. The store opens SQLite in WAL mode with ``synchronous=NORMAL``: a commit
is appended to the WAL with no fsync, and the WAL is synced at checkpoints. A killed
process (kill -9, OOM, a crash of memras) loses NO committed transaction, because the
WAL is in the kernel's page cache, which outlives the process; what NORMAL gives up is
the last transactions on a power loss or a kernel panic. That is not this contract's
failure model: after a power loss or a panic the machine boots again and the kernel
onlines its memory afresh, so no row could describe that machine anyway (``--resume``
and ``--abort`` re-read the kernel's block states). ``synchronous=FULL`` would add an
fsync per block for a case the rows cannot help with.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, bindparam, func, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError

from memras.errors import StoreError
from memras.workflow.models import ReplacementBlockRow

if TYPE_CHECKING:
    from memras.store.store import Store

_TABLE = ReplacementBlockRow.__table__
# Bind names must differ from column names in an executemany UPDATE.
_UPDATE = (
    update(_TABLE)
    .where(and_(_TABLE.c.replacement_id == bindparam("rid"), _TABLE.c.role == bindparam("r"),
                _TABLE.c.block == bindparam("b")))
    .values(status=bindparam("s"), updated_at=bindparam("t"), last_error=bindparam("e"),
            attempts=func.coalesce(_TABLE.c.attempts, 0) + bindparam("a"))
)
# The same statement for the sqlite3 driver (qmark parameters, in this order).
_SQLITE_UPDATE = (f"UPDATE {_TABLE.name} SET status = ?, updated_at = ?, last_error = ?, "
                  "attempts = coalesce(attempts, 0) + ? "
                  "WHERE replacement_id = ? AND role = ? AND block = ?")
_SQLITE_BLOCKS = (f"SELECT block FROM {_TABLE.name} WHERE replacement_id = ? AND role = ? "
                  "ORDER BY block")


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


class BlockJournal:
    """One replacement's block rows of one role, written on one held connection."""

    def __init__(self, conn: Connection, replacement_id: int, role: str) -> None:
        self._conn = conn
        self._rid, self._role = replacement_id, role
        self._pending: dict[str, Any] | None = None
        self.transactions = 0
        self._sqlite: sqlite3.Connection | None = None
        self._when: Any = None
        if conn.dialect.name == "sqlite":
            driver = conn.connection.driver_connection
            if isinstance(driver, sqlite3.Connection) and driver.isolation_level is None:
                self._sqlite = driver  # autocommit mode: BEGIN/COMMIT are ours to issue
                # the column type's own conversion, so the text is what the ORM writes
                self._when = _TABLE.c.updated_at.type.bind_processor(conn.dialect)

    def blocks(self) -> list[int]:
        """The role's block numbers in order (read here: the ORM's first query of a
        process compiles its statement, which costs more than the UPDATEs)."""
        if self._sqlite is not None:
            return [row[0] for row in self._sqlite.execute(_SQLITE_BLOCKS,
                                                           (self._rid, self._role))]
        return list(self._conn.scalars(
            select(_TABLE.c.block).where(_TABLE.c.replacement_id == self._rid,
                                         _TABLE.c.role == self._role)
            .order_by(_TABLE.c.block)))

    def _row(self, block: int, status: str, attempts: int, error: str | None
             ) -> dict[str, Any]:
        return {"rid": self._rid, "r": self._role, "b": block, "s": status, "t": _now(),
                "a": attempts, "e": error}

    def _commit(self, rows: list[dict[str, Any]]) -> None:
        if self._sqlite is not None:
            self._commit_sqlite(rows)
            return
        try:
            with self._conn.begin():  # BEGIN IMMEDIATE (the store's write option)
                self._conn.execute(_UPDATE, rows)
        except SQLAlchemyError as exc:
            raise StoreError(f"could not record memory blocks: {type(exc).__name__}: "
                             f"{exc}".splitlines()[0],
                             hint="check --db and that the database is writable") from None
        self.transactions += 1

    def _commit_sqlite(self, rows: list[dict[str, Any]]) -> None:
        when = self._when or (lambda value: value)
        params = [(r["s"], when(r["t"]), r["e"], r["a"], r["rid"], r["r"], r["b"])
                  for r in rows]
        db = self._sqlite
        assert db is not None
        try:
            db.execute("BEGIN IMMEDIATE")  # waits busy_timeout for another writer
            try:
                db.executemany(_SQLITE_UPDATE, params)
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            raise StoreError(f"could not record memory blocks: {type(exc).__name__}: {exc}",
                             hint="check --db and that the database is writable") from None
        self.transactions += 1

    def before(self, block: int, status: str) -> None:
        """Commit ``status`` (``offlining``) for ``block``, with the previous result."""
        rows = [self._pending] if self._pending else []
        rows.append(self._row(block, status, 0, None))
        self._pending = None
        self._commit(rows)

    def after(self, block: int, status: str, *, attempts: int = 0, error: str | None = None,
              defer: bool = True) -> None:
        """The write's result: held for the next :meth:`before` when ``defer``."""
        row = self._row(block, status, attempts, error)
        if defer:
            self.flush()  # at most one result waits
            self._pending = row
        else:
            self._commit([*([self._pending] if self._pending else []), row])
            self._pending = None

    def flush(self) -> None:
        """Commit a held result now (end of the batch, or before anything else runs)."""
        if self._pending is not None:
            row, self._pending = self._pending, None
            self._commit([row])


@contextmanager
def block_journal(store: Store, replacement_id: int, role: str) -> Iterator[BlockJournal]:
    """A journal on one connection of ``store``'s engine; held results are flushed at exit,
    also when the step fails (an exception from the batch)."""
    engine = store.engine.execution_options(memras_write=True)
    try:
        conn = engine.connect()
    except SQLAlchemyError as exc:
        raise StoreError(f"could not open the database: {exc}".splitlines()[0]) from None
    try:
        journal = BlockJournal(conn, replacement_id, role)
        try:
            yield journal
        finally:
            journal.flush()
    finally:
        conn.close()
