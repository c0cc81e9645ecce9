"""The memory map: blocks, ACPI memory devices and SMBIOS ranges read once, and which
blocks must go offline to free one module.

Reverse (:func:`blocks_for_dimm`): which blocks the replacement workflow must offline
to free one module. The decision it makes is deliberately conservative, because an
answer of "mapped" lets a field engineer pull hardware:

- "mapped": this DIMM alone backs whole memory blocks: its type 20 ranges share no
  block with another device's range, are not marked interleaved, and the ACPI memory
  device over those blocks (if any) holds no one else's memory; or, in a QEMU guest,
  one PNP0C80 device per slot holds exactly this module.
- "interleaved": other modules share its blocks (overlapping ranges, interleave
  position/depth, or one ACPI device over several modules); the result names them and
  the unit that can be replaced instead (the interleave set, e.g. PNP0C80:01).
- "unmapped": nothing ties the module to addresses (no type 20, EDAC-only knowledge).

Partners are found by block intervals, not byte overlap: two devices whose ranges
touch one common 128 MiB block cannot be offlined separately either. The closure over
"shares a block with" is the interleave set.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from memras.errors import KernelInterfaceError
from memras.host.acpi import AcpiMemoryDevice
from memras.host.memory_blocks import MemoryBlock
from memras.host.smbios import ArrayMappedRange, DeviceMappedRange, MemoryDevice

if TYPE_CHECKING:
    from memras.host import Host

MAPPED, INTERLEAVED, UNMAPPED = "mapped", "interleaved", "unmapped"


@dataclass(frozen=True, slots=True)
class ModuleRef:
    """What the reverse lookup needs of a module (the inventory's ``DimmInfo.ref``)."""

    label: str
    match: str  # how the inventory joined its sources ("acpi…" when by ACPI device)
    acpi_device: str | None
    smbios_handle: int | None


@dataclass(frozen=True, slots=True)
class MemoryMap:
    """Everything the locator consults, read once per command."""

    block_size: int
    blocks: dict[int, MemoryBlock]
    acpi: tuple[AcpiMemoryDevice, ...]
    devices: dict[int, MemoryDevice]  # SMBIOS type 17 by handle, table order
    arrays: tuple[ArrayMappedRange, ...]
    ranges: tuple[DeviceMappedRange, ...]
    smbios_present: bool
    smbios_problems: tuple[str, ...]

    def acpi_owner(self, block: int) -> AcpiMemoryDevice | None:
        return next((d for d in self.acpi if block in d.blocks), None)

    def block_span(self, start: int, end: int) -> range:
        """Indexes of the blocks that bytes ``start..end`` touch."""
        return range(start // self.block_size, end // self.block_size + 1)


def read_memory_map(host: Host) -> MemoryMap:
    if not host.memory.present:
        raise KernelInterfaceError(
            f"no memory blocks under {host.root}/sys/devices/system/memory",
            hint="the kernel needs CONFIG_MEMORY_HOTPLUG, or pass --root with a captured tree")
    smbios = host.smbios
    devices = {d.handle: d for d in smbios.memory_devices()}
    return MemoryMap(
        block_size=host.memory.block_size(),
        blocks={b.index: b for b in host.memory.all()},
        acpi=tuple(host.acpi.all()),
        devices=devices,
        arrays=tuple(smbios.array_mapped_ranges()),
        ranges=tuple(smbios.device_mapped_ranges()),
        smbios_present=smbios.present,
        smbios_problems=tuple(smbios.problems),
    )


def why_unmapped(mm: MemoryMap) -> str:
    if not mm.smbios_present:
        return "no SMBIOS tables under /sys/firmware/dmi/tables and no per-slot memory device"
    if mm.smbios_problems and not mm.devices:
        return f"SMBIOS tables unusable: {mm.smbios_problems[0]}"
    if not mm.ranges:
        return "the firmware publishes no SMBIOS type 20 (device mapped address) ranges"
    return "no SMBIOS type 20 range covers this address"


# --- reverse ---------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class DimmBlocks:
    status: str  # mapped | interleaved | unmapped
    blocks: tuple[int, ...]  # existing memory blocks to offline (the whole set if interleaved)
    acpi_device: str | None  # the unit to eject, when one covers exactly those blocks
    reason: str


def blocks_for_dimm(host: Host, dimm: ModuleRef, *,
                    memory_map: MemoryMap | None = None) -> DimmBlocks:
    """Which blocks must go offline to free ``dimm``, and whether it can go alone."""
    mm = memory_map or read_memory_map(host)
    handle = dimm.smbios_handle
    own = [r for r in mm.ranges if r.device_handle == handle] if handle is not None else []
    if own:
        assert handle is not None  # own is empty without a handle
        return _by_smbios_ranges(mm, dimm, handle, own)
    if dimm.acpi_device is not None and dimm.match.startswith("acpi"):
        return _by_acpi_device(mm, dimm.acpi_device)
    if handle is not None:
        return DimmBlocks(UNMAPPED, (), None,
                          f"the firmware gives no SMBIOS type 20 range for {dimm.label}")
    return DimmBlocks(UNMAPPED, (), None,
                      f"{dimm.label} is known to EDAC only ({dimm.match}); "
                      f"{why_unmapped(mm)}")


def _by_acpi_device(mm: MemoryMap, name: str) -> DimmBlocks:
    dev = next((d for d in mm.acpi if d.name == name), None)
    if dev is None or not dev.present:
        return DimmBlocks(UNMAPPED, (), None, f"memory device {name} is empty or gone")
    if not dev.blocks:
        return DimmBlocks(UNMAPPED, (), name,
                          f"memory device {name} links no memory blocks (not added yet?)")
    return DimmBlocks(MAPPED, dev.blocks, name,
                      f"memory device {name} (slot {dev.uid}) holds this module alone: "
                      f"blocks {dev.blocks[0]}-{dev.blocks[-1]}")


def _spans(mm: MemoryMap, handle: int) -> list[range]:
    return [mm.block_span(r.start, r.end) for r in mm.ranges if r.device_handle == handle]


def _interleave_set(mm: MemoryMap, handle: int) -> list[int]:
    """``handle`` and every device that shares a block with it, transitively."""
    members, frontier = [handle], [handle]
    while frontier:
        spans = _spans(mm, frontier.pop())
        for other in dict.fromkeys(r.device_handle for r in mm.ranges):
            if other in members:
                continue
            if any(a.start < b.stop and b.start < a.stop
                   for a in spans for b in _spans(mm, other)):
                members.append(other)
                frontier.append(other)
    return members


def _existing_blocks(mm: MemoryMap, handles: list[int]) -> tuple[int, ...]:
    wanted: set[int] = set()
    for handle in handles:
        for span in _spans(mm, handle):
            # iterate the smaller side: a 4 TiB range spans 32k blocks, a VM has 12
            if len(span) > len(mm.blocks):
                wanted.update(i for i in mm.blocks if i in span)
            else:
                wanted.update(i for i in span if i in mm.blocks)
    return tuple(sorted(wanted))


def _device_name(mm: MemoryMap, handle: int) -> str:
    dev = mm.devices.get(handle)
    return (dev.locator or dev.full_locator) if dev else f"SMBIOS handle {handle:#06x}"


def _by_smbios_ranges(mm: MemoryMap, dimm: ModuleRef, handle: int,
                      own: list[DeviceMappedRange]) -> DimmBlocks:
    members = _interleave_set(mm, handle)
    blocks = _existing_blocks(mm, members)
    owners = list(dict.fromkeys(o.name for b in blocks if (o := mm.acpi_owner(b))))
    unit = owners[0] if len(owners) == 1 else None
    unit_text = f"memory device {unit}" if unit else "no single ACPI memory device covers it"
    partners = [_device_name(mm, h) for h in members if h != handle]
    if partners:
        return DimmBlocks(INTERLEAVED, blocks, unit,
                          f"interleaved with {', '.join(partners)}: only the whole "
                          f"interleave set ({unit_text}) can be replaced")
    if any(r.interleaved for r in own):
        depth = max(r.interleaved_data_depth or 0 for r in own)
        return DimmBlocks(INTERLEAVED, blocks, unit,
                          f"the firmware marks {dimm.label} interleaved (data depth {depth}) "
                          f"without naming its partners: only the whole interleave set "
                          f"({unit_text}) can be replaced")
    if not blocks:
        return DimmBlocks(UNMAPPED, (), None,
                          f"{dimm.label}'s SMBIOS ranges hold no present memory block")
    if unit is not None:
        extra = [b for b in next(d for d in mm.acpi if d.name == unit).blocks
                 if b not in blocks]
        if extra:
            return DimmBlocks(INTERLEAVED, blocks, unit,
                              f"memory device {unit} also holds blocks {extra[0]}-{extra[-1]} "
                              f"of other memory: only the whole device can be replaced")
    if len(owners) > 1:
        return DimmBlocks(INTERLEAVED, blocks, None,
                          f"{dimm.label}'s blocks belong to several memory devices "
                          f"({', '.join(owners)}): replace them together")
    where = f"; eject {unit}" if unit else "; no ACPI memory device covers them"
    return DimmBlocks(MAPPED, blocks, unit,
                      f"{dimm.label} alone backs blocks {blocks[0]}-{blocks[-1]}{where}")
