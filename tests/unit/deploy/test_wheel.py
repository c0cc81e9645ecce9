"""The package an SRE rolls out: the wheel ``python -m build`` makes, installed fresh
with pipx, carries no VM/lab dependency and runs (``--version``, ``demo --json``).

The lab half of the check (``memras lab run parity`` from such an install) is
tests/lab/test_deploy.py.
"""

from __future__ import annotations

import json
import subprocess
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from memras import __version__
from tests.unit.deploy.install import PipxInstall, build_wheel, pipx_install

pytest.importorskip("build", reason="build is in the test extra")
pytest.importorskip("pipx", reason="pipx is in the test extra")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_wheel(tmp_path_factory.mktemp("wheel"))


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PipxInstall]:
    yield pipx_install(wheel, tmp_path_factory.mktemp("pipx"))


def test_the_wheel_holds_the_three_packages_and_their_data(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    for needed in ("memras/cli/__init__.py", "memras/py.typed", "memras/tui/app.tcss",
                   "memras/plugins/backends/qemu.py", "memras/lab/workload.py",
                   "memras/watcher/notify.py"):
        assert needed in names, needed
    assert not [n for n in names if "__pycache__" in n or n.startswith("tests/")]
    assert f"memras-{__version__}.data/data/share/man/man1/memras.1" in names
    metadata = next(n for n in names if n.endswith(".dist-info/METADATA"))
    text = zipfile.ZipFile(wheel).read(metadata).decode()
    requires = [line for line in text.splitlines() if line.startswith("Requires-Dist:")]
    core = [r for r in requires if "extra ==" not in r]
    assert not [r for r in core if "qemu" in r.lower()], core
    assert any("qemu.qmp" in r and 'extra == "vm"' in r for r in requires), requires


def test_pipx_install_pulls_no_vm_dependency(installed: PipxInstall) -> None:
    held = installed.distributions()
    assert "memras" in held and "textual" in held
    assert "qemu.qmp" not in held


def test_pipx_installs_the_man_page(installed: PipxInstall) -> None:
    page = installed.home / "man" / "man1" / "memras.1"
    assert page.read_text().startswith('.TH MEMRAS "1"')


def test_the_installed_memras_runs(installed: PipxInstall, tmp_path: Path) -> None:
    version = subprocess.run([str(installed.memras), "--version"], capture_output=True,
                             text=True, timeout=120)
    assert version.returncode == 0, version.stderr
    assert version.stdout.strip() == f"memras {__version__}"

    demo = subprocess.run([str(installed.memras), "demo", "--json"], capture_output=True,
                          text=True, timeout=600, cwd=tmp_path, env=installed.env)
    assert demo.returncode == 0, demo.stderr
    report = json.loads(demo.stdout)
    assert report["failing_dimm"] and report["injected"] > 0
    # it ran the installed code, not this checkout (-c puts the cwd first: not here)
    where = subprocess.run([str(installed.venv / "bin" / "python"), "-c",
                            "import memras; print(memras.__file__)"],
                           capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert where.stdout.startswith(str(installed.venv)), where.stdout


def test_the_vm_extra_is_one_pipx_inject_away(installed: PipxInstall, tmp_path: Path) -> None:
    without = subprocess.run([str(installed.memras), "vm", "list", "--qmp",
                              str(tmp_path / "qmp.sock")], capture_output=True, text=True,
                             timeout=120)
    assert without.returncode == 2
    assert "install memras[vm]" in without.stderr and "pipx inject memras qemu.qmp" in \
        without.stderr
    installed.pipx("inject", "memras", "qemu.qmp")
    with_it = subprocess.run([str(installed.memras), "vm", "list", "--qmp",
                              str(tmp_path / "qmp.sock")], capture_output=True, text=True,
                             timeout=120)
    # now it gets as far as connecting: no QEMU listens there
    assert with_it.returncode != 0 and "cannot connect to QMP" in with_it.stderr, with_it.stderr
