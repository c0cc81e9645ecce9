"""``replace-fast-swap``: the ``acpi`` backend on the guest's kernel, the new DIMM added
by the host within 100 ms of the eject.

``memras replace PNP0C80:01 --backend acpi --yes`` runs in the guest's background: it
offlines the DIMM's blocks and writes 1 to ``/sys/bus/acpi/devices/PNP0C80:01/eject``.
The host, as the platform would, answers the eject at once: the new module's backend
is ready before the eject (the engineer holds the new DIMM), and on QMP's
``DEVICE_DELETED`` for the DIMM (QEMU sends it when the guest's ``_EJ0`` ran) it
``device_add``s a pc-dimm into the same slot, timed from the event's arrival; the old
backend is ``object-del``ed after that. One QMP round trip is on the timed path, not
three: on a loaded host (load ~15) three of them once took 332 ms. The guest kernel
gives the new DIMM the old block numbers. Before issue 18 memras never saw the old
blocks go, waited its 600 s and "rolled back" onto the new module; now the replacement
must close with the new module verified, and its audit must say swap (the uevents it
saw, in order), never rollback.
The guest is left as found: the original dimm1 id back in slot 1, Movable.
"""

from __future__ import annotations

import contextlib
import json
import time
from typing import Any

from memras.errors import LabError, QemuError
from memras.lab import actions
from memras.lab.guest import DimmSpec, Lab
from memras.lab.scenarios.common import GUEST_WORK, dimm_spec
from memras.lab.scenarios.registry import ScenarioReport, scenario
from memras.lab.scenarios.replace import RESERVE, GuestMemras
from memras.qemu.qmp import event_data

SWAP_BUDGET_MS = 100.0  # DEVICE_DELETED received -> device_add of the new DIMM returned
NEW_ID, NEW_MEMDEV = "dimm1-new", "mem-dimm1-new"
# memras's detect timeout, short: a regression (not seeing the swap) fails in minutes
DETECT_TIMEOUT = "120s"


def start_guest_replace(memras: GuestMemras, args: str, env: str = "") -> str:
    """``memras ARGS --json`` in the guest's background; returns the file prefix whose
    ``.out``, ``.err`` and ``.rc`` receive its output and exit status, and ``.pid``
    the memras process's own pid (a shell waits for it: SIGKILL gives rc 137)."""
    base = f"{memras.dir}/bg"
    memras.lab.check(f"rm -f {base}.*; ( {env} {actions.memras_argv()} --db "
                     f"{memras.dir}/memras.db {memras.config} {args} --json > {base}.out "
                     f"2> {base}.err & echo $! > {base}.pid; wait $!; echo $? > {base}.rc "
                     ") > /dev/null 2>&1 &")
    return base


def stop_guest_command(lab: Lab, base: str) -> None:
    """End a background memras that has not finished (by its pid)."""
    lab.run(f"test -e {base}.rc || kill $(cat {base}.pid) 2>/dev/null; true")


def wait_guest_exit(lab: Lab, base: str, timeout_s: float) -> tuple[int, str, str]:
    """(exit status, stdout, stderr) of a background command once it has finished."""
    actions.wait_guest_output(lab, f"cat {base}.rc 2>/dev/null || echo running",
                              r"^\d+", timeout_s=timeout_s)
    status = int(lab.check(f"cat {base}.rc").strip())
    return status, lab.run(f"cat {base}.out").output, lab.run(f"cat {base}.err").output


def ready_new_module(lab: Lab, dimm: DimmSpec) -> None:
    """The new module's backend, before the eject: the engineer has the DIMM in hand."""
    lab.qmp.cmd("object-add", **{"qom-type": "memory-backend-ram", "id": NEW_MEMDEV,
                                 "size": dimm.size_mib << 20})


def answer_eject(lab: Lab, dimm: DimmSpec, timeout_s: float) -> dict[str, Any]:
    """Wait for the guest's eject of ``dimm`` (DEVICE_DELETED) and put the new DIMM
    (:func:`ready_new_module`) into its slot at once; the host-side milliseconds from
    the event to each QMP command's answer."""
    def deleted(event: dict[str, Any]) -> bool:
        return (event["event"] == "DEVICE_DELETED"
                and event_data(event).get("device") == dimm.id)

    event = lab.qmp.wait_event(deleted, timeout_s)
    if event is None:
        return {"deleted": False}
    seen = time.monotonic()
    marks = {}
    lab.qmp.cmd("device_add", driver="pc-dimm", id=NEW_ID, memdev=NEW_MEMDEV,
                slot=dimm.slot)
    marks["device_add_ms"] = (time.monotonic() - seen) * 1000
    lab.qmp.cmd("object-del", id=dimm.memdev)  # the old module's backend, off the clock
    marks["object_del_ms"] = (time.monotonic() - seen) * 1000
    return {"deleted": True, **{k: round(v, 1) for k, v in marks.items()}}


def put_back(lab: Lab, dimm: DimmSpec, blocks: tuple[str, ...]) -> None:
    """The original DIMM id back in its slot (the guest as the other scenarios expect)."""
    ids = {d["id"] for d in lab.qmp.memory_devices()}
    if NEW_ID in ids:
        actions.wait_blocks_online_movable(lab, blocks, timeout_s=60)
        unplug = lab.qmp.unplug(NEW_ID, timeout=120)
        if not unplug.deleted:
            raise LabError(f"no DEVICE_DELETED for {NEW_ID}: OST {unplug.ost_status}")
    with contextlib.suppress(QemuError):  # readied, and never plugged if there was no eject
        lab.qmp.cmd("object-del", id=NEW_MEMDEV)
    if dimm.id not in {d["id"] for d in lab.qmp.memory_devices()}:
        actions.replug_dimm(lab, dimm)
    actions.wait_blocks_online_movable(lab, blocks, timeout_s=60)


