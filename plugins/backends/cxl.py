"""The ``cxl`` backend: a CXL Type-3 memory device out of its slot and a new one in.

When it is called the workflow has offlined the blocks of the device's regions.
remove(): the regions are torn down (:func:`memras.workflow.cxl.teardown`: DAX devices
off kmem, regions decommitted and deleted, endpoint DPA freed), then the device goes:

- a VM (``--qmp``, the CXL lab guest reaching its QEMU at 10.0.2.100:4444): QMP
  ``device_del`` of the ``cxl-type3`` whose ``sn`` is the memdev's serial; the guest's
  pciehp sees the attention button, powers the root port's slot off (5 s) and QEMU
  sends ``DEVICE_DELETED``;
- a server with a PCIe hot-plug slot for the device (``/sys/bus/pci/slots/N``):
  ``0 > slots/N/power`` (pciehp powers it off and removes the device), then the
  operator pulls it;
- otherwise the operator is told to press the slot's attention button (or power it off
  by the platform's means) and pull the device.

Either way it waits until no memdev has the old serial. insert(): QMP ``object-add`` of
a NEW memory-backend-ram and ``device_add`` of a cxl-type3 with a new ``sn`` on the
same root port (a VM), or the operator inserts the new device (pciehp powers an
occupied slot on by itself; on a simulated root the ``simulated`` backend's technician
is the simulator); then a
memdev with a serial that was not there at selection is waited for and its regions
made and onlined (:func:`memras.workflow.cxl.bring_up`). ``data`` names the new
serial, regions, DAX devices and blocks for the audit and the verify step.
"""

from __future__ import annotations

import asyncio
import posixpath
from typing import Any

from memras.plugins.backends.qemu import QemuBackend

from memras.errors import WorkflowError
from memras.qemu.qmp import qmp_library
from memras.text import escape
from memras.workflow import cxl
from memras.workflow.backends import BackendResult, Target

QEMU_DRIVER = "cxl-type3"
QEMU_PORT = "cxl-rp"
UI64_NULL = (1 << 64) - 1  # QEMU's "no serial number" (hw/mem/cxl_type3.c)


def _cx(target: Target) -> dict[str, Any]:
    if not target.cxl:
        raise WorkflowError(f"{target.label} is not a CXL memory device",
                            hint="the cxl backend replaces CXL memdevs (memras dimms lists "
                                 "them under CXL)")
    return target.cxl


