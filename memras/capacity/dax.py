"""CXL memory as capacity: a DAX device's memory onlined as system RAM, or given back.

A CXL ram region shows up as a DAX device (``/sys/bus/dax/devices/daxR.I``). Bound to
the ``kmem`` driver it is system RAM (daxctl's mode ``system-ram``): kmem hot-adds its
memory blocks, and they are onlined (memras: into ZONE_MOVABLE, so they can be taken
back). Bound to ``device_dax`` it is a ``/dev/daxR.I`` character device (``devdax``) and
the kernel's page allocator does not use it. Moving between the two is what
``daxctl reconfigure-device --mode=system-ram|devdax`` does, through the sysfs ABI of
Documentation/ABI/testing/sysfs-bus-dax:

- **online** (to system-ram): ``device_dax/unbind`` (if bound there), ``kmem/new_id``
  (the kernel then attaches kmem to the unbound device; ``kmem/bind`` when it did not),
  then every block of the device's range onlined with chmem's rules
  (:mod:`memras.capacity.chmem`: Movable unless ``--zone`` names a kernel zone);
- **offline** (to devdax): every block offlined with chmem's rules (retries, progress,
  cancel, the MemAvailable reserve checked first), and only when *all* are offline
  ``kmem/unbind`` (kmem hot-removes the memory), then ``device_dax/new_id``. An unbind
  with a block still online would leave that memory in the kernel "until the next
  reboot" (drivers/dax/kmem.c, dev_dax_kmem_remove), so memras never does it.

Everything goes through :class:`memras.host.Host`'s kernel-file layer, so a synthetic
``--root`` (the simulator's ``cxl`` profile) takes the same writes as a real kernel.
"""

from __future__ import annotations

import errno
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from memras.capacity import chmem
from memras.errors import UsageError
from memras.host.cxl import DaxDevice
from memras.host.memory_blocks import MemoryBlock
from memras.text import block_names, format_bytes
from memras.workflow.offline import Progress, RetryPolicy

if TYPE_CHECKING:
    from memras.host import Host

KMEM, DEVICE_DAX = "kmem", "device_dax"
# the first kernel release that can have the DCD series: its v10 targeted 7.3, but
# "cxl/mbox: Flag support for Dynamic Capacity Devices (DCD)" was committed on 7.3-rc3
# for the next merge window, and Debian's 7.3~rc7-1~exp1 image has neither the DC
# mailbox commands nor dynamic_ram_a (hotplug-internals, "Dynamic capacity")
DCD_FIRST_KERNEL = (7, 4)


@dataclass(frozen=True)
class DaxCapacity:
    """One DAX device as capacity: its mode and the memory blocks of its range."""

    device: DaxDevice
    block_size: int
    blocks: tuple[MemoryBlock, ...]  # the blocks of its range the kernel has now

    @property
    def name(self) -> str:
        return self.device.name

    @property
    def online(self) -> list[int]:
        return [b.index for b in self.blocks if b.online]

    @property
    def movable(self) -> bool | None:
        """Every online block in ZONE_MOVABLE (None while none is online)."""
        online = [b for b in self.blocks if b.online]
        return all(b.zone == "Movable" for b in online) if online else None

    @property
    def total_blocks(self) -> int:
        return len(self.device.blocks(self.block_size))

    def as_dict(self) -> dict[str, Any]:
        d = self.device
        return {"device": d.name, "region": d.region, "mode": d.mode, "driver": d.driver,
                "size": d.size, "start": d.start, "node": d.target_node,
                "blocks": list(d.blocks(self.block_size)),
                "present_blocks": [b.index for b in self.blocks],
                "online_blocks": self.online, "total_blocks": self.total_blocks,
                "movable": self.movable}


def dax_capacity(host: Host) -> list[DaxCapacity]:
    """Every DAX device of the host with its blocks (none without a dax bus)."""
    devices = host.cxl.dax_devices()
    if not devices:
        return []
    block_size = host.memory.block_size() if host.memory.present else 0
    by_index = {b.index: b for b in host.memory.all()} if host.memory.present else {}
    return [DaxCapacity(d, block_size, tuple(by_index[i] for i in d.blocks(block_size)
                                             if i in by_index))
            for d in devices]


