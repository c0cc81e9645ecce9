"""``memras doctor`` on a simulated server, and the watcher's quick_check at start."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from memras.cli import main
from memras.sim import profiles
from memras.store import Store


@pytest.fixture
def server(tmp_path: Path) -> tuple[Path, Path]:
    root = tmp_path / "root"
    profiles.create("demo", root)
    db = tmp_path / "memras.db"
    Store.open(db).close()
    db.chmod(0o640)
    return root, db


def _doctor(capsys: pytest.CaptureFixture[str], root: Path, db: Path, *extra: str
            ) -> tuple[int, dict]:
    code = main(["--root", str(root), "--db", str(db), "doctor", "--json", *extra])
    return code, json.loads(capsys.readouterr().out)


def _by_name(report: dict) -> dict[str, dict]:
    return {f'{c["area"]}/{c["name"]}': c for c in report["checks"]}


def _corrupt(db: Path) -> None:
    """Garbage over a b-tree page past the schema: the file still opens, a read of that
    table or PRAGMA quick_check finds it."""
    conn = sqlite3.connect(db)  # enough rows for more than a few pages
    with conn:
        conn.execute("CREATE TABLE filler (x TEXT)")
        conn.executemany("INSERT INTO filler VALUES (?)", [("x" * 900,)] * 200)
    conn.close()  # the last connection out checkpoints the WAL into the file
    assert not Path(f"{db}-wal").exists()
    size = db.stat().st_size
    with db.open("r+b") as f:
        f.seek(size - 3 * 4096 + 100)
        f.write(b"\xff" * 900)


def test_a_healthy_simulated_server_is_all_ok(capsys: pytest.CaptureFixture[str],
                                              server: tuple[Path, Path]) -> None:
    root, db = server
    code, report = _doctor(capsys, root, db)
    assert code == 0 and report["ok"] is True and report["problems"] == 0
    checks = _by_name(report)
    for name in ("database/file", "database/schema", "database/quick_check", "sources/kmsg",
                 "sources/tracefs", "sources/edac", "kernel/memory hotplug",
                 "kernel/soft_offline", "config/file"):
        assert checks[name]["status"] == "ok", checks[name]
    assert "0640" in checks["database/file"]["detail"]
    assert main(["--root", str(root), "--db", str(db), "doctor"]) == 0
    lines = capsys.readouterr().out.splitlines()
    # a check per line that starts with its status (a long detail wraps under its column)
    firsts = [line for line in lines if not line.startswith(" ")]
    assert lines[-1] == "all ok" and len(firsts) == len(report["checks"]) + 1
    assert [line.split()[0] for line in firsts[:-1]] == [c["status"] for c in report["checks"]]


def test_a_damaged_database_fails_doctor_and_stops_the_watcher(
        capsys: pytest.CaptureFixture[str], server: tuple[Path, Path]) -> None:
    root, db = server
    _corrupt(db)
    code, report = _doctor(capsys, root, db)
    assert code == 1 and report["problems"] >= 1
    check = _by_name(report)["database/quick_check"]
    assert check["status"] == "FAIL" and ".recover" in check["detail"]
    code = main(["--root", str(root), "--db", str(db), "watch", "--once"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1
    assert len(err) == 1 and "database is damaged" in err[0] and "backup" in err[0]


def test_a_world_writable_or_missing_database_is_a_problem(
        capsys: pytest.CaptureFixture[str], server: tuple[Path, Path], tmp_path: Path) -> None:
    root, db = server
    db.chmod(0o666)
    code, report = _doctor(capsys, root, db)
    assert code == 1 and "chmod o-w" in _by_name(report)["database/file"]["detail"]
    code, report = _doctor(capsys, root, tmp_path / "absent.db")
    assert code == 1 and _by_name(report)["database/file"]["status"] == "FAIL"
    assert not (tmp_path / "absent.db").exists()  # doctor creates nothing


def test_a_missing_kernel_feature_says_what_it_costs(capsys: pytest.CaptureFixture[str],
                                                     server: tuple[Path, Path]) -> None:
    root, db = server
    (root / "sys/devices/system/memory/soft_offline_page").unlink()
    code, report = _doctor(capsys, root, db)
    assert code == 1
    assert "page offlining is off" in _by_name(report)["kernel/soft_offline"]["detail"]


def test_hooks_are_checked_and_no_secret_is_printed(capsys: pytest.CaptureFixture[str],
                                                    server: tuple[Path, Path],
                                                    tmp_path: Path) -> None:
    root, db = server
    script = tmp_path / "trigger.sh"
    script.write_text("#!/bin/sh\nexit 0\n")
    script.chmod(0o644)  # not executable
    config = tmp_path / "memras.toml"
    config.write_text(
        "[alerts.hooks.webhook]\n"
        'url = "https://ops:hunter2-SECRET@hooks.example/x?token=TOKEN-SECRET"\n'
        'secret = "HMAC-SECRET"\n'
        "[alerts.hooks.exec]\n"
        f'command = ["{script}", "--from-memras"]\n')
    code = main(["--root", str(root), "--db", str(db), "--config", str(config), "doctor"])
    out = capsys.readouterr().out
    assert code == 1
    assert "SECRET" not in out
    lines = out.splitlines()
    at = next(i for i, line in enumerate(lines) if " exec " in line)
    following = lines[at + 1:]
    check = [lines[at], *following[:next((i for i, line in enumerate(following)
                                           if not line.startswith(" ")), len(following))]]
    # the check's first line starts with its status; its detail may wrap onto more lines
    assert check[0].startswith("FAIL") and "chmod +x" in " ".join(x.strip() for x in check)
    script.chmod(0o755)
    code, report = _doctor(capsys, root, db, "--config", str(config))
    assert code == 0, report
    assert "SECRET" not in json.dumps(report)
    assert {"hooks/webhook", "hooks/exec"} <= set(_by_name(report))


def test_a_bad_config_is_one_failed_check(capsys: pytest.CaptureFixture[str],
                                          server: tuple[Path, Path], tmp_path: Path) -> None:
    root, db = server
    config = tmp_path / "memras.toml"
    config.write_text("[nonsense]\nx = 1\n")
    code, report = _doctor(capsys, root, db, "--config", str(config))
    assert code == 1
    check = _by_name(report)["config/file"]
    assert check["status"] == "FAIL" and "[nonsense] is not a known table" in check["detail"]

