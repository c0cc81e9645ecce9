"""``boot-facts``: the guest's memory layout, as the hotplug scenarios rely on it."""

from __future__ import annotations

from memras.lab import actions
from memras.lab.guest import Lab
from memras.lab.scenarios.common import dimm_spec
from memras.lab.scenarios.registry import ScenarioReport, scenario


@scenario("boot-facts", "the guest's memory layout: blocks, PNP0C80 links, Movable zone")
def boot_facts(lab: Lab, report: ScenarioReport) -> None:
    dimm = dimm_spec(lab, "dimm0")
    with report.step("read block size and the DIMM's ACPI device") as step:
        report.facts["block_size_bytes"] = lab.check(
            f"cat {actions.MEMORY}/block_size_bytes").strip()
        device = actions.slot_device(lab, dimm.slot)
        report.facts["acpi_device"] = device.name
        report.facts["blocks"] = list(device.blocks)
        step.detail = f"{device.name} -> {' '.join(device.blocks)}"
    with report.step("check the blocks against QMP's address and size"):
        data = lab.qmp.dimm(dimm.id)
        size = actions.block_size(lab)
        expected = [f"memory{n}" for n in range(data["addr"] // size,
                                                (data["addr"] + data["size"]) // size)]
        report.facts["qmp_addr"] = data["addr"]
        report.expect(sorted(device.blocks) == sorted(expected),
                      f"{device.name} links {device.blocks}, QMP says {expected}")
    with report.step("zones"):
        states = actions.block_states(lab, device.blocks)
        report.facts["zones"] = {b: s.valid_zones for b, s in states.items()}
        report.expect(all(s.valid_zones == "Movable" for s in states.values()),
                      f"DIMM blocks are not all Movable: {report.facts['zones']}")
    with report.step("lsmem"):
        report.facts["lsmem"] = lab.check("lsmem")