def find_dax(host: Host, name: str) -> DaxCapacity:
    """The DAX device ``name``; a UsageError naming the ones there are."""
    devices = dax_capacity(host)
    found = next((d for d in devices if d.name == name), None)
    if found is None:
        have = ", ".join(d.name for d in devices) or "none"
        raise UsageError(f"no DAX device {name} under {host.root} (DAX devices: {have})",
                         hint="see `memras capacity` (or `daxctl list`)")
    if found.device.start is None or not found.block_size:
        raise UsageError(f"{name} has no memory range memras can map to memory blocks",
                         hint="its region is not committed, or this kernel has no memory "
                              "hotplug")
    return found


# --- dynamic capacity ----------------------------------------------------------------


@dataclass(frozen=True)
class DynamicCapacity:
    """What the kernel shows of the memdevs' dynamic capacity (DC) partitions."""

    kernel: str
    partitions: tuple[tuple[str, str, int], ...]  # (memdev, partition, size)

    @property
    def supported(self) -> bool | None:
        """True when a DC partition is shown; False on a kernel older than the DCD
        series; None when a kernel that may have it shows none (no DCD device)."""
        if self.partitions:
            return True
        release = _release(self.kernel)
        if release is not None and release < DCD_FIRST_KERNEL:
            return False
        return None

    def line(self) -> str:
        if self.partitions:
            return "dynamic capacity: " + ", ".join(
                f"{m} {p} {format_bytes(s)}" for m, p, s in self.partitions)
        if self.supported is False:
            return f"dynamic capacity: not supported by this kernel ({self.kernel})"
        return "dynamic capacity: no memdev shows a dynamic capacity partition"

    def as_dict(self) -> dict[str, Any]:
        return {"kernel": self.kernel, "supported": self.supported, "line": self.line(),
                "partitions": [{"memdev": m, "partition": p, "size": s}
                               for m, p, s in self.partitions]}


def _release(kernel: str) -> tuple[int, int] | None:
    parts = kernel.split(".", 2)
    if len(parts) < 2 or not parts[0].isdigit():
        return None
    minor = "".join(c for c in parts[1] if c.isdigit()) if parts[1][:1].isdigit() else ""
    return (int(parts[0]), int(minor)) if minor else None


def dynamic_capacity(host: Host) -> DynamicCapacity:
    kernel = host.fs.read("/proc/sys/kernel/osrelease", default="").strip() or "unknown"
    parts = tuple((m.name, "dynamic_ram_a", m.dynamic_ram_a_size)
                  for m in host.cxl.memdevs() if m.dynamic_ram_a_size)
    return DynamicCapacity(kernel, parts)


# --- plan ------------------------------------------------------------------------------


@dataclass(frozen=True)
class DriverStep:
    driver: str
    attr: str  # new_id | bind | unbind

    def text(self, device: str) -> str:
        return f"{device} > /sys/bus/dax/drivers/{self.driver}/{self.attr}"


@dataclass(frozen=True)
class DaxPlan:
    """What ``capacity online|offline --dax NAME`` will do, in order. Pure data."""

    action: chmem.Action
    dax: DaxCapacity
    before: tuple[DriverStep, ...]  # driver writes before the blocks (online)
    after: tuple[DriverStep, ...]  # driver writes after every block is offline (offline)
    blocks: chmem.Plan | None  # None: the blocks appear only when kmem binds (online)
    zone: str | None = None

    @property
    def nothing_to_do(self) -> bool:
        return not self.before and not self.after and (
            self.blocks is None or not self.blocks.expected())

    def block_numbers(self) -> list[int]:
        if self.blocks is not None:
            return self.blocks.expected()
        return list(self.dax.device.blocks(self.dax.block_size))

    def steps(self) -> list[str]:
        name = self.dax.name
        out = [s.text(name) for s in self.before]
        blocks = self.block_numbers()
        if blocks:
            verb = ("online " + ("movable" if self.zone in (None, "Movable") else self.zone)
                    if self.action == "online" else "offline")
            added = " (hot-added by kmem)" if self.blocks is None else ""
            out.append(f"{verb} {block_names(blocks)}{added}")
        out += [s.text(name) for s in self.after]
        return out

    def as_dict(self) -> dict[str, Any]:
        return {"action": self.action, "dax": self.dax.as_dict(), "zone": self.zone,
                "steps": self.steps(), "blocks": self.block_numbers(),
                "size": len(self.block_numbers()) * self.dax.block_size,
                "block_plan": None if self.blocks is None else self.blocks.as_dict()}


