"""Scenario cxl-events on the CXL lab guest (QEMU 10, Linux 6.12): general media, DRAM,
memory-module and poison records injected over QMP are stored once each by ``memras
watch`` in the guest, with memdev, DPA and detail, and mem0 is judged by the cxl-*
rules in ``memras dimms --json``; its media errors are in ``memras verdicts --json``.
Then cxl-region: ndctl's ``cxl create-region`` makes a ram region of mem0, daxctl
onlines it movable, and ``memras locate <HPA>`` agrees with the guest's sysfs.

Run alone (it boots its own guest): ``.venv/bin/pytest tests/lab/test_scenario_cxl.py
-p no:cacheprovider -s``.
"""

from __future__ import annotations

import pytest

from memras.lab.cxl import CxlLab
from memras.lab.scenarios import cxl as cxl_scenarios
from memras.lab.scenarios import run_scenario
from memras.lab.scenarios import show_report as show
from tests.lab.test_cxl_boot import cxl_lab  # noqa: F401 (the booted CXL guest fixture)

pytestmark = pytest.mark.lab


@pytest.mark.timeout(1200)  # boot ~40 s, the scenario ~5 min under TCG at load 10
def test_injected_cxl_records_are_stored_once_and_judged(cxl_lab: CxlLab) -> None:  # noqa: F811
    report = run_scenario(cxl_lab, "cxl-events", quick=True)
    print(show(report))
    assert report.ok, show(report)
    facts = report.facts
    # general media and DRAM records are memory errors (memras_error), once each
    details = [e["driver_detail"] for e in facts["media_errors"]]
    for dpa in (*cxl_scenarios.GM_DPAS, cxl_scenarios.DRAM_DPA):
        assert sum(f"dpa={dpa:x} " in d for d in details) == 1, details
    # the others are memras_cxl_event rows, once each
    events = [(e["event"], e["dpa"]) for e in facts["cxl_events"]]
    assert events.count(("poison", cxl_scenarios.POISON_DPA)) == 1, events
    assert [e for e, _ in events].count("memory_module") == 1, events
    assert {e["memdev"] for e in facts["cxl_events"]} == {"mem0"}
    assert set(cxl_scenarios.EXPECTED_RULES) <= set(facts["dimms_cxl"]["rules"])
    assert facts["dimms_cxl"]["verdict"] == "replace-at-next-maintenance"
    assert facts["verdicts"][0]["dimm"] == "label:mem0"


@pytest.mark.timeout(1200)
def test_a_ram_region_onlined_movable_is_located_by_hpa(cxl_lab: CxlLab) -> None:  # noqa: F811
    report = run_scenario(cxl_lab, "cxl-region", quick=True)
    print(show(report))
    assert report.ok, show(report)
    facts = report.facts
    sysfs, located = facts["sysfs"], facts["locate"]
    assert located["memdev"] == "mem0" and located["region"] == facts["region"]["region"]
    assert (located["dpa"], located["block"], located["node"], located["zone"]) == (
        sysfs["dpa"], sysfs["block"], sysfs["node"], sysfs["zone"])
    assert sysfs["zone"] == "Movable" and sysfs["state"] == "online"
