"""Inside the guest, memras reads the real kernel exactly as util-linux and sysfs do."""

from __future__ import annotations

import pytest

from memras.lab.guest import Lab
from memras.lab.scenarios import run_scenario

pytestmark = pytest.mark.lab


def test_blocks_matches_lsmem_and_locate_names_block_zone_and_device(lab: Lab) -> None:
    report = run_scenario(lab, "parity", quick=True)
    assert report.ok, f"{report.error}\n{report.facts}"
    assert report.facts["memras_blocks"].split() == report.facts["lsmem"].split()
    locate = report.facts["locate"]
    assert "memory32" in locate and "Movable" in locate and "PNP0C80:00" in locate
