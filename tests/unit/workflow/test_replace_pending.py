"""A replacement in progress is never hidden (issue 16): `status` names it, `replace
--resume --dry-run` shows what resuming would do (it raised AttributeError, exit 70),
and a `replace` that stops half-way ends with where the memory is and what to run."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from memras.cli import main
from memras.errors import StoreError
from memras.host import Host
from memras.sim import profiles
from memras.store import Store
from memras.workflow import runner
from memras.workflow.pending import block_span, in_progress, kernel_where, where_text
from memras.workflow.states import State

DIMM = "PNP0C80:00"
BLOCKS = list(range(32, 36))  # the qemu-guest profile's first hot-pluggable module
FAST = ["--backoff", "0.01", "--max-attempts", "3", "--reserve", "256M", "--yes"]


def crashed_server(tmp_path: Path, point: str) -> tuple[Path, Path]:
    """A qemu-guest server whose `memras replace` died (kill -9) at ``point``."""
    srv = profiles.create("qemu-guest", tmp_path / "root")
    db = tmp_path / "m.db"
    proc = subprocess.run(
        [sys.executable, "-m", "memras", "--root", str(srv.root), "--db", str(db), "replace",
         DIMM, *FAST], env={**os.environ, "MEMRAS_TEST_CRASH_AT": point},
        capture_output=True, text=True, timeout=120)
    assert proc.returncode == 137, proc.stderr
    return srv.root, db


def rows(db: Path) -> list[tuple]:
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT * FROM memras_replacement_block ORDER BY id").fetchall() + \
            conn.execute("SELECT id, state, current_step FROM memras_replacement").fetchall()


def test_block_span_and_where_text() -> None:
    assert block_span([35, 32, 33, 34, 40]) == "memory32–memory35, memory40"
    assert block_span([7]) == "memory7" and block_span([]) == "none"
    old = [(32, "offline"), (33, "offlining"), (34, "online"), (35, "online")]
    assert where_text(State.PAGES_ISOLATED, old, []) == \
        "2 of 4 blocks of the old module are offline: memory32–memory33"
    assert where_text(State.REMOVED, old, []).startswith("the old module is removed")


def test_midway_crash_is_in_progress_and_status_says_so(tmp_path: Path, capsys) -> None:
    root, db = crashed_server(tmp_path, "block:33:offline:after")
    with Store.open_readonly(db) as store:
        pending = in_progress(store, Host(root))
    assert pending is not None
    assert (pending.id, pending.state, pending.current_step) == (1, "pages-isolated",
                                                                 "offline_blocks")
    assert pending.blocks_offline == [32, 33] and pending.blocks_total == 4
    assert pending.plan[0] == "offline_blocks" and pending.plan[-1] == "close"
    assert pending.abort_step == "rollback" and pending.driven is False
    assert "replacement #1 of" in pending.line() and "at offline_blocks" in pending.line()
    assert "2 of 4 blocks offline (memory32–memory33)" in pending.line()
    assert "run `memras replace --resume` (or --abort)" in pending.line()

    assert main(["--root", str(root), "--db", str(db), "--json", "status"]) == 0
    data = json.loads(capsys.readouterr().out)["replacement"]
    assert data["id"] == 1 and data["at"] == "offline_blocks"
    assert data["blocks_offline"] == [32, 33] and data["resume"] == "memras replace --resume"
    assert main(["--root", str(root), "--db", str(db), "status"]) == 0
    out = capsys.readouterr().out
    first = " ".join(out.split("\n\n")[0].split())  # the wrapped paragraph, unwrapped
    assert first.startswith("replacement #1 of ") and "at offline_blocks" in first
    assert "`memras replace --resume` (or --abort)" in first
    assert all(len(line) <= 80 for line in out.splitlines()[:3])


def test_status_without_a_replacement_says_nothing_of_one(tmp_path: Path, capsys) -> None:
    srv = profiles.create("qemu-guest", tmp_path / "root")
    db = tmp_path / "m.db"
    Store.open(db).close()
    assert main(["--root", str(srv.root), "--db", str(db), "--json", "status"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["replacement"] is None and data["replacement_unknown"] is None
    assert main(["--root", str(srv.root), "--db", str(db), "status"]) == 0
    assert "replacement" not in capsys.readouterr().out


def test_resume_dry_run_shows_the_plan_and_changes_nothing(tmp_path: Path, capsys) -> None:
    root, db = crashed_server(tmp_path, "step:remove_module:before")
    before = rows(db)
    host = Host(root)
    states = [host.memory.state(b) for b in BLOCKS]
    assert states == ["offline"] * 4
    assert main(["--root", str(root), "--db", str(db), "replace", "--resume", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "dry run: resume replacement #1 of " in out
    assert "stopped during remove_module" in out
    assert "4 of 4 blocks of the old module are offline: memory32–memory35" in out
    assert "plan: remove_module → insert_module → online_blocks → verify → close" in out
    assert main(["--root", str(root), "--db", str(db), "--json", "replace", "--abort",
                 "--dry-run"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["action"] == "abort" and plan["replacement"]["abort_step"] == "rollback"
    assert rows(db) == before and [host.memory.state(b) for b in BLOCKS] == states


def test_resume_dry_run_without_a_replacement_is_exit_2(tmp_path: Path, capsys) -> None:
    srv = profiles.create("qemu-guest", tmp_path / "root")
    db = tmp_path / "m.db"
    Store.open(db).close()
    code = main(["--root", str(srv.root), "--db", str(db), "replace", "--resume", "--dry-run"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("memras: no replacement in progress; nothing to resume")
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_a_database_failure_midway_says_where_the_memory_is(
        tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    """The database locked after offlining: the error names the offline blocks (read
    from the kernel, the database being unreadable) and the commands to go on or undo."""
    srv = profiles.create("qemu-guest", tmp_path / "root")
    db = tmp_path / "m.db"

    def locked(rep: runner.Replacement) -> None:
        raise StoreError("cannot write: database is locked",
                         hint="another memras may hold the lock; retry")

    def unreadable(rep: runner.Replacement) -> str:
        raise StoreError("cannot read: database is locked")

    monkeypatch.setitem(runner.ACTIONS, "remove_module", locked)
    monkeypatch.setattr(runner.Replacement, "where_is_memory", unreadable)
    code = main(["--root", str(srv.root), "--db", str(db), "replace", DIMM, *FAST,
                 "--on-failure", "leave"])
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert code == 1
    assert "replacement #1 stopped:" in err and "database is locked" in err
    assert "4 of 4 memory blocks of the module's range are offline (memory32–memory35)" in err
    assert "read from the kernel" in err
    assert [Host(srv.root).memory.state(b) for b in BLOCKS] == ["offline"] * 4  # as told
    assert err.endswith("then continue with `memras replace --resume` or roll back with "
                        "`memras replace --abort`)")


def test_kernel_where_counts_offline_and_removed_blocks(tmp_path: Path) -> None:
    srv = profiles.create("qemu-guest", tmp_path / "root")
    host = Host(srv.root)
    text = kernel_where(host, [*BLOCKS, 999])
    assert text.startswith("0 of 5 memory blocks of the module's range are offline")
    assert "1 are gone (module removed)" in text


def test_ctrl_c_outside_the_offlining_says_where_and_what_to_run(
        tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C while the module is being removed (not the offlining, which cancels and
    rolls back): exit 130, and the line says which blocks are offline and what to run;
    status then shows the replacement in progress at that step."""
    srv = profiles.create("qemu-guest", tmp_path / "root")
    db = tmp_path / "m.db"

    def interrupted(rep: runner.Replacement) -> None:
        raise KeyboardInterrupt

    monkeypatch.setitem(runner.ACTIONS, "remove_module", interrupted)
    code = main(["--root", str(srv.root), "--db", str(db), "replace", DIMM, *FAST])
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert code == 130
    assert err.startswith("memras: replacement #1 stopped: interrupted; 4 of 4 blocks of the "
                          "old module are offline: memory32–memory35")
    assert "continue with `memras replace --resume` or roll back with " in err
    assert main(["--root", str(srv.root), "--db", str(db), "--json", "status"]) == 0
    pending = json.loads(capsys.readouterr().out)["replacement"]
    assert pending["at"] == "remove_module" and pending["blocks_offline"] == BLOCKS
