"""The SQLAlchemy-free summary read agrees with Store.summary, or declines."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from memras.records import ErrorType
from memras.store import Store, quick
from memras.store.migrations import LATEST_VERSION


@pytest.fixture
def store(sqlite_store: Store) -> Store:
    """the sqlite3 reader of the database file: SQLite only
    (the store's other behaviour runs on both dialects)."""
    return sqlite_store


def test_schema_version_matches_migrations() -> None:
    assert quick.SCHEMA_VERSION == LATEST_VERSION


def test_quick_summary_equals_store_summary(store: Store, make_event, tmp_path: Path) -> None:
    store.add_events([make_event(), make_event(count=3), make_event("B", location=(1, 0, 1, 2)),
                      make_event(kind=ErrorType.UNCORRECTED, location=(None,) * 4)])
    fast = quick.read_summary(str(tmp_path / "memras.db"))
    assert fast is not None and fast == store.summary()
    assert quick.read_summary(f"sqlite:///{tmp_path / 'memras.db'}") == fast


def test_quick_declines_what_it_cannot_answer(store: Store, tmp_path: Path) -> None:
    assert quick.read_summary(str(tmp_path / "absent.db")) is None
    assert quick.read_summary("postgresql://host/db") is None
    assert quick.read_summary("sqlite:///:memory:") is None
    (tmp_path / "junk.db").write_text("not a database")
    assert quick.read_summary(str(tmp_path / "junk.db")) is None
    db = sqlite3.connect(tmp_path / "memras.db")
    db.execute("DELETE FROM memras_schema WHERE version = ?", (LATEST_VERSION,))
    db.commit()
    db.close()
    assert quick.read_summary(str(tmp_path / "memras.db")) is None  # Store.open migrates


def test_cli_summary_does_not_import_sqlalchemy(store: Store, make_event,
                                                tmp_path: Path) -> None:
    store.add_events([make_event()])
    code = ("import sys; from memras.cli import main; "
            f"rc = main(['summary', '--db', {str(tmp_path / 'memras.db')!r}]); "
            "assert 'sqlalchemy' not in sys.modules, 'sqlalchemy imported'; sys.exit(rc)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "CPU_SrcID#0_MC#0_Chan#0_DIMM#0" in done.stdout
