"""A CXL memory device as the unit ``memras replace`` takes out and brings back.

A CXL Type-3 memdev (``mem0``, or its serial) resolves to a :class:`Target` whose
blocks are the memory blocks of its regions' DAX devices and whose ``cxl`` record says
what must be undone and redone around the device's removal (Documentation/ABI/testing/
sysfs-bus-cxl and sysfs-bus-dax):

- teardown (:func:`teardown`, the blocks already offline): each DAX device bound to
  ``kmem`` is unbound (``/sys/bus/dax/drivers/kmem/unbind``: the kernel removes its
  memory blocks), each region is decommitted (``regionN/commit`` 0) and deleted
  (``delete_region`` on its root decoder), and the endpoint decoders it used give back
  their DPA (``dpa_size`` 0);
- bring-up (:func:`bring_up`, once the new memdev is in): each region is made again
  on the root decoder it was on, the new memdev's endpoint decoder at the old one's
  interleave position (``create_ram_region``, ``interleave_granularity``,
  ``interleave_ways``, the decoders' ``mode`` and ``dpa_size``, ``size``, ``targetN``,
  ``commit`` 1, then the ``cxl_region`` driver binds it), and its DAX device goes to
  ``kmem`` (6.12 binds a ram region's DAX device to kmem itself; an older kernel or one
  that left it to ``daxctl`` gets ``device_dax/unbind`` and ``kmem/new_id``).

Every step reads the kernel's state first and skips what is already done, so a crash
and ``--resume`` re-run the step safely. An interleaved region takes other memdevs'
memory down with it: resolved only with ``whole_region`` (``--whole-region``), else the
target's mapping is ``interleaved`` and the preflight refuses.
"""

from __future__ import annotations

import functools
import os
import re
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from memras.errors import UsageError, WorkflowError
from memras.host.cxl import CXL_DIR, CxlMemdev
from memras.topology.cxl import cxl_units
from memras.topology.memory_map import MAPPED

if TYPE_CHECKING:
    from memras.host import Host

INTERLEAVED = "interleaved"
DAX_DRIVERS = "/sys/bus/dax/drivers"
REGION_DRIVER_BIND = "/sys/bus/cxl/drivers/cxl_region/bind"
PCI_SLOTS = "/sys/bus/pci/slots"
POLL_S = 0.5


def serial_text(serial: int | None) -> str:
    return "" if serial is None else f"{serial:#x}"


def find_memdev(host: Host, text: str) -> CxlMemdev | None:
    """The memdev named ``text``: ``memN``, or its serial (``0x2a``, ``42``)."""
    memdevs = host.cxl.memdevs()
    for m in memdevs:
        if m.name == text:
            return m
    try:
        wanted = int(text, 0)
    except ValueError:
        return None
    return next((m for m in memdevs if m.serial == wanted), None)


def refuse_unknown_memdev(host: Host, text: str) -> None:
    """A ``memN`` that names no memdev here is a typo, not a DIMM: UsageError listing
    the memdevs there are."""
    if not re.fullmatch(r"mem\d+", text):
        return
    known = ", ".join(m.name for m in host.cxl.memdevs())
    raise UsageError(f"no CXL memdev called {text!r}" +
                     (f" (memdevs here: {known})" if known else " (no CXL memdev here)"),
                     hint="see `memras dimms`")


def root_decoder(host: Host, region: str) -> str:
    """The root decoder a region sits under (its device path's parent)."""
    return os.path.basename(os.path.dirname(os.path.realpath(
        host.fs.path(f"{CXL_DIR}/{region}"))))


def pci_slot(host: Host, pci_function: str) -> str | None:
    """The PCIe hot-plug slot (``/sys/bus/pci/slots/N``) holding a PCI function."""
    device = pci_function.rsplit(".", 1)[0]
    for name in host.fs.listdir(PCI_SLOTS):
        if host.fs.read(f"{PCI_SLOTS}/{name}/address", default="").strip() == device:
            return name
    return None


def endpoint_decoders(host: Host, memdev: str) -> list[str]:
    """``memdev``'s endpoint decoders, in order (``decoder2.0``, ``decoder2.1``…)."""
    return host.cxl.endpoint_decoders(memdev)


