"""Simulated servers: named profiles that write a complete kernel tree under a root.

``create(name, root)`` builds the profile's :class:`ServerSpec`, writes the sysfs,
procfs and firmware files a real server of that kind shows (see memras.sim.tree)
and the ``.memras-sim/`` marker with the simulator state, and returns a
:class:`SimServer`. Profiles:

- ``skylake-2s``: two-socket Intel, skx_edac ``dimmN``, 12 DIMMs channel-interleaved
  per socket (SMBIOS type 20 interleave positions), 2 GiB blocks, boot memory
  Normal, a Movable tail on node 1 with one offline block;
- ``epyc``: AMD EPYC, amd64_edac ``rankN`` with ``mc#0csrow#1channel#0`` labels;
- ``ghes``: firmware-first, ghes_edac with SMBIOS "bank_locator locator" labels;
- ``qemu-guest``: the lab guest (1 GiB boot RAM, 4 PNP0C80 slots, two cold-plugged
  512 MiB DIMMs onlined Movable, 128 MiB blocks, no EDAC);
- ``large``: 16,384 blocks on 4 nodes with mixed states, zones and (pre-5.8
  kernel) removable flags, for benchmarks and lsmem merging;
- ``demo``: two sockets with one PNP0C80 per DIMM (non-interleaved, Movable), EDAC
  and SMBIOS, so a whole replacement can be played out;
- ``qemu-numa``: the lab's two-node guest (``memras lab --numa``): boot RAM and CPU 0 on
  node 0, CPU 1 and the two cold-plugged DIMMs (Movable) on node 1, whose slots add to
  node 1;
- ``cxl``: ``qemu-guest`` plus two CXL Type-3 memdevs interleaved into one region whose
  DAX device is onlined Movable on node 1 (memras.sim.cxl).
- ``cxl-single``: ``qemu-guest`` plus one CXL memdev in a 1-way region, the unit a CXL
  replacement takes out alone.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from memras.errors import UsageError
from memras.host import Host
from memras.sim import tree
from memras.sim.spec import (
    AcpiSlotSpec,
    BlockRange,
    DimmSpec,
    GiB,
    McSpec,
    MiB,
    ServerSpec,
)
from memras.sim.state import BOOT_UPTIME_US, SimState, read_state, sim_dir, write_state

# --- building blocks -------------------------------------------------------------------

def _x86_low(node: int, bs: int, low_bytes: int) -> list[BlockRange]:
    """Boot RAM below 4 GiB: block 0 spans DMA and DMA32 (valid_zones "none")."""
    count = low_bytes // bs
    ranges = [BlockRange(0, 1, node, "none", unmovable=True)]
    if count > 1:
        ranges.append(BlockRange(1, count - 1, node, "DMA32", unmovable=True))
    return ranges


def _interleaved(dimms: list[DimmSpec], start: int, end: int) -> None:
    """Make ``dimms`` one channel-interleave set over [start, end]."""
    for pos, d in enumerate(dimms):
        d.range_start, d.range_end = start, end
        d.interleave_ways, d.interleave_position = len(dimms), pos


def _serial(prefix: str, n: int) -> str:
    return f"{prefix}{0x3A5F1C00 + n * 0x1D3:08X}"


# --- profiles --------------------------------------------------------------------------

def skylake_2s() -> ServerSpec:
    """Two-socket Intel Skylake-SP (skx_edac), 12 DIMMs, slot labels P1-DIMMA1…."""
    bs = 2 * GiB
    dimms: list[DimmSpec] = []
    mcs: list[McSpec] = []
    for s in range(2):
        for imc in range(2):
            mc = s * 2 + imc
            mcs.append(McSpec(mc, f"Skylake Socket#{s} IMC#{imc}", "skx_edac",
                              "channel 2 slot 1 "))
            for ch in range(3):
                letter = "ABCDEF"[imc * 3 + ch]
                dimms.append(DimmSpec(
                    name=f"P{s + 1}-DIMM{letter}1", locator=f"P{s + 1}-DIMM{letter}1",
                    bank_locator=f"P{s}_Node{s}_Channel{imc * 3 + ch}_Dimm0",
                    size_mb=16384, socket=s, channel=ch, slot=0, imc=imc, mc=mc,
                    serial=_serial("", len(dimms)), part_number="M393A2K43BB1-CTD",
                    edac_name=f"dimm{ch * 2}",
                    edac_label=f"CPU_SrcID#{s}_MC#{imc}_Chan#{ch}_DIMM#0",
                    edac_location=f"channel {ch} slot 0 "))
    # node 0: 0-2G (block 0), hole 2-4G, 4G-98G; node 1: 98G-194G
    _interleaved(dimms[:6], 0, 98 * GiB - 1)
    _interleaved(dimms[6:], 98 * GiB, 194 * GiB - 1)
    blocks = [
        BlockRange(0, 1, 0, "none", unmovable=True),
        BlockRange(2, 47, 0, "Normal", unmovable=True),
        BlockRange(49, 36, 1, "Normal", unmovable=True),
        BlockRange(85, 9, 1, "Movable"),
        BlockRange(94, 1, 1, "Movable", state="offline"),
        BlockRange(95, 2, 1, "Movable"),
    ]
    return ServerSpec(
        profile="skylake-2s", hostname="skx-2s-01", block_size=bs,
        nodes={0: "0-19,40-59", 1: "20-39,60-79"}, blocks=blocks, dimms=dimms, mcs=mcs,
        dmi={"sys_vendor": "Supermicro", "product_name": "SYS-6029P-TR",
             "board_vendor": "Supermicro", "board_name": "X11DPi-N"},
        edac_grain=32, seed=17)


def epyc() -> ServerSpec:
    """Two-node AMD EPYC (amd64_edac, csrow/channel layout), 16 DIMMs."""
    bs = 2 * GiB
    dimms: list[DimmSpec] = []
    mcs = [McSpec(n, "F17h_M30h", "amd64_edac", "csrow 7 channel 7 ") for n in range(2)]
    for node in range(2):
        for ch in range(4):
            for cs in range(2):
                letter = "ABCDEFGH"[ch * 2 + cs]
                dimms.append(DimmSpec(
                    name=f"P{node}-DIMM{letter}", locator=f"DIMM_P{node}_{letter}{cs}",
                    bank_locator=f"P{node} CHANNEL {letter}", size_mb=16384, socket=node,
                    channel=ch, slot=cs, csrow=cs, mc=node, rank=1,
                    serial=_serial("", len(dimms)), part_number="36ASF2G72PZ-2G9E1",
                    manufacturer="Micron", speed_mts=2933,
                    edac_name=f"rank{cs * 8 + ch}", edac_label=f"mc#{node}csrow#{cs}channel#{ch}",
                    edac_location=f"csrow {cs} channel {ch} "))
    _interleaved(dimms[:8], 0, 130 * GiB - 1)
    _interleaved(dimms[8:], 130 * GiB, 258 * GiB - 1)
    blocks = [
        BlockRange(0, 1, 0, "none", unmovable=True),
        BlockRange(2, 63, 0, "Normal", unmovable=True),
        BlockRange(65, 56, 1, "Normal", unmovable=True),
        BlockRange(121, 3, 1, "Movable"),
        BlockRange(124, 2, 1, "Movable", state="offline"),
        BlockRange(126, 3, 1, "Movable"),
    ]
    return ServerSpec(
        profile="epyc", hostname="epyc-7502-01", block_size=bs,
        nodes={0: "0-31,64-95", 1: "32-63,96-127"}, blocks=blocks, dimms=dimms, mcs=mcs,
        dmi={"sys_vendor": "Dell Inc.", "product_name": "PowerEdge R7525",
             "board_vendor": "Dell Inc.", "board_name": "0PYVT1"},
        edac_grain=64, seed=23)


def ghes() -> ServerSpec:
    """Two-socket firmware-first server (ghes_edac: errors through APEI/GHES), 12 DIMMs."""
    bs = 2 * GiB
    dimms: list[DimmSpec] = []
    for s in range(2):
        for ch in range(6):
            letter = "ABCDEF"[ch]
            n = len(dimms)
            dimms.append(DimmSpec(
                name=f"N{s}-DIMM_{letter}0", locator=f"DIMM_{letter}0", bank_locator=f"N{s}",
                size_mb=32768, socket=s, channel=ch, slot=0, mc=0,
                serial=_serial("", n), part_number="HMA84GR7CJR4N-WM",
                manufacturer="SK Hynix", speed_mts=2933,
                edac_name=f"dimm{n}", edac_label=f"N{s} DIMM_{letter}0",
                edac_location=f"memory {n} "))
    _interleaved(dimms[:6], 0, 194 * GiB - 1)
    _interleaved(dimms[6:], 194 * GiB, 386 * GiB - 1)
    blocks = [
        BlockRange(0, 1, 0, "none", unmovable=True),
        BlockRange(2, 95, 0, "Normal", unmovable=True),
        BlockRange(97, 90, 1, "Normal", unmovable=True),
        BlockRange(187, 1, 1, "Normal", state="offline"),
        BlockRange(188, 5, 1, "Movable"),
    ]
    return ServerSpec(
        profile="ghes", hostname="ghes-node-07", block_size=bs,
        nodes={0: "0-23", 1: "24-47"}, blocks=blocks, dimms=dimms,
        mcs=[McSpec(0, "ghes_edac", "ghes_edac", "memory 11 ")],
        dmi={"sys_vendor": "Inspur", "product_name": "NF5280M5",
             "board_vendor": "Inspur", "board_name": "YZMB-00882-104"},
        legacy_removable=True, edac_grain=1, seed=31)


def qemu_guest() -> ServerSpec:
    """The lab's QEMU guest: boot RAM plus hot-pluggable pc-dimm slots (PNP0C80)."""
    bs = 128 * MiB
    dimms = [
        DimmSpec(name="DIMM 0", locator="DIMM 0", bank_locator="", size_mb=1024, socket=0,
                 channel=0, slot=0, serial="", part_number="", manufacturer="QEMU",
                 speed_mts=0, range_start=0, range_end=GiB - 1),
        DimmSpec(name="dimm1", locator="dimm1", bank_locator="", size_mb=512, socket=0,
                 channel=0, slot=0, serial="QEMU-DIMM-0001", part_number="pc-dimm",
                 manufacturer="QEMU", range_start=0x100000000, range_end=0x11FFFFFFF,
                 acpi_device="PNP0C80:00", in_smbios=False),
        DimmSpec(name="dimm2", locator="dimm2", bank_locator="", size_mb=512, socket=0,
                 channel=0, slot=1, serial="QEMU-DIMM-0002", part_number="pc-dimm",
                 manufacturer="QEMU", range_start=0x120000000, range_end=0x13FFFFFFF,
                 acpi_device="PNP0C80:01", in_smbios=False),
    ]
    slots = [AcpiSlotSpec(f"PNP0C80:{n:02X}", str(n), f"\\_SB_.MHPC.MP{n:02X}") for n in range(4)]
    slots[0].base, slots[0].size, slots[0].dimm = 0x100000000, 512 * MiB, "dimm1"
    slots[1].base, slots[1].size, slots[1].dimm = 0x120000000, 512 * MiB, "dimm2"
    blocks = [*_x86_low(0, bs, GiB), BlockRange(32, 8, 0, "Movable")]
    return ServerSpec(
        profile="qemu-guest", hostname="memras-lab", block_size=bs, nodes={0: "0-1"},
        blocks=blocks, dimms=dimms, acpi_slots=slots, auto_online_blocks="online_movable",
        dmi={"sys_vendor": "QEMU", "product_name": "Standard PC (i440FX + PIIX, 1996)"},
        hotplug_base=0x100000000, seed=7)


