"""Scenario e: ``memras replace`` when things go wrong on the real kernel.

(i) The kernel refuses to offline (memory-notifier-error-inject: -EBUSY on
MEM_GOING_OFFLINE): memras retries, rolls back, exits 1, the memory stays online
Movable and the audit says so. (ii) memras dies (exit 137, as kill -9) right after
the kernel offlined the first block: the database already records that block, and
``--abort`` brings it back. Both use dimm0 and leave it as it was.
"""

from __future__ import annotations

import pytest

from memras.lab.guest import Lab
from memras.lab.scenarios import run_scenario
from memras.lab.scenarios import show_report as show

pytestmark = pytest.mark.lab


def test_refused_offline_is_retried_and_rolled_back(lab: Lab) -> None:
    report = run_scenario(lab, "replace-offline-refused", quick=True)
    print(show(report))
    assert report.ok, show(report)
    facts = report.facts
    assert facts["exit_status"] == 1 and facts["state"] == "rolled-back"
    assert "Injecting error (-16) to MEM_GOING_OFFLINE" in facts["dmesg"]
    first = facts["audit_offline"]["blocks"][0]
    assert first["attempts"] == 3 and first["error"].startswith("EBUSY")
    assert set(facts["zones"].values()) == {"Movable"}
    injector = lab.check("cat /sys/kernel/debug/notifier-error-inject/memory/actions/"
                         "MEM_GOING_OFFLINE/error").strip()
    assert injector == "0"


def test_crash_mid_offline_is_recorded_and_aborted(lab: Lab) -> None:
    report = run_scenario(lab, "replace-crash-abort", quick=True)
    print(show(report))
    assert report.ok, show(report)
    facts = report.facts
    first = facts["blocks"][0]
    assert facts["exit_status"] == 137
    assert facts["kernel_after_crash"][first] == "offline"
    assert facts["db_after_crash"][first] in ("offlining", "offline")
    assert facts["abort_state"] == "rolled-back"
    assert set(facts["zones"].values()) == {"Movable"}
    assert set(facts["db_after_abort"].values()) == {"online"}
