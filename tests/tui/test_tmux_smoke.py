"""`memras demo` in a real terminal (tmux): the dashboard shows, a DIMM label shows, q quits.

tmux is required in CI (CI=true: a missing tmux fails); elsewhere the test skips and
says why.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

SESSION_SIZE = ("120", "40")


def require_tmux() -> str:
    tmux = shutil.which("tmux")
    if tmux is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("tmux is not installed; CI must install it for the terminal smoke test")
        pytest.skip("SKIPPED LOUDLY: tmux is not installed, the real-terminal smoke test "
                    "did not run")
    return tmux


def capture(tmux: str, session: str) -> str:
    return subprocess.run([tmux, "capture-pane", "-p", "-t", session], capture_output=True,
                          text=True, check=True).stdout


def wait_for_text(tmux: str, session: str, needle: str, timeout_s: float = 30) -> str:
    deadline = time.monotonic() + timeout_s
    screen = ""
    while time.monotonic() < deadline:
        screen = capture(tmux, session)
        if needle in screen:
            return screen
        time.sleep(0.3)
    raise AssertionError(f"{needle!r} never appeared; the pane shows:\n{screen}")


def keys(tmux: str, session: str, *names: str) -> None:
    subprocess.run([tmux, "send-keys", "-t", session, *names], check=True)


def test_memras_demo_in_a_real_terminal(tmp_path: Path) -> None:
    tmux = require_tmux()
    session = f"memras-smoke-{uuid.uuid4().hex[:8]}"
    keep = tmp_path / "demo"
    done = tmp_path / "exit-status"
    # COLUMNS/LINES from the test runner's environment would override the pane's size
    command = (f"env -u COLUMNS -u LINES {sys.executable} -m memras demo --keep {keep}; "
               f"echo $? > {done}; sleep 5")
    subprocess.run([tmux, "new-session", "-d", "-s", session, "-x", SESSION_SIZE[0],
                    "-y", SESSION_SIZE[1], command], check=True)
    # a detached session may start at the server's default size; make it 120x40
    subprocess.run([tmux, "resize-window", "-t", session, "-x", SESSION_SIZE[0],
                    "-y", SESSION_SIZE[1]], capture_output=True)
    try:
        screen = wait_for_text(tmux, session, "CPU_SrcID#0_MC#0_Chan#2_DIMM#0")
        assert "memras" in screen and "DEMO (simulated server)" in screen
        keys(tmux, session, "Down", "Down", "r")  # the third DIMM: the one the story breaks
        screen = wait_for_text(tmux, session, "Type the slot label P1-DIMMC1")
        assert "PASS  zones" in screen and "Preflight checks" in screen
        keys(tmux, session, "Escape")  # stop at the confirmation: nothing is changed
        wait_for_text(tmux, session, "ROLLED BACK")
        keys(tmux, session, "Escape")
        wait_for_text(tmux, session, "Open alerts")
        keys(tmux, session, "q")
        deadline = time.monotonic() + 20
        while not done.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert done.exists(), "memras demo did not quit on q:\n" + capture(tmux, session)
        assert done.read_text().strip() == "0"
        assert "is kept in" in capture(tmux, session)
    finally:
        subprocess.run([tmux, "kill-session", "-t", session], capture_output=True)
