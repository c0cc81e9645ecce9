"""Build the wheel an SRE installs and pipx-install it somewhere temporary.

Shared by tests/unit/deploy/test_wheel.py (``--version``, ``demo --json``) and
tests/lab/test_deploy.py (``memras lab run parity`` from that install). The wheel is
built from a copy of what the package is made of, never in the shared checkout (a
setuptools build writes build/ and *.egg-info beside the sources).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
PACKAGE_FILES = ("pyproject.toml", "README.md", "memras", "tui", "plugins", "contrib/man")
TIMEOUT_S = 900  # a cold pip cache downloads every dependency


def build_wheel(workdir: Path) -> Path:
    """``python -m build --wheel`` (isolated, as a packager runs it); the .whl path."""
    src = workdir / "src"
    src.mkdir(parents=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in PACKAGE_FILES:
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=ignore)
        else:
            shutil.copy2(path, src / name)
    out = workdir / "dist"
    _run([sys.executable, "-m", "build", "--wheel", "--outdir", str(out), str(src)])
    wheels = sorted(out.glob("memras-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


@dataclass(frozen=True)
class PipxInstall:
    home: Path

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "PIPX_HOME": str(self.home), "PIPX_BIN_DIR": str(self.bin_dir),
                "PIPX_MAN_DIR": str(self.home / "man")}

    @property
    def bin_dir(self) -> Path:
        return self.home / "bin"

    @property
    def memras(self) -> Path:
        return self.bin_dir / "memras"

    @property
    def venv(self) -> Path:
        return self.home / "venvs" / "memras"

    def pipx(self, *args: str) -> subprocess.CompletedProcess[str]:
        return _run([sys.executable, "-m", "pipx", *args], env=self.env)

    def distributions(self) -> set[str]:
        """What the install's venv holds (lower-case distribution names)."""
        done = _run([str(self.venv / "bin" / "python"), "-c",
                     "import importlib.metadata as m; "
                     "print('\\n'.join(d.metadata['Name'] for d in m.distributions()))"])
        return {line.strip().lower() for line in done.stdout.splitlines() if line.strip()}


def pipx_install(wheel: Path, home: Path) -> PipxInstall:
    """``pipx install WHEEL`` with its home, bin and man directories under ``home``."""
    install = PipxInstall(home)
    install.pipx("install", "--python", sys.executable, str(wheel))
    return install


def _run(argv: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    # cwd "/": `python -c` would put the current directory, the checkout, first on sys.path
    done = subprocess.run(argv, capture_output=True, text=True, timeout=TIMEOUT_S, env=env,
                          cwd="/")
    if done.returncode != 0:
        raise AssertionError(f"{' '.join(argv)} exited {done.returncode}:\n"
                             f"{done.stdout[-2000:]}\n{done.stderr[-4000:]}")
    return done
