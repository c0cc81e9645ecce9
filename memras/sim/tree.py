"""Writes the kernel files of a simulated server, as the kernel would show them.

Mirrors what these kernel sources expose (6.1): drivers/base/memory.c
(``memoryN/`` and ``valid_zones``), drivers/base/node.c (``nodeN/`` links and
meminfo), fs/proc/meminfo.c, drivers/edac/edac_mc_sysfs.c, drivers/acpi (PNP0C80
``physical_node`` links), drivers/firmware/dmi-sysfs.c. Both the profiles (at
creation) and the simulated kernel (after each state change) call these, so a
file is formatted in exactly one place.

``valid_zones`` of an offline block is not stored state in the kernel: it is
computed on read from the zone spans of its node (memory.c ``valid_zones_show``
with mm/memory_hotplug.c ``default_zone_for_pfn``). Our files are static, so
:func:`refresh_offline_zones` recomputes every offline block of a node after each
change to that node.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path

from memras.sim.smbios_build import Type17, Type19, Type20, build_smbios
from memras.sim.spec import FOUR_GIB, PAGE_SIZE, ServerSpec
from memras.sim.state import SimState

MEMORY = "sys/devices/system/memory"
NODE = "sys/devices/system/node"
EDAC = "sys/devices/system/edac/mc"
ACPI = "sys/bus/acpi/devices"
KERNEL_ZONES = ("DMA32", "Normal")


def put(path: Path | str, text: str) -> None:
    """Create or replace a sysfs-like file holding ``text`` and a newline."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, (text + "\n").encode())
    finally:
        os.close(fd)


def get(path: Path | str) -> str:
    fd = os.open(path, os.O_RDONLY)
    try:
        return os.read(fd, 4096).decode().strip()
    finally:
        os.close(fd)


def memdir(root: Path, index: int) -> Path:
    return root / MEMORY / f"memory{index}"


# --- memory blocks ------------------------------------------------------------------
def write_block(root: Path, spec: ServerSpec, index: int, node: int, state: str,
                zones: str, *, removable: bool = True) -> None:
    """Create ``memoryN`` with its attributes and the links to and from its node."""
    d = memdir(root, index)
    d.mkdir()
    put(d / "state", state)
    put(d / "online", "1" if state == "online" else "0")
    put(d / "phys_index", f"{index:08x}")
    put(d / "phys_device", "0")
    put(d / "removable", "1" if removable else "0")
    put(d / "valid_zones", zones)
    put(d / "uevent", "")
    os.symlink(f"../../node/node{node}", d / f"node{node}")
    os.symlink(f"../../memory/memory{index}", root / NODE / f"node{node}" / f"memory{index}")
    del spec  # the layout does not depend on it today; kept for a stable signature


def remove_block(root: Path, index: int) -> int | None:
    """Delete ``memoryN`` and its node link; return the node it was on.

    The emptied directory is kept under ``.memras-sim/removed/``, so its inode number
    is not handed to the next ``memoryN``: the kernel's kernfs allocates node ids
    cyclically (fs/kernfs/dir.c ``idr_alloc_cyclic``), so a re-created block is another
    object with another inode, and memras tells a new module's block from the old one
    with the same number by it (memras.workflow.detect)."""
    d = memdir(root, index)
    node = block_node(root, index)
    for name in os.listdir(d):
        os.unlink(d / name)
    removed = root / ".memras-sim" / "removed"
    removed.mkdir(exist_ok=True)
    d.rename(removed / f"memory{index}-{os.stat(d).st_ino}")
    if node is not None:
        link = root / NODE / f"node{node}" / f"memory{index}"
        if link.is_symlink():
            link.unlink()
    return node


def block_node(root: Path, index: int) -> int | None:
    for name in os.listdir(memdir(root, index)):
        if name.startswith("node") and name[4:].isdigit():
            return int(name[4:])
    return None


def node_blocks(root: Path, node: int) -> list[int]:
    names = os.listdir(root / NODE / f"node{node}")
    return sorted(int(n[6:]) for n in names if n.startswith("memory") and n[6:].isdigit())


def set_block_state(root: Path, index: int, state: str, zones: str) -> None:
    d = memdir(root, index)
    put(d / "state", state)
    put(d / "online", "1" if state == "online" else "0")
    put(d / "valid_zones", zones)


def zone_spans(root: Path, node: int) -> dict[str, tuple[int, int]]:
    """Zone -> (first, last) online block of that zone on ``node`` (the zone's span)."""
    spans: dict[str, tuple[int, int]] = {}
    for index in node_blocks(root, node):
        d = memdir(root, index)
        if get(d / "state") != "online":
            continue
        zone = get(d / "valid_zones")
        lo, hi = spans.get(zone, (index, index))
        spans[zone] = (min(lo, index), max(hi, index))
    return spans