def resolve(host: Host, memdev: CxlMemdev, *, whole_region: bool = False
            ) -> tuple[dict[str, Any], tuple[int, ...], str, str]:
    """(the target's ``cxl`` record, its blocks, mapping status, reason)."""
    unit = next(u for u in cxl_units(host) if u.memdev.name == memdev.name)
    serials = {m.name: m.serial for m in host.cxl.memdevs()}
    regions: list[dict[str, Any]] = []
    shared: list[str] = []
    for r in host.cxl.regions():
        if r.name not in unit.regions:
            continue
        targets = [{"position": t.position, "decoder": t.decoder, "memdev": t.memdev,
                    "serial": serials.get(t.memdev or "")} for t in r.targets]
        others = sorted({t.memdev for t in r.targets if t.memdev and t.memdev != memdev.name})
        if others:
            shared.append(f"{r.name} interleaves {memdev.name} with {', '.join(others)}")
        regions.append({"name": r.name, "root": root_decoder(host, r.name), "mode": r.mode,
                        "size": r.size, "start": r.start, "ways": r.ways,
                        "granularity": r.granularity,
                        "committed": host.fs.read(f"{CXL_DIR}/{r.name}/commit",
                                                  default="").strip() == "1",
                        "position": next((t.position for t in r.targets
                                          if t.memdev == memdev.name), 0),
                        "targets": targets,
                        "dax": [d for d in unit.dax if _dax_region(host, d) == r.name]})
    record = {"memdev": memdev.name, "serial": memdev.serial, "host": memdev.host,
              "ram_size": memdev.ram_size, "slot": pci_slot(host, memdev.host),
              "regions": regions, "whole_region": whole_region,
              "others": sorted(m.serial for m in host.cxl.memdevs()
                               if m.name != memdev.name and m.serial is not None)}
    if shared and not whole_region:
        return record, unit.blocks, INTERLEAVED, (
            "; ".join(shared) + ": no memory block belongs to " + memdev.name + " alone, "
            "so taking it out takes the whole region offline (pass --whole-region to "
            "replace it that way: the other memdevs stay, and the region is made again "
            "with the new device in its place)")
    if not regions:
        reason = (f"{memdev.name} has no region: it holds no online memory, there is "
                  "nothing to offline, and the device can be removed as it is")
    elif not unit.blocks:
        reason = (f"{memdev.name}'s region {', '.join(r['name'] for r in regions)} has no "
                  "memory blocks online: nothing to offline")
    else:
        reason = (f"{memdev.name}: region {', '.join(r['name'] for r in regions)}, DAX "
                  f"{', '.join(unit.dax) or '-'}")
        if shared:
            reason += "; goes out whole: " + "; ".join(shared)
    return record, unit.blocks, MAPPED, reason


def _dax_region(host: Host, dax: str) -> str | None:
    return next((d.region for d in host.cxl.dax_devices() if d.name == dax), None)


def _write(host: Host, rel: str, value: str, done: list[str]) -> None:
    """One sysfs write; a crash point after it (``cxl:<attr>:<value>:after``) for the
    crash tests (memras.workflow.runner.crash_point)."""
    from memras.workflow.runner import crash_point  # the runner imports this module

    try:
        host.fs.write(rel, value)
    except OSError as exc:
        raise WorkflowError(f"the kernel refused {value!r} > {rel}: "
                            f"{exc.strerror or exc}",
                            hint="see dmesg; `memras replace --resume` retries the step"
                            ) from None
    done.append(f"{value} > {rel}")
    crash_point(f"cxl:{os.path.basename(rel)}:{value}:after")


def _read(host: Host, rel: str) -> str:
    return host.fs.read(rel, default="").strip()


def _hex(text: str) -> int:
    try:
        return int(text, 0) if text else 0
    except ValueError:
        return 0


