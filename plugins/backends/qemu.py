"""The ``qemu`` backend: the QEMU monitor (QMP) is the technician for a VM's pc-dimm.

Remove: find the DIMM's QEMU id with ``query-memory-devices`` (slot = ACPI ``_UID``, or
the address range), ``device_del`` it and wait for ``DEVICE_DELETED``. ACPI_DEVICE_OST
with status 0x80–0x83 (failure, busy…) or no DEVICE_DELETED within the timeout is a
failure: the guest kernel could not offline a block and has re-onlined them.
Insert: ``object-del`` the old backend, ``object-add`` a new memory-backend-ram of the
same size and ``device_add`` a pc-dimm in the same slot and on the same guest NUMA node
(``node=``, as ``query-memory-devices`` listed the old one at preflight or removal:
without it QEMU puts the new DIMM on node 0); the guest adds its blocks.
The monitor comes from ``--qmp`` (``backend_options["qmp"]``): a unix socket path, or
``HOST:PORT`` for a TCP monitor (the lab guest reaches its QEMU at 10.0.2.100:4444).
The QMP client is the ``memras[vm]`` extra, imported when a session opens
(:func:`memras.qemu.qmp.qmp_library`): listing the backends never needs it.
"""

from __future__ import annotations

import asyncio
from typing import Any

from memras.errors import WorkflowError
from memras.qemu.qmp import OST_FAILURES, event_data, qmp_library
from memras.workflow.backends import Backend, BackendResult, Target


def slot_number(uid: str | None) -> int | None:
    """The QEMU slot from the ACPI ``_UID`` as the guest kernel shows it: "1" or, as
    Linux prints an integer _UID of QEMU's DIMM devices, "0x01"; None if not a number."""
    try:
        return None if uid is None else int(str(uid), 0)
    except ValueError:
        return None


def _matches(dev: dict[str, Any], target: Target) -> bool:
    data = dev.get("data", {})
    slot = slot_number(target.slot)
    if slot is not None and data.get("slot") == slot:
        return True
    return data.get("addr") == target.start and data.get("size") == target.size


class QemuBackend(Backend):
    name = "qemu"
    inserts = True
    node: int | None = None  # the old pc-dimm's guest NUMA node, once QEMU listed it

    @property
    def socket(self) -> str:
        path = self.ctx.options.get("qmp")
        if not path:
            raise WorkflowError("the qemu backend needs the QMP socket",
                                hint="pass --qmp PATH (or set [replace] qmp in the config)")
        return str(path)

    @property
    def address(self) -> str | tuple[str, int]:
        """``HOST:PORT`` as a TCP address, anything else as a unix socket path."""
        host, sep, port = self.socket.rpartition(":")
        if sep and host and "/" not in self.socket and port.isdigit():
            return host, int(port)
        return self.socket

    def _run(self, coro_fn, *args: Any) -> Any:
        try:
            return asyncio.run(self._session(coro_fn, *args))
        except (OSError, ConnectionError) as exc:
            raise WorkflowError(f"cannot talk to QEMU at {self.socket}: {exc}",
                                hint="check --qmp (QEMU: -qmp unix:… or tcp:…)") from None

    async def _session(self, coro_fn, *args: Any) -> Any:
        qmp = qmp_library().QMPClient("memras")
        await qmp.connect(self.address)
        try:
            return await coro_fn(qmp, *args)
        finally:
            await qmp.disconnect()

    async def _find(self, qmp, target: Target) -> dict[str, Any] | None:
        for dev in await qmp.execute("query-memory-devices"):
            if dev.get("type") == "dimm" and _matches(dev, target):
                return dev["data"]
        return None

    def can_remove(self, target: Target) -> BackendResult:
        try:
            data = self._run(self._find, target)
        except WorkflowError as exc:
            return BackendResult(False, exc.msg)
        if data is None:
            return BackendResult(False, f"QEMU lists no pc-dimm in slot {target.slot}")
        self.node = data.get("node", self.node)
        return BackendResult(True, f"QEMU device {data.get('id')} in slot {data.get('slot')}"
                             + ("" if self.node is None else f", node {self.node}"))

    def remove(self, target: Target) -> BackendResult:
        return self._run(self._remove, target)

    async def _remove(self, qmp, target: Target) -> BackendResult:
        data = await self._find(qmp, target)
        if data is None:
            return BackendResult(True, "QEMU lists no DIMM in that slot: already removed")
        dev_id = data["id"]
        self.node = data.get("node", self.node)
        # QMPClient.listen() yields nothing: events are read from the listener itself.
        events = qmp_library().EventListener(("DEVICE_DELETED", "ACPI_DEVICE_OST"))
        with qmp.listen(events):
            await qmp.execute("device_del", {"id": dev_id})
            await self._wait_deleted(events, dev_id)
        return BackendResult(True, f"QEMU deleted {dev_id}",
                             {"qemu_id": dev_id, "memdev": data.get("memdev"),
                              "size": data.get("size"), "slot": data.get("slot"),
                              "node": data.get("node")})

    async def _wait_deleted(self, events, dev_id: str) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.ctx.timeout_s
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0 or self.ctx.cancel.is_set():
                raise WorkflowError(f"no DEVICE_DELETED for {dev_id} within "
                                    f"{self.ctx.timeout_s:g}s",
                                    hint="the guest could not offline the DIMM")
            try:
                event = await asyncio.wait_for(events.get(), min(remaining, 1.0))
            except TimeoutError:
                continue
            info = event_data(event)
            if event["event"] == "DEVICE_DELETED" and info.get("device") == dev_id:
                return
            if (event["event"] == "ACPI_DEVICE_OST" and info.get("device") in (dev_id, None)
                    and info.get("status") in OST_FAILURES):
                raise WorkflowError(f"the guest refused to eject {dev_id}: ACPI _OST status "
                                    f"{info.get('status'):#x}",
                                    hint="0x82 busy: a block could not be offlined")

    def insert(self, target: Target) -> BackendResult:
        return self._run(self._insert, target)

    async def _insert(self, qmp, target: Target) -> BackendResult:
        if await self._find(qmp, target) is not None:
            return BackendResult(True, "a DIMM is already in that slot")
        slot = slot_number(target.slot)
        suffix = str(slot) if slot is not None else "x"
        mem_id, dev_id = f"memras-mem{suffix}", f"memras-dimm{suffix}"
        for obj in await qmp.execute("qom-list", {"path": "/objects"}):
            if obj.get("name") == mem_id:
                await qmp.execute("object-del", {"id": mem_id})
        await qmp.execute("object-add", {"qom-type": "memory-backend-ram", "id": mem_id,
                                         "size": target.size})
        args: dict[str, Any] = {"driver": "pc-dimm", "id": dev_id, "memdev": mem_id}
        if slot is not None:
            args["slot"] = slot
        if self.node is not None:
            args["node"] = self.node
        await qmp.execute("device_add", args)
        return BackendResult(True, f"QEMU added {dev_id}" + (
            "" if self.node is None else f" on node {self.node}"),
            {"qemu_id": dev_id, "node": self.node})
