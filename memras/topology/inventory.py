"""The DIMM inventory: one entry per physical module, from EDAC, SMBIOS and ACPI together.

Sources, and what each alone cannot say:
- EDAC (``mcN/dimmM`` or ``rankM``): label, layer location, CE/UE counters; no serial,
  no addresses.
- SMBIOS type 17: locator, bank locator, serial, part, speed; no counters.
- ACPI PNP0C80: the hot-replaceable unit and its blocks; in a QEMU guest one per slot
  and the only description of a hot-plugged pc-dimm (QEMU's SMBIOS lists boot RAM).

Joining EDAC to SMBIOS: ghes_edac writes ``"<bank locator> <locator>"`` as the label
(drivers/edac/ghes_edac.c), and ``ras-mc-ctl --register-labels`` often writes the bare
locator; both match by text (whitespace and case folded). A remaining pair matches by
size only when exactly one EDAC DIMM and one SMBIOS device have that size. Anything
else stays unmatched and says so in ``match``: a wrong join would put one module's
errors on another module's serial number.

Which entries exist: every EDAC DIMM; every populated type 17 not joined to one
(only when all EDAC DIMMs were joined, otherwise they are the same modules seen
twice); and, without EDAC, every present PNP0C80 device that no type 17 already
covers alone. Each entry has a stable ``id`` (``mc0/dimm3``, ``PNP0C80:00`` or the
SMBIOS locator) that every command accepts, as does :func:`resolve_dimm`.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from memras.host.acpi import AcpiMemoryDevice
from memras.host.edac import EdacController, EdacDimm, parse_dimm_location
from memras.host.smbios import MemoryDevice
from memras.topology import naming
from memras.topology.memory_map import (
    UNMAPPED,
    MemoryMap,
    ModuleRef,
    blocks_for_dimm,
    read_memory_map,
)
from memras.topology.naming import fold

if TYPE_CHECKING:
    from memras.host import Host

MIB = 1 << 20


@dataclass(frozen=True, slots=True)
class DimmInfo:
    id: str  # stable: mc0/dimm3, PNP0C80:00, or the SMBIOS locator
    label: str  # what people call it: EDAC label, SMBIOS locator, or ACPI device
    location: str  # EDAC layer location, SMBIOS bank locator, or ACPI path
    size_bytes: int | None
    ce_count: int | None  # None: no EDAC counters for this module
    ue_count: int | None
    edac: EdacDimm | None
    smbios: MemoryDevice | None
    acpi_device: str | None
    acpi_uid: str | None
    blocks: tuple[int, ...] = ()
    mapping: str = UNMAPPED  # mapped | interleaved | unmapped (see memras.topology.memory_map)
    mapping_reason: str = ""
    match: str = ""  # how the sources were joined, or why they were not

    @property
    def ref(self) -> ModuleRef:
        """What the memory map's reverse lookup needs of this module."""
        return ModuleRef(self.label, self.match, self.acpi_device,
                         self.smbios.handle if self.smbios is not None else None)

    @property
    def edac_ref(self) -> str | None:
        return f"mc{self.edac.mc}/{self.edac.name}" if self.edac else None

    def names(self) -> list[str]:
        """Every text :func:`resolve_dimm` accepts for this module."""
        out = [self.id, self.label]
        if self.edac:
            out += [self.edac.label, f"mc{self.edac.mc}/{self.edac.name}", self.edac.key]
        if self.smbios:
            out += [self.smbios.locator, self.smbios.full_locator, self.smbios.serial]
        if self.acpi_device:
            out.append(self.acpi_device)
        return [n for n in out if n]


def _smbios_names(dev: MemoryDevice) -> set[str]:
    return {n for n in (fold(dev.full_locator), fold(dev.locator),
                        fold(f"{dev.bank_locator}_{dev.locator}")) if n}


# skx/i10nm default labels (skx_common.c) and the bank locators mcelog's
# dmi-prepopulate understands: both name (socket, channel, dimm) on Intel servers.
_SKX_LABEL = re.compile(r"CPU_SrcID#(\d+)_(?:MC|Ha)#(\d+)_Chan#(\d+)_DIMM#(\d+)$")
_BANK_LOCATORS = (re.compile(r"_Node(\d+)_Channel(\d+)_Dimm(\d+)"),
                  re.compile(r"NODE (\d+) CHANNEL (\d+) DIMM (\d+)", re.IGNORECASE))


