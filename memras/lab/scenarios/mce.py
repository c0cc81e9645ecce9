"""Machine checks reach the guest kernel: ``mce-qemu`` (QEMU's MCA bank) and ``mce-sw``
(the guest's mce-inject), each seen in dmesg and tracefs (docs/hotplug-internals.md,
mce-paths)."""

from __future__ import annotations

from memras.lab import actions
from memras.lab.guest import Lab
from memras.lab.scenarios.common import ce_address
from memras.lab.scenarios.registry import ScenarioReport, scenario


@scenario("mce-qemu", "QEMU writes a corrected memory error into an MCA bank; the guest logs it")
def mce_qemu(lab: Lab, report: ScenarioReport) -> None:
    addr = ce_address(lab, "dimm0", 0x1000)
    report.facts["addr"] = f"{addr:#x}"
    with report.step("poll every second, trace mce_record"):
        actions.enable_mce_observation(lab)
    with report.step("QEMU mce 0 1 0x9c0000000000009f 0 ADDR 0x8c") as step:
        actions.inject_ce(lab, addr)
        event = lab.qmp.wait_event(lambda e: e["event"] == "MEMORY_FAILURE", 5)
        report.facts["qmp_event"] = event
        step.detail = str(event)
    with report.step("dmesg and tracefs show it"):
        report.facts["dmesg"] = actions.mce_dmesg_line(lab, addr)
        report.facts["trace"] = actions.mce_trace_line(lab, addr)


@scenario("mce-sw", "the guest's mce-inject module raises the same error in software")
def mce_sw(lab: Lab, report: ScenarioReport) -> None:
    addr = ce_address(lab, "dimm0", 0x2000)
    report.facts["addr"] = f"{addr:#x}"
    with report.step("trace mce_record"):
        actions.enable_mce_observation(lab)
    with report.step("mce-inject: flags=sw, bank 7"):
        actions.inject_sw_ce(lab, addr)
    with report.step("dmesg and tracefs show it"):
        report.facts["dmesg"] = actions.mce_dmesg_line(lab, addr)
        report.facts["trace"] = actions.mce_trace_line(lab, addr)
