"""The ``cxl`` simulator profile: the lab guest plus a CXL Type-3 memory expander pair.

Two QEMU-style ``cxl-type3`` volatile memdevs (256 MiB each) behind one host bridge,
interleaved two ways at 4 KiB granularity into ``region0`` (HPA 0x290000000, 512 MiB),
whose ``dax0.0`` is onlined by kmem on node 1 as ZONE_MOVABLE: blocks 82-85. The dax
bus's two drivers take ``new_id``/``bind``/``unbind`` writes as 6.12 does
(:func:`dax_driver_write`): memory goes back to devdax and comes back as system-ram. The tree
follows the kernel's device hierarchy (a memdev's endpoint port and decoders are its
children, regions and DAX regions sit under the root decoder) with the bus symlinks
``/sys/bus/cxl/devices`` and ``/sys/bus/dax/devices`` point through, as
memras.host.cxl reads them.

``cxl-single`` is the same guest with one 256 MiB memdev in a 1-way region (blocks
82-83): the unit ``memras replace mem0`` takes out alone.

The tree answers the sysfs writes a CXL replacement makes (:func:`cxl_write`, called
by :class:`memras.sim.kernel.SimulatedKernel`; Documentation/ABI/testing/
sysfs-bus-cxl and sysfs-bus-dax): ``kmem/unbind`` of a DAX device removes its blocks
(EBUSY while one is online), ``kmem/new_id`` adds them (onlined per
``auto_online_blocks``), a region's ``commit`` 0/1 (0: EBUSY while its DAX device holds
blocks), ``create_ram_region``/``delete_region`` on the root decoder, the region's
geometry and ``targetN``, an endpoint decoder's ``mode`` and ``dpa_size`` (EBUSY while
in a committed region), the ``cxl_region`` driver's ``bind`` (its DAX device appears,
bound to kmem as 6.12 does for a ram region) and a PCIe slot's ``power`` 0 (pciehp
removes the device: its memdev, endpoint port and decoders go).
:func:`insert_cxl_memdev` is the technician: a new device with a new serial in the
slot, its memdev named as the kernel's ida would (the lowest free ``memN``).
Not modelled: the HPA window's alignment rules, pmem, switches, the delay between a
device's arrival and its endpoint port (the kernel's probe is asynchronous).
"""

from __future__ import annotations

import errno
import os
import re
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from memras.sim import tree
from memras.sim.profiles import qemu_guest
from memras.sim.spec import BlockRange, ServerSpec
from memras.sim.state import SimState, locked_state, uevent

if TYPE_CHECKING:
    from memras.sim.kernel import SimulatedKernel

MiB = 1 << 20
REGION_START = 0x290000000
MEMDEV_SIZE = 256 * MiB
GRANULARITY = 4096
REGION_UUID = "5a8f0c2e-1d3b-4e6f-9a7c-2b4d6e8f0a1c"
PCI = "sys/devices/pci0000:0c/0000:0c:00.0"
ROOT_DECODER = "sys/devices/platform/ACPI0017:00/root0/decoder0.0"
MEMDEVS = (("mem0", "0000:0d:00.0", 2, 0x0), ("mem1", "0000:0e:00.0", 3, 0x1))
WINDOW_SIZE = 4 << 30  # the root decoder's fixed memory window (QEMU cxl-fmw.0.size=4G)
CXL_NODE = 1
CXL = "sys/bus/cxl/devices"
DAX = "sys/bus/dax/devices"
DAX_DRIVERS = "sys/bus/dax/drivers"
CXL_DRIVERS = "sys/bus/cxl/drivers"
SLOTS = "sys/bus/pci/slots"


def cxl_spec(memdevs: int = len(MEMDEVS)) -> ServerSpec:
    spec = qemu_guest()
    spec.profile = "cxl" if memdevs == len(MEMDEVS) else "cxl-single"
    spec.nodes = {0: "0-1", 1: ""}
    block = REGION_START // spec.block_size
    spec.blocks.append(BlockRange(block, memdevs * MEMDEV_SIZE // spec.block_size, CXL_NODE,
                                  "Movable"))
    return spec


