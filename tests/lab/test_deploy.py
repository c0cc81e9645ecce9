"""A pipx-installed memras drives the lab: ``memras lab run parity`` from a fresh pipx
install of the built wheel (plus ``pipx inject memras qemu.qmp``, the [vm] extra) runs
the installed memras inside the guest, not a checkout's .venv (memras_argv: this
interpreter and this import root).

The install lives in the probe directory the session guest keeps visible under its
/tmp tmpfs, as a real one (/opt/pipx for ``pipx install --global``, ~/.local for a
user's) is visible through the guest's 9p root.
"""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

from memras.lab.guest import Lab
from tests.unit.deploy.install import build_wheel, pipx_install

pytestmark = pytest.mark.lab


def test_parity_from_a_pipx_install(lab: Lab, lab_state_dir: Path, tmp_path: Path,
                                    tmp_probe: tuple[Path, str]) -> None:
    pytest.importorskip("pipx", reason="pipx is in the test extra")
    home = tmp_probe[0] / f"pipx-{uuid.uuid4().hex[:8]}"
    try:
        installed = pipx_install(build_wheel(tmp_path), home)
        installed.pipx("inject", "memras", "qemu.qmp")
        python = installed.venv / "bin" / "python"

        # the guest sees the install and imports memras from it
        lab.shutdown_connections()
        where = lab.check(f"cd / && {shlex.quote(str(python))} -c "
                          "'import memras; print(memras.__file__)'", timeout=120)
        assert where.strip().startswith(str(installed.venv)), where

        lab.shutdown_connections()  # the console takes one client at a time
        done = subprocess.run([str(installed.memras), "lab", "run", "parity", "--json"],
                              capture_output=True, text=True, timeout=1200, cwd=tmp_path,
                              env={**installed.env, "MEMRAS_LAB_STATE": str(lab_state_dir)})
        report = json.loads(done.stdout)
        assert done.returncode == 0 and report["ok"], report
        assert [s["ok"] for s in report["steps"]] == [True] * len(report["steps"])
    finally:
        shutil.rmtree(home, ignore_errors=True)
