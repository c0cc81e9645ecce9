"""The ``cxl`` simulator profile: the lab guest plus a CXL Type-3 memory expander pair.

Two QEMU-style ``cxl-type3`` volatile memdevs (256 MiB each) behind one host bridge,
interleaved two ways at 4 KiB granularity into ``region0`` (HPA 0x290000000, 512 MiB),
whose ``dax0.0`` is onlined by kmem on node 1 as ZONE_MOVABLE: blocks 82-85. The tree
follows the kernel's device hierarchy (a memdev's endpoint port and decoders are its
children, regions and DAX regions sit under the root decoder) with the bus symlinks
``/sys/bus/cxl/devices`` and ``/sys/bus/dax/devices`` point through, as
memras.host.cxl reads them.
"""

from __future__ import annotations

import os
from pathlib import Path

from memras.sim import tree
from memras.sim.profiles import qemu_guest
from memras.sim.spec import BlockRange, ServerSpec

MiB = 1 << 20
REGION_START = 0x290000000
MEMDEV_SIZE = 256 * MiB
GRANULARITY = 4096
REGION_UUID = "5a8f0c2e-1d3b-4e6f-9a7c-2b4d6e8f0a1c"
PCI = "sys/devices/pci0000:0c/0000:0c:00.0"
ROOT_DECODER = "sys/devices/platform/ACPI0017:00/root0/decoder0.0"
MEMDEVS = (("mem0", "0000:0d:00.0", 2, 0x0), ("mem1", "0000:0e:00.0", 3, 0x1))


def cxl_spec() -> ServerSpec:
    spec = qemu_guest()
    spec.profile = "cxl"
    spec.nodes = {0: "0-1", 1: ""}
    block = REGION_START // spec.block_size
    spec.blocks.append(BlockRange(block, 2 * MEMDEV_SIZE // spec.block_size, 1, "Movable"))
    return spec


def _put(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tree.put(path, text)


def _link(root: Path, bus_dir: str, name: str, target: str) -> None:
    link = root / bus_dir / name
    link.parent.mkdir(parents=True, exist_ok=True)
    os.symlink(os.path.relpath(root / target, link.parent), link)


def write_cxl_tree(root: str | Path) -> None:
    """The CXL and DAX sysfs of the profile under ``root`` (its blocks already exist)."""
    root = Path(root)
    region = f"{ROOT_DECODER}/region0"
    for position, (name, host, port, serial) in enumerate(MEMDEVS):
        mem = f"{PCI}/{host}/{name}"
        _put(root / mem / "serial", f"{serial:#x}")
        _put(root / mem / "numa_node", "0")
        _put(root / mem / "firmware_version", "BWFW VERSION 00")
        _put(root / mem / "ram/size", f"{MEMDEV_SIZE:#x}")
        _put(root / mem / "pmem/size", "0x0")
        decoder = f"decoder{port}.0"
        dec = f"{mem}/endpoint{port}/{decoder}"
        _put(root / dec / "dpa_resource", "0x0")
        _put(root / dec / "dpa_size", f"{MEMDEV_SIZE:#x}")
        _put(root / dec / "mode", "ram")
        _put(root / region / f"target{position}", decoder)
        _link(root, "sys/bus/cxl/devices", name, mem)
        _link(root, "sys/bus/cxl/devices", decoder, dec)
    size = len(MEMDEVS) * MEMDEV_SIZE
    for attr, value in (("uuid", REGION_UUID), ("resource", f"{REGION_START:#x}"),
                        ("size", f"{size:#x}"), ("mode", "ram"),
                        ("interleave_ways", str(len(MEMDEVS))),
                        ("interleave_granularity", str(GRANULARITY)), ("commit", "1")):
        _put(root / region / attr, value)
    _link(root, "sys/bus/cxl/devices", "region0", region)
    dax = f"{region}/dax_region0/dax0.0"
    _put(root / dax / "target_node", "1")
    _put(root / dax / "resource", f"{REGION_START:#x}")
    _put(root / dax / "size", f"{size:#x}")
    _link(root, "sys/bus/dax/devices", "dax0.0", dax)
