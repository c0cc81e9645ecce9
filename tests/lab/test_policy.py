"""Capacity on demand on a real kernel: ``memras watch`` with a ``[capacity]`` policy.

The shared guest's dimm1 (two 128 MiB blocks) is the standby memory, offline at the
start. A checksumming workload (memras/lab/workload.py) drives MemAvailable below
``on_available_below``; the policy inside the watcher onlines dimm1 Movable; the
workload runs on for longer than ``hold_s`` and the policy keeps the memory; after
the workload stops and MemAvailable stayed above ``off_available_above`` for
``hold_s`` (10 s), it offlines dimm1 again. Each move is one audit row (in order,
hash chain verified) and one exec-hook run; nothing else moves (no flapping), and
the offline left MemAvailable above the reserve. Thresholds are set from the idle
guest's MemAvailable, so the scenario does not depend on what else runs in it.
"""

from __future__ import annotations

import pytest

from memras.lab.guest import Lab
from memras.lab.scenarios import run_scenario
from memras.lab.scenarios import show_report as show

pytestmark = pytest.mark.lab


def test_capacity_policy_onlines_under_pressure_and_gives_back(lab: Lab) -> None:
    report = run_scenario(lab, "capacity-policy", quick=True)
    print(show(report))
    facts = {k: v for k, v in report.facts.items() if k != "watch_output"}
    print(f"capacity-policy figures ({report.seconds:.0f} s): {facts}")
    assert report.ok, show(report)
    assert [row["action"] for row in report.facts["audit"]] == [
        "capacity.policy.online", "capacity.policy.offline"]
    assert report.facts["workload"]["errors"] == 0
    assert report.facts["available_after_offline_mib"] >= report.facts["on_below_mib"]
