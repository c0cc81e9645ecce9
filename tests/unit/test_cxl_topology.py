"""CXL topology on the ``cxl`` simulator profile: memdevs, region, DAX, blocks, locate."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from memras.host import Host
from memras.host.cxl import Cxl, CxlRegion, CxlTarget, hpa_to_dpa
from memras.sim import create
from memras.sim.cxl import GRANULARITY, MEMDEV_SIZE, REGION_START, REGION_UUID
from memras.topology.cxl import cxl_units, locate_cxl


@pytest.fixture
def host(tmp_path: Path) -> Host:
    create("cxl", tmp_path / "srv")
    return Host(tmp_path / "srv")


def test_memdevs_regions_and_dax_are_read(host: Host) -> None:
    cxl = Cxl(host.fs)
    assert [(m.name, m.host, m.serial, m.ram_size, m.pmem_size) for m in cxl.memdevs()] == [
        ("mem0", "0000:0d:00.0", 0, MEMDEV_SIZE, 0), ("mem1", "0000:0e:00.0", 1, MEMDEV_SIZE, 0)]
    (region,) = cxl.regions()
    assert (region.name, region.uuid, region.start, region.size, region.ways,
            region.granularity) == ("region0", REGION_UUID, REGION_START, 2 * MEMDEV_SIZE, 2,
                                    GRANULARITY)
    assert [(t.position, t.decoder, t.memdev) for t in region.targets] == [
        (0, "decoder2.0", "mem0"), (1, "decoder3.0", "mem1")]
    (dax,) = cxl.dax_devices()
    assert (dax.name, dax.region, dax.target_node, dax.start) == (
        "dax0.0", "region0", 1, REGION_START)


def test_locate_maps_an_hpa_to_memdev_dpa_region_block_node_zone(host: Host) -> None:
    # the 4th 4 KiB chunk of the region: position 1 (mem1), its 2nd chunk
    where = locate_cxl(host, REGION_START + 3 * GRANULARITY + 0x40)
    assert where is not None
    assert (where.memdev, where.host, where.dpa, where.region, where.position) == (
        "mem1", "0000:0e:00.0", GRANULARITY + 0x40, "region0", 1)
    assert (where.dax, where.block, where.node, where.zone, where.state) == (
        "dax0.0", REGION_START // (128 << 20), 1, "Movable", "online")
    assert locate_cxl(host, 0x1000) is None  # boot RAM: no region


def test_every_memdev_of_an_interleaved_region_backs_all_its_blocks(host: Host) -> None:
    units = cxl_units(host)
    first = REGION_START // (128 << 20)
    assert [(u.memdev.name, u.regions, u.dax, u.blocks, u.nodes) for u in units] == [
        (name, ("region0",), ("dax0.0",), tuple(range(first, first + 4)), (1,))
        for name in ("mem0", "mem1")]


@pytest.mark.parametrize(("offset", "position", "dpa"), [
    (0, 0, 0x10000), (255, 0, 0x100FF), (256, 1, 0x20000), (512, 2, 0x30000),
    (4 * 256, 0, 0x10100), (4 * 256 + 300, 1, 0x2012C)])
def test_hpa_to_dpa_four_ways(offset: int, position: int, dpa: int) -> None:
    targets = tuple(CxlTarget(p, f"decoder{p + 2}.0", f"mem{p}", 0x10000 * (p + 1), 0x10000)
                    for p in range(4))
    region = CxlRegion("region1", "u", 0x1000000, 0x40000, "ram", 4, 256, targets)
    where = hpa_to_dpa(region, 0x1000000 + offset)
    assert where is not None and (where.position, where.memdev, where.dpa) == (
        position, f"mem{position}", dpa)
    assert hpa_to_dpa(region, 0x1000000 + 0x40000) is None


# The tree a real 6.12 kernel built in the CXL lab guest (QEMU 10, one cxl-type3 behind
# a pxb-cxl root port; tests/lab/test_scenario_cxl.py, cxl-region): the endpoint port
# sits under the port it attaches to, not under the memdev, and names the memdev by its
# uport link. readlink -f of /sys/bus/cxl/devices/* and /sys/bus/dax/devices/*:
REAL_612_LINKS = {
    "bus/cxl/devices/mem0": "devices/pci0000:0c/0000:0c:00.0/0000:0d:00.0/mem0",
    "bus/cxl/devices/root0": "devices/platform/ACPI0017:00/root0",
    "bus/cxl/devices/port1": "devices/platform/ACPI0017:00/root0/port1",
    "bus/cxl/devices/endpoint2": "devices/platform/ACPI0017:00/root0/port1/endpoint2",
    "bus/cxl/devices/decoder0.0": "devices/platform/ACPI0017:00/root0/decoder0.0",
    "bus/cxl/devices/decoder2.0": "devices/platform/ACPI0017:00/root0/port1/endpoint2/"
                                  "decoder2.0",
    "bus/cxl/devices/region0": "devices/platform/ACPI0017:00/root0/decoder0.0/region0",
    "bus/dax/devices/dax0.0": "devices/platform/ACPI0017:00/root0/decoder0.0/region0/"
                              "dax_region0/dax0.0",
}
REAL_612_FILES = {  # cat of each attribute in the same guest after the region was made
    "bus/cxl/devices/mem0/serial": "0x0", "bus/cxl/devices/mem0/numa_node": "-1",
    "bus/cxl/devices/mem0/ram/size": "0x10000000", "bus/cxl/devices/mem0/pmem/size": "0x0",
    "bus/cxl/devices/region0/uuid": "", "bus/cxl/devices/region0/resource": "0x2d0000000",
    "bus/cxl/devices/region0/size": "0x10000000", "bus/cxl/devices/region0/mode": "ram",
    "bus/cxl/devices/region0/interleave_ways": "1",
    "bus/cxl/devices/region0/interleave_granularity": "256",
    "bus/cxl/devices/region0/target0": "decoder2.0",
    "bus/cxl/devices/decoder2.0/dpa_resource": "0x0",
    "bus/cxl/devices/decoder2.0/dpa_size": "0x0000000010000000",
    "bus/dax/devices/dax0.0/target_node": "1", "bus/dax/devices/dax0.0/resource": "0x2d0000000",
    "bus/dax/devices/dax0.0/size": "268435456",
}


def _real_612_tree(root: Path) -> None:
    sys_dir = root / "sys"
    for link, target in REAL_612_LINKS.items():
        (sys_dir / target).mkdir(parents=True, exist_ok=True)
        (sys_dir / link).parent.mkdir(parents=True, exist_ok=True)
        (sys_dir / link).symlink_to(os.path.relpath(sys_dir / target, (sys_dir / link).parent))
    endpoint = sys_dir / REAL_612_LINKS["bus/cxl/devices/endpoint2"]
    mem0 = sys_dir / REAL_612_LINKS["bus/cxl/devices/mem0"]
    (endpoint / "uport").symlink_to(os.path.relpath(mem0, endpoint))
    for rel, text in REAL_612_FILES.items():
        path = (sys_dir / rel).resolve() if (sys_dir / rel).parent.exists() else sys_dir / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text + "\n")


def test_a_real_612_endpoint_decoder_is_its_ports_uports_memdev(tmp_path: Path) -> None:
    _real_612_tree(tmp_path)
    cxl = Cxl(Host(tmp_path).fs)
    (region,) = cxl.regions()
    assert [(t.decoder, t.memdev, t.dpa_start, t.dpa_size) for t in region.targets] == [
        ("decoder2.0", "mem0", 0, 0x10000000)]
    assert [(m.name, m.host) for m in cxl.memdevs()] == [("mem0", "0000:0d:00.0")]
    (dax,) = cxl.dax_devices()
    assert (dax.region, dax.target_node) == ("region0", 1)
    where = hpa_to_dpa(region, 0x2D8001000)
    assert where is not None and (where.memdev, where.dpa) == ("mem0", 0x8001000)
