"""The CXL lab boots bookworm-backports' generic 6.12 build, never a PREEMPT_RT or cloud
flavour: apt lists them side by side, and a plain sort put "-rt-" last on a fresh
machine, whose CXL regions then never got a DAX device (every CXL scenario failed)."""

from __future__ import annotations

import pytest

from memras.lab.cxl import GENERIC_612, _newest


@pytest.mark.parametrize(("version", "generic"), [
    ("6.12.95+deb12-amd64", True),
    ("6.12.9+bpo-amd64", True),
    ("6.12.95+deb12-rt-amd64", False),
    ("6.12.95+deb12-cloud-amd64", False),
    ("6.1.0-28-amd64", False),
])
def test_only_the_generic_flavour(version: str, generic: bool) -> None:
    assert bool(GENERIC_612.fullmatch(version)) is generic


def test_the_newest_compares_numbers_as_numbers() -> None:
    assert _newest(["6.12.9+bpo-amd64", "6.12.95+deb12-amd64", "6.12.10+deb12-amd64"]) \
        == "6.12.95+deb12-amd64"
    assert _newest([]) is None
