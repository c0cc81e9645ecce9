"""Things that happen to a simulated server that are not kernel writes.

The technician inserting a module (:func:`insert_dimm`), the hardware reporting an
error (:func:`inject_ce`), and test knobs for the kernel rules
(:func:`set_unmovable`, :func:`set_busy`). Each takes the server's root, works
under the state lock and leaves the same traces the real event leaves: uevents,
EDAC counters, a ``/dev/kmsg`` record in the driver's format (drivers/edac/
edac_mc.c ``edac_mc_handle_error`` with skx_common.c / amd64_edac.c /
ghes_edac.c details) and a ``ras:mc_event`` trace line (include/ras/ras_event.h
TP_printk). Everything random is drawn from the spec's seed, so runs repeat.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from memras.errors import UsageError
from memras.sim import tree
from memras.sim.kernel import SimulatedKernel, devpath
from memras.sim.spec import PAGE_SIZE, DimmSpec, MiB, ServerSpec
from memras.sim.state import TRACE_FILE, SimState, append_line, kmsg, locked_state, uevent

# --- test knobs ----------------------------------------------------------------------

def set_unmovable(root: str | Path, block: int, unmovable: bool = True) -> None:
    """Mark a block as holding (or not) unmovable pages: offline then fails EBUSY."""
    with locked_state(root) as state:
        _require_block(root, block)
        (state.unmovable.add if unmovable else state.unmovable.discard)(block)


def set_busy(root: str | Path, block: int, times: int) -> None:
    """The next ``times`` offline attempts of ``block`` fail with EBUSY."""
    with locked_state(root) as state:
        _require_block(root, block)
        state.busy[block] = times


def _require_block(root: str | Path, block: int) -> None:
    if not tree.memdir(Path(root), block).is_dir():
        raise UsageError(f"memory block {block} does not exist", hint="see memras blocks")


# --- inserting a module ----------------------------------------------------------------

def insert_dimm(root: str | Path, slot: str, size: int | None = None, serial: str = "",
                part: str = "", manufacturer: str = "Samsung",
                name: str | None = None) -> list[int]:
    """Plug a module into an empty PNP0C80 slot (uid, name or DIMM name); return its blocks.

    Like QEMU's ``device_add pc-dimm``: the memory lands at the first free,
    block-aligned address from the hotplug base, blocks appear (``add``), the
    device's status becomes 15 and ``auto_online_blocks`` decides whether the
    kernel onlines them.
    """
    root = Path(root)
    with locked_state(root) as state:
        spec = state.spec
        try:
            s = spec.slot(slot)
        except KeyError:
            raise UsageError(f"no ACPI memory slot {slot!r}",
                             hint="slots: " + ", ".join(x.name for x in spec.acpi_slots)) from None
        if tree.get(root / tree.ACPI / s.name / "status") != "0":
            raise UsageError(f"{s.name} already holds a module", hint="eject it first")
        size = size or s.size or 512 * MiB
        if size % spec.block_size:
            raise UsageError(f"size {size} is not a multiple of the block size")
        base = _free_base(root, spec, size)
        first, count = base // spec.block_size, size // spec.block_size
        blocks = list(range(first, first + count))
        _add_blocks(root, state, blocks, s.node)
        tree.link_acpi_blocks(root, s.name, blocks)
        tree.put(root / tree.ACPI / s.name / "status", "15")
        dimm_name = name or s.dimm or f"slot{s.uid}"
        s.base, s.size, s.dimm = base, size, dimm_name
        _record_dimm(root, spec, dimm_name, s.name, base, size, serial, part, manufacturer)
        _auto_online(root, state, blocks)
        tree.refresh_offline_zones(root, spec.block_size, s.node)
        tree.refresh_meminfo(root, state)
        return blocks


def _free_base(root: Path, spec: ServerSpec, size: int) -> int:
    base = spec.hotplug_base
    while any(tree.memdir(root, i).exists()
              for i in range(base // spec.block_size, (base + size) // spec.block_size)):
        base += spec.block_size
    return base


def _add_blocks(root: Path, state: SimState, blocks: list[int], node: int) -> None:
    spans = tree.zone_spans(root, node)
    for index in blocks:
        zones = tree.offline_zones(index, state.spec.block_size, spans)
        tree.write_block(root, state.spec, index, node, "offline", zones)
        state.tick()
        uevent(root, "add", devpath(index))


def _auto_online(root: Path, state: SimState, blocks: list[int]) -> None:
    policy = tree.get(root / tree.MEMORY / "auto_online_blocks")
    if policy == "offline":
        return
    kernel = SimulatedKernel(root)
    for index in blocks:
        kernel.online_block(state, index, policy, f"/sys/devices/system/memory/memory{index}")
        tree.refresh_offline_zones(root, state.spec.block_size,
                                   tree.block_node(root, index) or 0)


def _record_dimm(root: Path, spec: ServerSpec, name: str, device: str, base: int, size: int,
                 serial: str, part: str, manufacturer: str) -> None:
    """The new module takes the slot's place: its EDAC position and SMBIOS entry are the
    slot's (a replacement in a server), a slot without one is a QEMU pc-dimm (no SMBIOS)."""
    identity: dict[str, Any] = {"size_mb": size // MiB, "serial": serial, "part_number": part,
                "manufacturer": manufacturer, "range_start": base,
                "range_end": base + size - 1, "acpi_device": device}
    slot = next((d for d in spec.dimms if d.name == name), None)
    spec.dimms = [d for d in spec.dimms if d.name != name]
    if slot is not None:
        spec.dimms.append(dataclasses.replace(slot, **identity))
    else:
        spec.dimms.append(DimmSpec(name=name, locator=name, bank_locator="", socket=0,
                                   channel=0, slot=0, in_smbios=False,
                                   **identity))
    if slot is not None and slot.in_smbios:
        tree.write_dmi(root, spec)