def large() -> ServerSpec:
    """Four NUMA nodes, 128 CPUs, many blocks: for scale."""
    bs = 128 * MiB
    rng = random.Random(4242)
    blocks: list[BlockRange] = []
    per_node = 4096
    for node in range(4):
        first = node * per_node
        index = first
        if node == 0:
            blocks.append(BlockRange(0, 1, 0, "none", unmovable=True))
            blocks.append(BlockRange(1, 31, 0, "DMA32", unmovable=True))
            index = 32
        normal_end = first + 3072
        while index < normal_end:  # Normal runs; some hold unmovable pages, some not
            run = min(rng.randint(1, 40), normal_end - index)
            blocks.append(BlockRange(index, run, node, "Normal", unmovable=rng.random() < 0.7))
            index += run
        while index < first + per_node:  # Movable tail with offline holes
            run = min(rng.randint(1, 30), first + per_node - index)
            state = "offline" if rng.random() < 0.25 else "online"
            blocks.append(BlockRange(index, run, node, "Movable", state=state))
            index += run
    return ServerSpec(
        profile="large", hostname="large-4n-2t", block_size=bs,
        nodes={n: f"{n * 32}-{n * 32 + 31}" for n in range(4)}, blocks=blocks,
        dmi={"sys_vendor": "HPE", "product_name": "Superdome Flex"},
        legacy_removable=True, seed=4242)


