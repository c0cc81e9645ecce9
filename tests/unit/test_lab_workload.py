"""The lab's checksumming workload (memras/lab/workload.py) run on this machine as a plain
process: it touches no kernel file, only its own buffer and a status file in tmp_path."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

from memras.lab.scenarios.workload import WORKLOAD_SCRIPT


def _start(status: Path, mib: int, *extra: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, WORKLOAD_SCRIPT, "--mib", str(mib),
                             "--status", str(status), *extra])


def _wait_for(status: Path, key: str, timeout_s: float = 30) -> dict[str, object]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if status.exists():
            data = json.loads(status.read_text())
            if data.get(key):
                return dict(data)
        time.sleep(0.05)
    raise AssertionError(f"no status with {key} within {timeout_s} s")


def test_a_term_during_the_fill_still_ends_in_a_final_verification_pass(
        tmp_path: Path) -> None:
    # Under TCG the fill takes tens of seconds; a TERM in it used to kill the process
    # silently (default action: the handler was installed after the fill).
    status = tmp_path / "wl.json"
    proc = _start(status, 400)
    time.sleep(0.2)  # the interpreter is up, the fill is not done
    assert not status.exists(), "the fill finished too fast to test a TERM inside it"
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=120) == 0
    final = json.loads(status.read_text())
    assert final["final"] is True
    assert final["errors"] == 0


def test_a_refill_request_is_served_and_the_data_stays_right(tmp_path: Path) -> None:
    status = tmp_path / "wl.json"
    proc = _start(status, 8, "--pause", "0.001", "--interval", "0.05")
    try:
        _wait_for(status, "iterations")
        proc.send_signal(signal.SIGUSR1)
        _wait_for(status, "refills")
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
    final = json.loads(status.read_text())
    assert (final["final"], final["errors"], final["refills"]) == (True, 0, 1)
