"""The typed description of a simulated server, from which its kernel tree is written.

A :class:`ServerSpec` is plain data (JSON round-trip through :func:`spec_to_json` /
:func:`spec_from_json`), stored in ``<root>/.memras-sim/state.json`` so that
``memras.sim.load(root)`` gives back what the profile built. The spec describes the
machine as booted; what changes at run time (block states, counters, poisoned
pages) lives in the tree itself and in :mod:`memras.sim.state`.

Addresses are physical byte addresses; a DIMM's ``ranges`` are the address ranges
it serves (for an interleave set, the whole set's range with its position), which
is what SMBIOS type 20 records and what error injection uses to pick an address.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

GiB = 1 << 30
MiB = 1 << 20
PAGE_SIZE = 4096
FOUR_GIB = 4 * GiB  # below it the kernel zone of a block is DMA32, above Normal


@dataclass
class BlockRange:
    """``count`` consecutive memory blocks from ``first``, all alike at boot."""

    first: int
    count: int
    node: int
    zone: str  # "Normal", "Movable", "DMA32", or "none" (spans zones, e.g. block 0)
    state: str = "online"  # "online" | "offline"
    unmovable: bool = False  # holds unmovable kernel pages: offline fails with EBUSY


@dataclass
class DimmSpec:
    """One memory module: SMBIOS type 17 identity, EDAC position, physical ranges."""

    name: str  # the key tests and the demo use, e.g. "P1-DIMMA1"
    locator: str  # SMBIOS type 17 Device Locator
    bank_locator: str  # SMBIOS type 17 Bank Locator
    size_mb: int
    socket: int
    channel: int
    slot: int
    serial: str
    part_number: str
    manufacturer: str = "Samsung"
    speed_mts: int = 2666
    rank: int = 2
    mc: int | None = None  # EDAC mcN, None when the platform has no EDAC
    edac_name: str = ""  # "dimm3" / "rank1"
    edac_label: str = ""
    edac_location: str = ""  # as the kernel prints it, trailing space included
    imc: int = 0  # per-socket memory controller (skx label "MC#")
    csrow: int | None = None  # csrow-based EDAC drivers (amd64)
    range_start: int = 0  # first byte of the range this DIMM serves
    range_end: int = -1  # last byte (inclusive); -1: not mapped (e.g. empty slot)
    interleave_ways: int = 1
    interleave_position: int = 0
    interleave_granularity: int = 4096
    acpi_device: str | None = None  # "PNP0C80:00" when hot-replaceable on its own
    in_smbios: bool = True  # QEMU lists only boot RAM in SMBIOS, not pc-dimms

    def serves(self, address: int) -> bool:
        """Whether this DIMM holds ``address`` (interleave decoded)."""
        if not self.range_start <= address <= self.range_end:
            return False
        chunk = (address - self.range_start) // self.interleave_granularity
        return chunk % self.interleave_ways == self.interleave_position

    def address_at(self, n: int) -> int:
        """The first byte of this DIMM's ``n``-th interleave chunk."""
        chunk = n * self.interleave_ways + self.interleave_position
        return self.range_start + chunk * self.interleave_granularity


@dataclass
class McSpec:
    """One EDAC memory controller (``mcN``)."""

    index: int
    mc_name: str
    driver: str  # "skx_edac" | "amd64_edac" | "ghes_edac"
    max_location: str  # "<layer> <max> " per layer, as the kernel prints it
    size_mb: int = 0


@dataclass
class AcpiSlotSpec:
    """A PNP0C80 memory device; ``base``/``size`` are where its memory sits."""

    name: str  # "PNP0C80:00"
    uid: str
    path: str  # ACPI namespace path, e.g. "\\_SB_.MHPC.MP00"
    base: int | None = None  # None: empty slot, address chosen at insert time
    size: int = 0
    dimm: str | None = None  # DimmSpec.name of the module in the slot
    node: int = 0  # NUMA node the slot's memory joins


@dataclass
class ServerSpec:
    profile: str
    hostname: str
    block_size: int
    nodes: dict[int, str]  # node -> cpulist
    blocks: list[BlockRange]
    dimms: list[DimmSpec] = field(default_factory=list)
    mcs: list[McSpec] = field(default_factory=list)
    acpi_slots: list[AcpiSlotSpec] = field(default_factory=list)
    dmi: dict[str, str] = field(default_factory=dict)  # /sys/class/dmi/id/<name>
    auto_online_blocks: str = "offline"
    # Kernels before 5.8 reported removable=0 for blocks with unmovable pages;
    # newer ones always say 1. Profiles pick one so lsmem's merging is exercised.
    legacy_removable: bool = False
    hotplug_base: int = FOUR_GIB  # where QEMU/firmware place hot-added memory
    edac_grain: int = 32
    seed: int = 1

    def dimm(self, name: str) -> DimmSpec:
        for d in self.dimms:
            if d.name == name or d.edac_label == name or d.locator == name:
                return d
        raise KeyError(name)

    def dimm_for_address(self, address: int) -> DimmSpec | None:
        return next((d for d in self.dimms if d.serves(address)), None)

    def slot(self, name_or_uid: str) -> AcpiSlotSpec:
        for s in self.acpi_slots:
            if name_or_uid in (s.name, s.uid, s.dimm):
                return s
        raise KeyError(name_or_uid)


def spec_to_json(spec: ServerSpec) -> dict[str, Any]:
    data = dataclasses.asdict(spec)
    data["nodes"] = {str(k): v for k, v in spec.nodes.items()}
    return data


def spec_from_json(data: dict[str, Any]) -> ServerSpec:
    fields = dict(data)
    fields["nodes"] = {int(k): v for k, v in data["nodes"].items()}
    fields["blocks"] = [BlockRange(**b) for b in data["blocks"]]
    fields["dimms"] = [DimmSpec(**d) for d in data.get("dimms", [])]
    fields["mcs"] = [McSpec(**m) for m in data.get("mcs", [])]
    fields["acpi_slots"] = [AcpiSlotSpec(**s) for s in data.get("acpi_slots", [])]
    return ServerSpec(**fields)


def dumps(spec: ServerSpec) -> str:
    return json.dumps(spec_to_json(spec), sort_keys=True)
