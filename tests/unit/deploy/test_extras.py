"""The core install carries no lab/VM dependency: qemu.qmp is the [vm] extra.

Each check runs in a subprocess where ``qemu`` cannot be imported (``sys.modules``
holds None for it, as a production server without the extra would behave), so
the test also holds on a developer machine that has the extra installed.
"""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from memras.lab import actions
from memras.lab.guest import checkout_root

ROOT = Path(__file__).resolve().parents[3]
WITHOUT_QEMU = "import sys; sys.modules['qemu'] = None; "


def _run(code: str, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", WITHOUT_QEMU + code, *argv],
                          capture_output=True, text=True, timeout=120, cwd=ROOT)


def test_core_dependencies_name_no_qemu_and_the_extras_do() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert not [d for d in project["dependencies"] if d.lower().startswith("qemu")]
    extras = project["optional-dependencies"]
    assert any(d.startswith("qemu.qmp") for d in extras["vm"])
    assert "memras[vm]" in extras["lab"]


@pytest.mark.parametrize("module", [
    "memras.qemu.qmp", "memras.capacity.vm", "memras.lab.actions", "memras.lab.scenarios",
    "memras.plugins.backends.qemu", "memras.cli.vm", "memras.cli.lab",
])
def test_modules_that_drive_qemu_import_without_the_extra(module: str) -> None:
    done = _run(f"import {module}; print('ok')")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


@pytest.mark.parametrize("argv", [["--help"], ["watch", "--help"], ["import", "--help"],
                                  ["tui", "--help"], ["vm", "--help"]])
def test_commands_load_without_the_extra(argv: list[str]) -> None:
    done = _run("from memras.cli import main; raise SystemExit(main(sys.argv[1:]))", *argv)
    assert done.returncode == 0, done.stderr
    assert "usage: memras" in done.stdout


def test_a_qmp_connection_without_the_extra_is_one_line_naming_it(tmp_path: Path) -> None:
    done = _run("from memras.cli import main; raise SystemExit(main(sys.argv[1:]))",
                "vm", "list", "--qmp", str(tmp_path / "qmp.sock"))
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1, done.stderr
    assert "install memras[vm]" in done.stderr
    assert "Traceback" not in done.stderr


def test_the_qemu_backend_without_the_extra_names_it() -> None:
    code = ("from memras.qemu.qmp import qmp_library\n"
            "try:\n    qmp_library()\nexcept Exception as exc:\n"
            "    print(type(exc).__name__, exc)\n")
    done = _run(code)
    assert done.stdout.startswith("UsageError "), done.stdout + done.stderr
    assert "memras[vm]" in done.stdout


def test_the_guest_runs_the_memras_this_process_runs() -> None:
    """Not a checkout's .venv/bin/memras: this interpreter and this memras's import root,
    which a pipx install has too (tests/lab/test_deploy.py runs one in a guest)."""
    argv = actions.memras_argv()
    assert argv.endswith(" -m memras")
    assert f"PYTHONPATH={checkout_root()} " in argv
    assert actions.python_argv() == sys.executable
    import memras

    assert checkout_root() == Path(memras.__file__).resolve().parent.parent
    # the sh line, run here, is this memras
    done = subprocess.run(f"{argv} --version", shell=True, capture_output=True, text=True,
                          timeout=120, cwd="/")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"memras {memras.__version__}")
