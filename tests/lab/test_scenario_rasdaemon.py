"""Scenario f: interoperation with Debian's real rasdaemon 0.6.8 inside the guest.

rasdaemon records injected CEs: its trace instance is created with buffer_percent 0
before it starts (0.6.8 never lowers the 6.1 watermark of 50 %, and a reader already
asleep keeps the watermark it slept with; measured: 40 of 40 recorded, against 0 of 40
when the instance was fixed up after start); ``memras import rasdaemon`` reads the
same rows; and ``ras-mc-ctl`` reads the rasdaemon tables memras itself writes.
"""

from __future__ import annotations

import pytest

from memras.lab.guest import Lab
from memras.lab.scenarios import run_scenario
from memras.lab.scenarios import show_report as show

pytestmark = pytest.mark.lab


def test_rasdaemon_db_both_ways(lab: Lab) -> None:
    report = run_scenario(lab, "rasdaemon", quick=True)
    print(show(report))
    print(report.facts.get("ras_mc_ctl_summary"))
    assert report.ok, show(report)
    assert report.facts["memras_imported"] == report.facts["rasdaemon_rows"] > 0
