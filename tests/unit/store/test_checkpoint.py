"""The event writer's WAL checkpoints run on their own thread (memras.store.checkpoint)."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest

from memras.store import Store
from memras.store.store import SQLITE_AUTOCHECKPOINT_PAGES


@pytest.fixture
def store(sqlite_store: Store) -> Store:
    """WAL checkpoints of the database file: SQLite only
    (the store's other behaviour runs on both dialects)."""
    return sqlite_store


def _autocheckpoint(store: Store) -> int:
    with store.engine.connect() as conn:  # the pool hands back the writer's connection
        return conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar()


def _wait_for(condition, timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


def test_writer_leaves_checkpoints_to_the_thread_which_copies_the_log_home(
        store: Store, make_event, tmp_path: Path) -> None:
    db_file = tmp_path / "memras.db"
    before = db_file.stat().st_size
    store.add_events([make_event(raw=f"{n} " + "x" * 2000) for n in range(300)])
    assert _autocheckpoint(store) == 0  # no checkpoint inside the writer's COMMIT
    checkpointer = store._checkpointer
    assert checkpointer is not None and checkpointer.failed is None
    # Only the thread checkpoints now: the rows reach the database file through it.
    assert _wait_for(lambda: checkpointer.checkpoints >= 1 and db_file.stat().st_size > before)
    probe = sqlite3.connect(db_file)
    assert probe.execute("SELECT count(*) FROM memras_error").fetchone() == (300,)
    probe.close()


def test_a_failed_checkpointer_gives_checkpoints_back_to_sqlite(store: Store, make_event) -> None:
    store.add_events([make_event()])
    assert _autocheckpoint(store) == 0
    store._checkpointer.failed = "OperationalError: disk I/O error"
    store.add_events([make_event()])
    assert _autocheckpoint(store) == SQLITE_AUTOCHECKPOINT_PAGES
    assert store.count() == 2


def test_close_stops_the_thread_and_readers_keep_automatic_checkpoints(
        tmp_path: Path, make_event) -> None:
    store = Store.open(tmp_path / "m.db")
    assert store._checkpointer is None  # only a writer of events starts one
    assert _autocheckpoint(store) == SQLITE_AUTOCHECKPOINT_PAGES
    store.add_events([make_event()])
    thread = store._checkpointer._thread
    store.close()
    assert not thread.is_alive()


def test_in_memory_database_has_no_checkpointer(make_event) -> None:
    store = Store.open("sqlite:///:memory:")
    store.add_events([make_event()])
    assert store._checkpointer is None
    store.close()