def qemu_numa() -> ServerSpec:
    """The lab's two-node guest: node 0 holds the boot RAM, node 1 only pc-dimms."""
    spec = qemu_guest()
    spec.profile = "qemu-numa"
    spec.nodes = {0: "0", 1: "1"}
    spec.blocks = [*_x86_low(0, spec.block_size, GiB), BlockRange(32, 8, 1, "Movable")]
    for slot in spec.acpi_slots:
        slot.node = 1
    for dimm in spec.dimms[1:]:
        dimm.socket = 1
    return spec


def demo() -> ServerSpec:
    """The demo server: Skylake-SP with hot-replaceable DIMMs, each its own PNP0C80."""
    bs = 128 * MiB
    dimms: list[DimmSpec] = []
    mcs: list[McSpec] = []
    slots: list[AcpiSlotSpec] = []
    blocks: list[BlockRange] = []
    node_base = [0, 20 * GiB]
    for s in range(2):
        for imc in range(2):
            mcs.append(McSpec(s * 2 + imc, f"Skylake Socket#{s} IMC#{imc}", "skx_edac",
                              "channel 2 slot 1 "))
        base = node_base[s]
        boot_size = 2 * GiB
        for k in range(5):  # k == 0: the boot DIMM; 1..4 hot-replaceable, own PNP0C80
            imc, ch = divmod(k, 3)
            letter = "ABCDEF"[k]
            size = boot_size if k == 0 else 4 * GiB
            start = base if k == 0 else base + boot_size + (k - 1) * 4 * GiB
            if s == 0 and k == 1:
                start = 4 * GiB  # leave the 2-4 GiB PCI hole alone
            if s == 0 and k > 1:
                start = 4 * GiB + (k - 1) * 4 * GiB
            acpi = None
            if k:
                acpi = f"PNP0C80:{len(slots):02X}"
                slots.append(AcpiSlotSpec(acpi, str(len(slots)), f"\\_SB_.NOD{s}.MP{k - 1:02X}",
                                          base=start, size=size, dimm=f"P{s + 1}-DIMM{letter}1",
                                          node=s))
            dimms.append(DimmSpec(
                name=f"P{s + 1}-DIMM{letter}1", locator=f"P{s + 1}-DIMM{letter}1",
                bank_locator=f"P{s}_Node{s}_Channel{k}_Dimm0", size_mb=size // MiB,
                socket=s, channel=ch, slot=0, imc=imc, mc=s * 2 + imc,
                serial=_serial("D", len(dimms)), part_number="M393A1K43BB1-CTD",
                edac_name=f"dimm{ch * 2}", edac_label=f"CPU_SrcID#{s}_MC#{imc}_Chan#{ch}_DIMM#0",
                edac_location=f"channel {ch} slot 0 ", range_start=start,
                range_end=start + size - 1, acpi_device=acpi))
            first, count = start // bs, size // bs
            if k == 0 and s == 0:
                blocks += _x86_low(0, bs, size)
            elif k == 0:
                blocks.append(BlockRange(first, count, s, "Normal", unmovable=True))
            else:
                blocks.append(BlockRange(first, count, s, "Movable"))
        # an empty slot per socket, for capacity on demand
        slots.append(AcpiSlotSpec(f"PNP0C80:{len(slots):02X}", str(len(slots)),
                                  f"\\_SB_.NOD{s}.MP04", node=s))
    blocks.sort(key=lambda b: b.first)
    return ServerSpec(
        profile="demo", hostname="demo-db-01", block_size=bs,
        nodes={0: "0-7", 1: "8-15"}, blocks=blocks, dimms=dimms, mcs=mcs, acpi_slots=slots,
        dmi={"sys_vendor": "Supermicro", "product_name": "SYS-2029U-TR4",
             "board_vendor": "Supermicro", "board_name": "X11DPU"},
        auto_online_blocks="online_movable", hotplug_base=4 * GiB, seed=99)


