"""The demo: the seeded story, and the scripted run from errors to a verified replacement."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

from memras.sim.demo import FAILING_DIMM, run_scripted, story_schedule


def test_story_is_seeded_and_ends_in_an_uncorrected_error_on_the_failing_dimm() -> None:
    story = story_schedule(7)
    assert story == story_schedule(7) and story != story_schedule(8)
    fault = [i for i in story if i.failing]
    assert fault[-1].ue and not any(i.ue for i in fault[:-1])
    assert len({i.row for i in fault}) == 1 and len({i.column for i in fault}) == len(fault)
    gaps = [b.at_s - a.at_s for a, b in zip(fault, fault[1:-1], strict=False)]
    assert gaps[0] > gaps[-1]  # accelerating
    noise = [i for i in story if not i.failing]
    assert noise and all(not i.ue for i in noise) and len(noise) < len(fault)


def test_scripted_demo_goes_from_errors_to_a_verified_replacement(tmp_path: Path) -> None:
    out = io.StringIO()
    summary = run_scripted(out, directory=tmp_path / "demo", speed=15)
    text = out.getvalue()
    assert "verdict P1-DIMMC1: replace-now" in text
    assert "CRITICAL ue" in text and "alerts" in text
    assert "ok   verify: verified" in text and "hash chain verified" in text
    assert summary["failing_dimm"] == FAILING_DIMM
    assert summary["replacement"]["state"] == "closed"
    assert summary["replacement"]["new_serial"].startswith("NEW-")
    assert summary["audit"]["ok"] is True
    assert [s["step"] for s in summary["replacement"]["steps"]][-1] == "close"
    # a given directory is kept, ready for `memras --root … --db …`
    assert (tmp_path / "demo" / "root" / ".memras-sim").is_dir()
    assert (tmp_path / "demo" / "memras.db").is_file()


def test_memras_demo_without_a_terminal_plays_the_script_as_json(tmp_path: Path) -> None:
    keep = tmp_path / "kept"
    proc = subprocess.run([sys.executable, "-m", "memras", "demo", "--json", "--speed", "15",
                           "--keep", str(keep)], capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["verdict"]["verdict"] == "replace-now"
    assert data["replacement"]["state"] == "closed"
    status = subprocess.run([sys.executable, "-m", "memras", "--root", str(keep / "root"),
                             "--db", str(keep / "memras.db"), "status", "--json"],
                            capture_output=True, text=True, timeout=60)
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["memory"]["offline_bytes"] == 0
