"""Every read command works as an unprivileged user on a root-owned 0644 database, and
changes nothing: not the file's bytes or mtime, no -wal/-shm/journal beside it (issue 17).

The database is the scripted demo's (errors, verdicts, alerts, a closed replacement and
its audit rows), made by root, then read by ``nobody`` through ``setpriv`` (or
``runuser``) in a subprocess — the real thing, not a mocked permission check. Needs root
(to switch users) and a checkout and venv that ``nobody`` can read; when either is
missing the module is skipped with the reason in capitals, never silently.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
SIDE_FILES = ("-wal", "-shm", "-journal")


def _as_nobody() -> list[str]:
    if shutil.which("setpriv"):
        return ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]
    if shutil.which("runuser"):
        return ["runuser", "-u", "nobody", "--"]
    return []


def _loud_skip(why: str) -> None:
    pytest.skip(f"UNPRIVILEGED READ TESTS NOT RUN: {why.upper()}")


@dataclass
class World:
    base: Path  # 0755, root's
    root: Path  # the simulated server
    db: Path
    dimm: str  # the demo's failing DIMM, by slot name
    address: int  # an address on it


def _run(world: World, *argv: str, db: Path | None = None, user: bool = True,
         timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(world.base),
           "LANG": "C.UTF-8", "PYTHONDONTWRITEBYTECODE": "1"}
    cmd = [sys.executable, "-m", "memras", "--root", str(world.root), "--db",
           str(db or world.db), *argv]
    return subprocess.run([*(_as_nobody() if user else []), *cmd], capture_output=True,
                          text=True, timeout=timeout, env=env, cwd=world.base)


def _state(db: Path) -> tuple[str, int, list[str]]:
    return (hashlib.sha256(db.read_bytes()).hexdigest(), db.stat().st_mtime_ns,
            sorted(p.name for p in db.parent.iterdir()))


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    if os.geteuid() != 0:
        _loud_skip("they need root to create the database and switch to nobody")
    if not _as_nobody():
        _loud_skip("neither setpriv nor runuser is installed")
    probe = subprocess.run([*_as_nobody(), sys.executable, "-c", "import memras.cli"],
                           capture_output=True, text=True, cwd="/", timeout=60)
    if probe.returncode != 0:
        _loud_skip(f"nobody cannot run {sys.executable} with memras from {REPO} (make the "
                   f"checkout and venv world-readable, e.g. chmod o+rx on each parent): "
                   f"{probe.stderr.strip().splitlines()[-1:]}")
    from memras.sim.demo import run_scripted

    base = Path(tempfile.mkdtemp(prefix="memras-unpriv-", dir="/tmp"))
    base.chmod(0o755)
    try:
        summary = run_scripted(io.StringIO(), directory=base / "demo", speed=15, quiet=True)
        assert summary["replacement"]["state"] == "closed"
        demo = base / "demo"
        for path in demo.iterdir():  # the demo's files as an 0644 install leaves them
            if path.is_file():
                path.chmod(0o644)
        db = demo / "memras.db"
        assert [p for p in demo.iterdir() if p.name.startswith("memras.db")] == [db]
        with sqlite3.connect(f"{db.as_uri()}?mode=ro", uri=True) as conn:
            label, address = conn.execute(
                "SELECT label, address FROM memras_error WHERE address IS NOT NULL "
                "ORDER BY id LIMIT 1").fetchone()
        yield World(base, demo / "root", db, summary["failing_dimm"], address)
    finally:
        shutil.rmtree(base, ignore_errors=True)


# (argv, a check of the JSON output); each as nobody, each must exit 0 and leave the
# database as it was.
READS: list[tuple[str, list[str]]] = [
    ("errors", ["errors", "--json"]),
    ("summary", ["summary", "--json"]),
    ("summary --dimm", ["summary", "--json", "--dimm", "{dimm}"]),
    ("verdicts", ["verdicts", "--json"]),
    ("verdicts --history", ["verdicts", "--json", "--history", "{dimm}"]),
    ("alerts list", ["alerts", "list", "--json", "--state", "all"]),
    ("status", ["status", "--json"]),
    ("dimms", ["dimms", "--json"]),
    ("locate", ["locate", "--json", "{address}"]),
    ("audit list", ["audit", "list", "--json"]),
    ("audit show", ["audit", "show", "1", "--json"]),
    ("audit report", ["audit", "report", "1", "--json"]),
    ("doctor", ["doctor", "--json"]),
    ("evaluate --memras", ["evaluate", "--json", "--memras", "{db}", "--tickets",
                           "{tickets}"]),
]


def _argv(world: World, argv: list[str]) -> list[str]:
    tickets = world.base / "tickets.csv"
    if not tickets.exists():
        tickets.write_text("host,dimm,failure_time\n")
        tickets.chmod(0o644)
    return [a.format(dimm=world.dimm, address=hex(world.address), db=world.db,
                     tickets=tickets) for a in argv]


@pytest.mark.parametrize(("name", "argv"), READS, ids=[r[0] for r in READS])
def test_a_read_command_works_as_nobody_and_changes_nothing(world: World, name: str,
                                                            argv: list[str]) -> None:
    before = _state(world.db)
    result = _run(world, *_argv(world, argv))
    assert result.returncode == 0, f"{name}: {result.stderr}"
    assert "Traceback" not in result.stderr
    data = json.loads(result.stdout)
    assert data, f"{name} printed nothing: {result.stdout!r}"
    assert _state(world.db) == before, f"{name} changed the database or its directory"
    if name == "errors":
        assert len(data) >= 10 and all("time" in e for e in data)
    if name == "alerts list":
        assert all(a["schema"] == "memras.alert/v1" for a in data)
    if name == "audit list":
        assert len(data) >= 8  # the replacement's steps
    if name == "doctor":
        checks = {f'{c["area"]}/{c["name"]}': c for c in data["checks"]}
        assert data["ok"] and checks["database/quick_check"]["status"] == "ok"
        assert "need root" in checks["permissions/user"]["detail"]
    if name == "dimms":
        assert world.dimm in {d["name"] for d in data["dimms"]}


def test_audit_verify_as_nobody_reads_and_creates_no_table(world: World) -> None:
    before = _state(world.db)
    result = _run(world, "audit", "verify", "--json")
    assert "Traceback" not in result.stderr
    assert "readonly database" not in result.stderr + result.stdout
    data = json.loads(result.stdout)
    assert data["rows"] >= 8
    assert _state(world.db) == before


def test_summary_as_nobody_in_a_world_writable_directory_creates_no_side_file(
        world: World, tmp_path: Path) -> None:
    """A reader who could create -wal/-shm (a 1777 directory) still creates none:
    SQLite's mode=ro alone would, and leave them behind (Store.open_readonly)."""
    shared = world.base / "shared"
    shared.mkdir(mode=0o777, exist_ok=True)
    shared.chmod(0o1777)
    db = shared / "copy.db"
    shutil.copy(world.db, db)
    db.chmod(0o644)
    before = _state(db)
    for argv in (["summary", "--json"], ["errors", "--json"], ["summary", "--json",
                                                               "--dimm", world.dimm]):
        result = _run(world, *argv, db=db)
        assert result.returncode == 0, result.stderr
    assert _state(db) == before
    result = _run(world, "summary", "--json", db=db, user=False)  # and as root
    assert result.returncode == 0, result.stderr
    assert _state(db) == before