def _range_request(action: chmem.Action, dax: DaxCapacity, zone: str | None) -> chmem.Request:
    r = dax.device.blocks(dax.block_size)
    return chmem.Request(action, f"--dax {dax.name}", chmem.canonical_zone(zone),
                         first=r.start, last=r.stop - 1)


def plan_dax(host: Host, action: chmem.Action, name: str, zone: str | None = None) -> DaxPlan:
    """The driver writes and block changes that make ``name`` system-ram (online) or
    devdax (offline); see the module docstring."""
    dax = find_dax(host, name)
    driver = dax.device.driver
    if action == "online":
        before: list[DriverStep] = []
        if driver not in (KMEM, None):
            before.append(DriverStep(driver, "unbind"))
        if driver != KMEM:
            before += [DriverStep(KMEM, "new_id"), DriverStep(KMEM, "bind")]
            return DaxPlan(action, dax, tuple(before), (), None, zone)
        return DaxPlan(action, dax, (), (), chmem.plan(_range_request(action, dax, zone),
                                                       host.memory.all()), zone)
    if driver != KMEM:
        return DaxPlan(action, dax, (), (), None, zone)  # devdax already: nothing to do
    blocks = chmem.plan(_range_request(action, dax, zone), host.memory.all())
    return DaxPlan(action, dax, (), (DriverStep(KMEM, "unbind"),
                                     DriverStep(DEVICE_DAX, "new_id"),
                                     DriverStep(DEVICE_DAX, "bind")), blocks, zone)


def preflight(host: Host, the_plan: DaxPlan, reserve_bytes: int, *,
              node_reserve: str | int | None = None, force_node: bool = False
              ) -> list[Any]:
    """chmem's checks for the blocks (offline: the MemAvailable reserve and the reserve of
    each node they are on) and that the dax drivers the plan writes to are loaded."""
    from memras.workflow.preflight import Check  # lazy, as chmem.preflight

    if the_plan.blocks is not None and the_plan.action == "offline":
        checks = chmem.preflight(host, the_plan.blocks, reserve_bytes,
                                 node_reserve=node_reserve, force_node=force_node)
    else:
        checks = [Check("privileges", host.can_write(),
                        "simulated root" if host.is_simulated else
                        "running as root" if host.can_write() else "memras must run as root")]
    needed = sorted({s.driver for s in (*the_plan.before, *the_plan.after)})
    loaded = host.cxl.dax_drivers()
    missing = [d for d in needed if d not in loaded]
    checks.append(Check("dax drivers", not missing,
                        f"{', '.join(needed)} loaded" if not missing else
                        f"{', '.join(missing)} not loaded (modprobe {' '.join(missing)})"
                        if needed else "no driver change"))
    if the_plan.action == "offline" and the_plan.blocks is not None:
        # kmem gives memory back only when every block of the device is offline
        stuck = list(the_plan.blocks.skipped)
        checks.append(Check("whole device", not stuck,
                            f"all {the_plan.dax.total_blocks} blocks of {the_plan.dax.name} "
                            "can be offlined" if not stuck else
                            f"memory{stuck[0].block}: {stuck[0].reason}"))
    return checks


# --- execution -------------------------------------------------------------------------


