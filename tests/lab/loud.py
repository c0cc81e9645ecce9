"""The lab's one rule for a test that cannot run: loud, and never a pass in CI."""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from typing import TypeVar

import pytest

from memras.errors import LabError
from memras.lab.guest import Lab
from memras.lab.initramfs import BUSYBOX

L = TypeVar("L", bound=Lab)


def lab_unavailable(reason: str) -> None:
    """Fail under CI=true (CI installs what the lab needs), skip with a warning elsewhere."""
    message = f"LAB TEST NOT RUN: {reason}"
    if os.environ.get("CI") == "true":
        pytest.fail(message, pytrace=False)
    warnings.warn(message, stacklevel=3)
    pytest.skip(message)


def booted(lab: L, what: str) -> Iterator[L]:
    """A module fixture's body for a guest of its own: boot ``lab`` (loud when the lab's
    packages are missing), yield it, shut it down."""
    if not BUSYBOX.is_file():
        lab_unavailable(f"{BUSYBOX} not found: apt-get install busybox-static")
    try:
        seconds = lab.boot()
    except LabError as exc:
        if "apt-get" in exc.msg:
            lab_unavailable(exc.msg)
        raise
    print(f"\n{what} booted in {seconds:.1f} s ({lab.state.kernel if lab.state else '?'})")
    try:
        yield lab
    finally:
        lab.shutdown()