def test_a_read_only_directory_is_read_as_well(world: World) -> None:
    """A 0555 directory and a 0444 file: nobody cannot create -shm there (SQLite's mode=ro
    alone fails: "attempt to write a readonly database"); root could (it bypasses the
    mode), and creates nothing either."""
    ro = world.base / "ro"
    ro.mkdir(exist_ok=True)
    db = ro / "memras.db"
    shutil.copy(world.db, db)
    db.chmod(0o444)
    ro.chmod(0o555)
    try:
        before = _state(db)
        for user in (True, False):
            result = _run(world, "errors", "--json", db=db, user=user)
            assert result.returncode == 0, result.stderr
            assert len(json.loads(result.stdout)) >= 10
        assert _state(db) == before
    finally:
        ro.chmod(0o755)


def test_a_live_writers_rows_are_seen_by_nobody(world: World) -> None:
    """While a writer holds the database open its -wal and -shm exist (root's, 0644): the
    unprivileged reader reads through them, read-only, and sees the uncheckpointed row."""
    live = world.base / "live"
    live.mkdir(mode=0o755, exist_ok=True)
    db = live / "memras.db"
    shutil.copy(world.db, db)
    db.chmod(0o644)
    writer = sqlite3.connect(db)
    try:
        writer.execute("PRAGMA journal_mode=WAL")
        writer.execute("PRAGMA wal_autocheckpoint=0")
        count = writer.execute("SELECT count(*) FROM memras_error").fetchone()[0]
        writer.execute("DELETE FROM memras_error WHERE id = (SELECT max(id) FROM memras_error)")
        writer.commit()
        for suffix in ("-wal", "-shm"):
            Path(f"{db}{suffix}").chmod(0o644)
        result = _run(world, "errors", "--json", db=db)
        assert result.returncode == 0, result.stderr
        assert len(json.loads(result.stdout)) == count - 1  # the delete, still in the WAL
    finally:
        writer.close()


def test_an_unreadable_database_is_one_line_that_says_what_to_do(world: World) -> None:
    closed = world.base / "closed"
    closed.mkdir(mode=0o755, exist_ok=True)
    db = closed / "memras.db"
    shutil.copy(world.db, db)
    db.chmod(0o600)
    result = _run(world, "summary", db=db)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("memras: "), result.stderr
    assert "Traceback" not in result.stderr



TUI_VIEW = """
import sys
from datetime import UTC, datetime
from memras import views
from memras.tui.app import MemrasApp
app = MemrasApp(sys.argv[1], sys.argv[2])
store = app.open_store()
assert store is not None, app.store_note
data = views.dashboard(app.host, store, datetime.now(UTC))
print(len(data.dimms), len(data.alerts), sum(1 for e in views.events_after(store, None, 50)))
"""


def test_the_tuis_views_open_and_read_as_nobody(world: World) -> None:
    """The TUI's store (app.open_store) is read-only: the dashboard, its alerts and the
    event feed read as nobody; only the wizard and alert acks open for writing."""
    before = _state(world.db)
    result = subprocess.run([*_as_nobody(), sys.executable, "-c", TUI_VIEW, str(world.root),
                             str(world.db)], capture_output=True, text=True, timeout=120,
                            cwd=world.base, env={"PATH": os.environ.get("PATH", ""),
                                                 "HOME": str(world.base)})
    assert result.returncode == 0, result.stderr
    dimms, alerts, events = map(int, result.stdout.split())
    assert dimms >= 4 and alerts >= 1 and events >= 10
    assert _state(world.db) == before
