"""Raw hotplug through QMP, without memras: ``replace-dimm`` and ``offline-busy``.

The kernel and QEMU contract memras's replace workflow builds on (see
docs/hotplug-internals.md, acpi-eject): offline, ``device_del``, a new DIMM in the
same slot; and the refusal path when offlining fails with -EBUSY.
"""

from __future__ import annotations

from memras.lab import actions
from memras.lab.guest import Lab
from memras.lab.scenarios.common import dimm_spec
from memras.lab.scenarios.registry import ScenarioReport, scenario


@scenario("replace-dimm", "offline a DIMM's blocks, device_del, insert a new DIMM, verify")
def replace_dimm(lab: Lab, report: ScenarioReport) -> None:
    dimm = dimm_spec(lab, "dimm0")
    with report.step("before"):
        before = actions.meminfo_kb(lab)["MemTotal"]
        blocks = actions.slot_device(lab, dimm.slot).blocks
        report.facts.update(memtotal_before_kb=before, blocks=list(blocks))
        report.expect(len(blocks) > 0, f"slot {dimm.slot} has no memory blocks")
    with report.step("offline blocks in the guest") as step:
        result = actions.offline_blocks(lab, blocks)
        step.detail = f"{len(blocks)} blocks in {result.seconds:.2f} s"
        report.facts["offline_seconds"] = round(result.seconds, 3)
        report.expect(result.ok, f"offline failed: {result.output}")
    with report.step("device_del and wait for DEVICE_DELETED") as step:
        unplug = actions.unplug_dimm(lab, dimm)
        report.facts["unplug_ost"] = unplug.ost_status
        step.detail = f"OST {unplug.ost_status}, deleted={unplug.deleted}"
        report.expect(unplug.deleted, f"no DEVICE_DELETED for {dimm.id}: OST {unplug.ost_status}")
    with report.step("the guest lost the memory"):
        gone = actions.block_states(lab, blocks)
        report.expect(not gone, f"blocks still present after removal: {gone}")
        report.expect(actions.slot_device(lab, dimm.slot).status == 0,
                      "the ACPI device still reports the slot populated")
    with report.step("insert a new DIMM into the same slot") as step:
        seconds = actions.replug_dimm(lab, dimm)
        step.detail = f"OST 0 after {seconds:.2f} s"
    with report.step("new blocks online Movable") as step:
        new_blocks = actions.slot_device(lab, dimm.slot).blocks
        report.expect(sorted(new_blocks) == sorted(blocks),
                      f"new DIMM came up as {new_blocks}, expected {blocks}")
        actions.wait_blocks_online_movable(lab, blocks)
    with report.step("MemTotal restored"):
        after = actions.meminfo_kb(lab)["MemTotal"]
        report.facts["memtotal_after_kb"] = after
        report.expect(after == before, f"MemTotal {after} kB, was {before} kB")


@scenario("offline-busy", "MEM_GOING_OFFLINE fails with -EBUSY: offline and device_del refused")
def offline_busy(lab: Lab, report: ScenarioReport) -> None:
    dimm = dimm_spec(lab, "dimm0")
    blocks = actions.slot_device(lab, dimm.slot).blocks
    report.facts["blocks"] = list(blocks)
    actions.set_offline_notifier_error(lab, -16)
    try:
        with report.step("offline refused") as step:
            result = actions.offline_blocks(lab, blocks[:1])
            step.detail = result.output
            report.facts["offline_output"] = result.output
            report.expect(not result.ok and "busy" in result.output.lower(),
                          f"offline should fail with EBUSY, got: {result.output!r}")
        with report.step("device_del refused: OST 0x82, no DEVICE_DELETED") as step:
            unplug = actions.unplug_dimm(lab, dimm, timeout_s=40)
            report.facts["unplug_ost"] = unplug.ost_status
            step.detail = f"OST {unplug.ost_status} after {unplug.seconds:.1f} s"
            report.expect(not unplug.deleted, "the DIMM was deleted despite the error")
            report.expect(unplug.failure_status == 0x82,
                          f"expected ACPI OST 0x82, got {unplug.ost_status}")
    finally:
        actions.set_offline_notifier_error(lab, 0)
    with report.step("DIMM still present, blocks online Movable"):
        lab.qmp.dimm(dimm.id)
        actions.wait_blocks_online_movable(lab, blocks)
        report.facts["dmesg"] = lab.run("dmesg | grep -i -e 'Injecting error' "
                                        "-e 'Offline failed' | tail -3").output.strip()
