"""memras/cli/batch.py: several command lines in one Python give what each gives alone.

The lab scenarios read their results through it (one TCG start-up instead of several), so
each command's stdout, stderr and exit status must be exactly those of a separate
``memras`` process. Run here on this machine against files under tmp_path only."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest


def _alone(argv: list[str], cwd: Path) -> tuple[int, str, str]:
    done = subprocess.run([sys.executable, "-m", "memras", *argv], capture_output=True,
                          text=True, cwd=cwd, timeout=120)
    return done.returncode, done.stdout, done.stderr


def _batched(commands: list[list[str]], cwd: Path) -> list[tuple[int, str, str]]:
    spec, out = cwd / "spec.json", cwd / "out"
    spec.write_text(json.dumps(commands))
    subprocess.run([sys.executable, "-m", "memras.cli.batch", str(spec), str(out)],
                   check=True, cwd=cwd, timeout=300)
    return [(int((out / f"{i}.status").read_text()), (out / f"{i}.out").read_text(),
             (out / f"{i}.err").read_text()) for i in range(len(commands))]


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store with errors on one DIMM: a simulated server's, written once."""
    base = tmp_path_factory.mktemp("batch")
    root, db = base / "server" / "root", base / "demo.db"
    for argv in (["sim", "create", "skylake-2s", str(base / "server")],
                 ["--root", str(root), "sim", "inject", "P1-DIMMA1", "--count", "30"],
                 ["--root", str(root), "--db", str(db), "watch", "--once"]):
        subprocess.run([sys.executable, "-m", "memras", *argv], check=True,
                       capture_output=True, timeout=120)
    return db


def test_each_command_prints_and_exits_as_it_would_alone(tmp_path: Path,
                                                          demo_db: Path) -> None:
    db = str(demo_db)
    commands = [
        ["--db", db, "--json", "errors"],
        ["--db", db, "--json", "verdicts"],
        ["--db", db, "errors", "--dimm", "P1-DIMMA7"],  # exit 2 with the closest names
        ["--db", str(tmp_path / "missing.db"), "--json", "summary"],  # no database: exit 1
        ["--version"],  # argparse's SystemExit
        ["--db", db, "audit", "verify", "--json"],
    ]
    batched = _batched(commands, tmp_path)
    statuses = [status for status, _, _ in batched]
    assert statuses[2] == 2 and statuses[3] != 0 and statuses[4] == 0, statuses
    assert json.loads(batched[0][1]), "no errors listed: the fixture stored none"
    for argv, together in zip(commands, batched, strict=True):
        assert together == _alone(argv, tmp_path), argv