def cxl() -> ServerSpec:
    """The lab guest plus two CXL Type-3 memdevs, one 2-way region onlined on node 1."""
    from memras.sim.cxl import cxl_spec  # memras.sim.cxl builds on qemu_guest above

    return cxl_spec()


def cxl_single() -> ServerSpec:
    """The lab guest plus one CXL Type-3 memdev in a 1-way region onlined on node 1."""
    from memras.sim.cxl import cxl_single_spec

    return cxl_single_spec()


PROFILES: dict[str, Callable[[], ServerSpec]] = {
    "skylake-2s": skylake_2s,
    "epyc": epyc,
    "ghes": ghes,
    "qemu-guest": qemu_guest,
    "large": large,
    "qemu-numa": qemu_numa,
    "demo": demo,
    "cxl": cxl,
    "cxl-single": cxl_single,
}


# --- writing a server ------------------------------------------------------------------

@dataclass
class SimServer:
    """A simulated server on disk: its root (pass as --root) and its boot spec."""

    root: Path
    spec: ServerSpec

    def host(self):  # -> memras.host.Host

        return Host(self.root)

    def state(self) -> SimState:
        return read_state(self.root)


def create(name: str, root: str | Path) -> SimServer:
    """Write profile ``name`` as a complete kernel tree under ``root``."""
    try:
        builder = PROFILES[name]
    except KeyError:
        raise UsageError(f"unknown simulator profile {name!r}",
                         hint=f"choose one of {', '.join(PROFILES)}") from None
    server = write_server(builder(), root)
    if name in ("cxl", "cxl-single"):  # the CXL bus beside the blocks (memras.sim.cxl)
        from memras.sim.cxl import write_cxl_tree  # the module imports this one

        write_cxl_tree(server.root, memdevs=1 if name == "cxl-single" else 2)
    return server


