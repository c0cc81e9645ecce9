"""Scenario cxl-replace on the CXL lab guest (QEMU 10, Linux 6.12): ``memras replace
mem0`` in the guest, under a workload and with data in a tmpfs bound to the CXL node,
has QEMU delete the cxl-type3 and add a new one (new memory backend, new serial) over
QMP; the new memdev's region is committed and online movable, the data reads back the
same, the workload never stopped, the replacement is CLOSED and its audit chain
verifies with both serials.

Run alone (it boots its own guest): ``.venv/bin/pytest
tests/lab/test_scenario_cxl_replace.py -p no:cacheprovider -s``.
"""

from __future__ import annotations

import pytest

from memras.lab.cxl import CxlLab
from memras.lab.scenarios import (
    cxl_replace,  # noqa: F401 (registers cxl-replace)
    run_scenario,
)
from memras.lab.scenarios import show_report as show
from tests.lab.test_cxl_boot import cxl_lab  # noqa: F401 (the booted CXL guest fixture)

pytestmark = pytest.mark.lab


@pytest.mark.timeout(1200)
def test_a_cxl_device_is_replaced_under_a_workload(cxl_lab: CxlLab) -> None:  # noqa: F811
    report = run_scenario(cxl_lab, "cxl-replace", quick=True)
    print(show(report))
    assert report.ok, show(report)
    facts = report.facts
    assert facts["replace"]["state"] == "closed"
    assert facts["old_serial"] not in facts["serials_after"].values()
    assert facts["new_serial"] != facts["old_serial"]
    assert facts["new_region"]["decode_state"] == "commit"
    assert facts["new_dax"]["mode"] == "system-ram" and facts["new_dax"]["movable"] is True
    assert facts["memtotal_after_kb"] >= facts["memtotal_before_kb"]
    assert facts["data_on_cxl_node_kb"] >= 16 * 1024
    assert facts["data_sha256_after"] == facts["data_sha256"]
    assert facts["workload"]["errors"] == 0
    assert facts["audit_verify"]["ok"] is True
    assert facts["audit_identity"]["old_serial"] == f"{facts['old_serial']:#x}"