@scenario("replace-fast-swap", "memras replace --backend acpi in the guest; the host adds "
                               "the new DIMM within 100 ms of the eject; swap, not rollback")
def replace_fast_swap(lab: Lab, report: ScenarioReport) -> None:
    dimm = dimm_spec(lab, "dimm1")
    device = actions.slot_device(lab, dimm.slot)
    blocks = device.blocks
    memtotal = actions.meminfo_kb(lab)["MemTotal"]
    report.facts.update(dimm=device.name, blocks=list(blocks), memtotal_before_kb=memtotal)
    lab.check(f"rm -rf {GUEST_WORK}/*; sync; echo 3 > /proc/sys/vm/drop_caches")
    memras = GuestMemras(lab, "fastswap")
    ready_new_module(lab, dimm)
    lab.qmp.drain()
    base = start_guest_replace(memras, f"replace {device.name} --backend acpi --yes "
                               f"--reserve {RESERVE} --operator lab "
                               f"--detect-timeout {DETECT_TIMEOUT}")
    try:
        with report.step("the guest ejects; the host answers with a new DIMM at once") as step:
            swap = answer_eject(lab, dimm, timeout_s=600)
            report.facts["swap"] = swap
            report.expect(swap["deleted"], f"no DEVICE_DELETED for {dimm.id} within 600 s")
            step.detail = (f"device_add returned {swap['device_add_ms']} ms after "
                           "DEVICE_DELETED")
            report.expect(swap["device_add_ms"] <= SWAP_BUDGET_MS,
                          f"the new DIMM took {swap['device_add_ms']} ms (> "
                          f"{SWAP_BUDGET_MS:g} ms): not a fast swap")
        with report.step("memras replace closes: the new module verified") as step:
            status, out, err = wait_guest_exit(lab, base, timeout_s=900)
            result = _json(out)
            report.facts.update(exit_status=status, state=result.get("state"),
                                where=result.get("where"), error=result.get("error"),
                                stderr=err.strip()[-400:])
            step.detail = f"exit {status}: {result.get('state')}: {result.get('where')}"
            report.expect(status == 0 and result.get("state") == "closed",
                          f"replace ended {result.get('state')} (exit {status}): "
                          f"{result.get('error') or err.strip()[-300:]}")
        with report.step("the audit says swap: remove and add uevents, no rollback") as step:
            entries, verified = memras.json_many(f"audit list --replacement {result['id']}",
                                                 "audit verify")
            by_action = {e["action"]: e["data"] for e in entries}
            report.facts["audit_actions"] = [e["action"] for e in entries]
            removed = by_action.get("remove_module", {})
            inserted = by_action.get("insert_module", {})
            verify = by_action.get("verify", {})
            report.facts.update(observed_removed=removed.get("observed"),
                                observed_inserted=inserted.get("observed"),
                                remove_message=removed.get("message"),
                                insert_message=inserted.get("message"),
                                verify_checks=verify.get("checks"))
            step.detail = (f"{report.facts['audit_actions']}; removed: "
                           f"{(removed.get('observed') or {}).get('removed')}; inserted: "
                           f"{(inserted.get('observed') or {}).get('inserted')}")
            report.expect("rollback" not in by_action and "swap-observed" not in by_action,
                          f"the audit records {report.facts['audit_actions']}")
            checks = {c["name"]: c for c in verify.get("checks", [])}
            report.expect(checks.get("module identity", {}).get("ok") is True,
                          f"module identity check: {checks.get('module identity')}")
            report.facts["audit_verify"] = verified
            report.expect(verified["ok"], f"audit verify failed: {verified}")
        with report.step("the new DIMM is in slot 1, online Movable, MemTotal back") as step:
            qemu = next(d for d in lab.qmp.memory_devices() if d["slot"] == dimm.slot)
            states = actions.wait_blocks_online_movable(lab, blocks)
            after = actions.meminfo_kb(lab)["MemTotal"]
            report.facts.update(new_qemu_dimm=qemu["id"], memtotal_after_kb=after,
                                new_zones={b: s.valid_zones for b, s in states.items()})
            step.detail = f"{qemu['id']} in slot {dimm.slot}; MemTotal {after} kB"
            report.expect(qemu["id"] == NEW_ID, f"slot {dimm.slot} holds {qemu['id']}")
            report.expect(after == memtotal, f"MemTotal {after} kB, was {memtotal} kB")
    finally:
        with report.step("put dimm1 back"):
            stop_guest_command(lab, base)
            put_back(lab, dimm, blocks)


def _json(text: str) -> dict[str, Any]:
    try:
        data = json.loads(text)
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def figures(report: ScenarioReport) -> str:
    swap = report.facts.get("swap", {})
    removed = report.facts.get("observed_removed") or {}
    inserted = report.facts.get("observed_inserted") or {}
    return (f"replace-fast-swap figures: new DIMM device_add {swap.get('device_add_ms')} ms "
            f"after DEVICE_DELETED (the old backend's object-del {swap.get('object_del_ms')} "
            f"ms); memras saw removed: {removed.get('removed')} "
            f"(after {removed.get('removed_after_s')} s), inserted: "
            f"{inserted.get('inserted')} (after {inserted.get('added_after_s')} s); "
            f"the module's uevents ({inserted.get('uevent_source')}), in order: "
            f"{inserted.get('uevents')}")