def write_server(spec: ServerSpec, root: str | Path) -> SimServer:
    root = Path(root)
    if sim_dir(root).exists():
        raise UsageError(f"{root} already holds a simulated server",
                         hint="use an empty directory")
    _write_skeleton(root, spec)
    state = SimState(spec=spec)
    for r in spec.blocks:
        removable = not (spec.legacy_removable and r.unmovable)
        for index in range(r.first, r.first + r.count):
            tree.write_block(root, spec, index, r.node, r.state, r.zone, removable=removable)
            if r.unmovable:
                state.unmovable.add(index)
    for node in spec.nodes:
        tree.refresh_offline_zones(root, spec.block_size, node)
    boot_kb = sum(r.count for r in spec.blocks) * spec.block_size // 1024
    state.reserved_kb = boot_kb // 64  # struct pages and the kernel image, roughly
    tree.write_edac(root, spec)
    tree.write_acpi(root, spec)
    tree.write_dmi(root, spec)
    sim_dir(root).mkdir()
    for name in ("uevents", "kmsg", "trace"):
        (sim_dir(root) / name).touch()
    # Booted BOOT_UPTIME_US before creation, so uptime-stamped kmsg/trace lines get wall times.
    tree.put(root / "proc/stat", f"btime {int(time.time()) - BOOT_UPTIME_US // 1_000_000}\n")
    tree.refresh_meminfo(root, state)
    write_state(root, state)
    return SimServer(root, spec)


def _write_skeleton(root: Path, spec: ServerSpec) -> None:
    mem = root / tree.MEMORY
    mem.mkdir(parents=True)
    tree.put(mem / "block_size_bytes", f"{spec.block_size:x}")
    tree.put(mem / "auto_online_blocks", spec.auto_online_blocks)
    tree.put(mem / "soft_offline_page", "")
    tree.put(mem / "hard_offline_page", "")
    tree.put(mem / "uevent", "")
    for node, cpus in spec.nodes.items():
        d = root / tree.NODE / f"node{node}"
        d.mkdir(parents=True)
        tree.put(d / "cpulist", cpus)
    tree.put(root / tree.NODE / "online", _cpulist(sorted(spec.nodes)))
    tree.put(root / tree.NODE / "possible", _cpulist(sorted(spec.nodes)))
    (root / "proc/sys/kernel").mkdir(parents=True)
    tree.put(root / "proc/sys/kernel/hostname", spec.hostname)
    os.makedirs(root / "sys/kernel/mm", exist_ok=True)


def _cpulist(items: list[int]) -> str:
    return f"{items[0]}-{items[-1]}" if len(items) > 1 else str(items[0])
