"""Scenario cxl-poison on the CXL lab guest (QEMU 10, Linux 6.12): poison injected over
QMP into mem0's online ram region and read from its poison list in the guest is stored
once with the kernel's HPA, ``memras watch`` hard-offlines that page once (the guest's
HardwareCorrupted and /proc/kpageflags say so; the kernel logs one memory_failure, which
memras knows as its own, not a UE), mem0's verdict cites cxl-poison in the watcher's event
log, and a second list read acts on nothing new.

Run alone (it boots its own guest): ``.venv/bin/pytest tests/lab/test_scenario_cxl_poison.py
-p no:cacheprovider -s``.
"""

from __future__ import annotations

import json

import pytest

from memras.lab.cxl import CxlLab
from memras.lab.scenarios import (
    cxl_poison,  # noqa: F401 (registers cxl-poison)
    run_scenario,
)
from memras.lab.scenarios import show_report as show
from tests.lab.test_cxl_boot import cxl_lab  # noqa: F401 (the booted CXL guest fixture)

pytestmark = pytest.mark.lab


@pytest.mark.timeout(900)  # boot ~40 s, the region ~30 s, the scenario ~90 s under TCG
def test_poison_in_an_online_region_leaves_service_once(cxl_lab: CxlLab) -> None:  # noqa: F811
    report = run_scenario(cxl_lab, "cxl-poison", quick=True)
    print(show(report))
    print("the kernel's cxl_poison line:", report.facts.get("raw"))
    assert report.ok, show(report)
    facts = report.facts
    (row,) = [r for r in facts["first"]["poison"] if r["dpa"] == facts["dpa"]]
    assert (row["hpa"], row["region"]) == (facts["hpa"], facts["region"])
    (page,) = facts["after"]["pages"]
    assert page["page"] == facts["page"] and page["outcome"] == "done"
    assert json.loads(page["steps"]) == [["hard", "done"]] and page["attempts"] == 1
    assert facts["after"]["hw_corrupted_kb"] - facts["before"]["hw_corrupted_kb"] == 4
    assert facts["after"]["kpageflags"] >> 19 & 1
    (verdict,) = facts["verdict_lines"]
    assert "dimm=label:mem0" in verdict and "rules=cxl-poison" in verdict
