"""contrib/systemd/: the units systemd would load, the hardening they promise, and the
memras command lines they run.

``systemd-analyze verify`` checks each unit as systemd would load it; its only change
here is ExecStart's /usr/local/bin/memras (where ``pipx install --global`` puts it),
pointed at this test's memras so verify finds an executable. scripts/test.sh installs
Debian's systemd for systemd-analyze; where it cannot run the test is skipped, saying
why.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from memras.cli import build_parser

UNITS = Path(__file__).resolve().parents[3] / "contrib" / "systemd"
INSTALLED = "/usr/local/bin/memras"
MAX_EXPOSURE = 4.0  # systemd-analyze security: "OK" is below 5; these units measure ~3


def directives(unit: Path) -> dict[str, list[str]]:
    """KEY -> values, every section together (units repeat keys, so not configparser)."""
    out: dict[str, list[str]] = {}
    for raw in unit.read_text().splitlines():
        line = raw.strip()
        if line and not line.startswith(("#", ";", "[")):
            key, _, val = line.partition("=")
            out.setdefault(key, []).append(val)
    return out


def _analyze() -> str:
    exe = shutil.which("systemd-analyze")
    if exe is None:
        pytest.skip("systemd-analyze is not installed (scripts/test.sh installs Debian's "
                    "systemd package)")
    probe = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=60)
    if probe.returncode != 0:
        pytest.skip(f"systemd-analyze cannot run in this container: {probe.stderr.strip()}")
    return exe


@pytest.fixture(scope="module")
def staged(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The units, ExecStart pointed at this interpreter's memras (and nothing else)."""
    memras = Path(sys.executable).parent / "memras"
    if not memras.is_file():
        pytest.skip(f"no memras console script beside {sys.executable}")
    out = tmp_path_factory.mktemp("units")
    for unit in UNITS.glob("*.service"):
        text = unit.read_text()
        assert INSTALLED in text
        (out / unit.name).write_text(text.replace(INSTALLED, str(memras)))
    return out


@pytest.mark.parametrize("name", ["memras-watch.service", "memras-labels.service"])
def test_systemd_analyze_verify(name: str, staged: Path) -> None:
    exe = _analyze()
    done = subprocess.run([exe, "verify", "--man=no", str(staged / name)],
                          capture_output=True, text=True, timeout=120)
    # an unknown or misspelt key is only a warning (exit 0): no output is the pass
    assert done.returncode == 0, done.stdout + done.stderr
    assert str(staged) not in done.stdout + done.stderr, done.stdout + done.stderr


@pytest.mark.parametrize("name", ["memras-watch.service", "memras-labels.service"])
def test_exposure_stays_low(name: str, staged: Path) -> None:
    exe = _analyze()
    done = subprocess.run([exe, "security", "--offline=yes", str(staged / name)],
                          capture_output=True, text=True, timeout=120)
    found = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", done.stdout)
    if found is None:
        pytest.skip(f"systemd-analyze security --offline is not available: {done.stderr[-200:]}")
    assert float(found.group(1)) <= MAX_EXPOSURE, done.stdout


def test_the_watcher_unit_is_a_hardened_notify_service() -> None:
    d = directives(UNITS / "memras-watch.service")
    assert d["Type"] == ["notify"]
    assert int(d["WatchdogSec"][0]) >= 10
    assert d["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    assert d["ProtectSystem"] == ["strict"]
    assert d["ReadWritePaths"] == ["/var/lib/memras"]
    assert set(d["CapabilityBoundingSet"][0].split()) == {"CAP_SYSLOG", "CAP_SYS_ADMIN"}
    assert d["NoNewPrivileges"] == ["yes"]
    # what would break the watcher: a read-only /sys, no /dev/kmsg
    for key in ("ProtectKernelTunables", "ProtectKernelLogs", "PrivateDevices"):
        assert key not in d, f"{key} stops the watcher (see the comment in the unit)"


def test_the_labels_unit_runs_once_before_the_watcher() -> None:
    d = directives(UNITS / "memras-labels.service")
    assert d["Type"] == ["oneshot"]
    assert "memras-watch.service" in d["Before"][0]
    assert d["CapabilityBoundingSet"] == [""]


@pytest.mark.parametrize(("name", "command"), [("memras-watch.service", "watch"),
                                               ("memras-labels.service", "labels")])
def test_the_command_lines_parse(name: str, command: str) -> None:
    argv = shlex.split(directives(UNITS / name)["ExecStart"][0])
    assert argv[0] == INSTALLED
    args = build_parser(argv[1:]).parse_args(argv[1:])
    assert args.command == command
