"""Machine checks reach the guest kernel: ``mce-qemu`` (QEMU's MCA bank) and ``mce-sw``
(the guest's mce-inject), each seen in dmesg and tracefs (docs/hotplug-internals.md,
mce-paths)."""

from __future__ import annotations

from memras.lab import actions
from memras.lab.guest import Lab
from memras.lab.scenarios.common import ce_address
from memras.lab.scenarios.registry import ScenarioReport, scenario


def _observed_ce(lab: Lab, report: ScenarioReport, offset: int, observe: str) -> int:
    """The address of a CE ``offset`` bytes into dimm0, with MCE observation on."""
    addr = ce_address(lab, "dimm0", offset)
    report.facts["addr"] = f"{addr:#x}"
    with report.step(observe):
        actions.enable_mce_observation(lab)
    return addr


def _shows_in_logs(lab: Lab, report: ScenarioReport, addr: int) -> None:
    with report.step("dmesg and tracefs show it"):
        report.facts["dmesg"] = actions.mce_dmesg_line(lab, addr)
        report.facts["trace"] = actions.mce_trace_line(lab, addr)


@scenario("mce-qemu", "QEMU writes a corrected memory error into an MCA bank; the guest logs it")
def mce_qemu(lab: Lab, report: ScenarioReport) -> None:
    addr = _observed_ce(lab, report, 0x1000, "poll every second, trace mce_record")
    with report.step("QEMU mce 0 1 0x9c0000000000009f 0 ADDR 0x8c") as step:
        actions.inject_ce(lab, addr)
        event = lab.qmp.wait_event(lambda e: e["event"] == "MEMORY_FAILURE", 5)
        report.facts["qmp_event"] = event
        step.detail = str(event)
    _shows_in_logs(lab, report, addr)


@scenario("mce-sw", "the guest's mce-inject module raises the same error in software")
def mce_sw(lab: Lab, report: ScenarioReport) -> None:
    addr = _observed_ce(lab, report, 0x2000, "trace mce_record")
    with report.step("mce-inject: flags=sw, bank 7"):
        actions.inject_sw_ce(lab, addr)
    _shows_in_logs(lab, report, addr)