def offline_zones(index: int, block_size: int, spans: dict[str, tuple[int, int]]) -> str:
    """``valid_zones`` of an offline block: default zone first, then the others.

    default_zone_for_pfn: inherit the one zone (kernel or Movable) whose span
    already covers the block; if none or both do, the kernel zone (no movable_node).
    """
    def covers(zone: str) -> bool:
        lo, hi = spans.get(zone, (1, 0))
        return lo <= index <= hi

    kernel = "DMA32" if covers("DMA32") or index * block_size < FOUR_GIB else "Normal"
    if kernel == "DMA32" and not covers("DMA32") and covers("Normal"):
        kernel = "Normal"
    in_kernel, in_movable = covers(kernel), covers("Movable")
    default = "Movable" if in_movable and not in_kernel else kernel
    others = [z for z in (kernel, "Movable") if z != default]
    return " ".join([default, *others])


def refresh_offline_zones(root: Path, block_size: int, node: int) -> None:
    spans = zone_spans(root, node)
    for index in node_blocks(root, node):
        d = memdir(root, index)
        if get(d / "state") == "offline":
            put(d / "valid_zones", offline_zones(index, block_size, spans))


# --- meminfo -------------------------------------------------------------------------
def _meminfo_line(key: str, kb: int) -> str:
    return f"{key + ':':<16}{kb:>8} kB"  # fs/proc/meminfo.c show_val_kb


