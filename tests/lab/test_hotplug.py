"""The real kernel's hotplug path, driven from the host like a technician would."""

from __future__ import annotations

import pytest

from memras.lab import actions
from memras.lab.guest import Lab
from memras.lab.scenarios import run_scenario
from memras.lab.scenarios import show_report as show

pytestmark = pytest.mark.lab


def test_replace_dimm_restores_memory(lab: Lab) -> None:
    report = run_scenario(lab, "replace-dimm", quick=True)
    print(show(report))
    assert report.ok, show(report)
    assert report.facts["memtotal_after_kb"] == report.facts["memtotal_before_kb"]
    assert 0x84 in report.facts["unplug_ost"]  # the eject went through "in progress"
    # The replacement really is a new device, with the same blocks back online Movable.
    states = actions.block_states(lab, tuple(report.facts["blocks"]))
    assert {s.valid_zones for s in states.values()} == {"Movable"}
    assert lab.qmp.dimm("dimm0")["hotplugged"] is True


def test_offline_busy_is_refused_by_kernel_and_firmware(lab: Lab) -> None:
    report = run_scenario(lab, "offline-busy", quick=True)
    print(show(report))
    assert report.ok, show(report)
    assert "Device or resource busy" in report.facts["offline_output"]
    assert report.facts["unplug_ost"][-1] == 0x82
    assert "Injecting error (-16) to MEM_GOING_OFFLINE" in report.facts["dmesg"]
    assert lab.qmp.dimm("dimm0")["size"] > 0


def test_qemu_mce_reaches_dmesg_and_tracefs(lab: Lab) -> None:
    report = run_scenario(lab, "mce-qemu", quick=True)
    print(show(report))
    assert report.ok, show(report)
    assert report.facts["qmp_event"]["event"] == "MEMORY_FAILURE"
    assert "MC1: 9c0000000000009f" in report.facts["trace"]
    assert f"ADDR {int(report.facts['addr'], 16):x}" in report.facts["dmesg"]


def test_software_mce_reaches_dmesg_and_tracefs(lab: Lab) -> None:
    report = run_scenario(lab, "mce-sw", quick=True)
    print(show(report))
    assert report.ok, show(report)
    assert "MC7: 9c0000000000009f" in report.facts["trace"]
    assert "MISC 86" in report.facts["dmesg"]
