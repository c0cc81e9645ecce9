"""``memras import`` that stops early says what it committed, and a re-run is safe."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import memras.store.store as store_module
import memras.watcher.importing as importing
from memras.cli import main
from memras.store import Store

LINE = ("rasdaemon-1234 [000] ..... {ts:.6f}: mc_event: 1 Corrected error: memory read error "
        "on DIMM_A{n} (mc:0 location:0:{n}:-1 address:0x{addr:08x} grain:32 "
        "syndrome:0x00000000 area:DRAM socket:0 rank:0)")
ROWS = 60
BATCH = 10
BOOT = "2026-01-01T00:00:00+00:00"


@pytest.fixture
def trace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(importing, "BATCH_EVENTS", BATCH)
    monkeypatch.setattr(store_module, "SQLITE_BUSY_TIMEOUT_MS", 100)  # a lock fails fast
    path = tmp_path / "trace.txt"
    path.write_text("".join(LINE.format(ts=100.0 + i, n=i % 4, addr=0x1000_0000 + 0x1000 * i)
                            + "\n" for i in range(ROWS)))
    return path


def _after_batches(monkeypatch: pytest.MonkeyPatch, n: int,
                   then: Callable[[], None]) -> None:
    """Let ``n`` batches commit, then call ``then`` before the next one."""
    original = Store.add_events
    calls = {"n": 0}

    def add_events(self: Store, *args: Any, **kwargs: Any) -> Any:
        if calls["n"] == n:
            then()
        calls["n"] += 1
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Store, "add_events", add_events)


def _import(db: Path, trace: Path, *extra: str) -> int:
    return main(["--db", str(db), *extra, "import", "trace", str(trace), "--boot-time", BOOT])


def test_a_lock_part_way_reports_what_was_committed_and_a_rerun_completes(
        tmp_path: Path, trace: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "m.db"
    Store.open(db).close()
    holder = sqlite3.connect(db, isolation_level=None)

    def lock() -> None:  # another writer takes the database and keeps it
        holder.execute("BEGIN EXCLUSIVE")

    with monkeypatch.context() as patch:
        _after_batches(patch, 2, lock)
        code = _import(db, trace, "--json")
    out = json.loads(capsys.readouterr().out)
    assert code == 1
    assert out["complete"] is False and out["rerun_safe"] is True
    assert out["committed"] == 2 * BATCH  # the two whole batches, nothing of the third
    assert "locked" in out["reason"]
    holder.execute("ROLLBACK")
    holder.close()

    assert _import(db, trace, "--json") == 0
    again = json.loads(capsys.readouterr().out)
    assert again["inserted"] == ROWS - 2 * BATCH and again["duplicates"] == 2 * BATCH
    clean = tmp_path / "clean.db"
    assert _import(clean, trace) == 0
    capsys.readouterr()
    with Store.open_readonly(db) as done, Store.open_readonly(clean) as reference:
        assert done.count() == reference.count() == ROWS
        assert [(e.raw, e.label) for e in done.errors()] == \
            [(e.raw, e.label) for e in reference.errors()]


def test_an_interrupted_import_says_so_in_text(tmp_path: Path, trace: Path,
                                               monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "m.db"

    def interrupt() -> None:
        raise KeyboardInterrupt

    _after_batches(monkeypatch, 3, interrupt)
    code = _import(db, trace)
    out = capsys.readouterr().out.splitlines()
    assert code == 130
    assert out[0] == "import stopped early: interrupted"
    assert out[1] == f"{3 * BATCH} new rows were committed before it stopped"
    assert out[2].startswith("re-running the same import is safe")