# --- errors --------------------------------------------------------------------------

def inject_ce(root: str | Path, dimm: str, address: int | None = None, *, row: int | None = None,
              column: int | None = None, bank: int | None = None, rank: int = 0,
              count: int = 1, ue: bool = False) -> int:
    """Report ``count`` corrected (or, with ``ue``, uncorrected) errors on ``dimm``.

    Raises the EDAC counters of the DIMM and its controller and appends the kernel
    log record and ras:mc_event trace line of the platform's EDAC driver. Returns
    the physical address used (chosen inside the DIMM when not given).
    """
    root = Path(root)
    with locked_state(root) as state:
        d = _edac_dimm(state.spec, dimm)
        rng = state.rng()
        if address is None:
            address = _pick_address(root, state.spec, d, rng.randrange(1 << 20))
        elif not d.serves(address):
            raise UsageError(f"address {address:#x} is not on {d.name}",
                             hint="omit the address to let the simulator pick one")
        cell = _Cell(row if row is not None else rng.randrange(0x10000),
                     column if column is not None else rng.randrange(0x400) & ~7,
                     bank if bank is not None else rng.randrange(16), rank)
        _bump_counters(root, state, d, count, ue)
        driver = next(m.driver for m in state.spec.mcs if m.index == d.mc)
        text, detail, msg, location = _edac_text(driver, d, address, cell, count, ue,
                                                 state.spec.edac_grain)
        kmsg(root, state, 0 if ue else 4, text)
        append_line(root, TRACE_FILE, _trace_line(state, d, address, count, ue, msg,
                                                  location, detail, state.spec.edac_grain))
        return address


class _Cell:
    def __init__(self, row: int, column: int, bank: int, rank: int) -> None:
        self.row, self.column, self.bank, self.rank = row, column, bank, rank


def _edac_dimm(spec: ServerSpec, name: str) -> DimmSpec:
    try:
        d = spec.dimm(name)
    except KeyError:
        raise UsageError(f"no DIMM {name!r} in this simulated server",
                         hint="names: " + ", ".join(x.name for x in spec.dimms)) from None
    if d.mc is None:
        raise UsageError(f"{d.name} has no EDAC memory controller (as in QEMU)",
                         hint="inject MCEs in the lab instead")
    return d