def _edac_topology(e: EdacDimm, channels_per_mc: dict[int, int]) -> tuple[int, ...] | None:
    m = _SKX_LABEL.match(e.label)
    if not m or e.mc not in channels_per_mc:
        return None
    socket, mc, chan, dimm = (int(x) for x in m.groups())
    return socket, mc * channels_per_mc[e.mc] + chan, dimm


def _smbios_topology(dev: MemoryDevice) -> tuple[int, ...] | None:
    for pattern in _BANK_LOCATORS:
        m = pattern.search(dev.bank_locator)
        if m:
            return tuple(int(x) for x in m.groups())
    return None


def _unique_join(keys_a: dict[int, object], keys_b: dict[int, object]) -> dict[int, int]:
    """Pairs (a, b) whose key occurs exactly once on each side."""
    out = {}
    for a, key in keys_a.items():
        if key is None or list(keys_a.values()).count(key) != 1:
            continue
        hits = [b for b, other in keys_b.items() if other == key]
        if len(hits) == 1:
            out[a] = hits[0]
    return out


def match_edac_smbios(edac: list[EdacDimm], devices: list[MemoryDevice],
                      channels_per_mc: dict[int, int] | None = None
                      ) -> tuple[dict[int, MemoryDevice], dict[int, str]]:
    """EDAC index -> joined type 17, and EDAC index -> how (or why not)."""
    joined: dict[int, MemoryDevice] = {}
    how: dict[int, str] = {}
    for i, e in enumerate(edac):
        hits = [d for d in devices if fold(e.label) and fold(e.label) in _smbios_names(d)]
        if len(hits) == 1 and hits[0] not in joined.values():
            joined[i], how[i] = hits[0], "label"
    free = {j: d for j, d in enumerate(devices) if d not in joined.values()}
    by_topology = _unique_join(
        {i: _edac_topology(e, channels_per_mc or {}) for i, e in enumerate(edac)
         if i not in joined},
        {j: _smbios_topology(d) for j, d in free.items()})
    for i, j in by_topology.items():
        joined[i], how[i] = devices[j], "socket/channel/dimm"
    left_edac = [i for i in range(len(edac)) if i not in joined]
    left_dev = [d for d in devices if d not in joined.values()]
    for i in left_edac:
        size = edac[i].size_mb * MIB
        same_edac = [j for j in left_edac if edac[j].size_mb * MIB == size]
        same_dev = [d for d in left_dev if d.size_bytes == size]
        if len(same_edac) == 1 and len(same_dev) == 1:
            joined[i], how[i] = same_dev[0], "size"
        elif not devices:
            how[i] = "edac only: no SMBIOS memory devices"
        else:
            how[i] = (f"edac only: label {edac[i].label!r} is no SMBIOS locator and "
                      f"{len(same_dev)} SMBIOS devices have its size")
    return joined, how


def _channels_per_mc(controllers: list[EdacController]) -> dict[int, int]:
    """From ``max_location`` ("channel 2 slot 1 "): the highest channel index + 1."""
    out = {}
    for c in controllers:
        layers = parse_dimm_location(c.max_location)
        if "channel" in layers:
            out[c.index] = layers["channel"] + 1
    return out


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._:-]+", "_", text.strip()).strip("_")


def _edac_entry(e: EdacDimm, dev: MemoryDevice | None, how: str) -> DimmInfo:
    return DimmInfo(
        id=f"mc{e.mc}/{e.name}",
        label=e.label or (dev.locator if dev else "") or f"mc{e.mc}/{e.name}",
        location=e.location_text,
        size_bytes=e.size_mb * MIB if e.size_mb else (dev.size_bytes if dev else None),
        ce_count=e.ce_count, ue_count=e.ue_count,
        edac=e, smbios=dev, acpi_device=None, acpi_uid=None, match=how)


