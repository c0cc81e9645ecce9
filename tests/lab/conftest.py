"""One real guest per test session, shared by every lab test that leaves it as it found it.

A lab test that cannot run (no QEMU, no busybox-static, no kernel package) is a
loud skip on a developer machine and a FAILURE under CI=true: CI installs what
the lab needs, so a missing piece there is a broken pipeline, not a reason to
pass. The guest is shut down when the session ends, also after Ctrl-C.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from memras.lab.guest import Lab, checkout_root
from memras.lab.initramfs import BUSYBOX
from tests.lab.loud import lab_unavailable

# A fixed path under /tmp that the guest must still see although /tmp is a tmpfs
# there: the stand-in for a CI checkout cloned under /tmp.
TMP_PROBE_DIR = Path("/tmp/memras-lab-keep-probe")
MEMRAS = checkout_root() / ".venv" / "bin" / "memras"


def _check_prerequisites() -> None:
    if shutil.which("qemu-system-x86_64") is None:
        lab_unavailable("qemu-system-x86_64 not found: apt-get install qemu-system-x86")
    if not BUSYBOX.is_file():
        lab_unavailable(f"{BUSYBOX} not found: apt-get install busybox-static")


@pytest.fixture(scope="session")
def tmp_probe() -> tuple[Path, str]:
    """A marker file under /tmp with a fresh token the guest must read back."""
    TMP_PROBE_DIR.mkdir(exist_ok=True)
    token = uuid.uuid4().hex
    (TMP_PROBE_DIR / "token").write_text(token)
    return TMP_PROBE_DIR, token


def memras_cli(*args: str, state_dir: Path, timeout: float = 600,
               env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run this checkout's ``memras`` with the lab state in ``state_dir``."""
    full_env = {**os.environ, "MEMRAS_LAB_STATE": str(state_dir), **(env or {})}
    return subprocess.run([str(MEMRAS), *args], capture_output=True, text=True,
                          timeout=timeout, env=full_env, check=False)


@pytest.fixture(scope="session")
def cli() -> Callable[..., subprocess.CompletedProcess[str]]:
    """:func:`memras_cli`, for tests."""
    return memras_cli


@pytest.fixture(scope="session")
def lab_state_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("lab-state")


@pytest.fixture(scope="package")
def lab(lab_state_dir: Path, tmp_probe: tuple[Path, str]) -> Iterator[Lab]:
    """The guest ``memras lab up`` boots, shared by the lab tests; ``lab down`` ends it
    right after the last of them, so no guest (or workload left in it) runs beside the
    rest of the suite.

    Going through the CLI means every session also proves ``up`` and ``down``.
    """
    _check_prerequisites()
    up = memras_cli("lab", "up", "--json", "--keep", str(tmp_probe[0]), state_dir=lab_state_dir)
    if up.returncode != 0:
        if "apt-get" in up.stderr:
            lab_unavailable(up.stderr.strip())
        pytest.fail(f"memras lab up failed: {up.stderr.strip()}", pytrace=False)
    state = json.loads(up.stdout)
    print(f"\nlab guest booted in {state['boot_seconds']:.1f} s under {state['accel']}")
    guest = Lab.attach(lab_state_dir)
    try:
        yield guest
    finally:
        guest.shutdown_connections()
        down = memras_cli("lab", "down", "--json", state_dir=lab_state_dir, timeout=60)
        if down.returncode != 0 or not json.loads(down.stdout).get("stopped"):
            Lab.attach(lab_state_dir).shutdown()
            pytest.fail(f"memras lab down did not stop the guest: {down.stdout}{down.stderr}")


# Scenarios that leave the shared guest with a poisoned page (6.1 refuses to unpoison
# after a real memory failure) run last, so no later scenario's workload or offline
# meets it in a DIMM it replaces.
RUN_LAST = ("test_scenario_ingest.py",)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Move RUN_LAST scenarios to the end of the lab tests (which stay together)."""
    last = [i for i in items if i.nodeid.split("::")[0].endswith(RUN_LAST)]
    if not last:
        return
    rest = [i for i in items if i not in last]
    lab = [n for n, i in enumerate(rest) if i.nodeid.startswith("tests/lab/")]
    at = lab[-1] + 1 if lab else len(rest)
    items[:] = rest[:at] + last + rest[at:]
