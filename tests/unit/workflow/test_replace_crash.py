"""kill -9 at every crash point of `memras replace`, then `--resume`.

The first run lists every point the workflow passes (MEMRAS_TEST_CRASH_LOG); then for
each point a fresh server is replaced with MEMRAS_TEST_CRASH_AT=<point> (os._exit(137)),
and the invariant is checked on the dead process's leftovers: no block of the DIMM is
offline unless the persisted state records it. `--resume` must then end CLOSED (or
cleanly ROLLED_BACK), with every block online Movable and the audit chain intact.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys

import pytest

from memras.sim import actions, profiles

DIMM = "PNP0C80:00"
FAST = ["--backoff", "0.01", "--max-attempts", "3", "--reserve", "256M", "--yes"]


def memras(root, db, *args: str, env: dict[str, str] | None = None):
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "memras", "--root", str(root), "--db", str(db),
                           *args], capture_output=True, text=True, env=full_env, timeout=120)


def recorded_blocks(db) -> dict[int, str]:
    with sqlite3.connect(db) as conn:
        return dict(conn.execute("SELECT block, status FROM memras_replacement_block "
                                 "WHERE role='old'").fetchall())


def assert_invariant(host, db, blocks) -> None:
    recorded = recorded_blocks(db)
    for index in blocks:
        if index in host.memory.indexes() and host.memory.read(index).state == "offline":
            assert recorded.get(index) in ("offlining", "offline", "onlining"), index


def crash_points(tmp_path) -> list[str]:
    srv = profiles.create("qemu-guest", tmp_path / "probe")
    log = tmp_path / "points.log"
    result = memras(srv.root, tmp_path / "probe.db", "replace", DIMM, *FAST,
                    env={"MEMRAS_TEST_CRASH_LOG": str(log)})
    assert result.returncode == 0, result.stderr
    return log.read_text().split()


def test_kill_at_every_point_then_resume(tmp_path) -> None:
    points = crash_points(tmp_path)
    assert "step:offline_blocks:before" in points and "block:35:offline:after" in points
    for n, point in enumerate(points):
        srv = profiles.create("qemu-guest", tmp_path / f"r{n}")
        host, db = srv.host(), tmp_path / f"r{n}.db"
        blocks = list(range(32, 36))
        crashed = memras(srv.root, db, "replace", DIMM, *FAST,
                         env={"MEMRAS_TEST_CRASH_AT": point})
        assert crashed.returncode == 137, (point, crashed.stderr)
        assert_invariant(host, db, blocks)
        resumed = memras(srv.root, db, "replace", "--resume", "--json")
        assert resumed.returncode in (0, 1), (point, resumed.stderr)
        assert resumed.stdout.strip(), (point, resumed.returncode, resumed.stderr)
        state = json.loads(resumed.stdout)["state"]
        assert state in ("closed", "rolled-back"), (point, state)
        for index in blocks:
            b = host.memory.read(index)
            assert (b.state, b.zone) == ("online", "Movable"), (point, index)
        verify = memras(srv.root, db, "audit", "verify")
        assert verify.returncode == 0, (point, verify.stdout)


def test_kill_during_rollback_then_resume_finishes_the_rollback(tmp_path) -> None:
    srv = profiles.create("qemu-guest", tmp_path / "root")
    db = tmp_path / "m.db"
    actions.set_busy(srv.root, 34, 1000)
    crashed = memras(srv.root, db, "replace", DIMM, *FAST,
                     env={"MEMRAS_TEST_CRASH_AT": "block:33:rollback:before"})
    assert crashed.returncode == 137
    assert_invariant(srv.host(), db, [32, 33, 34, 35])
    resumed = memras(srv.root, db, "replace", "--resume", "--json")
    assert json.loads(resumed.stdout)["state"] == "rolled-back", resumed.stderr
    assert all(srv.host().memory.read(b).zone == "Movable" for b in range(32, 36))


def test_cli_refuses_without_terminal_and_dry_run_changes_nothing(tmp_path) -> None:
    srv = profiles.create("qemu-guest", tmp_path / "root")
    db = tmp_path / "m.db"
    refused = memras(srv.root, db, "replace", DIMM)
    assert refused.returncode == 3 and "no terminal" in refused.stderr  # refused
    assert "Traceback" not in refused.stderr
    dry = memras(srv.root, db, "replace", DIMM, "--dry-run", "--json")
    report = json.loads(dry.stdout)
    assert report["dry_run"] and {c["name"] for c in report["checks"]} >= {"mapping", "zones"}
    assert all(srv.host().memory.read(b).state == "online" for b in range(32, 36))
    unknown = memras(srv.root, db, "replace", "nope", "--yes")
    assert unknown.returncode == 2 and "no DIMM called 'nope'" in unknown.stderr


@pytest.mark.parametrize("sql", [
    "UPDATE memras_audit SET payload=replace(payload,'preflight passed','ok!') WHERE seq=2",
    "DELETE FROM memras_audit WHERE seq=3",
])
def test_audit_verify_cli_reports_tampering(tmp_path, sql: str) -> None:
    srv = profiles.create("qemu-guest", tmp_path / "root")
    db = tmp_path / "m.db"
    assert memras(srv.root, db, "replace", DIMM, *FAST).returncode == 0
    assert memras(srv.root, db, "audit", "verify").returncode == 0
    report = memras(srv.root, db, "audit", "report", "1", "--format", "markdown")
    assert "# Memory replacement report #1" in report.stdout and "closed" in report.stdout
    with sqlite3.connect(db) as conn:
        conn.execute(sql)
    bad = memras(srv.root, db, "audit", "verify", "--json")
    assert bad.returncode == 1
    problems = json.loads(bad.stdout)["problems"]
    assert problems and problems[0]["kind"] in ("edited", "deleted")
