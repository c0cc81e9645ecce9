"""The lab's one rule for a test that cannot run: loud, and never a pass in CI."""

from __future__ import annotations

import os
import warnings

import pytest


def lab_unavailable(reason: str) -> None:
    """Fail under CI=true (CI installs what the lab needs), skip with a warning elsewhere."""
    message = f"LAB TEST NOT RUN: {reason}"
    if os.environ.get("CI") == "true":
        pytest.fail(message, pytrace=False)
    warnings.warn(message, stacklevel=3)
    pytest.skip(message)
