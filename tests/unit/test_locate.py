"""The locator, forward and reverse, on hand-built trees and on the simulator's profiles."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from memras.errors import KernelInterfaceError, UsageError
from memras.host import Host
from memras.sim import profiles
from memras.sim.smbios_build import Type17, Type19, Type20, build_smbios
from memras.topology.inventory import resolve_dimm
from memras.topology.locate import blocks_for_dimm, locate

GIB = 1 << 30
BS = 128 << 20

# --- small synthetic trees (also used by test_inventory) ---------------------------


def put(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text + "\n")


def blocks(root: Path, count: int, *, node: int = 0, zone: str = "Movable") -> None:
    mem = root / "sys/devices/system/memory"
    put(mem / "block_size_bytes", f"{BS:x}")
    for i in range(count):
        put(mem / f"memory{i}/state", "online")
        put(mem / f"memory{i}/valid_zones", zone)
        nd = root / f"sys/devices/system/node/node{node}"
        nd.mkdir(parents=True, exist_ok=True)
        os.symlink(f"../../memory/memory{i}", nd / f"memory{i}")


def acpi(root: Path, name: str, uid: str, block_ids: range | list[int]) -> None:
    d = root / "sys/bus/acpi/devices" / name
    put(d / "uid", uid)
    put(d / "status", "15")
    put(d / "path", f"\\_SB_.MP{uid}")
    for n, i in enumerate(block_ids):
        os.symlink(f"../../../../devices/system/memory/memory{i}",
                   d / ("physical_node" if n == 0 else f"physical_node{n}"))


def smbios(root: Path, t17: list[Type17], t20: list[Type20]) -> None:
    t19 = [Type19(0x1200, min(r.start for r in t20), max(r.end for r in t20))] if t20 else []
    ep, table = build_smbios(t17, t19, t20)
    d = root / "sys/firmware/dmi/tables"
    d.mkdir(parents=True)
    (d / "smbios_entry_point").write_bytes(ep)
    (d / "DMI").write_bytes(table)


def edac(root: Path, mc: int, name: str, label: str, size_mb: int, ce: int = 0) -> None:
    d = root / f"sys/devices/system/edac/mc/mc{mc}"
    put(d / "max_location", "channel 2 slot 1 ")
    put(d / name / "dimm_label", label)
    put(d / name / "dimm_location", "channel 0 slot 0 ")
    put(d / name / "size", str(size_mb))
    put(d / name / "dimm_ce_count", str(ce))
    put(d / name / "dimm_ue_count", "0")


def dimm(handle: int, locator: str, size_mb: int, bank: str = "", serial: str = "") -> Type17:
    return Type17(handle, locator, bank, size_mb, 3200, "Samsung", serial or f"S{handle:x}",
                  "P")



@pytest.fixture
def two_alone_two_interleaved(tmp_path):
    """blocks 0-31 (4 GiB); A alone on 0-1 GiB, B alone on 1-2 GiB under one ACPI
    device each; C and D interleaved over 2-4 GiB under one device."""
    blocks(tmp_path, 32)
    acpi(tmp_path, "PNP0C80:00", "0", range(0, 8))
    acpi(tmp_path, "PNP0C80:01", "1", range(8, 16))
    acpi(tmp_path, "PNP0C80:02", "2", range(16, 32))
    smbios(tmp_path, [dimm(0x11, "A", 1024), dimm(0x12, "B", 1024), dimm(0x13, "C", 1024),
                      dimm(0x14, "D", 1024)], [
        Type20(0x21, 0, GIB - 1, 0x11, 0x1200),
        Type20(0x22, GIB, 2 * GIB - 1, 0x12, 0x1200),
        Type20(0x23, 2 * GIB, 4 * GIB - 1, 0x13, 0x1200, interleave_position=1,
               interleaved_data_depth=2),
        Type20(0x24, 2 * GIB, 4 * GIB - 1, 0x14, 0x1200, interleave_position=2,
               interleaved_data_depth=2)])
    return Host(tmp_path)


def test_forward_address_of_a_dimm_alone(two_alone_two_interleaved):
    loc = locate(two_alone_two_interleaved, GIB + 0x1234)
    assert (loc.pfn, loc.block, loc.block_state, loc.zone, loc.node) == (
        (GIB + 0x1234) >> 12, 8, "online", "Movable", 0)
    assert (loc.acpi_device, loc.acpi_uid, loc.status) == ("PNP0C80:01", "1", "mapped")
    assert [c.locator for c in loc.candidates] == ["B"]


def test_forward_interleaved_lists_candidates_instead_of_guessing(two_alone_two_interleaved):
    loc = locate(two_alone_two_interleaved, 3 * GIB)
    assert loc.status == "interleaved"
    assert sorted(c.locator for c in loc.candidates) == ["C", "D"]


def test_forward_beyond_last_block_is_a_usage_error(two_alone_two_interleaved):
    with pytest.raises(UsageError, match="beyond the last memory block"):
        locate(two_alone_two_interleaved, 32 * BS)


def test_reverse_alone_interleaved(two_alone_two_interleaved):
    host = two_alone_two_interleaved
    a = blocks_for_dimm(host, resolve_dimm(host, "A").ref)
    assert (a.status, a.blocks, a.acpi_device) == ("mapped", tuple(range(8)), "PNP0C80:00")
    c = blocks_for_dimm(host, resolve_dimm(host, "C").ref)
    assert (c.status, c.blocks, c.acpi_device) == ("interleaved", tuple(range(16, 32)),
                                                   "PNP0C80:02")
    assert "interleaved with D" in c.reason and "PNP0C80:02" in c.reason


def test_reverse_device_holding_two_dimms_is_not_mapped(tmp_path):
    blocks(tmp_path, 16)
    acpi(tmp_path, "PNP0C80:00", "0", range(0, 16))  # one device over both modules
    smbios(tmp_path, [dimm(0x11, "A", 1024), dimm(0x12, "B", 1024)], [
        Type20(0x21, 0, GIB - 1, 0x11, 0x1200), Type20(0x22, GIB, 2 * GIB - 1, 0x12, 0x1200)])
    host = Host(tmp_path)
    result = blocks_for_dimm(host, resolve_dimm(host, "A").ref)
    assert result.status == "interleaved" and "PNP0C80:00 also holds" in result.reason


def test_reverse_ranges_sharing_a_block_make_a_set(tmp_path):
    blocks(tmp_path, 16)
    half = GIB + BS // 2  # A ends mid-block 8, B starts there
    smbios(tmp_path, [dimm(0x11, "A", 1024), dimm(0x12, "B", 1024)], [
        Type20(0x21, 0, half - 1, 0x11, 0x1200), Type20(0x22, half, 2 * GIB - 1, 0x12, 0x1200)])
    host = Host(tmp_path)
    result = blocks_for_dimm(host, resolve_dimm(host, "B").ref)
    assert result.status == "interleaved" and result.blocks == tuple(range(16))


def test_edac_only_is_unmapped_with_reason(tmp_path):
    blocks(tmp_path, 8)
    edac(tmp_path, 0, "dimm0", "CPU_SrcID#0_MC#0_Chan#0_DIMM#0", 1024)
    host = Host(tmp_path)
    loc = locate(host, 0x1000)
    assert loc.status == "unmapped" and "SMBIOS" in loc.reason
    result = blocks_for_dimm(host, resolve_dimm(host, "mc0/dimm0").ref)
    assert result.status == "unmapped" and result.blocks == ()


def test_no_memory_blocks_is_a_clear_error(tmp_path):
    with pytest.raises(KernelInterfaceError, match="no memory blocks"):
        locate(Host(tmp_path), 0)


# --- simulator profiles --------------------------------------------------------------------

def _profile(tmp_path, name):
    profiles.create(name, tmp_path)
    return Host(tmp_path)


def test_qemu_guest_address_in_a_hotplugged_dimm(tmp_path):
    host = _profile(tmp_path, "qemu-guest")
    loc = locate(host, 0x100000000 + 0x2345)
    assert (loc.block, loc.zone, loc.acpi_device, loc.acpi_uid) == (32, "Movable",
                                                                    "PNP0C80:00", "0")
    assert loc.status == "mapped" and loc.candidates[0].dimm_id == "PNP0C80:00"
    reverse = blocks_for_dimm(host, resolve_dimm(host, "PNP0C80:00").ref)
    assert reverse.status == "mapped" and loc.block in reverse.blocks
    assert reverse.acpi_device == "PNP0C80:00"


def test_skylake_interleaved_address_lists_the_socket_set(tmp_path):
    host = _profile(tmp_path, "skylake-2s")
    loc = locate(host, 0x100000000)
    assert loc.status == "interleaved" and len(loc.candidates) == 6
    assert {c.locator for c in loc.candidates} == {f"P1-DIMM{x}1" for x in "ABCDEF"}
    assert all(c.dimm_id and c.dimm_id.startswith("mc") for c in loc.candidates)
    reverse = blocks_for_dimm(host, resolve_dimm(host, "P1-DIMMA1").ref)
    assert reverse.status == "interleaved" and "P1-DIMMB1" in reverse.reason


def test_demo_dimm_alone_under_its_own_acpi_device(tmp_path):
    host = _profile(tmp_path, "demo")
    dimm_info = resolve_dimm(host, "P1-DIMMB1")
    result = blocks_for_dimm(host, dimm_info.ref)
    device = host.acpi.read(result.acpi_device)
    assert result.status == "mapped" and result.blocks == device.blocks
