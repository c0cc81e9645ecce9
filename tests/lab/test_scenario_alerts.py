"""Scenario c: thresholds and alerts with memras watch inside the guest.

Three CEs on one page cross ``[thresholds.page] ce = "3 / 24h"``; with ``[page]
action = "soft"`` memras soft-offlines the page in the guest's kernel
(HardwareCorrupted +4 kB), runs an exec hook with rasdaemon's trigger variables
and POSTs a signed ``memras.alert/v1`` webhook through the lab's guest forward
(10.0.2.100:8080) to a receiver on this host.
"""

from __future__ import annotations

import pytest

from memras.lab.guest import Lab
from memras.lab.scenarios import run_scenario
from memras.lab.scenarios import show_report as show

pytestmark = pytest.mark.lab


def test_page_threshold_soft_offlines_and_fires_hooks(lab: Lab) -> None:
    report = run_scenario(lab, "alerts", quick=True)
    print(show(report))
    print(f"alerts {report.facts.get('alerts')}; webhook {report.facts.get('webhook')}")
    assert report.ok, show(report)
    before, after = report.facts["hardware_corrupted_kb"]
    assert after == before + 4
    assert report.facts["exec_runs"] >= 1
    assert len(report.facts["webhook"]) == report.facts["exec_runs"]
    assert report.facts["exec_env"]["ADDRESS"]
