"""Kernel-to-stored latency of live CEs: memras watch in the guest stores every CE the
kernel logged exactly once: 50 spaced ones, 20/s for 30 s, and a steady stream (target
1,000/s, 60 s).

No timing is asserted (the figures go to docs/performance.md through
bench/ingest_latency_lab.py); they are printed. What must hold on any machine: the
guest kernel logged every injected CE (the injector waits for it) and the store holds
each of them once.
"""

from __future__ import annotations

import pytest

from memras.lab.guest import Lab
from memras.lab.scenarios import run_scenario
from memras.lab.scenarios import show_report as show

pytestmark = pytest.mark.lab


@pytest.mark.timeout(1200)  # ~4-5 min, up to 5 more waiting out the steady phase's backlog
def test_every_logged_ce_is_stored_once(lab: Lab) -> None:
    report = run_scenario(lab, "ingest-latency")
    print(show(report))
    assert report.ok, show(report)
    phases = report.facts["phases"]
    assert set(phases) == {"lat-singles", "lat-paced", "lat-steady"}
    for name, phase in phases.items():
        assert phase["injected"] > 0, name
        assert phase["kernel_logged"] == phase["injected"], (name, phase)
        assert phase["stored_twice_or_more"] == 0, (name, phase)
        if name == "lat-steady":
            # overload: on an idle host the guest kernel logs ~540 CEs/s, faster than its
            # watcher stores; what was not stored is a figure (docs/performance.md), and
            # a known open finding of issue 14, not asserted away here
            print(f"steady phase: {phase['missing']} of {phase['injected']} not stored")
            continue
        assert phase["stored"] == phase["injected"], (name, phase)
        assert phase["missing"] == 0, (name, phase)
    assert phases["lat-singles"]["injected"] == 50
