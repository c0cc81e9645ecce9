"""``parity``: memras's ``blocks`` and ``locate`` in the guest agree with lsmem and sysfs."""

from __future__ import annotations

from memras.lab import actions
from memras.lab.guest import Lab
from memras.lab.scenarios.common import ce_address, dimm_spec
from memras.lab.scenarios.registry import ScenarioReport, scenario

LSMEM_COLUMNS = "RANGE,SIZE,STATE,REMOVABLE,BLOCK,NODE,ZONES"


def _normalise(text: str) -> list[list[str]]:
    return [line.split() for line in text.strip().splitlines() if line.strip()]


@scenario("parity", "memras blocks and locate inside the guest agree with lsmem and sysfs")
def parity(lab: Lab, report: ScenarioReport) -> None:
    memras = actions.memras_argv()
    dimm = dimm_spec(lab, "dimm0")
    with report.step("memras blocks vs lsmem") as step:
        ours = lab.run(f"{memras} blocks --wide", timeout=120)  # lsmem's 81 columns
        theirs = lab.check(f"lsmem -o {LSMEM_COLUMNS}")
        report.facts.update(memras_blocks=ours.output, lsmem=theirs)
        report.expect(ours.ok, f"memras blocks failed: {ours.output.strip()[-300:]}")
        report.expect(_normalise(ours.output) == _normalise(theirs),
                      "memras blocks differs from lsmem")
        step.detail = f"{len(_normalise(theirs))} lines identical"
    with report.step("memras locate an address in dimm0") as step:
        addr = ce_address(lab, dimm.id, 0x1000)
        device = actions.slot_device(lab, dimm.slot)
        block = f"memory{addr // actions.block_size(lab)}"
        located = lab.run(f"{memras} locate {addr:#x}", timeout=120)
        report.facts["locate"] = located.output
        step.detail = located.output.strip()[-200:]
        report.expect(located.ok, f"memras locate failed: {located.output.strip()[-300:]}")
        for needle in (block, "Movable", device.name):
            report.expect(needle in located.output, f"memras locate does not name {needle}")
