"""The database and its -wal/-shm are 0640 (group memras, else ours) whatever the umask."""

from __future__ import annotations

import grp
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from memras.store import Store
from memras.store import files as store_files
from memras.store.files import DATABASE_MODE, database_group, secure_database_files


@pytest.fixture
def umask_000() -> Iterator[None]:
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_new_database_and_its_wal_files_are_0640_under_umask_000(
        tmp_path: Path, umask_000: None) -> None:
    db = tmp_path / "memras.db"
    store = Store.open(db)
    try:
        store.set_cursor("test", "1")  # a write after open: the WAL is in use
        wal, shm = Path(f"{db}-wal"), Path(f"{db}-shm")
        assert wal.exists() and shm.exists()
        for path in (db, wal, shm):
            assert _mode(path) == DATABASE_MODE, path
            assert path.stat().st_gid == database_group(), path
    finally:
        store.close()
    # side files SQLite makes again on the next open follow the database too
    again = Store.open(db)
    try:
        again.set_cursor("test", "2")
        assert _mode(Path(f"{db}-wal")) == DATABASE_MODE
    finally:
        again.close()


def test_without_the_helper_sqlite_would_make_it_world_readable(
        tmp_path: Path, umask_000: None) -> None:
    """What the helper prevents: SQLite's own create under umask 000 is 0644."""
    import sqlite3

    raw = tmp_path / "raw.db"
    sqlite3.connect(raw).execute("create table t(x)").connection.close()
    assert _mode(raw) & 0o004  # other-readable


def test_group_memras_when_it_exists(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                     umask_000: None) -> None:
    other = next(g for g in grp.getgrall() if g.gr_gid != os.getegid())

    class _Group:
        gr_gid = other.gr_gid

    def getgrnam(name: str) -> _Group:
        assert name == "memras"
        return _Group()

    monkeypatch.setattr(store_files.grp, "getgrnam", getgrnam)
    if os.geteuid() != 0 and other.gr_gid not in os.getgroups():
        pytest.fail("run as root or as a member of a second group to test the chown")
    db = tmp_path / "memras.db"
    store = Store.open(db)
    try:
        store.set_cursor("test", "1")
        for path in (db, Path(f"{db}-wal"), Path(f"{db}-shm")):
            assert path.stat().st_gid == other.gr_gid, path
            assert _mode(path) == DATABASE_MODE
    finally:
        store.close()


def test_no_group_memras_means_our_group() -> None:
    # this machine's group database: memras's group exists only where it was created
    try:
        expected = grp.getgrnam("memras").gr_gid
    except KeyError:
        expected = os.getegid()
    assert database_group() == expected


def test_an_existing_database_keeps_the_mode_its_admin_chose(tmp_path: Path) -> None:
    db = tmp_path / "memras.db"
    Store.open(db).close()
    db.chmod(0o644)
    store = Store.open(db)
    try:
        store.set_cursor("test", "1")
        assert _mode(db) == 0o644
        assert _mode(Path(f"{db}-wal")) == 0o644  # side files follow the database
    finally:
        store.close()


def test_side_files_are_narrowed_to_the_database_mode(tmp_path: Path) -> None:
    db = tmp_path / "memras.db"
    secure_database_files(db)
    assert db.exists() and db.stat().st_size == 0 and _mode(db) == DATABASE_MODE
    journal = Path(f"{db}-journal")
    journal.write_bytes(b"")
    journal.chmod(0o666)
    secure_database_files(db)
    assert _mode(journal) == DATABASE_MODE


def test_a_directory_it_cannot_write_is_left_to_the_open_to_report(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-dir" / "memras.db"
    secure_database_files(missing)  # nothing to create in: no exception, nothing made
    assert not missing.exists()