def cxl_single_spec() -> ServerSpec:
    return cxl_spec(1)


def _put(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tree.put(path, text)


def _link(root: Path, bus_dir: str, name: str, target: str) -> None:
    link = root / bus_dir / name
    link.parent.mkdir(parents=True, exist_ok=True)
    os.symlink(os.path.relpath(root / target, link.parent), link)


def _driver_link(root: Path, device: str, drivers: str, driver: str) -> None:
    link = root / device / "driver"
    if link.is_symlink():
        link.unlink()
    os.symlink(os.path.relpath(root / drivers / driver, link.parent), link)


def _bus_files(root: Path) -> None:
    for driver in ("kmem", "device_dax"):
        for attr in ("bind", "unbind", "new_id"):
            _put(root / DAX_DRIVERS / driver / attr, "")
    _put(root / CXL_DRIVERS / "cxl_region" / "bind", "")
    _put(root / CXL_DRIVERS / "cxl_region" / "unbind", "")


def _write_memdev(root: Path, name: str, host: str, port: int, serial: int, size: int,
                  slot: str) -> str:
    """One cxl-type3 function with its memdev, endpoint port and one free decoder."""
    mem = f"{PCI}/{host}/{name}"
    _put(root / mem / "serial", f"{serial:#x}")
    _put(root / mem / "numa_node", "0")
    _put(root / mem / "firmware_version", "BWFW VERSION 00")
    _put(root / mem / "ram/size", f"{size:#x}")
    _put(root / mem / "pmem/size", "0x0")
    decoder = f"decoder{port}.0"
    dec = f"{mem}/endpoint{port}/{decoder}"
    _put(root / dec / "dpa_resource", "0x0")
    _put(root / dec / "dpa_size", "0x0")
    _put(root / dec / "mode", "ram")
    _put(root / dec / "region", "")
    _link(root, CXL, name, mem)
    _link(root, CXL, decoder, dec)
    _put(root / SLOTS / slot / "address", host.rsplit(".", 1)[0])
    _put(root / SLOTS / slot / "power", "1")
    return decoder


def write_cxl_tree(root: str | Path, memdevs: int = len(MEMDEVS)) -> None:
    """The CXL and DAX sysfs of the profile under ``root`` (its blocks already exist)."""
    root = Path(root)
    _bus_files(root)
    for attr, value in (("start", f"{REGION_START:#x}"), ("size", f"{WINDOW_SIZE:#x}"),
                        ("create_ram_region", "region1"), ("delete_region", ""),
                        ("interleave_granularity", str(GRANULARITY))):
        _put(root / ROOT_DECODER / attr, value)
    _link(root, CXL, "decoder0.0", ROOT_DECODER)
    region = f"{ROOT_DECODER}/region0"
    used = MEMDEVS[:memdevs]
    for position, (name, host, port, serial) in enumerate(used):
        decoder = _write_memdev(root, name, host, port, serial, MEMDEV_SIZE, str(port))
        dec = root / CXL / decoder
        _put(dec / "dpa_size", f"{MEMDEV_SIZE:#x}")
        _put(dec / "region", "region0")
        _put(root / region / f"target{position}", decoder)
    size = len(used) * MEMDEV_SIZE
    for attr, value in (("uuid", REGION_UUID), ("resource", f"{REGION_START:#x}"),
                        ("size", f"{size:#x}"), ("mode", "ram"),
                        ("interleave_ways", str(len(used))),
                        ("interleave_granularity", str(GRANULARITY)), ("commit", "1")):
        _put(root / region / attr, value)
    _link(root, CXL, "region0", region)
    _driver_link(root, region, CXL_DRIVERS, "cxl_region")
    dax = f"{region}/dax_region0/dax0.0"
    _put(root / dax / "target_node", str(CXL_NODE))
    _put(root / dax / "resource", f"{REGION_START:#x}")
    _put(root / dax / "size", f"{size:#x}")
    _link(root, DAX, "dax0.0", dax)
    _driver_link(root, dax, DAX_DRIVERS, "kmem")


# --- the technician ----------------------------------------------------------------------

def insert_cxl_memdev(root: str | Path, host: str, *, serial: int,
                      size: int = MEMDEV_SIZE) -> str:
    """A new cxl-type3 device in the slot of PCI function ``host`` (its old device
    removed): its memdev (the lowest free ``memN``), a new endpoint port with one free
    decoder; the slot powered on. Its name."""
    root = Path(root)
    with locked_state(root):
        if (root / PCI / host).exists():
            raise OSError(errno.EEXIST, f"a device is already at {host}")
        slot = next((s for s in os.listdir(root / SLOTS)
                     if tree.get(root / SLOTS / s / "address") == host.rsplit(".", 1)[0]),
                    None)
        if slot is None:
            raise OSError(errno.ENODEV, f"no PCIe slot for {host}")
        taken = set(os.listdir(root / CXL))
        name = next(f"mem{i}" for i in range(64) if f"mem{i}" not in taken)
        port = next(p for p in range(2, 256)
                    if f"endpoint{p}" not in taken and f"decoder{p}.0" not in taken
                    and f"port{p}" not in taken)
        _write_memdev(root, name, host, port, serial, size or MEMDEV_SIZE, slot)
        uevent(root, "add", f"/devices/pci0000:0c/0000:0c:00.0/{host}/{name}")
        return name


# --- the kernel's side of the writes -------------------------------------------------------

_DAX_DRIVER = re.compile(r"^/sys/bus/dax/drivers/(\w+)/(bind|unbind|new_id|remove_id)$")
_CXL_ATTR = re.compile(r"^/sys/bus/cxl/devices/((?:region|decoder)[\d.]+)/(\w+)$")
_REGION_BIND = "/sys/bus/cxl/drivers/cxl_region/bind"
_SLOT_POWER = re.compile(r"^/sys/bus/pci/slots/([^/]+)/power$")
CXL_WRITE_PREFIXES = ("/sys/bus/dax/drivers/", "/sys/bus/cxl/", "/sys/bus/pci/slots/")


def _fail(code: int, path: str) -> OSError:
    return OSError(code, os.strerror(code), path)


def _hex(text: str) -> int:
    return int(text, 0) if text.strip() else 0


def cxl_write(kernel: SimulatedKernel, state: SimState, path: str, text: str) -> None:
    """Apply one CXL/DAX/PCI-slot sysfs write as 6.12 would (see the module)."""
    root = kernel.root
    if m := _DAX_DRIVER.match(path):
        dax_driver_write(kernel, state, m.group(1), m.group(2), text, path)
    elif path == _REGION_BIND:
        _bind_region(kernel, state, text, path)
    elif m := _SLOT_POWER.match(path):
        _slot_power(root, m.group(1), text, path)
    elif m := _CXL_ATTR.match(path):
        _cxl_attr(root, m.group(1), m.group(2), text, path)
    else:
        raise _fail(errno.EACCES, path)


def _dax_blocks(root: Path, state: SimState, dax: Path) -> list[int]:
    start, size = _hex(tree.get(dax / "resource")), _hex(tree.get(dax / "size"))
    bs = state.spec.block_size
    return list(range(start // bs, (start + size) // bs))


def dax_driver_write(kernel: SimulatedKernel, state: SimState, driver: str, attr: str,
                     name: str, path: str) -> None:
    """``name`` > ``/sys/bus/dax/drivers/<driver>/<attr>``: ``kmem`` unbind removes the
    device's blocks (EBUSY while one is online), ``kmem`` new_id/bind adds them (onlined
    per ``auto_online_blocks``), ``device_dax`` only takes or lets go of the device;
    new_id/bind of a device bound elsewhere is EBUSY; remove_id changes nothing here."""
    root = kernel.root
    if attr == "remove_id":
        return
    dax = root / DAX / name
    if not dax.exists():
        raise _fail(errno.ENODEV, path)
    bound = os.path.basename(os.readlink(dax / "driver")) if (dax / "driver").is_symlink() \
        else None
    blocks = _dax_blocks(root, state, dax)
    if attr == "unbind":
        if bound != driver:
            raise _fail(errno.ENODEV, path)
        if driver == "kmem":
            present = [b for b in blocks if tree.memdir(root, b).is_dir()]
            if any(tree.get(tree.memdir(root, b) / "state") != "offline" for b in present):
                raise _fail(errno.EBUSY, path)  # remove_memory() of an online block
            for b in present:
                tree.remove_block(root, b)
                state.tick()
                uevent(root, "remove", f"/devices/system/memory/memory{b}")
            tree.refresh_offline_zones(root, state.spec.block_size, CXL_NODE)
            tree.refresh_meminfo(root, state)
        (dax / "driver").unlink()
        return
    if bound is not None:
        raise _fail(errno.EBUSY, path)
    if driver == "kmem":
        from memras.sim.actions import _add_blocks, _auto_online  # the DIMM insert's rules

        _add_blocks(root, state, blocks, CXL_NODE)
        _auto_online(root, state, blocks)
        tree.refresh_offline_zones(root, state.spec.block_size, CXL_NODE)
        tree.refresh_meminfo(root, state)
    _driver_link(root, os.path.relpath(os.path.realpath(dax), root), DAX_DRIVERS, driver)


def _regions_under(root: Path) -> list[Path]:
    return [p for p in (root / ROOT_DECODER).iterdir() if re.fullmatch(r"region\d+", p.name)]


def _cxl_attr(root: Path, name: str, attr: str, text: str, path: str) -> None:
    d = root / CXL / name
    if name.startswith("region"):
        _region_attr(root, d, attr, text, path)
        return
    if attr == "create_ram_region":
        if text != tree.get(d / "create_ram_region"):
            raise _fail(errno.EINVAL, path)  # the name offered must be written back
        region = d / text
        for a, v in (("uuid", ""), ("resource", f"{(1 << 64) - 1:#x}"), ("size", "0x0"),
                     ("mode", "ram"), ("interleave_ways", "1"),
                     ("interleave_granularity", tree.get(d / "interleave_granularity")),
                     ("commit", "0"), ("target0", "")):
            _put(region / a, v)
        _link(root, CXL, text, os.path.relpath(region, root))
        taken = {p.name for p in _regions_under(root)}
        nxt = next(f"region{i}" for i in range(int(text[6:]) + 1, 10000)
                   if f"region{i}" not in taken)
        tree.put(d / "create_ram_region", nxt)
    elif attr == "delete_region":
        region = d / text
        if not region.is_dir():
            raise _fail(errno.ENODEV, path)
        _decommit(root, region, path)
        for t in region.glob("target*"):
            dec = root / CXL / tree.get(t)
            if dec.exists():
                tree.put(dec / "region", "")
        shutil.rmtree(region)
        (root / CXL / text).unlink()
    elif attr in ("dpa_size", "mode"):
        owner = tree.get(d / "region") if (d / "region").exists() else ""
        if owner and tree.get(root / CXL / owner / "commit") == "1":
            raise _fail(errno.EBUSY, path)
        tree.put(d / attr, f"{_hex(text):#x}" if attr == "dpa_size" else text)
    else:
        raise _fail(errno.EACCES, path)


def _region_attr(root: Path, region: Path, attr: str, text: str, path: str) -> None:
    if not region.exists():
        raise _fail(errno.ENOENT, path)
    committed = tree.get(region / "commit") == "1"
    if attr == "commit":
        if text == "0":
            _decommit(root, region, path)
        elif text == "1":
            ways = int(tree.get(region / "interleave_ways"))
            targets = [tree.get(region / f"target{i}") if (region / f"target{i}").exists()
                       else "" for i in range(ways)]
            if not all(targets) or not _hex(tree.get(region / "size")):
                raise _fail(errno.ENXIO, path)
            tree.put(region / "commit", "1")
        else:
            raise _fail(errno.EINVAL, path)
        return
    if committed:
        raise _fail(errno.EBUSY, path)
    if attr in ("interleave_granularity", "interleave_ways"):
        tree.put(region / attr, str(int(text)))
        if attr == "interleave_ways":  # the kernel shows one targetN per way
            for i in range(int(text)):
                if not (region / f"target{i}").exists():
                    tree.put(region / f"target{i}", "")
    elif attr == "size":
        size = _hex(text)
        tree.put(region / "size", f"{size:#x}")
        tree.put(region / "resource", f"{_free_hpa(root, region, size):#x}")
    elif m := re.fullmatch(r"target(\d+)", attr):
        dec = root / CXL / text
        if not dec.exists() or tree.get(dec / "region") not in ("", region.name):
            raise _fail(errno.ENXIO, path)
        if _hex(tree.get(dec / "dpa_size")) * int(tree.get(region / "interleave_ways")) \
                != _hex(tree.get(region / "size")):
            raise _fail(errno.ENXIO, path)  # the decoder's DPA does not fit the region
        tree.put(region / f"target{m.group(1)}", text)
        tree.put(dec / "region", region.name)
    else:
        raise _fail(errno.EACCES, path)


def _free_hpa(root: Path, region: Path, size: int) -> int:
    """First fit in the root decoder's window, past the other regions."""
    start = _hex(tree.get(root / ROOT_DECODER / "start"))
    taken = sorted((_hex(tree.get(r / "resource")), _hex(tree.get(r / "size")))
                   for r in _regions_under(root) if r != region
                   and _hex(tree.get(r / "resource")) != (1 << 64) - 1)
    for begin, length in taken:
        if start + size <= begin:
            break
        start = max(start, begin + length)
    return start


def _decommit(root: Path, region: Path, path: str) -> None:
    """commit 0: the region's driver goes (its DAX region with it); refused while its
    DAX device still holds memory blocks (6.12 would try to remove them online)."""
    for dax in region.glob("dax_region*/dax*.*"):
        if (dax / "driver").is_symlink():
            raise _fail(errno.EBUSY, path)
        (root / DAX / dax.name).unlink(missing_ok=True)
    for dax_region in region.glob("dax_region*"):
        shutil.rmtree(dax_region)
    if (region / "driver").is_symlink():
        (region / "driver").unlink()
    tree.put(region / "commit", "0")


def _bind_region(kernel: SimulatedKernel, state: SimState, name: str, path: str) -> None:
    root = kernel.root
    region = root / CXL / name
    if not region.exists() or tree.get(region / "commit") != "1":
        raise _fail(errno.ENXIO, path)
    if (region / "driver").is_symlink():
        raise _fail(errno.EBUSY, path)
    real = Path(os.path.realpath(region))
    _driver_link(root, os.path.relpath(real, root), CXL_DRIVERS, "cxl_region")
    index = name.removeprefix("region")
    dax = real / f"dax_region{index}" / f"dax{index}.0"
    _put(dax / "target_node", str(CXL_NODE))
    _put(dax / "resource", tree.get(region / "resource"))
    _put(dax / "size", tree.get(region / "size"))
    _link(root, DAX, dax.name, os.path.relpath(dax, root))
    dax_driver_write(kernel, state, "kmem", "new_id", dax.name, path)  # 6.12: kmem by default


def _slot_power(root: Path, slot: str, text: str, path: str) -> None:
    if text not in ("0", "1"):
        raise _fail(errno.EINVAL, path)
    tree.put(root / SLOTS / slot / "power", text)
    if text == "1":
        return
    address = tree.get(root / SLOTS / slot / "address")
    for function in (root / PCI).glob(f"{address}.*"):
        for mem in function.glob("mem*"):
            gone = os.path.realpath(mem)  # a relative --root: compare real paths
            for link in (root / CXL).iterdir():
                target = os.path.realpath(link)
                if target == gone or target.startswith(gone + os.sep):
                    link.unlink()
            uevent(root, "remove", f"/devices/pci0000:0c/0000:0c:00.0/{function.name}/"
                                   f"{mem.name}")
        shutil.rmtree(function)
