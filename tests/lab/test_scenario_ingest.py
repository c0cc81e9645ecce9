"""Scenario b: memras watch inside the guest ingests real machine checks.

QEMU writes a corrected error into an MCA bank (found by the 1 s poller), the
guest's mce-inject raises one in software, and an SRAO goes through the kernel's
memory_failure(). Every CE reaches memras twice (tracefs mce_record and /dev/kmsg)
and must be stored once, with its address, on dimm0.
"""

from __future__ import annotations

import pytest

from memras.lab.guest import Lab
from memras.lab.scenarios import run_scenario
from memras.lab.scenarios import show_report as show
from memras.lab.scenarios.ingest import SINGLE_EVENT_BOUND_S

pytestmark = pytest.mark.lab


def test_watch_stores_each_injected_error_once(lab: Lab) -> None:
    report = run_scenario(lab, "ingest", quick=True)
    print(show(report))
    assert report.ok, show(report)
    facts = report.facts
    assert facts["sw_ce_trace_delay_s"] < SINGLE_EVENT_BOUND_S  # arrived, not held back
    assert facts["hardware_corrupted_kb"][1] == facts["hardware_corrupted_kb"][0] + 4
    assert "Recovered" in facts["memory_failure_dmesg"]
    # A new watcher database reads the whole kernel ring, which in the shared guest also
    # holds earlier scenarios' errors (at other addresses): each error injected here must
    # be there exactly once, although trace and kmsg both reported it.
    stored = [e["address"] for e in facts["errors"] if e["type"] == "Corrected"]
    injected = [int(facts[k], 16) for k in ("qemu_addr", "sw_addr")]
    assert [stored.count(a) for a in injected] == [1, 1], (injected, stored)
