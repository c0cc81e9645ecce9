"""Named lab scenarios: ``memras lab run NAME`` and tests/lab run the same functions.

Each scenario takes a booted :class:`Lab`, records timed steps and the facts it
observed in a :class:`ScenarioReport`, and leaves the guest as it found it (a
replaced DIMM comes back with the same id, size and slot), so one guest serves
many scenarios. A failed expectation raises :class:`ScenarioFailed`; the report
then says which step failed and why.
"""

from __future__ import annotations

import shlex
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from memras.errors import LabError
from memras.lab import actions
from memras.lab.guest import DimmSpec, Lab, checkout_root


class ScenarioFailed(LabError):
    title = "Lab scenario failed"


@dataclass
class Step:
    name: str
    ok: bool = True
    seconds: float = 0.0
    detail: str = ""


@dataclass
class ScenarioReport:
    """What a scenario did: timed steps, observed facts, and the verdict."""

    name: str
    ok: bool = True
    seconds: float = 0.0
    steps: list[Step] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    @contextmanager
    def step(self, name: str) -> Iterator[Step]:
        step = Step(name)
        self.steps.append(step)
        started = time.monotonic()
        try:
            yield step
        except Exception as exc:
            step.ok = False
            step.detail = step.detail or str(exc)
            raise
        finally:
            step.seconds = round(time.monotonic() - started, 3)

    def expect(self, condition: bool, message: str) -> None:
        if not condition:
            raise ScenarioFailed(message)


ScenarioFn = Callable[[Lab, ScenarioReport], None]
SCENARIOS: dict[str, tuple[str, ScenarioFn]] = {}


def scenario(name: str, description: str) -> Callable[[ScenarioFn], ScenarioFn]:
    def register(fn: ScenarioFn) -> ScenarioFn:
        SCENARIOS[name] = (description, fn)
        return fn

    return register


def run_scenario(lab: Lab, name: str) -> ScenarioReport:
    """Run one scenario; never raises for a failed expectation (the report says so)."""
    if name not in SCENARIOS:
        raise LabError(f"no lab scenario {name!r}",
                       hint=f"choose one of: {', '.join(sorted(SCENARIOS))}")
    report = ScenarioReport(name)
    started = time.monotonic()
    try:
        SCENARIOS[name][1](lab, report)
    except LabError as exc:
        report.ok = False
        report.error = exc.msg
    report.seconds = round(time.monotonic() - started, 3)
    return report


def _dimm(lab: Lab, dimm_id: str) -> DimmSpec:
    for dimm in lab.config.dimms:
        if dimm.id == dimm_id:
            return dimm
    if lab.state:
        for data in lab.state.dimms:
            if data["id"] == dimm_id:
                return DimmSpec(str(data["id"]), int(str(data["size_mib"])),
                                int(str(data["slot"])))
    raise LabError(f"the lab has no DIMM {dimm_id}")


# --- scenarios ----------------------------------------------------------------------------


@scenario("boot-facts", "the guest's memory layout: blocks, PNP0C80 links, Movable zone")
def boot_facts(lab: Lab, report: ScenarioReport) -> None:
    dimm = _dimm(lab, "dimm0")
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


@scenario("replace-dimm", "offline a DIMM's blocks, device_del, insert a new DIMM, verify")
def replace_dimm(lab: Lab, report: ScenarioReport) -> None:
    dimm = _dimm(lab, "dimm0")
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
    dimm = _dimm(lab, "dimm0")
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


def _ce_address(lab: Lab, dimm_id: str, offset: int) -> int:
    return int(lab.qmp.dimm(dimm_id)["addr"]) + offset


@scenario("mce-qemu", "QEMU writes a corrected memory error into an MCA bank; the guest logs it")
def mce_qemu(lab: Lab, report: ScenarioReport) -> None:
    addr = _ce_address(lab, "dimm0", 0x1000)
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
    addr = _ce_address(lab, "dimm0", 0x2000)
    report.facts["addr"] = f"{addr:#x}"
    with report.step("trace mce_record"):
        actions.enable_mce_observation(lab)
    with report.step("mce-inject: flags=sw, bank 7"):
        actions.inject_sw_ce(lab, addr)
    with report.step("dmesg and tracefs show it"):
        report.facts["dmesg"] = actions.mce_dmesg_line(lab, addr)
        report.facts["trace"] = actions.mce_trace_line(lab, addr)


LSMEM_COLUMNS = "RANGE,SIZE,STATE,REMOVABLE,BLOCK,NODE,ZONES"


def _normalise(text: str) -> list[list[str]]:
    return [line.split() for line in text.strip().splitlines() if line.strip()]


@scenario("parity", "memras blocks and locate inside the guest agree with lsmem and sysfs")
def parity(lab: Lab, report: ScenarioReport) -> None:
    memras = shlex.quote(str(checkout_root() / ".venv" / "bin" / "memras"))
    dimm = _dimm(lab, "dimm0")
    with report.step("memras blocks vs lsmem") as step:
        ours = lab.run(f"{memras} blocks", timeout=120)
        theirs = lab.check(f"lsmem -o {LSMEM_COLUMNS}")
        report.facts.update(memras_blocks=ours.output, lsmem=theirs)
        report.expect(ours.ok, f"memras blocks failed: {ours.output.strip()[-300:]}")
        report.expect(_normalise(ours.output) == _normalise(theirs),
                      "memras blocks differs from lsmem")
        step.detail = f"{len(_normalise(theirs))} lines identical"
    with report.step("memras locate an address in dimm0") as step:
        addr = _ce_address(lab, dimm.id, 0x1000)
        device = actions.slot_device(lab, dimm.slot)
        block = f"memory{addr // actions.block_size(lab)}"
        located = lab.run(f"{memras} locate {addr:#x}", timeout=120)
        report.facts["locate"] = located.output
        step.detail = located.output.strip()[-200:]
        report.expect(located.ok, f"memras locate failed: {located.output.strip()[-300:]}")
        for needle in (block, "Movable", device.name):
            report.expect(needle in located.output, f"memras locate does not name {needle}")


# memras replace run inside the guest (registers replace-no-downtime, replace-offline-refused,
# replace-crash-abort); imported last because it uses this module.
from memras.lab import replace_scenarios as _replace_scenarios  # noqa: E402,F401