class CxlBackend(QemuBackend):
    name = "cxl"
    inserts = True  # over QMP; elsewhere an operator or the simulator does
    bus: str | None = None  # the QEMU root port the old device sat on

    @property
    def _qemu(self) -> bool:
        return bool(self.ctx.options.get("qmp"))

    # --- preflight ---------------------------------------------------------------------
    def can_remove(self, target: Target) -> BackendResult:
        if not target.cxl:
            return BackendResult(False, f"{target.label} is not a CXL memdev: use the acpi, "
                                        "qemu or manual backend")
        cx = target.cxl
        if self._qemu:
            try:
                found = self._run(self._find_cxl, cx.get("serial"))
            except WorkflowError as exc:
                return BackendResult(False, exc.msg)
            if found is None:
                return BackendResult(False, f"QEMU lists no {QEMU_DRIVER} with sn "
                                            f"{cxl.serial_text(cx.get('serial'))}")
            self.bus = found["bus"]
            return BackendResult(True, f"QEMU device {found['id']} on {found['bus']}")
        if cx.get("slot"):
            return BackendResult(True, f"PCIe hot-plug slot {cx['slot']}: memras powers it "
                                       "off, an operator swaps the device")
        return BackendResult(True, "no hot-plug slot listed for the device: an operator "
                                   "removes it (attention button) and inserts the new one")

    # --- remove ------------------------------------------------------------------------
    def remove(self, target: Target) -> BackendResult:
        cx = _cx(target)
        host = self.ctx.host
        writes = cxl.teardown(host, cx)
        data: dict[str, Any] = {"teardown": writes, "memdev": cx["memdev"],
                                "serial": cxl.serial_text(cx.get("serial"))}
        if not cxl.memdev_present(host, cx.get("serial"), cx["memdev"]):
            return BackendResult(True, f"{cx['memdev']} is already gone", data)
        if self._qemu:
            data.update(self._run(self._device_del, cx))
            how = f"QEMU deleted {data['qemu_id']}"
        elif cx.get("slot"):
            slot = cx["slot"]
            host.fs.write(f"{cxl.PCI_SLOTS}/{slot}/power", "0")
            data["slot_power"] = f"0 > {cxl.PCI_SLOTS}/{slot}/power"
            self.ctx.say(f"PCIe slot {escape(slot)} is powered off: pull the CXL device "
                         f"{escape(cx['memdev'])} (serial "
                         f"{escape(cxl.serial_text(cx.get('serial'))) or '?'}, "
                         f"{escape(cx['host'])}).")
            how = f"slot {slot} powered off"
        else:
            self.ctx.say(f"Press the attention button of the slot holding "
                         f"{escape(cx['memdev'])} ({escape(cx['host'])}, serial "
                         f"{escape(cxl.serial_text(cx.get('serial'))) or '?'}) and pull the "
                         "device once its power indicator is off; waiting for the kernel "
                         "to remove it…")
            how = "the operator removed it"
        cxl.wait(f"{cx['memdev']} (serial {cxl.serial_text(cx.get('serial'))}) to go",
                 lambda: not cxl.memdev_present(host, cx.get("serial"), cx["memdev"]),
                 timeout_s=self.ctx.timeout_s, cancel=self.ctx.cancel)
        return BackendResult(True, f"{cx['memdev']} removed ({how}; regions torn down: "
                                   f"{len(writes)} sysfs writes)", data)

    # --- insert ------------------------------------------------------------------------
    def insert(self, target: Target) -> BackendResult:
        cx = _cx(target)
        host = self.ctx.host
        data: dict[str, Any] = {}
        if cxl.new_memdev(host, cx) is None:
            if self._qemu:
                data.update(self._run(self._device_add, cx))
            elif (done := self.technician(cx)) is not None:
                data["inserted"] = done
            else:
                self.ctx.say(f"Insert the new CXL device into the slot of "
                             f"{escape(cx['memdev'])} ({escape(cx['host'])}); waiting for "
                             "the kernel to add it…")
        new = cxl.wait("a new CXL memdev", lambda: cxl.new_memdev(host, cx),
                       timeout_s=self.ctx.timeout_s, cancel=self.ctx.cancel)
        up = cxl.bring_up(host, cx, new.name, timeout_s=self.ctx.timeout_s,
                          cancel=self.ctx.cancel)
        data.update({"memdev": new.name, "serial": cxl.serial_text(new.serial),
                     "new_serial": new.serial, **up})
        return BackendResult(True, f"new {new.name} serial {cxl.serial_text(new.serial)}: "
                                   f"region {', '.join(up['regions']) or '-'}, DAX "
                                   f"{', '.join(up['dax']) or '-'}, {len(up['blocks'])} "
                                   "blocks", data)

    def technician(self, cx: dict[str, Any]) -> str | None:
        """Someone who inserts the new device here (what they did), or None: the
        operator is asked to (the simulated backend's technician is the simulator)."""
        return None

    # --- QMP ---------------------------------------------------------------------------
    def _run(self, coro_fn, *args: Any) -> Any:
        """A QMP session; a command QEMU refuses (qemu.qmp's ExecuteError: no such bus, a
        duplicate id…) is one WorkflowError line, not a traceback."""
        try:
            return super()._run(coro_fn, *args)
        except WorkflowError:
            raise
        except Exception as exc:
            raise WorkflowError(f"QEMU at {self.socket}: {type(exc).__name__}: {exc}",
                                hint="see QEMU's log (an id in use, no such bus); then "
                                     "`memras replace --resume`") from None

    async def _devices(self, qmp) -> list[dict[str, Any]]:
        """Every cxl-type3 QEMU has: id, sn, the root port (bus) and memory backend."""
        out = []
        for child in await qmp.execute("qom-list", {"path": "/machine/peripheral"}):
            if child.get("type") != f"child<{QEMU_DRIVER}>":
                continue
            path = f"/machine/peripheral/{child['name']}"
            sn = await qmp.execute("qom-get", {"path": path, "property": "sn"})
            bus = await qmp.execute("qom-get", {"path": path, "property": "parent_bus"})
            mem = await qmp.execute("qom-get", {"path": path, "property": "volatile-memdev"})
            out.append({"id": child["name"], "sn": sn, "bus": posixpath.basename(str(bus)),
                        "memdev": posixpath.basename(str(mem or ""))})
        return out

    async def _find_cxl(self, qmp, serial: int | None) -> dict[str, Any] | None:
        devices = await self._devices(qmp)
        return next((d for d in devices if serial is None or guest_serial(d["sn"]) == serial),
                    None)

    async def _device_del(self, qmp, cx: dict[str, Any]) -> dict[str, Any]:
        found = await self._find_cxl(qmp, cx.get("serial"))
        if found is None:
            return {"qemu_id": None, "note": "QEMU lists no such device: already deleted"}
        self.bus = found["bus"]
        events = qmp_library().EventListener(("DEVICE_DELETED",))
        with qmp.listen(events):
            await qmp.execute("device_del", {"id": found["id"]})
            await self._wait_gone(qmp, events, found["id"])
        return {"qemu_id": found["id"], "qemu_bus": found["bus"],
                "qemu_memdev": found["memdev"]}

    async def _wait_gone(self, qmp, events, dev_id: str) -> None:
        """DEVICE_DELETED, or the device no longer in /machine/peripheral."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.ctx.timeout_s
        while loop.time() < deadline and not self.ctx.cancel.is_set():
            try:
                event = await asyncio.wait_for(events.get(), 1.0)
                if (event["event"] == "DEVICE_DELETED"
                        and (event.get("data") or {}).get("device") == dev_id):
                    return
            except TimeoutError:
                pass
            names = {c["name"] for c in await qmp.execute(
                "qom-list", {"path": "/machine/peripheral"})}
            if dev_id not in names:
                return
        raise WorkflowError(f"no DEVICE_DELETED for {dev_id} within {self.ctx.timeout_s:g}s",
                            hint="the guest did not power the slot off (pciehp)")

    async def _free_port(self, qmp) -> str | None:
        used = {d["bus"] for d in await self._devices(qmp)}
        for child in await qmp.execute("qom-list", {"path": "/machine/peripheral"}):
            if child.get("type") == f"child<{QEMU_PORT}>" and child["name"] not in used:
                return str(child["name"])
        return None

    async def _device_add(self, qmp, cx: dict[str, Any]) -> dict[str, Any]:
        serial = next_serial(cx)
        dev_id, mem_id = f"memras-cxl-{serial:x}", f"memras-cxlmem-{serial:x}"
        if any(d["id"] == dev_id for d in await self._devices(qmp)):
            return {"qemu_id": dev_id, "note": "already added; the guest is enumerating it"}
        bus = self.bus or await self._free_port(qmp)
        if bus is None:
            raise WorkflowError("QEMU has no free cxl-rp root port for the new device")
        objects = {o.get("name") for o in await qmp.execute("qom-list", {"path": "/objects"})}
        if mem_id not in objects:  # a NEW memory backend: the new device's own memory
            await qmp.execute("object-add", {"qom-type": "memory-backend-ram", "id": mem_id,
                                             "size": int(cx.get("ram_size") or 0),
                                             "share": True})
        await qmp.execute("device_add", {"driver": QEMU_DRIVER, "id": dev_id, "bus": bus,
                                         "volatile-memdev": mem_id, "sn": serial})
        return {"qemu_id": dev_id, "qemu_bus": bus, "qemu_memdev": mem_id,
                "qemu_sn": f"{serial:#x}"}


def guest_serial(sn: Any) -> int | None:
    """The serial the guest kernel reads for a cxl-type3 of QEMU ``sn``: without one
    (QEMU's default, UI64_NULL) the device has no Device Serial Number capability and
    the kernel's memdev shows 0."""
    try:
        value = int(sn)
    except (TypeError, ValueError):
        return None
    return 0 if value == UI64_NULL else value


def next_serial(cx: dict[str, Any]) -> int:
    """The new device's serial in a VM or the simulator: the old one plus one, past any
    other memdev's (a real device brings its own)."""
    taken = {cx.get("serial"), *cx.get("others", [])}
    serial = (cx.get("serial") or 0) + 1
    while serial in taken:
        serial += 1
    return serial