def teardown(host: Host, cx: dict[str, Any]) -> list[str]:
    """Unbind the regions' DAX devices from kmem, decommit and delete the regions and
    free their endpoint decoders' DPA; the kernel writes made (none: already done)."""
    done: list[str] = []
    block_size = host.memory.block_size()
    for spec in cx.get("regions", []):
        name = spec["name"]
        for dax in host.cxl.dax_devices():
            if dax.region != name:
                continue
            if dax.driver == "kmem":
                online = [b for b in dax.blocks(block_size)
                          if host.memory.state(b) not in ("offline", "unknown")]
                if online:
                    raise WorkflowError(f"memory{online[0]} of {dax.name} is online; not "
                                        f"tearing down {name}",
                                        hint="offline its blocks first (the workflow's "
                                        "offline_blocks step)")
                _write(host, f"{DAX_DRIVERS}/kmem/unbind", dax.name, done)
        if host.fs.exists(f"{CXL_DIR}/{name}"):
            if _read(host, f"{CXL_DIR}/{name}/commit") == "1":
                _write(host, f"{CXL_DIR}/{name}/commit", "0", done)
            _write(host, f"{CXL_DIR}/{spec['root']}/delete_region", name, done)
        for target in spec.get("targets", []):
            decoder = f"{CXL_DIR}/{target['decoder']}"
            if host.fs.exists(decoder) and _hex(_read(host, f"{decoder}/dpa_size")):
                _write(host, f"{decoder}/dpa_size", "0", done)
    return done


def memdev_present(host: Host, serial: int | None, name: str) -> bool:
    """Whether the old memdev is still there (by serial; by name without one)."""
    for m in host.cxl.memdevs():
        if (serial is not None and m.serial == serial) or (serial is None and m.name == name):
            return True
    return False


def new_memdev(host: Host, cx: dict[str, Any]) -> CxlMemdev | None:
    """A memdev that was not there at selection: neither the old serial nor another's
    (one whose serial cannot be read yet is not taken)."""
    known = {cx.get("serial"), *cx.get("others", [])}
    return next((m for m in host.cxl.memdevs()
                 if m.serial is not None and m.serial not in known), None)


def wait(what: str, condition: Callable[[], Any], *, timeout_s: float,
         cancel: threading.Event, poll_s: float = POLL_S) -> Any:
    """``condition()``'s first true value; WorkflowError on timeout or cancel."""
    deadline = time.monotonic() + timeout_s
    while True:
        got = condition()
        if got:
            return got
        if cancel.is_set():
            raise WorkflowError(f"cancelled while waiting for {what}",
                                hint="run `memras replace --resume` to continue")
        if time.monotonic() >= deadline:
            raise WorkflowError(f"timed out after {timeout_s:g}s waiting for {what}",
                                hint="check the device and its slot, then "
                                     "`memras replace --resume`")
        time.sleep(poll_s)


def _free_decoder(host: Host, memdev: str) -> str | None:
    """The memdev's first endpoint decoder in no region (the kernel allocates them in
    order, so a region takes decoderE.0 first)."""
    for name in endpoint_decoders(host, memdev):
        if not _read(host, f"{CXL_DIR}/{name}/region"):
            return name
    return None


def _region_of(host: Host, decoder: str) -> str | None:
    return _read(host, f"{CXL_DIR}/{decoder}/region") or None


def bring_up(host: Host, cx: dict[str, Any], memdev: str, *, timeout_s: float,
             cancel: threading.Event) -> dict[str, Any]:
    """Make each of the old device's regions again with ``memdev`` in its place and
    give its DAX device to kmem; {"regions", "dax", "blocks", "writes"}."""
    done: list[str] = []
    regions: list[str] = []
    daxes: list[str] = []
    for spec in cx.get("regions", []):
        mine: str = wait(f"an endpoint decoder of {memdev}",
                    functools.partial(_region_decoder, host, memdev, spec),
                    timeout_s=timeout_s, cancel=cancel)
        name = _region_of(host, mine)
        if name is None:
            name = _create_region(host, spec, mine, done)
        elif _read(host, f"{CXL_DIR}/{name}/commit") != "1":
            _write(host, f"{CXL_DIR}/{name}/commit", "1", done)
        if not host.fs.exists(f"{CXL_DIR}/{name}/driver"):
            _write(host, REGION_DRIVER_BIND, name, done)
        regions.append(name)
        daxes += _dax_to_kmem(host, name, done, timeout_s=timeout_s, cancel=cancel)
    block_size = host.memory.block_size()
    blocks = sorted({b for d in host.cxl.dax_devices() if d.name in daxes
                     for b in d.blocks(block_size) if host.fs.exists(
                         f"/sys/devices/system/memory/memory{b}")})
    return {"regions": regions, "dax": daxes, "blocks": blocks, "writes": done}


