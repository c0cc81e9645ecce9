"""Guest memory from the hypervisor side over QMP: pc-dimm add/remove, virtio-mem resize.

The QMP connection is :class:`memras.qemu.qmp.GuestQmp` (one client in the
project); this module adds the operator's decisions on top of it:

- add: ``object-add memory-backend-ram`` ``mem-<id>`` + ``device_add pc-dimm``; success
  is ``ACPI_DEVICE_OST`` status 0 (the guest onlines it, Movable with
  ``memhp_default_state=online_movable``). On failure the backend is deleted again.
- remove: ``device_del``; success is ``DEVICE_DELETED`` only. ``ACPI_DEVICE_OST``
  0x80-0x83 (0x82: the guest could not offline the memory) or no DEVICE_DELETED
  within the timeout is failure and the DIMM stays. After success ``object-del``
  frees the backend (it fails while the device still uses it).
- resize: ``qom-set requested-size`` on a virtio-mem device, then wait for
  ``MEMORY_DEVICE_SIZE_CHANGE`` events until ``size`` equals the request (the guest
  driver plugs/unplugs in device blocks) or the timeout; ``qom-get size`` is the
  answer. virtio-mem cannot be ``device_del``-ed (QEMU 7.2).

libvirt equivalents are in the user guide (capacity-vm-partition).
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from memras.errors import QemuError, UsageError
from memras.qemu.qmp import OST_NAMES, Event, GuestQmp, event_data

MiB = 1 << 20
LINUX_BLOCK_BYTES = 128 * MiB  # x86-64 memory block; smaller DIMMs cannot be onlined whole


@dataclass(frozen=True, slots=True)
class MemoryDevice:
    """One entry of ``query-memory-devices``."""

    id: str
    type: str  # dimm | virtio-mem | nvdimm | virtio-pmem
    size: int
    memdev: str | None
    addr: int | None = None
    slot: int | None = None
    node: int | None = None
    hotplugged: bool | None = None
    requested_size: int | None = None  # virtio-mem
    max_size: int | None = None  # virtio-mem
    block_size: int | None = None  # virtio-mem

    @classmethod
    def from_qmp(cls, entry: dict[str, Any]) -> MemoryDevice:
        data = entry.get("data", {})
        return cls(id=str(data.get("id", "")), type=str(entry.get("type", "?")),
                   size=int(data.get("size", 0)), memdev=data.get("memdev"),
                   addr=data.get("addr"), slot=data.get("slot"), node=data.get("node"),
                   hotplugged=data.get("hotplugged"),
                   requested_size=data.get("requested-size"),
                   max_size=data.get("max-size"), block_size=data.get("block-size"))

    @property
    def backend_id(self) -> str | None:
        """``/objects/mem1`` -> ``mem1``."""
        return self.memdev.rsplit("/", 1)[-1] if self.memdev else None


def connect(socket_path: str, timeout: float = 30.0) -> GuestQmp:
    return GuestQmp(Path(socket_path), timeout=timeout)


def list_devices(qmp: GuestQmp) -> list[MemoryDevice]:
    return [MemoryDevice.from_qmp(e) for e in qmp.cmd("query-memory-devices")]


def find(qmp: GuestQmp, device_id: str) -> MemoryDevice:
    for dev in list_devices(qmp):
        if dev.id == device_id:
            return dev
    raise UsageError(f"no memory device {device_id!r} in this VM",
                     hint="see: memras vm list --qmp SOCKET")


@dataclass(frozen=True, slots=True)
class VmResult:
    op: str
    device: str
    ok: bool
    seconds: float
    detail: str
    size: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"op": self.op, "device": self.device, "ok": self.ok,
                "seconds": round(self.seconds, 3), "detail": self.detail, "size": self.size}


def check_add(qmp: GuestQmp, device_id: str, size: int) -> None:
    """Refuse an add that cannot work: id in use, size not whole Linux blocks."""
    if size <= 0 or size % LINUX_BLOCK_BYTES:
        raise UsageError(f"DIMM size must be a positive multiple of 128M, not {size // MiB}M",
                         hint="the guest onlines memory in 128 MiB blocks")
    if any(d.id == device_id for d in list_devices(qmp)):
        raise UsageError(f"a memory device {device_id!r} already exists",
                         hint="pick another --id")


def add_dimm(qmp: GuestQmp, device_id: str, size: int, slot: int | None = None,
             node: int | None = None) -> VmResult:
    """Hot-add a pc-dimm (on guest NUMA ``node``: the pc-dimm's ``node`` property); on
    any failure the new backend is removed again."""
    check_add(qmp, device_id, size)
    memdev = f"mem-{device_id}"
    started = time.monotonic()
    try:
        seconds = qmp.plug(device_id, memdev, size, slot=slot, node=node)
    except QemuError as exc:
        _undo_add(qmp, device_id, memdev)
        return VmResult("add", device_id, False, time.monotonic() - started, exc.msg)
    return VmResult("add", device_id, True, seconds, "ACPI OST 0: the guest accepted it",
                    size)


def _undo_add(qmp: GuestQmp, device_id: str, memdev: str) -> None:
    for name, args in (("device_del", {"id": device_id}), ("object-del", {"id": memdev})):
        with contextlib.suppress(QemuError):  # not created in the first place
            qmp.cmd(name, **args)


def remove_dimm(qmp: GuestQmp, device_id: str, timeout: float = 60.0) -> VmResult:
    """Unplug a pc-dimm; DEVICE_DELETED is success, OST 0x80-0x83 or silence failure."""
    dev = find(qmp, device_id)
    if dev.type != "dimm":
        raise UsageError(f"{device_id} is a {dev.type}; only pc-dimm devices are unplugged",
                         hint="shrink virtio-mem with: memras vm resize ID SIZE")
    result = qmp.unplug(device_id, timeout=timeout)
    if not result.deleted:
        status = result.failure_status
        why = (f"ACPI OST {status:#x} ({OST_NAMES.get(status, '?')})" if status is not None
               else f"no DEVICE_DELETED within {timeout:g}s")
        return VmResult("remove", device_id, False, result.seconds,
                        f"{why}: the guest kept the memory")
    if dev.backend_id:
        qmp.cmd("object-del", id=dev.backend_id)
    return VmResult("remove", device_id, True, result.seconds,
                    "DEVICE_DELETED; backend freed", dev.size)


def resize_virtio_mem(qmp: GuestQmp, device_id: str, requested: int,
                      timeout: float = 60.0) -> VmResult:
    """Set ``requested-size`` and wait until the guest's plugged ``size`` matches."""
    dev = find(qmp, device_id)
    if dev.type != "virtio-mem":
        raise UsageError(f"{device_id} is a {dev.type}, not virtio-mem",
                         hint="add or remove pc-dimm devices with memras vm add/remove")
    granule = dev.block_size or 2 * MiB
    if requested < 0 or requested % granule or (dev.max_size and requested > dev.max_size):
        raise UsageError(f"requested size must be a multiple of {granule // MiB}M between 0 "
                         f"and {(dev.max_size or 0) // MiB}M")
    qmp.drain()
    started = time.monotonic()
    qmp.cmd("qom-set", path=device_id, property="requested-size", value=requested)

    def reached(event: Event) -> bool:
        data = event_data(event)
        return (event["event"] == "MEMORY_DEVICE_SIZE_CHANGE" and data.get("id") == device_id
                and int(data.get("size", -1)) == requested)

    size = int(qmp.cmd("qom-get", path=device_id, property="size"))
    if size != requested:
        qmp.wait_event(reached, timeout)
        size = int(qmp.cmd("qom-get", path=device_id, property="size"))
    ok = size == requested
    detail = "size reached" if ok else (f"guest plugged {size // MiB}M of "
                                        f"{requested // MiB}M within {timeout:g}s")
    return VmResult("resize", device_id, ok, time.monotonic() - started, detail, size)