def refresh_meminfo(root: Path, state: SimState) -> None:
    """/proc/meminfo and nodeN/meminfo from the online blocks now in the tree."""
    spec = state.spec
    bs_kb = spec.block_size // 1024
    per_node: dict[int, int] = {}
    for node in spec.nodes:
        blocks = node_blocks(root, node)
        per_node[node] = sum(
            bs_kb for i in blocks if get(memdir(root, i) / "state") == "online")
    total_kb = max(sum(per_node.values()) - state.reserved_kb, 0)
    free_kb = total_kb * 7 // 10  # a steady, plausible load
    corrupted_kb = len(state.poisoned) * PAGE_SIZE // 1024
    lines = [
        _meminfo_line("MemTotal", total_kb),
        _meminfo_line("MemFree", free_kb),
        _meminfo_line("MemAvailable", free_kb + total_kb // 10),
        _meminfo_line("Buffers", total_kb // 100),
        _meminfo_line("Cached", total_kb // 10),
        _meminfo_line("SwapTotal", 0),
        _meminfo_line("SwapFree", 0),
        _meminfo_line("HardwareCorrupted", corrupted_kb),
        _meminfo_line("Hugepagesize", 2048),
    ]
    put(root / "proc/meminfo", "\n".join(lines))
    share = state.reserved_kb // max(len(per_node), 1)
    for node, kb in per_node.items():
        node_total = max(kb - share, 0)
        text = "\n".join([
            f"Node {node} MemTotal:       {node_total:>8} kB",
            f"Node {node} MemFree:        {node_total * 7 // 10:>8} kB",
            f"Node {node} MemUsed:        {node_total - node_total * 7 // 10:>8} kB",
        ])
        put(root / NODE / f"node{node}" / "meminfo", text)


# --- EDAC ----------------------------------------------------------------------------
def write_edac(root: Path, spec: ServerSpec) -> None:
    for mc in spec.mcs:
        d = root / EDAC / f"mc{mc.index}"
        d.mkdir(parents=True)
        dimms = [x for x in spec.dimms if x.mc == mc.index]
        put(d / "mc_name", mc.mc_name)
        put(d / "size_mb", str(mc.size_mb or sum(x.size_mb for x in dimms)))
        for name in ("ce_count", "ue_count", "ce_noinfo_count", "ue_noinfo_count",
                     "seconds_since_reset"):
            put(d / name, "0")
        put(d / "max_location", mc.max_location)
        put(d / "reset_counters", "")
        for dimm in dimms:
            dd = d / dimm.edac_name
            dd.mkdir()
            put(dd / "dimm_label", dimm.edac_label)
            put(dd / "dimm_location", dimm.edac_location)
            put(dd / "size", str(dimm.size_mb))
            put(dd / "dimm_mem_type", "Registered-DDR4")
            put(dd / "dimm_dev_type", "x4")
            put(dd / "dimm_edac_mode", "S4ECD4ED" if mc.driver != "ghes_edac" else "SECDED")
            put(dd / "dimm_ce_count", "0")
            put(dd / "dimm_ue_count", "0")


# --- ACPI ----------------------------------------------------------------------------
def link_acpi_blocks(root: Path, device: str, blocks: Iterable[int]) -> None:
    d = root / ACPI / device
    for n, index in enumerate(blocks):
        name = "physical_node" if n == 0 else f"physical_node{n}"
        os.symlink(f"../../../../devices/system/memory/memory{index}", d / name)


def unlink_acpi_blocks(root: Path, device: str) -> None:
    d = root / ACPI / device
    for name in os.listdir(d):
        if name.startswith("physical_node"):
            os.unlink(d / name)


def acpi_blocks(root: Path, device: str) -> list[int]:
    """Block indexes linked from a PNP0C80 device, in physical_node order."""
    d = root / ACPI / device
    names = [n for n in os.listdir(d) if n.startswith("physical_node")]
    names.sort(key=lambda n: int(n[13:] or 0))
    return [int(os.readlink(d / n).rsplit("memory", 1)[1]) for n in names]


def write_acpi(root: Path, spec: ServerSpec) -> None:
    for slot in spec.acpi_slots:
        d = root / ACPI / slot.name
        d.mkdir(parents=True)
        put(d / "uid", slot.uid)
        put(d / "path", slot.path)
        put(d / "hid", "PNP0C80")
        put(d / "eject", "")
        present = slot.base is not None and slot.dimm is not None
        put(d / "status", "15" if present else "0")
        if present:
            assert slot.base is not None
            first = slot.base // spec.block_size
            link_acpi_blocks(root, slot.name, range(first, first + slot.size // spec.block_size))


# --- DMI / SMBIOS --------------------------------------------------------------------
# Firmware's strings for an empty slot's type 17 (AMI and Supermicro BIOSes write these).
EMPTY_SLOT_TEXT = "NO DIMM"


def write_dmi(root: Path, spec: ServerSpec) -> None:
    """The SMBIOS tables of ``spec``; rewritten whole when a module comes or goes.

    A real kernel builds these at boot and never re-reads them; the simulator models
    a platform whose firmware refreshes the type 17 of a hot-replaced slot, so the
    workflow's verify step can read the new module's serial. (Platforms that do not
    are covered by verify's "serial unchanged" path and the backend's serial.)
    """
    ident = root / "sys/class/dmi/id"
    ident.mkdir(parents=True, exist_ok=True)
    for name, value in spec.dmi.items():
        put(ident / name, value)
    if not any(d.in_smbios for d in spec.dimms):
        return
    t17, t20 = [], []
    for n, dimm in enumerate(d for d in spec.dimms if d.in_smbios):
        handle = 0x1100 + n
        t17.append(Type17(handle=handle, locator=dimm.locator, bank_locator=dimm.bank_locator,
                          size_mb=dimm.size_mb, speed_mts=dimm.speed_mts,
                          manufacturer=dimm.manufacturer, serial=dimm.serial,
                          part_number=dimm.part_number, rank=dimm.rank))
        if dimm.range_end >= dimm.range_start:
            t20.append(Type20(handle=0x1300 + n, start=dimm.range_start, end=dimm.range_end,
                              device_handle=handle, array_mapped_handle=0x1200,
                              interleave_position=dimm.interleave_position + 1
                              if dimm.interleave_ways > 1 else 0,
                              interleaved_data_depth=dimm.interleave_ways))
    mapped = [d for d in spec.dimms if d.in_smbios and d.range_end >= d.range_start]
    t19 = [Type19(handle=0x1200, start=min(d.range_start for d in mapped),
                  end=max(d.range_end for d in mapped))] if mapped else []
    entry, table = build_smbios(t17, t19, t20)
    tables = root / "sys/firmware/dmi/tables"
    tables.mkdir(parents=True, exist_ok=True)
    for name, data in (("DMI", table), ("smbios_entry_point", entry)):
        scratch = tables / f".{name}.new"  # replaced whole: a reader never sees half a table
        scratch.write_bytes(data)
        os.replace(scratch, tables / name)


def empty_dimm_slot(root: Path, spec: ServerSpec, acpi_device: str) -> None:
    """The module of ``acpi_device`` is gone: its type 17 says so (size 0, "NO DIMM")."""
    for n, d in enumerate(spec.dimms):
        if d.acpi_device == acpi_device and d.size_mb:
            spec.dimms[n] = replace(d, size_mb=0, serial=EMPTY_SLOT_TEXT,
                                    part_number=EMPTY_SLOT_TEXT,
                                    manufacturer=EMPTY_SLOT_TEXT, range_end=d.range_start - 1)
            if d.in_smbios:
                write_dmi(root, spec)
