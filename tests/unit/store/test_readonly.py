"""Store.open_readonly: reads, never writes, never creates a file, table or side file."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import text

from memras.errors import StoreError
from memras.records import MemoryErrorEvent
from memras.store import Store
from memras.store.migrations import LATEST_VERSION
from tests.unit.store.conftest import EventFactory


@pytest.fixture
def event(make_event: EventFactory):  # type: ignore[no-untyped-def]
    def make(n: int) -> MemoryErrorEvent:
        return make_event(f"DIMM_{n}", location=(0, 0, n, None), minutes=n)
    return make


@pytest.fixture
def db(tmp_path: Path, event) -> Path:  # type: ignore[no-untyped-def]
    path = tmp_path / "memras.db"
    with Store.open(path) as store:
        store.add_events([event(0), event(1)])
    return path


def _fingerprint(path: Path) -> tuple[str, float, list[str]]:
    return (hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mtime,
            sorted(p.name for p in path.parent.iterdir()))


def test_reads_what_the_writer_stored_and_leaves_every_file_as_it_was(db: Path, event) -> None:  # type: ignore[no-untyped-def]
    path = db
    before = _fingerprint(path)
    assert before[2] == ["memras.db"]  # the writer closed: SQLite removed -wal and -shm
    with Store.open(path, readonly=True) as store:
        assert store.count() == 2
        assert [e.label for e in store.errors()] == ["DIMM_0", "DIMM_1"]
        assert store.summary().totals
    assert _fingerprint(path) == before


def test_a_live_writers_commits_are_seen_through_its_wal(db: Path, event) -> None:  # type: ignore[no-untyped-def]
    path = db
    writer = Store.open(path)
    try:
        writer.add_events([event(5)])
        assert Path(f"{path}-wal").exists()
        with Store.open_readonly(path) as store:
            assert store.count() == 3  # the row in the WAL, not yet checkpointed
    finally:
        writer.close()


def test_writing_through_a_readonly_store_is_refused(db: Path, event) -> None:  # type: ignore[no-untyped-def]
    with Store.open_readonly(db) as store:
        with pytest.raises(StoreError, match="read-only"):
            store.add_events([event(7)])
        with pytest.raises(StoreError, match="read-only"), store.session() as session:
            session.execute(text("DELETE FROM memras_error"))
        with store.session() as session:  # a reader asking for the default session reads
            assert session.execute(text("SELECT count(*) FROM memras_error")).scalar() == 2


def test_a_missing_file_is_one_line_and_not_created(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="no memras database") as info:
        Store.open_readonly(tmp_path / "absent.db")
    assert "memras import" in (info.value.hint or "")
    assert list(tmp_path.iterdir()) == []


def test_an_empty_file_is_not_a_memras_database_and_stays_empty(tmp_path: Path) -> None:
    path = tmp_path / "empty.db"
    path.touch()
    with pytest.raises(StoreError, match="not a memras database yet"):
        Store.open_readonly(path)
    assert path.stat().st_size == 0
    assert [p.name for p in tmp_path.iterdir()] == ["empty.db"]


def test_an_older_schema_says_how_to_upgrade(db: Path, event) -> None:  # type: ignore[no-untyped-def]
    path = db
    with sqlite3.connect(path) as conn:
        conn.execute("DELETE FROM memras_schema WHERE version = ?", (LATEST_VERSION,))
    with pytest.raises(StoreError, match="older memras") as info:
        Store.open_readonly(path)
    assert "memras watch --once" in (info.value.hint or "")
    with sqlite3.connect(path) as conn:  # nothing migrated it back
        assert LATEST_VERSION not in {v for (v,) in conn.execute(
            "SELECT version FROM memras_schema")}


def test_a_newer_schema_says_to_upgrade_memras(db: Path, event) -> None:  # type: ignore[no-untyped-def]
    path = db
    with sqlite3.connect(path) as conn:
        conn.execute("INSERT INTO memras_schema (version, description, applied) "
                     "VALUES (?, 'from the future', '2030-01-01 00:00:00')",
                     (LATEST_VERSION + 1,))
    with pytest.raises(StoreError, match="newer memras") as info:
        Store.open_readonly(path)
    assert "upgrade memras" in (info.value.hint or "")


def test_a_dropped_table_is_one_clear_error_and_is_not_recreated(db: Path, event) -> None:  # type: ignore[no-untyped-def]
    path = db
    with sqlite3.connect(path) as conn:
        conn.execute("DROP TABLE memras_error_count")
    with Store.open_readonly(path) as store:
        with pytest.raises(StoreError, match="no table memras_error_count"):
            store.summary()
        assert store.count() == 2  # the other tables still read
    with sqlite3.connect(path) as conn:
        assert not conn.execute("SELECT 1 FROM sqlite_master WHERE name = "
                                "'memras_error_count'").fetchall()


def test_a_database_in_rollback_journal_mode_reads_too(db: Path, event) -> None:  # type: ignore[no-untyped-def]
    path = db
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA journal_mode=DELETE")
    before = _fingerprint(path)
    with Store.open_readonly(path) as store:
        assert store.count() == 2
    assert _fingerprint(path) == before


def test_an_in_memory_url_cannot_be_opened_readonly() -> None:
    with pytest.raises(StoreError, match="read-only"):
        Store.open_readonly("sqlite:///:memory:")
