"""One real guest per test session, shared by every lab test that leaves it as it found it.

A lab test that cannot run (no QEMU, no busybox-static, no kernel package) is a
loud skip on a developer machine and a FAILURE under CI=true: CI installs what
the lab needs, so a missing piece there is a broken pipeline, not a reason to
pass. The guest is shut down when the session ends, also after Ctrl-C.
"""

from __future__ import annotations

import os
import shutil
import uuid
import warnings
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from memras.errors import LabError
from memras.lab.guest import Lab, LabConfig
from memras.lab.initramfs import BUSYBOX

# A fixed path under /tmp that the guest must still see although /tmp is a tmpfs
# there: the stand-in for a CI checkout cloned under /tmp.
TMP_PROBE_DIR = Path("/tmp/memras-lab-keep-probe")


def lab_unavailable(reason: str) -> None:
    """Fail under CI, skip loudly elsewhere."""
    message = f"LAB TEST NOT RUN: {reason}"
    if os.environ.get("CI") == "true":
        pytest.fail(message, pytrace=False)
    warnings.warn(message, stacklevel=2)
    pytest.skip(message)


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


@pytest.fixture(scope="session")
def lab(tmp_path_factory: pytest.TempPathFactory, tmp_probe: tuple[Path, str]) -> Iterator[Lab]:
    """A booted guest for the whole session (boot time is in ``lab.state.boot_seconds``)."""
    _check_prerequisites()
    config = LabConfig()
    config = replace(config, keep=(*config.keep, tmp_probe[0]))
    guest = Lab(config, state_dir=tmp_path_factory.mktemp("lab"))
    try:
        seconds = guest.boot()
    except LabError as exc:
        guest.shutdown()
        if "not found" in exc.msg or "apt" in (exc.hint or ""):
            lab_unavailable(f"{exc.msg} ({exc.hint})")
        raise
    print(f"\nlab guest booted in {seconds:.1f} s under {guest.state.accel}")
    try:
        yield guest
    finally:
        guest.shutdown()