@dataclass
class DaxResult:
    plan: DaxPlan
    writes: list[dict[str, Any]] = field(default_factory=list)
    blocks: chmem.Result | None = None
    error: str | None = None
    mode_after: str | None = None
    online_after: tuple[int, int] | None = None  # (blocks online, blocks of the device)

    @property
    def exit_status(self) -> int:
        if self.error is not None:
            return chmem.EXIT_FAILURE if not self._changed_any() else chmem.EXIT_PARTIAL
        if self.blocks is not None and self.blocks.exit_status != chmem.EXIT_OK:
            return self.blocks.exit_status
        return chmem.EXIT_OK

    def _changed_any(self) -> bool:
        return any(w["ok"] for w in self.writes) or bool(self.blocks and self.blocks.changed)

    def summary(self) -> str:
        name = self.plan.dax.name
        size = format_bytes(self.plan.dax.device.size)
        state = f"{self.mode_after}" + (
            f", {self.online_after[0]}/{self.online_after[1]} blocks online"
            if self.online_after and self.mode_after == "system-ram" else "")
        if self.exit_status == chmem.EXIT_OK:
            return (f"{name}: {size} is {state}" +
                    (" (nothing to do)" if self.plan.nothing_to_do else ""))
        what = self.error or (self.blocks.summary() if self.blocks else "failed")
        return f"{name}: {what}; it is {state}"

    def as_dict(self) -> dict[str, Any]:
        return {**self.plan.as_dict(), "exit_status": self.exit_status,
                "writes": self.writes, "mode_after": self.mode_after, "error": self.error,
                "online_blocks_after": None if self.online_after is None
                else self.online_after[0],
                "summary": self.summary(),
                "block_result": None if self.blocks is None else self.blocks.as_dict()}


OnWrite = Callable[[dict[str, Any]], None]


def execute_dax(host: Host, the_plan: DaxPlan, *, retry: RetryPolicy | None = None,
                cancel: threading.Event | None = None,
                progress: Callable[[Progress], None] | None = None,
                on_outcome: chmem.OnOutcome | None = None,
                on_write: OnWrite | None = None) -> DaxResult:
    """Run the plan: driver writes and block changes in order (see the module)."""
    result = DaxResult(the_plan)
    name = the_plan.dax.name
    try:
        if not _writes(host, result, the_plan.before, on_write):
            return result
        blocks = the_plan.blocks
        if the_plan.action == "online" and blocks is None:
            fresh = find_dax(host, name)  # kmem hot-added its blocks
            blocks = chmem.plan(_range_request("online", fresh, the_plan.zone),
                                host.memory.all())
        if blocks is not None:
            result.blocks = chmem.execute(host, blocks, retry=retry, cancel=cancel,
                                          progress=progress, on_outcome=on_outcome)
            if result.blocks.exit_status != chmem.EXIT_OK:
                return result  # offline: kmem keeps the device while a block is online
        if the_plan.action == "offline" and the_plan.after:
            left = find_dax(host, name).online
            if left:
                result.error = (f"{block_names(left)} still online: {name} stays "
                                "system-ram")
                return result
            _writes(host, result, the_plan.after, on_write)
            gone = find_dax(host, name).blocks
            if not result.error and gone:
                result.error = (f"the kernel kept {block_names([b.index for b in gone])} "
                                f"after kmem let go of {name}")
        return result
    finally:
        after = next((d for d in dax_capacity(host) if d.name == name), None)
        result.mode_after = after.device.mode if after else "gone"
        result.online_after = (len(after.online), after.total_blocks) if after else None


def _writes(host: Host, result: DaxResult, steps: tuple[DriverStep, ...],
            on_write: OnWrite | None) -> bool:
    """The driver writes in order; ``new_id`` attaches an unbound device already, so a
    ``bind`` to the driver it is bound to now is skipped. False at the first refusal."""
    name = result.plan.dax.name
    for step in steps:
        if step.attr == "bind" and _driver(host, name) == step.driver:
            record = {"write": step.text(name), "ok": True, "skipped": "already bound"}
        else:
            try:
                host.cxl.dax_driver_write(step.driver, step.attr, name)
                record = {"write": step.text(name), "ok": True}
            except OSError as exc:
                record = {"write": step.text(name), "ok": False,
                          "error": f"{errno.errorcode.get(exc.errno or 0, exc.errno)}: "
                                   f"{exc.strerror}"}
                result.error = f"{step.text(name)} refused: {exc.strerror}"
        result.writes.append(record)
        if on_write is not None:
            on_write(record)
        if not record["ok"]:
            return False
    return True


def _driver(host: Host, name: str) -> str | None:
    device = host.cxl.dax_device(name)
    return device.driver if device else None

