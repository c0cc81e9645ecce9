"""The simulated kernel: answers memras's sysfs writes under a simulated root.

``KernelFs.write`` hands every write under a root holding ``.memras-sim/`` to
:meth:`SimulatedKernel.write`, which applies the rules of a 6.1 kernel and raises
``OSError`` with the errno the kernel's store function returns. Modelled
(drivers/base/memory.c ``state_store``/``online_store``, mm/memory_hotplug.c
``online_pages``/``offline_pages``, mm/memory-failure.c, drivers/acpi/scan.c
``acpi_scan_try_to_offline``, drivers/edac/edac_mc_sysfs.c):

- ``memoryN/state`` ``offline``: EINVAL if already offline or the block spans
  zones (``none``); EBUSY while a "busy N times" flag lasts, and always for a block
  holding unmovable pages; otherwise offline, ``offline`` uevent.
- ``online``/``online_kernel``/``online_movable`` (and ``online`` 1/0): EINVAL if
  already online; the zone is the default / kernel / Movable one of the block's
  ``valid_zones``. A block onlined into a kernel zone is at once marked as holding
  unmovable pages, as was measured on a real kernel.
- ``soft_offline_page``/``hard_offline_page``: a physical byte address (kstrtoull
  base 0): ENXIO without such a page, EIO (soft) / ENXIO (hard) when its block is
  offline, else the page is poisoned and HardwareCorrupted grows by 4 kB; a second
  soft offline is a silent success, a second hard offline EHWPOISON.
- ``PNP0C80:XX/eject`` ``1``: offline every linked block; if one refuses, re-online
  those offlined and fail with EBUSY; else remove the blocks (``remove`` uevents),
  drop the links and set status 0.
- EDAC ``reset_counters`` and ``dimm_label`` (1..31 characters).
- CXL regions, DAX drivers and PCIe slot power (the ``cxl`` profiles):
  :func:`memras.sim.cxl.cxl_write`.

Where this is not faithful is written in docs/hotplug-internals.md
(workflow-kernel-rules).
"""

from __future__ import annotations

import errno
import os
import re
from pathlib import Path

from memras.sim import tree
from memras.sim.spec import PAGE_SIZE
from memras.sim.state import SimState, kmsg, locked_state, uevent

_BLOCK_ATTR = re.compile(r"/sys/devices/system/memory/memory(\d+)/(state|online)$")
_EJECT = re.compile(r"/sys/bus/acpi/devices/(PNP0C80:[0-9A-Fa-f]+)/eject$")
_RESET = re.compile(r"/sys/devices/system/edac/mc/mc(\d+)/reset_counters$")
_LABEL = re.compile(r"/sys/devices/system/edac/mc/mc(\d+)/((?:dimm|rank)\d+)/dimm_label$")
ONLINE_KINDS = ("online", "online_kernel", "online_movable")
AUTO_ONLINE_VALUES = ("offline", *ONLINE_KINDS)
EHWPOISON = getattr(errno, "EHWPOISON", 133)  # Linux asm-generic/errno.h; not in Python's errno


def _fail(code: int, path: str) -> OSError:
    return OSError(code, os.strerror(code), path)


def devpath(index: int) -> str:
    return f"/devices/system/memory/memory{index}"


