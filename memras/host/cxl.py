"""CXL memory devices, regions and their DAX devices: /sys/bus/cxl and /sys/bus/dax.

What the kernel's CXL core shows (Documentation/ABI/testing/sysfs-bus-cxl,
sysfs-bus-dax), read only:

- ``/sys/bus/cxl/devices/memN``: ``serial`` (hex), ``numa_node``, ``ram/size`` and
  ``pmem/size`` (hex bytes), ``firmware_version``; its parent device (the PCI
  function, ``0000:0d:00.0``) is the ``host`` the trace events name. The memdev's
  endpoint port sits in the port tree, under the port it attaches to, not under the
  memdev (6.12: ``…/ACPI0017:00/root0/port1/endpoint2/decoder2.0``); the port's
  ``uport`` link names the memdev (``endpoint2/uport -> …/0000:0d:00.0/mem0``), which
  is how an endpoint decoder's memdev is found (a tree with the endpoint under the
  memdev, ``…/mem0/endpoint2``, is read by the ``memN`` in its path).
- ``regionN`` (under a root decoder): ``uuid``, ``resource`` (the HPA start, hex),
  ``size``, ``interleave_ways``, ``interleave_granularity``, ``mode`` and
  ``target0..N-1`` (endpoint decoder names, in interleave position order).
- endpoint decoders ``decoderE.D``: ``dpa_resource`` and ``dpa_size`` (hex): the DPA
  range the region maps.
- ``/sys/bus/dax/devices/daxR.I``: ``target_node``, ``resource`` (HPA start, hex),
  ``size``; it lives under ``regionN/dax_regionN``. Its ``driver`` link names the dax
  driver bound to it (Documentation/ABI/testing/sysfs-bus-dax): ``kmem`` (its memory is
  system RAM, in memory blocks) or ``device_dax`` (a ``/dev/daxR.I`` character device);
  ``/sys/bus/dax/drivers/<driver>/{new_id,bind,unbind}`` take a device name, as
  ``daxctl reconfigure-device`` writes them (:meth:`Cxl.dax_driver_write`).
- Dynamic capacity (DCD): the kernel's DCD series shows a memdev's first dynamic RAM
  partition as ``memN/dynamic_ram_a/size`` (hex; absent when the partition is empty or
  the kernel has no DCD support, as 6.12 has not: "[PATCH v10 05/31] cxl/mem: Expose
  dynamic ram A partition in sysfs", https://lore.kernel.org/all/45bc277b11c1aabf495132925c0d75c78e3b5a8a.1779528761.git.anisa.su@samsung.com/).

:func:`hpa_to_dpa` does the region's modulo interleave arithmetic (the inverse of the
kernel's cxl_dpa_to_hpa() for power-of-two ways: position = (offset / granularity)
mod ways; the DPA skips the other ways' chunks); :func:`dpa_to_hpa` goes the other way
(where a poison record's longer range lies). :meth:`Cxl.page_hwpoisoned` reads a page's
HWPOISON bit in /proc/kpageflags (fs/proc/page.c: one little-endian u64 per PFN).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from memras.host._fs import KernelFs

CXL_DIR = "/sys/bus/cxl/devices"
DAX_DIR = "/sys/bus/dax/devices"
DAX_DRIVERS = "/sys/bus/dax/drivers"
# a DAX device's mode as daxctl names it, by the driver bound to it
DAX_MODES = {"kmem": "system-ram", "device_dax": "devdax"}
_MEMDEV = re.compile(r"^mem\d+$")


@dataclass(frozen=True, slots=True)
class CxlMemdev:
    name: str  # mem0
    host: str  # the parent device (PCI function), as trace events print it
    serial: int | None
    ram_size: int
    pmem_size: int
    numa_node: int | None
    firmware_version: str
    dynamic_ram_a_size: int | None = None  # None: no DC partition shown (see the module)

    @property
    def size(self) -> int:
        return self.ram_size + self.pmem_size


@dataclass(frozen=True, slots=True)
class CxlTarget:
    """One interleave position of a region: an endpoint decoder of one memdev."""

    position: int
    decoder: str
    memdev: str | None
    dpa_start: int | None
    dpa_size: int | None


@dataclass(frozen=True, slots=True)
class CxlRegion:
    name: str
    uuid: str
    start: int | None  # HPA, None while not committed
    size: int
    mode: str
    ways: int
    granularity: int
    targets: tuple[CxlTarget, ...]

    def contains(self, hpa: int) -> bool:
        return self.start is not None and self.start <= hpa < self.start + self.size


@dataclass(frozen=True, slots=True)
class DaxDevice:
    name: str  # dax0.0
    region: str | None  # the CXL region it belongs to, when it is one
    target_node: int | None
    start: int | None
    size: int
    driver: str | None = None  # kmem | device_dax | None (no driver bound)

    def contains(self, hpa: int) -> bool:
        return self.start is not None and self.start <= hpa < self.start + self.size

    @property
    def mode(self) -> str:
        """``system-ram``, ``devdax`` (as daxctl says), ``unbound``, or the driver's name."""
        if self.driver is None:
            return "unbound"
        return DAX_MODES.get(self.driver, self.driver)

    def blocks(self, block_size: int) -> range:
        """The memory block numbers its HPA range covers (empty without a resource)."""
        if self.start is None or block_size <= 0:
            return range(0)
        return range(self.start // block_size, -(-(self.start + self.size) // block_size))


@dataclass(frozen=True, slots=True)
class DpaLocation:
    region: str
    memdev: str | None
    decoder: str
    position: int
    dpa: int | None


def hpa_to_dpa(region: CxlRegion, hpa: int) -> DpaLocation | None:
    """The memdev and DPA behind ``hpa`` in ``region``; None outside it."""
    if not region.contains(hpa) or not region.targets or region.start is None:
        return None
    ways = max(region.ways, 1)
    gran = max(region.granularity, 1)
    offset = hpa - region.start
    position = (offset // gran) % ways
    target = next((t for t in region.targets if t.position == position), None)
    if target is None:
        return None
    dpa_offset = (offset // (gran * ways)) * gran + offset % gran
    dpa = None if target.dpa_start is None else target.dpa_start + dpa_offset
    return DpaLocation(region.name, target.memdev, target.decoder, position, dpa)


def dpa_to_hpa(region: CxlRegion, memdev: str, dpa: int) -> int | None:
    """The HPA ``region`` maps ``memdev``'s ``dpa`` to (the kernel's cxl_dpa_to_hpa() for
    power-of-two ways: the inverse of :func:`hpa_to_dpa`); None when the region does not
    decode that DPA of that memdev."""
    if region.start is None:
        return None
    gran = max(region.granularity, 1)
    ways = max(region.ways, 1)
    for t in region.targets:
        if t.memdev != memdev or t.dpa_start is None or t.dpa_size is None:
            continue
        if not t.dpa_start <= dpa < t.dpa_start + t.dpa_size:
            continue
        offset = dpa - t.dpa_start
        hpa = region.start + ((offset // gran) * ways + t.position) * gran + offset % gran
        return hpa if region.contains(hpa) else None
    return None


KPAGEFLAGS = "/proc/kpageflags"
KPF_HWPOISON = 1 << 19  # include/uapi/linux/kernel-page-flags.h
PAGE_SIZE = 4096


def _hex(text: str) -> int | None:
    text = text.strip()
    if not text:
        return None
    try:
        return int(text, 16) if text.lower().startswith("0x") else int(text, 16 if any(
            c in "abcdefABCDEF" for c in text) else 10)
    except ValueError:
        return None


class Cxl:
    """The CXL and DAX buses of one host (empty lists where the kernel has none)."""

    def __init__(self, fs: KernelFs) -> None:
        self.fs = fs

    def _names(self, directory: str, pattern: str) -> list[str]:
        rx = re.compile(pattern)
        names = [n for n in self.fs.listdir(directory) if rx.match(n)] \
            if self.fs.exists(directory) else []
        return sorted(names, key=lambda n: [int(x) for x in re.findall(r"\d+", n)])

    def _read(self, rel: str) -> str:
        return self.fs.read(rel, default="").strip()

    def _real_parts(self, rel: str) -> list[str]:
        """The device path a bus symlink points to, as its components."""
        return os.path.realpath(self.fs.path(rel)).split(os.sep)

    def memdevs(self) -> list[CxlMemdev]:
        out = []
        for name in self._names(CXL_DIR, r"^mem\d+$"):
            d = f"{CXL_DIR}/{name}"
            parts = self._real_parts(d)
            host = parts[-2] if len(parts) >= 2 else ""
            node = _hex(self._read(f"{d}/numa_node"))
            out.append(CxlMemdev(
                name=name, host=host, serial=_hex(self._read(f"{d}/serial")),
                ram_size=_hex(self._read(f"{d}/ram/size")) or 0,
                pmem_size=_hex(self._read(f"{d}/pmem/size")) or 0,
                numa_node=None if node is None or self._read(f"{d}/numa_node") == "-1"
                else int(self._read(f"{d}/numa_node")),
                firmware_version=self._read(f"{d}/firmware_version"),
                dynamic_ram_a_size=_hex(self._read(f"{d}/dynamic_ram_a/size"))))
        return out

    def _endpoint_memdev(self, decoder: str) -> str | None:
        """The memdev of an endpoint decoder: its port's ``uport``, else a ``memN`` in
        its device path."""
        parts = self._real_parts(decoder)
        uport = os.path.join(os.sep.join(parts[:-1]), "uport")
        if os.path.islink(uport):
            name = os.path.basename(os.path.realpath(uport))
            if _MEMDEV.match(name):
                return name
        return next((p for p in reversed(parts) if _MEMDEV.match(p)), None)

    def _target(self, position: int, decoder: str) -> CxlTarget:
        d = f"{CXL_DIR}/{decoder}"
        memdev = self._endpoint_memdev(d) if self.fs.exists(d) else None
        return CxlTarget(position=position, decoder=decoder, memdev=memdev,
                         dpa_start=_hex(self._read(f"{d}/dpa_resource")),
                         dpa_size=_hex(self._read(f"{d}/dpa_size")))

    def regions(self) -> list[CxlRegion]:
        out = []
        for name in self._names(CXL_DIR, r"^region\d+$"):
            d = f"{CXL_DIR}/{name}"
            ways = int(self._read(f"{d}/interleave_ways") or "1")
            targets = []
            for pos in range(ways):
                decoder = self._read(f"{d}/target{pos}")
                if decoder:
                    targets.append(self._target(pos, decoder))
            start = _hex(self._read(f"{d}/resource"))
            out.append(CxlRegion(
                name=name, uuid=self._read(f"{d}/uuid"),
                start=None if start in (None, (1 << 64) - 1) else start,
                size=_hex(self._read(f"{d}/size")) or 0, mode=self._read(f"{d}/mode"),
                ways=ways, granularity=int(self._read(f"{d}/interleave_granularity") or "256"),
                targets=tuple(targets)))
        return out

    def dax_devices(self) -> list[DaxDevice]:
        out = []
        for name in self._names(DAX_DIR, r"^dax\d+\.\d+$"):
            d = f"{DAX_DIR}/{name}"
            region = next((p for p in self._real_parts(d) if re.match(r"^region\d+$", p)),
                          None)
            node = self._read(f"{d}/target_node")
            out.append(DaxDevice(
                name=name, region=region,
                target_node=int(node) if node.lstrip("-").isdigit() and node != "-1" else None,
                start=_hex(self._read(f"{d}/resource")), size=_hex(self._read(f"{d}/size")) or 0,
                driver=self.fs.readlink_name(f"{d}/driver")))
        return out

    def dax_device(self, name: str) -> DaxDevice | None:
        return next((d for d in self.dax_devices() if d.name == name), None)

    def dax_drivers(self) -> list[str]:
        """The dax drivers this kernel has loaded (``kmem``, ``device_dax``)."""
        return [n for n in self.fs.listdir(DAX_DRIVERS)
                if self.fs.exists(f"{DAX_DRIVERS}/{n}/bind")]

    def dax_driver_write(self, driver: str, attr: str, device: str) -> None:
        """Write ``device`` (``dax0.0``) to ``/sys/bus/dax/drivers/<driver>/<attr>``
        (``new_id``, ``bind``, ``unbind``); OSError with the kernel's errno on refusal."""
        self.fs.write(f"{DAX_DRIVERS}/{driver}/{attr}", device)

    def endpoint_decoders(self, memdev: str) -> list[str]:
        """``memdev``'s endpoint decoders (``decoder2.0``, ``decoder2.1``…), in order: the
        decoders with a ``dpa_size`` (root and switch decoders have none) whose port's
        memdev it is."""
        out = []
        for name in self._names(CXL_DIR, r"^decoder\d+\.\d+$"):
            d = f"{CXL_DIR}/{name}"
            if self.fs.exists(f"{d}/dpa_size") and self._endpoint_memdev(d) == memdev:
                out.append(name)
        return out

    def present(self) -> bool:
        return bool(self._names(CXL_DIR, r"^mem\d+$"))

    def page_hwpoisoned(self, address: int) -> bool | None:
        """Whether the kernel holds the page of ``address`` poisoned (/proc/kpageflags'
        HWPOISON bit: a page memory_failure() or soft offlining took out of service);
        None when that cannot be read (no root, no CONFIG_PROC_PAGE_MONITOR, a tree)."""
        try:
            with open(self.fs.path(KPAGEFLAGS), "rb") as f:
                f.seek((address // PAGE_SIZE) * 8)
                data = f.read(8)
        except OSError:
            return None
        if len(data) != 8:
            return None
        return bool(int.from_bytes(data, "little") & KPF_HWPOISON)
