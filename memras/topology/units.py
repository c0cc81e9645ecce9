"""Replaceable units: what can physically come out of the machine at once.

On a QEMU guest or a per-slot RAS platform one ACPI memory device (PNP0C80) is one
module. On most physical servers it is not: firmware declares one device per riser,
board, node or interleave set, and every DIMM whose memory lies in its blocks goes
out with it. A unit is therefore:

- an ACPI memory device with the DIMMs whose blocks it covers (from the inventory:
  SMBIOS type 17/20 mapped ranges, EDAC DIMMs joined to them, or the device itself as
  the only description of a QEMU pc-dimm), or "unknown DIMMs" when nothing ties a
  module to its addresses (EDAC only, no type 20): still a unit, the device can go;
- one DIMM, where the platform removes DIMMs singly (a per-slot device holding just
  it, or a module alone on its blocks with no device over them);
- an interleave set no single device covers (the DIMMs sharing blocks): a unit that
  names who belongs together, but has nothing to eject (``ejectable`` False).

:func:`replaceable_units` is a pure function of the memory map and the inventory;
:func:`host_units` reads both. :func:`smallest_unit` is the refusal's suggestion.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from memras.text import format_bytes
from memras.topology.inventory import DimmInfo, dimm_inventory
from memras.topology.memory_map import INTERLEAVED, MAPPED, MemoryMap, read_memory_map
from memras.topology.naming import fold

if TYPE_CHECKING:
    from memras.host import Host

ACPI_DEVICE, SINGLE_DIMM, INTERLEAVE_SET = "acpi-device", "dimm", "interleave-set"
# in a mapping reason: the target is a unit of several modules, all of them go out
GOES_OUT_WHOLE = "goes out whole"


def block_ranges(blocks: Sequence[int]) -> str:
    """``[40, 41, …, 47]`` -> ``40-47``; gaps give ``32-35,40-47``; none gives ``-``."""
    runs: list[list[int]] = []
    for b in sorted(set(blocks)):
        if runs and b == runs[-1][1] + 1:
            runs[-1][1] = b
        else:
            runs.append([b, b])
    return ",".join(f"{a}-{z}" if z != a else str(a) for a, z in runs) or "-"


@dataclass(frozen=True, slots=True)
class Unit:
    """One replaceable unit and the modules that go out with it."""

    id: str  # PNP0C80:01, the DIMM's inventory id, or "set:16-31" for an interleave set
    kind: str  # acpi-device | dimm | interleave-set
    acpi_device: str | None
    acpi_uid: str | None
    blocks: tuple[int, ...]
    block_size: int
    zones: tuple[str, ...]  # of its online blocks ("offline" when none is online)
    nodes: tuple[int, ...]
    dimms: tuple[str, ...]  # inventory ids, in inventory order; () = unknown
    ejectable: bool  # an ACPI memory device ejects it as a whole
    how: str  # how its DIMMs are known, or why they are not

    @property
    def size_bytes(self) -> int:
        return len(self.blocks) * self.block_size

    @property
    def block_text(self) -> str:
        return block_ranges(self.blocks)

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "kind": self.kind, "device": self.acpi_device,
                "uid": self.acpi_uid, "blocks": block_ranges(self.blocks),
                "block_list": list(self.blocks), "zones": list(self.zones),
                "nodes": list(self.nodes), "size_bytes": self.size_bytes,
                "dimms": list(self.dimms), "dimms_known": bool(self.dimms),
                "ejectable": self.ejectable, "how": self.how}


def _zones(mm: MemoryMap, blocks: Sequence[int]) -> tuple[str, ...]:
    present = [mm.blocks[b] for b in blocks if b in mm.blocks]
    zones = dict.fromkeys(b.zone or ("offline" if not b.online else "none") for b in present)
    return tuple(zones)


def _nodes(mm: MemoryMap, blocks: Sequence[int]) -> tuple[int, ...]:
    return tuple(sorted({n for b in blocks if b in mm.blocks
                         and (n := mm.blocks[b].node) is not None}))


def _unit(mm: MemoryMap, ident: str, kind: str, blocks: Sequence[int], dimms: list[DimmInfo],
          how: str, *, acpi: tuple[str, str] | None = None, ejectable: bool) -> Unit:
    blocks = tuple(sorted(blocks))
    return Unit(id=ident, kind=kind, acpi_device=acpi[0] if acpi else None,
                acpi_uid=acpi[1] if acpi else None, blocks=blocks, block_size=mm.block_size,
                zones=_zones(mm, blocks), nodes=_nodes(mm, blocks),
                dimms=tuple(d.id for d in dimms), ejectable=ejectable, how=how)


def replaceable_units(mm: MemoryMap, dimms: Sequence[DimmInfo]) -> list[Unit]:
    """Every unit of this host: ACPI devices first (in sysfs order), then DIMMs that go
    alone without a device, then interleave sets no single device covers."""
    units: list[Unit] = []
    placed: set[str] = set()
    for dev in mm.acpi:
        if not dev.present or not dev.blocks:
            continue  # an empty slot: nothing to take out
        span = set(dev.blocks)
        on_it = [d for d in dimms if (d.acpi_device == dev.name and d.match.startswith("acpi"))
                 or span & set(d.blocks)]
        placed.update(d.id for d in on_it)
        if len(on_it) == 1 and set(on_it[0].blocks) <= span and on_it[0].mapping == MAPPED:
            kind, how = SINGLE_DIMM, f"{dev.name} holds one module ({on_it[0].match})"
        elif on_it:
            spill = sorted({b for d in on_it for b in d.blocks} - span)
            kind = ACPI_DEVICE
            how = (f"{len(on_it)} modules whose mapped ranges lie in its blocks "
                   f"(SMBIOS type 20{', EDAC joined' if any(d.edac for d in on_it) else ''})")
            if spill:
                how += (f"; their interleave set also spans blocks {block_ranges(spill)} "
                        "outside it")
        else:
            unplaced = [d for d in dimms if not d.blocks]
            kind, how = ACPI_DEVICE, (
                "no SMBIOS type 20 range or per-slot device ties a module to these blocks"
                + (f"; {len(unplaced)} DIMMs have no known address range" if unplaced else ""))
        units.append(_unit(mm, dev.name, kind, dev.blocks, on_it, how,
                           acpi=(dev.name, dev.uid), ejectable=True))
    sets: dict[tuple[int, ...], list[DimmInfo]] = {}
    for d in dimms:
        if d.id in placed or not d.blocks:
            continue
        if d.mapping == MAPPED:
            units.append(_unit(mm, d.id, SINGLE_DIMM, d.blocks, [d],
                               f"{d.label} alone backs its blocks; no ACPI memory device "
                               "covers them", ejectable=False))
        elif d.mapping == INTERLEAVED:
            sets.setdefault(d.blocks, []).append(d)
    for blocks, members in sets.items():
        units.append(_unit(mm, f"set:{block_ranges(blocks)}", INTERLEAVE_SET, blocks, members,
                           f"interleaved ({members[0].mapping_reason})",
                           ejectable=False))
    return units


def host_units(host: Host, *, memory_map: MemoryMap | None = None,
               inventory: list[DimmInfo] | None = None) -> list[Unit]:
    mm = memory_map or read_memory_map(host)
    dimms = inventory if inventory is not None else dimm_inventory(host, memory_map=mm)
    return replaceable_units(mm, dimms)


def units_of(units: Sequence[Unit], dimm_id: str) -> list[Unit]:
    """The units ``dimm_id`` belongs to, smallest first."""
    return sorted((u for u in units if dimm_id in u.dimms), key=lambda u: len(u.blocks))


def smallest_unit(units: Sequence[Unit], dimm_id: str) -> Unit | None:
    """The smallest unit holding ``dimm_id`` that an ACPI device ejects, else the smallest."""
    mine = units_of(units, dimm_id)
    return next((u for u in mine if u.ejectable), mine[0] if mine else None)


def find_unit(units: Sequence[Unit], text: str) -> Unit | None:
    """The unit ``text`` names exactly (its id or ACPI device, case folded)."""
    key = fold(text)
    return next((u for u in units if key in (fold(u.id), fold(u.acpi_device or ""))), None)


def describe(unit: Unit, names: dict[str, str]) -> str:
    """``PNP0C80:01 (blocks 40-47, Movable, 1G): P1-DIMMC1, P1-DIMMD1``; ``names`` maps
    inventory ids to display names."""
    who = ", ".join(names.get(i, i) for i in unit.dimms) or "unknown DIMMs"
    return (f"{unit.id} (blocks {unit.block_text}, {'/'.join(unit.zones) or '-'}, "
            f"{format_bytes(unit.size_bytes)}): {who}")
