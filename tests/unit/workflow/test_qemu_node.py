"""Guest NUMA nodes in QEMU command construction (issue 18): the qemu backend puts the
new pc-dimm on the old one's node (QEMU's default is node 0, which would move node 1's
memory to node 0), and ``memras vm add --node N`` passes ``node`` to ``device_add``."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from memras.plugins.backends.qemu import QemuBackend

from memras.capacity import vm
from memras.host import Host
from memras.qemu.qmp import GuestQmp
from memras.workflow.backends import BackendContext, Target

TARGET = Target(dimm_id="PNP0C80:01", label="", locator="", serial="", part="",
                blocks=(36, 37, 38, 39), block_size=128 << 20, slot="0x01")


class FakeMonitor:
    """The async QMP calls the backend makes; query-memory-devices as QEMU 7.2 answers
    for a pc-dimm (the ``data`` fields of PCDIMMDeviceInfo)."""

    def __init__(self, node: int | None) -> None:
        self.calls: list[tuple[str, dict[str, Any] | None]] = []
        self.devices = [] if node is None else [{"type": "dimm", "data": {
            "id": "dimm2", "slot": 1, "node": node, "addr": 0x120000000,
            "size": 512 << 20, "memdev": "/objects/mem2", "hotplugged": False,
            "hotpluggable": True}}]

    async def execute(self, name: str, args: dict[str, Any] | None = None) -> Any:
        self.calls.append((name, args))
        if name == "query-memory-devices":
            return self.devices
        if name == "qom-list":
            return []
        return {}


def backend(tmp_path: Path) -> QemuBackend:
    return QemuBackend(BackendContext(host=Host(tmp_path), options={"qmp": "x:1"}))


def device_add(mon: FakeMonitor) -> dict[str, Any]:
    return next(args for name, args in mon.calls if name == "device_add") or {}


def test_insert_uses_the_old_dimms_node(tmp_path: Path) -> None:
    b = backend(tmp_path)
    listed = FakeMonitor(node=1)
    assert asyncio.run(b._find(listed, TARGET))["node"] == 1
    b.node = listed.devices[0]["data"]["node"]  # what can_remove / remove keep
    empty = FakeMonitor(node=None)  # the slot is empty after the removal
    result = asyncio.run(b._insert(empty, TARGET))
    assert device_add(empty) == {"driver": "pc-dimm", "id": "memras-dimm1",
                                 "memdev": "memras-mem1", "slot": 1, "node": 1}
    assert result.ok and result.data["node"] == 1 and "on node 1" in result.detail


def test_insert_without_a_known_node_leaves_it_to_qemu(tmp_path: Path) -> None:
    empty = FakeMonitor(node=None)
    asyncio.run(backend(tmp_path)._insert(empty, TARGET))
    assert "node" not in device_add(empty)


class RecordingQmp(GuestQmp):
    """GuestQmp without a socket: commands are recorded, the guest answers OST 0."""

    def __init__(self) -> None:
        self.events = []
        self.sent: list[tuple[str, dict[str, Any]]] = []

    def cmd(self, name: str, **args: Any) -> Any:
        self.sent.append((name, args))
        return [] if name == "query-memory-devices" else {}

    def drain(self) -> list:
        return []

    def wait_event(self, match, timeout: float):
        event = {"event": "ACPI_DEVICE_OST", "data": {"info": {
            "device": "dimm3", "slot": "3", "slot-type": "DIMM", "source": 1, "status": 0}}}
        return event if match(event) else None


def test_vm_add_node_reaches_device_add() -> None:
    qmp = RecordingQmp()
    result = vm.add_dimm(qmp, "dimm3", 256 << 20, slot=3, node=1)
    assert result.ok
    assert ("device_add", {"driver": "pc-dimm", "id": "dimm3", "memdev": "mem-dimm3",
                           "slot": 3, "node": 1}) in qmp.sent
    qmp = RecordingQmp()
    vm.add_dimm(qmp, "dimm3", 256 << 20)
    assert ("device_add", {"driver": "pc-dimm", "id": "dimm3",
                           "memdev": "mem-dimm3"}) in qmp.sent