def _smbios_entry(dev: MemoryDevice, ident: str, acpi: AcpiMemoryDevice | None) -> DimmInfo:
    return DimmInfo(
        id=acpi.name if acpi else ident,
        label=dev.locator or dev.full_locator or ident,
        location=dev.bank_locator or (acpi.path if acpi else ""),
        size_bytes=dev.size_bytes, ce_count=None, ue_count=None, edac=None, smbios=dev,
        acpi_device=acpi.name if acpi else None, acpi_uid=acpi.uid if acpi else None,
        match="acpi+smbios" if acpi else "smbios only")


def _acpi_entry(dev: AcpiMemoryDevice, block_size: int) -> DimmInfo:
    return DimmInfo(
        id=dev.name, label=dev.name, location=dev.path,
        size_bytes=len(dev.blocks) * block_size or None, ce_count=None, ue_count=None,
        edac=None, smbios=None, acpi_device=dev.name, acpi_uid=dev.uid, match="acpi")


def _smbios_ids(devices: list[MemoryDevice]) -> dict[int, str]:
    """Locator-based ids, made unique with the bank locator, then the handle."""
    ids: dict[int, str] = {}
    for dev in devices:
        same = [d for d in devices if d.locator == dev.locator]
        ids[dev.handle] = _slug(dev.locator if len(same) == 1 else dev.full_locator)
    for handle, ident in list(ids.items()):
        if not ident or list(ids.values()).count(ident) > 1:
            ids[handle] = f"{ident or 'smbios'}-{handle:04x}"
    return ids


def _devices_on(mm: MemoryMap, acpi: AcpiMemoryDevice,
                devices: list[MemoryDevice]) -> list[MemoryDevice]:
    """The type 17s whose type 20 ranges touch this ACPI device's blocks."""
    span = set(acpi.blocks)
    return [d for d in devices if any(
        r.device_handle == d.handle and span & set(mm.block_span(r.start, r.end))
        for r in mm.ranges)]


def dimm_inventory(host: Host, *, memory_map: MemoryMap | None = None) -> list[DimmInfo]:
    """One entry per physical module, with its blocks and whether it can go alone."""
    mm = memory_map or read_memory_map(host)
    controllers = host.edac.controllers()
    edac = [d for c in controllers for d in c.dimms]
    populated = [d for d in mm.devices.values() if d.populated]
    joined, how = match_edac_smbios(edac, populated, _channels_per_mc(controllers))
    entries = [_edac_entry(e, joined.get(i), how[i]) for i, e in enumerate(edac)]
    leftovers = [d for d in populated if d not in joined.values()]
    if edac and len(joined) < len(edac):
        leftovers = []  # unjoined EDAC DIMMs are probably these very modules
    ids = _smbios_ids(leftovers)
    if not edac:
        for acpi in (a for a in mm.acpi if a.present):
            on_it = _devices_on(mm, acpi, leftovers)
            if len(on_it) == 1:  # a per-slot device with its type 17: one module
                leftovers.remove(on_it[0])
                entries.append(_smbios_entry(on_it[0], ids[on_it[0].handle], acpi))
            elif not on_it:  # QEMU pc-dimm: ACPI is its only description
                entries.append(_acpi_entry(acpi, mm.block_size))
            # several type 17s under one device: those modules are the entries
    entries += [_smbios_entry(d, ids[d.handle], None) for d in leftovers]
    return [_with_blocks(host, mm, e) for e in entries]


def _with_blocks(host: Host, mm: MemoryMap, entry: DimmInfo) -> DimmInfo:
    result = blocks_for_dimm(host, entry.ref, memory_map=mm)
    return dataclasses.replace(
        entry, blocks=result.blocks, mapping=result.status, mapping_reason=result.reason,
        acpi_device=entry.acpi_device or result.acpi_device,
        acpi_uid=entry.acpi_uid or next(
            (a.uid for a in mm.acpi if a.name == result.acpi_device), None))


def resolve_dimm(host: Host, text: str, *,
                 inventory: list[DimmInfo] | None = None) -> DimmInfo:
    """The module ``text`` names: id, EDAC label, mcN/dimmM, locator, bank locator,
    serial, PNP0C80:NN, or a prefix only it has (:func:`memras.topology.naming.match`:
    an unknown name is a UsageError with the closest known names)."""
    dimms = inventory if inventory is not None else dimm_inventory(host)
    info = naming.match(text, naming.named_all(dimms)).info
    assert info is not None  # every candidate here came from the inventory
    return info
