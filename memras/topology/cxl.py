"""CXL memory in the topology: memdevs as replaceable units, and an HPA's whole path.

A CXL Type-3 memdev is its own field-replaceable unit (one card or E3.S module); its
memory reaches the page allocator as region → DAX device → memory blocks onlined by
kmem (normally ZONE_MOVABLE). :func:`locate_cxl` maps a system physical address to
memdev, DPA, region, DAX device, block, node and zone; :func:`cxl_units` lists the
memdevs with the blocks their regions cover (every memdev of an interleaved region
backs all of its blocks: taking one out takes the region down).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from memras.host.cxl import Cxl, CxlMemdev, CxlRegion, DaxDevice, hpa_to_dpa
from memras.topology.memory_map import MemoryMap, read_memory_map

if TYPE_CHECKING:
    from memras.host import Host


@dataclass(frozen=True, slots=True)
class CxlLocation:
    address: int
    memdev: str | None
    host: str | None  # the memdev's PCI function
    serial: int | None
    dpa: int | None
    region: str
    region_uuid: str
    position: int
    dax: str | None
    block: int
    node: int | None
    zone: str | None
    state: str | None

    def as_dict(self) -> dict[str, Any]:
        return {f: getattr(self, f) for f in self.__dataclass_fields__}


@dataclass(frozen=True, slots=True)
class CxlUnit:
    memdev: CxlMemdev
    regions: tuple[str, ...]
    dax: tuple[str, ...]
    blocks: tuple[int, ...]
    nodes: tuple[int, ...]

    def as_dict(self) -> dict[str, Any]:
        m = self.memdev
        return {"id": m.name, "kind": "cxl-memdev", "host": m.host, "serial": m.serial,
                "ram_size": m.ram_size, "pmem_size": m.pmem_size, "regions": list(self.regions),
                "dax": list(self.dax), "block_list": list(self.blocks),
                "nodes": list(self.nodes)}


def _dax_of(daxes: list[DaxDevice], address: int) -> DaxDevice | None:
    return next((d for d in daxes if d.contains(address)), None)


def locate_cxl(host: Host, address: int, *, memory_map: MemoryMap | None = None,
               cxl: Cxl | None = None) -> CxlLocation | None:
    """Where a system physical address lies on CXL memory; None when no region maps it."""
    cxl = cxl or host.cxl
    region = next((r for r in cxl.regions() if r.contains(address)), None)
    if region is None:
        return None
    where = hpa_to_dpa(region, address)
    mm = memory_map or read_memory_map(host)
    index = address // mm.block_size
    block = mm.blocks.get(index)
    memdev = next((m for m in cxl.memdevs() if where and m.name == where.memdev), None)
    dax = _dax_of(cxl.dax_devices(), address)
    return CxlLocation(
        address=address, memdev=where.memdev if where else None,
        host=memdev.host if memdev else None, serial=memdev.serial if memdev else None,
        dpa=where.dpa if where else None, region=region.name, region_uuid=region.uuid,
        position=where.position if where else -1, dax=dax.name if dax else None,
        block=index, node=block.node if block else (dax.target_node if dax else None),
        zone=block.zone if block else None, state=block.state if block else None)


def _region_blocks(region: CxlRegion, block_size: int) -> tuple[int, ...]:
    if region.start is None or not region.size:
        return ()
    first = region.start // block_size
    last = (region.start + region.size - 1) // block_size
    return tuple(range(first, last + 1))


def cxl_units(host: Host, *, memory_map: MemoryMap | None = None,
              cxl: Cxl | None = None) -> list[CxlUnit]:
    """Every CXL memdev with the regions, DAX devices, blocks and nodes it backs."""
    cxl = cxl or host.cxl
    memdevs = cxl.memdevs()
    if not memdevs:
        return []
    mm = memory_map or read_memory_map(host)
    regions = cxl.regions()
    daxes = cxl.dax_devices()
    units = []
    for m in memdevs:
        mine = [r for r in regions if any(t.memdev == m.name for t in r.targets)]
        blocks = tuple(b for r in mine for b in _region_blocks(r, mm.block_size)
                       if b in mm.blocks)
        nodes = tuple(sorted({n for b in blocks if (n := mm.blocks[b].node) is not None}))
        units.append(CxlUnit(memdev=m, regions=tuple(r.name for r in mine),
                             dax=tuple(d.name for d in daxes if d.region in
                                       {r.name for r in mine}),
                             blocks=blocks, nodes=nodes))
    return units