class SimulatedKernel:
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def write(self, rel_path: str, value: str) -> None:
        """Apply one sysfs write as the kernel would; OSError(errno) on refusal."""
        path = "/" + rel_path.lstrip("/")
        if not (self.root / path.lstrip("/")).exists():
            raise _fail(errno.ENOENT, path)
        text = value.strip()
        with locked_state(self.root) as state:
            self._dispatch(state, path, text)

    def _dispatch(self, state: SimState, path: str, text: str) -> None:
        if m := _BLOCK_ATTR.match(path):
            self._block_attr(state, int(m.group(1)), m.group(2), text, path)
        elif path.endswith("/memory/soft_offline_page"):
            self._offline_page(state, text, path, hard=False)
        elif path.endswith("/memory/hard_offline_page"):
            self._offline_page(state, text, path, hard=True)
        elif path == "/sys/devices/system/memory/auto_online_blocks":
            if text not in AUTO_ONLINE_VALUES:
                raise _fail(errno.EINVAL, path)
            tree.put(self.root / path.lstrip("/"), text)
        elif m := _EJECT.match(path):
            self._eject(state, m.group(1), text, path)
        elif m := _RESET.match(path):
            self._reset_counters(state, int(m.group(1)))
        elif m := _LABEL.match(path):
            if not 1 <= len(text) <= 31:
                raise _fail(errno.EINVAL, path)
            tree.put(self.root / path.lstrip("/"), text)
        elif path.startswith(("/sys/bus/dax/drivers/", "/sys/bus/cxl/", "/sys/bus/pci/slots/")):
            from memras.sim.cxl import cxl_write  # the CXL profiles' bus (memras.sim.cxl)

            cxl_write(self, state, path, text)
        else:
            raise _fail(errno.EACCES, path)  # a read-only attribute (mode 0444)

    # --- memory blocks ---------------------------------------------------------------
    def _block_attr(self, state: SimState, index: int, attr: str, text: str,
                    path: str) -> None:
        if attr == "online":
            kinds = {"1": "online", "0": "offline"}
            if text not in kinds:
                raise _fail(errno.EINVAL, path)
            text = kinds[text]
        if text == "offline":
            self.offline_block(state, index, path)
        elif text in ONLINE_KINDS:
            self.online_block(state, index, text, path)
        else:
            raise _fail(errno.EINVAL, path)
        self._after_change(state, index)

    def _read(self, index: int, name: str) -> str:
        return tree.get(tree.memdir(self.root, index) / name)

    def offline_block(self, state: SimState, index: int, path: str) -> None:
        if self._read(index, "state") != "online":
            raise _fail(errno.EINVAL, path)
        zone = self._read(index, "valid_zones")
        if zone == "none":
            raise _fail(errno.EINVAL, path)  # "multizone range"
        if state.busy.get(index, 0) > 0:
            state.busy[index] -= 1
            if not state.busy[index]:
                del state.busy[index]
            raise _fail(errno.EBUSY, path)
        if index in state.unmovable:
            raise _fail(errno.EBUSY, path)  # "failure to isolate range"
        tree.set_block_state(self.root, index, "offline", zone)
        state.tick()
        uevent(self.root, "offline", devpath(index))

    def online_block(self, state: SimState, index: int, kind: str, path: str) -> None:
        if self._read(index, "state") != "offline":
            raise _fail(errno.EINVAL, path)
        zones = self._read(index, "valid_zones").split()
        if kind == "online_movable":
            zone = "Movable" if "Movable" in zones else None
        elif kind == "online_kernel":
            zone = next((z for z in zones if z != "Movable"), None)
        else:
            zone = zones[0] if zones else None
        if zone is None:
            raise _fail(errno.EINVAL, path)
        self._set_online(state, index, zone)

    def _set_online(self, state: SimState, index: int, zone: str) -> None:
        tree.set_block_state(self.root, index, "online", zone)
        if zone != "Movable":
            # A kernel zone receives slab and page tables within seconds: from now
            # on this block cannot be offlined (measured on 6.1, hotplug-and-qemu §1).
            state.unmovable.add(index)
        state.tick()
        uevent(self.root, "online", devpath(index))

    def _after_change(self, state: SimState, index: int) -> None:
        node = tree.block_node(self.root, index)
        if node is not None:
            tree.refresh_offline_zones(self.root, state.spec.block_size, node)
        tree.refresh_meminfo(self.root, state)

    # --- hwpoison --------------------------------------------------------------------
    def _offline_page(self, state: SimState, text: str, path: str, *, hard: bool) -> None:
        try:
            address = int(text, 0)
        except ValueError:
            raise _fail(errno.EINVAL, path) from None
        page = address & ~(PAGE_SIZE - 1)
        index = address // state.spec.block_size
        d = tree.memdir(self.root, index)
        if not d.is_dir():
            raise _fail(errno.ENXIO, path)  # !pfn_valid
        if self._read(index, "state") != "online":
            raise _fail(errno.ENXIO if hard else errno.EIO, path)
        if page in state.poisoned:
            if hard:
                raise _fail(EHWPOISON, path)
            return  # soft_offline_page: "page already poisoned", returns 0
        state.poisoned.append(page)
        pfn = page // PAGE_SIZE
        if hard:
            kmsg(self.root, state, 3,
                 f"Memory failure: {pfn:#x}: recovery action for dirty LRU page: Recovered")
        else:
            kmsg(self.root, state, 6, f"soft offline: {pfn:#x}: page migration succeeded")
        tree.refresh_meminfo(self.root, state)

    # --- ACPI eject ------------------------------------------------------------------
    def _eject(self, state: SimState, device: str, text: str, path: str) -> None:
        if text != "1":
            raise _fail(errno.EINVAL, path)
        base = self.root / tree.ACPI / device
        if tree.get(base / "status") == "0":
            raise _fail(errno.ENODEV, path)
        blocks = tree.acpi_blocks(self.root, device)
        offlined: list[tuple[int, str]] = []
        for index in blocks:
            if self._read(index, "state") != "online":
                continue
            zone = self._read(index, "valid_zones")
            try:
                self.offline_block(state, index, path)
            except OSError:
                kmsg(self.root, state, 3, f"memory memory{index}: Offline failed.")
                for done, was in reversed(offlined):  # acpi_scan_try_to_offline rollback
                    self._set_online(state, done, was)
                self._refresh_nodes(state, blocks)
                raise _fail(errno.EBUSY, path) from None
            offlined.append((index, zone))
        self._remove(state, device, blocks)

    def _remove(self, state: SimState, device: str, blocks: list[int]) -> None:
        tree.unlink_acpi_blocks(self.root, device)
        nodes = set()
        for index in blocks:
            node = tree.remove_block(self.root, index)
            if node is not None:
                nodes.add(node)
            state.unmovable.discard(index)
            state.busy.pop(index, None)
            state.tick()
            uevent(self.root, "remove", devpath(index))
        tree.put(self.root / tree.ACPI / device / "status", "0")
        tree.empty_dimm_slot(self.root, state.spec, device)  # firmware: "No Module Installed"
        for node in nodes:
            tree.refresh_offline_zones(self.root, state.spec.block_size, node)
        tree.refresh_meminfo(self.root, state)

    def _refresh_nodes(self, state: SimState, blocks: list[int]) -> None:
        nodes = {tree.block_node(self.root, i) for i in blocks}
        for node in nodes - {None}:
            # None was removed from the set; mypy does not narrow a set difference
            tree.refresh_offline_zones(self.root, state.spec.block_size, node)  # type: ignore[arg-type]
        tree.refresh_meminfo(self.root, state)

    # --- EDAC ------------------------------------------------------------------------
    def _reset_counters(self, state: SimState, mc: int) -> None:
        d = self.root / tree.EDAC / f"mc{mc}"
        for name in ("ce_count", "ue_count", "ce_noinfo_count", "ue_noinfo_count",
                     "seconds_since_reset"):
            tree.put(d / name, "0")
        for sub in os.listdir(d):
            if re.fullmatch(r"(dimm|rank)\d+", sub):
                tree.put(d / sub / "dimm_ce_count", "0")
                tree.put(d / sub / "dimm_ue_count", "0")
        state.edac_reset_uptime_us = state.tick()