def _pick_address(root: Path, spec: ServerSpec, d: DimmSpec, seed: int) -> int:
    chunks = (d.range_end - d.range_start + 1) // (d.interleave_granularity * d.interleave_ways)
    for k in range(64):  # skip chunks in holes (no block there)
        n = (seed + k * 7919) % max(chunks, 1)
        address = d.address_at(n) + (seed % (d.interleave_granularity // 64)) * 64
        if tree.memdir(root, address // spec.block_size).is_dir():
            return address
    return d.address_at(0)


def _bump_counters(root: Path, state: SimState, d: DimmSpec, count: int, ue: bool) -> None:
    mc = root / tree.EDAC / f"mc{d.mc}"
    kind = "ue" if ue else "ce"
    for path in (mc / f"{kind}_count", mc / d.edac_name / f"dimm_{kind}_count"):
        tree.put(path, str(int(tree.get(path)) + count))
    since = (state.tick() - state.edac_reset_uptime_us) // 1_000_000
    tree.put(mc / "seconds_since_reset", str(since if state.edac_reset_uptime_us else
                                             state.uptime_us // 1_000_000))


def _edac_text(driver: str, d: DimmSpec, address: int, c: _Cell, count: int, ue: bool,
               grain: int) -> tuple[str, str, str, str]:
    """(kernel log message, driver detail, msg, location) as edac_mc.c prints them."""
    page, offset = address >> 12, address & (PAGE_SIZE - 1)
    kind = "UE" if ue else "CE"
    syndrome = "" if ue else " syndrome:0x0"
    if driver == "skx_edac":
        msg = "memory read error"
        location = f"channel:{d.channel} slot:{d.slot}"
        detail = (f" err_code:0x0000:0x009f ProcessorSocketId:0x{d.socket:x} "
                  f"MemoryControllerId:0x{d.imc:x} PhysicalRankId:0x{c.rank:x} "
                  f"Row:0x{c.row:x} Column:0x{c.column:x} Bank:0x{c.bank & 3:x} "
                  f"BankGroup:0x{c.bank >> 2:x}")
    elif driver == "amd64_edac":
        msg, detail = "", ""
        location = f"csrow:{d.csrow} channel:{d.channel}"
        syndrome = "" if ue else f" syndrome:0x{c.row & 0xFFFF:x}"
    else:  # ghes_edac
        msg = "Multi-bit ECC" if ue else "Single-bit ECC"
        location = (f"node:{d.socket} card:{d.channel} module:{d.slot} rank:{c.rank} "
                    f"bank:{c.bank} row:{c.row} col:{c.column} DIMM location:{d.edac_label}")
        detail = ("APEI location: " + location.split(" DIMM location")[0]
                  + " status(0x0000000000000400): Storage error in DRAM memory")
    text = (f"EDAC MC{d.mc}: {count} {kind} {msg}{' ' if msg else ''}on {d.edac_label} "
            f"({location} page:0x{page:x} offset:0x{offset:x} grain:{grain}{syndrome}"
            f"{' - ' if detail else ''}{detail})")
    return text, detail, msg, location


def _layers(d: DimmSpec) -> tuple[int, int, int]:
    words = d.edac_location.split()
    nums = [int(w) for w in words[1::2]] + [-1, -1, -1]
    return nums[0], nums[1], nums[2]


def _trace_line(state: SimState, d: DimmSpec, address: int, count: int, ue: bool, msg: str,
                location: str, detail: str, grain: int) -> str:
    del location  # the trace event carries layers, not the location text
    top, mid, low = _layers(d)
    kind = "Uncorrected" if ue else "Corrected"
    us = state.uptime_us
    body = (f"{count} {kind} error{'s' if count > 1 else ''}:{' ' if msg else ''}{msg} on "
            f"{d.edac_label} (mc:{d.mc} location:{top}:{mid}:{low} address:0x{address:08x} "
            f"grain:{grain} syndrome:0x00000000{' ' if detail else ''}{detail})")
    cpu = d.socket * 2
    return (f"{'kworker/' + str(cpu) + ':1':>16}-{311 + cpu:<7} [{cpu:03d}] ..... "
            f"{us // 1_000_000}.{us % 1_000_000:06d}: mc_event: {body}")