def _region_decoder(host: Host, memdev: str, spec: dict[str, Any]) -> str | None:
    """The new memdev's decoder for this region: the one already in a region made from
    ``spec`` (a resumed step), else a free one."""
    for name in endpoint_decoders(host, memdev):
        region = _region_of(host, name)
        if region and _read(host, f"{CXL_DIR}/{region}/target{spec['position']}") == name:
            return name
    return _free_decoder(host, memdev)


def _stale_regions(host: Host, root: str) -> list[str]:
    """Regions on ``root`` that are uncommitted and have no target: what a bring-up
    interrupted between ``create_ram_region`` and ``targetN`` leaves."""
    out = []
    for r in host.cxl.regions():
        if root_decoder(host, r.name) != root or r.targets:
            continue
        if _read(host, f"{CXL_DIR}/{r.name}/commit") != "1":
            out.append(r.name)
    return out


def _create_region(host: Host, spec: dict[str, Any], mine: str, done: list[str]) -> str:
    root = f"{CXL_DIR}/{spec['root']}"
    for stale in _stale_regions(host, spec["root"]):
        _write(host, f"{root}/delete_region", stale, done)
    ways = max(int(spec.get("ways") or 1), 1)
    per_device = int(spec["size"]) // ways
    decoders = {t["position"]: t["decoder"] for t in spec.get("targets", [])}
    decoders[spec["position"]] = mine
    name = _read(host, f"{root}/create_ram_region")
    if not name:
        raise WorkflowError(f"{spec['root']} offers no new ram region",
                            hint="the root decoder may not be volatile-capable")
    _write(host, f"{root}/create_ram_region", name, done)
    region = f"{CXL_DIR}/{name}"
    _write(host, f"{region}/interleave_granularity", str(spec["granularity"]), done)
    _write(host, f"{region}/interleave_ways", str(ways), done)
    for position in range(ways):
        decoder = f"{CXL_DIR}/{decoders[position]}"
        if _read(host, f"{decoder}/mode") != "ram":
            _write(host, f"{decoder}/mode", "ram", done)
        if _hex(_read(host, f"{decoder}/dpa_size")) != per_device:
            _write(host, f"{decoder}/dpa_size", f"{per_device:#x}", done)
    _write(host, f"{region}/size", f"{int(spec['size']):#x}", done)
    for position in range(ways):
        _write(host, f"{region}/target{position}", decoders[position], done)
    _write(host, f"{region}/commit", "1", done)
    return name


def _dax_to_kmem(host: Host, region: str, done: list[str], *, timeout_s: float,
                 cancel: threading.Event) -> list[str]:
    daxes = wait(f"the DAX device of {region}",
                 lambda: [d for d in host.cxl.dax_devices() if d.region == region],
                 timeout_s=timeout_s, cancel=cancel)
    for dax in daxes:
        if dax.driver == "kmem":
            continue
        if dax.driver:
            _write(host, f"{DAX_DRIVERS}/{dax.driver}/unbind", dax.name, done)
        _write(host, f"{DAX_DRIVERS}/kmem/new_id", dax.name, done)
    return [d.name for d in daxes]


def check_new_memdev(host: Host, cx: dict[str, Any], new_serial: int | None,
                     regions: list[str]) -> tuple[bool, str]:
    """verify: the new memdev's serial is not the old one and its regions are committed."""
    if new_serial is None:
        return False, "the backend named no new memdev serial"
    if new_serial == cx.get("serial"):
        return False, f"the memdev still has the old serial {serial_text(new_serial)}"
    memdev = next((m for m in host.cxl.memdevs() if m.serial == new_serial), None)
    if memdev is None:
        return False, f"no memdev with serial {serial_text(new_serial)} is present"
    bad = [r for r in regions if _read(host, f"{CXL_DIR}/{r}/commit") != "1"]
    if bad:
        return False, f"{bad[0]} of {memdev.name} is not committed"
    return True, (f"{memdev.name} serial {serial_text(new_serial)} (was "
                  f"{serial_text(cx.get('serial')) or '?'}), "
                  f"region {', '.join(regions) or '-'} committed")
