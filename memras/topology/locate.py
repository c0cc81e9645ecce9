"""The locator: a physical address → page, block, node, zone, ACPI device and DIMM, and back.

Forward (:func:`locate`): the memory block is ``address // block_size_bytes``
(drivers/base/memory.c), the page frame ``address >> 12`` (x86 4 KiB pages), the
owning ACPI memory device is the PNP0C80 whose ``physical_node*`` links include the
block (drivers/acpi/acpi_memhotplug.c), and the DIMM comes from the SMBIOS type 20
ranges that contain the address, each naming a type 17 device: the lookup mcelog's
``--dmi`` does, but with interleave taken seriously.

Which blocks free one module (the reverse answer) is :mod:`memras.topology.memory_map`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from memras.errors import KernelInterfaceError, UsageError
from memras.host.acpi import AcpiMemoryDevice
from memras.host.smbios import ArrayMappedRange, DeviceMappedRange
from memras.topology.inventory import DimmInfo, dimm_inventory
from memras.topology.memory_map import (
    INTERLEAVED,
    MAPPED,
    UNMAPPED,
    MemoryMap,
    blocks_for_dimm,
    read_memory_map,
    why_unmapped,
)
from memras.topology.naming import display_names

if TYPE_CHECKING:
    from memras.host import Host

PAGE_SHIFT = 12  # x86: the kernel's pages are 4 KiB (PFNs in hwpoison, memory_failure)

__all__ = ["INTERLEAVED", "MAPPED", "UNMAPPED", "AddressLocation", "Candidate", "MemoryMap",
           "blocks_for_dimm", "locate", "read_memory_map"]


# --- forward --------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Candidate:
    """A module that backs (or may back) an address."""

    name: str  # what to call it: naming.display_name, else the SMBIOS locator
    dimm_id: str | None  # DimmInfo.id, when the inventory knows the module
    smbios_handle: int | None
    locator: str
    bank_locator: str
    serial: str


@dataclass(frozen=True, slots=True)
class AddressLocation:
    address: int
    pfn: int
    block: int
    block_start: int
    block_end: int
    block_state: str | None  # None: no memoryN here (a hole, or removed memory)
    node: int | None
    zone: str | None
    valid_zones: tuple[str, ...]
    acpi_device: str | None
    acpi_uid: str | None
    array_ranges: tuple[ArrayMappedRange, ...]
    device_ranges: tuple[DeviceMappedRange, ...]
    status: str  # mapped | interleaved | unmapped
    candidates: tuple[Candidate, ...]  # the DIMM when mapped, every candidate when not
    reason: str


def locate(host: Host, address: int, *, memory_map: MemoryMap | None = None,
           inventory: list[DimmInfo] | None = None) -> AddressLocation:
    """Where ``address`` (a system physical byte address) lives."""
    if address < 0:
        raise UsageError(f"address {address} is negative")
    mm = memory_map or read_memory_map(host)
    if not mm.blocks:
        raise KernelInterfaceError("the memory block directory lists no blocks")
    index = address // mm.block_size
    last = max(mm.blocks)
    if index > last:
        raise UsageError(
            f"address {address:#x} is beyond the last memory block "
            f"(memory{last} ends at {(last + 1) * mm.block_size - 1:#x})",
            hint="give a system physical address, e.g. from an EDAC or MCE record")
    dimms = inventory if inventory is not None else dimm_inventory(host, memory_map=mm)
    block = mm.blocks.get(index)
    owner = mm.acpi_owner(index)
    ranges = tuple(r for r in mm.ranges if r.contains(address))
    status, candidates, reason = _attribute(mm, dimms, ranges, owner)
    return AddressLocation(
        address=address,
        pfn=address >> PAGE_SHIFT,
        block=index,
        block_start=index * mm.block_size,
        block_end=(index + 1) * mm.block_size - 1,
        block_state=block.state if block else None,
        node=block.node if block else None,
        zone=block.zone if block else None,
        valid_zones=block.valid_zones if block else (),
        acpi_device=owner.name if owner else None,
        acpi_uid=owner.uid if owner else None,
        array_ranges=tuple(r for r in mm.arrays if r.contains(address)),
        device_ranges=ranges,
        status=status,
        candidates=candidates,
        reason=reason,
    )


def _candidate(mm: MemoryMap, dimms: list[DimmInfo], handle: int) -> Candidate:
    dev = mm.devices.get(handle)
    info = next((d for d in dimms if d.smbios is not None and d.smbios.handle == handle), None)
    locator = dev.locator if dev else ""
    name = display_names(dimms)[info.id] if info else (locator or f"SMBIOS handle {handle:#06x}")
    return Candidate(name, info.id if info else None, handle, locator,
                     dev.bank_locator if dev else "", dev.serial if dev else "")


def _attribute(mm: MemoryMap, dimms: list[DimmInfo], ranges: tuple[DeviceMappedRange, ...],
               owner: AcpiMemoryDevice | None) -> tuple[str, tuple[Candidate, ...], str]:
    handles = list(dict.fromkeys(r.device_handle for r in ranges))
    found = tuple(_candidate(mm, dimms, h) for h in handles)
    if len(handles) == 1 and not ranges[0].interleaved:
        return MAPPED, found, f"SMBIOS type 20 maps the address to {found[0].name} alone"
    if handles:
        depth = max(r.interleaved_data_depth or 0 for r in ranges)
        names = ", ".join(c.name for c in found)
        return INTERLEAVED, found, (
            f"interleaved: {len(found)} module(s) cover this address ({names}, data depth "
            f"{depth}); the hardware decode that picks one is not published")
    if owner is not None:
        slot = [d for d in dimms if d.acpi_device == owner.name and d.match.startswith("acpi")]
        if len(slot) == 1:
            info, dev = slot[0], slot[0].smbios
            only = Candidate(info.label, info.id, dev.handle if dev else None,
                             dev.locator if dev else "", dev.bank_locator if dev else "",
                             dev.serial if dev else "")
            return MAPPED, (only,), (
                f"memory device {owner.name} (slot {owner.uid}) holds one module")
    return UNMAPPED, (), why_unmapped(mm)


