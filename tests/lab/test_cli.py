"""``memras lab`` commands against the session's guest, and their errors without one."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from memras.lab.guest import Lab

Cli = Callable[..., subprocess.CompletedProcess[str]]

pytestmark = pytest.mark.lab


def test_status_reports_the_running_guest(cli: Cli, lab: Lab, lab_state_dir: Path) -> None:
    lab.shutdown_connections()
    out = cli("lab", "status", "--json", state_dir=lab_state_dir)
    assert out.returncode == 0, out.stderr
    state = json.loads(out.stdout)
    assert state["running"] is True
    assert state["pid"] == lab.state.pid
    assert [d["id"] for d in state["dimms"]] == ["dimm0", "dimm1"]
    assert 0 < state["boot_seconds"] < 300


def test_shell_c_runs_in_the_guest_with_its_status(cli: Cli, lab: Lab, lab_state_dir: Path) -> None:
    lab.shutdown_connections()  # the console takes one client at a time
    out = cli("lab", "shell", "-c", "uname -r; exit 7", "--json",
                     state_dir=lab_state_dir)
    assert out.returncode == 7
    result = json.loads(out.stdout)
    assert result["status"] == 7
    assert result["output"].strip() == lab.state.kernel


def test_run_scenario_json(cli: Cli, lab: Lab, lab_state_dir: Path) -> None:
    lab.shutdown_connections()
    out = cli("lab", "run", "mce-sw", "--json", state_dir=lab_state_dir)
    report = json.loads(out.stdout)
    assert out.returncode == 0, report
    assert report["ok"] is True
    assert [s["name"] for s in report["steps"]][-1] == "dmesg and tracefs show it"


def test_unknown_scenario_is_one_clear_line(cli: Cli, tmp_path: Path) -> None:
    out = cli("lab", "run", "no-such", state_dir=tmp_path)
    assert out.returncode == 2
    assert out.stderr.count("\n") == 1
    assert "choose one of" in out.stderr and "replace-dimm" in out.stderr


def test_status_and_down_without_a_guest(cli: Cli, tmp_path: Path) -> None:
    status = cli("lab", "status", "--json", state_dir=tmp_path)
    assert json.loads(status.stdout)["running"] is False
    down = cli("lab", "down", "--json", state_dir=tmp_path)
    assert json.loads(down.stdout)["stopped"] is False
    shell = cli("lab", "shell", "-c", "true", state_dir=tmp_path)
    assert shell.returncode == 1 and "memras lab up" in shell.stderr


def test_missing_qemu_names_the_package(cli: Cli, tmp_path: Path) -> None:
    out = cli("lab", "up", "--json", state_dir=tmp_path, env={"PATH": str(tmp_path)})
    assert out.returncode == 1
    error = json.loads(out.stderr)
    assert error["error"] == "qemu-system-x86_64 not found"
    assert error["hint"] == "run: apt-get install qemu-system-x86"
