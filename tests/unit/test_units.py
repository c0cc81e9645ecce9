"""Replaceable units (issue 18, deliverable 1): an ACPI memory device with the DIMMs it
covers, a DIMM that goes alone, an interleave set; `memras dimms` and
`memras replace --dry-run` show them."""

from __future__ import annotations

import json

import pytest

from memras.host import Host
from memras.sim import profiles
from memras.sim.spec import AcpiSlotSpec, BlockRange, DimmSpec, McSpec, ServerSpec
from memras.topology.inventory import dimm_inventory
from memras.topology.memory_map import read_memory_map
from memras.topology.units import (
    ACPI_DEVICE,
    INTERLEAVE_SET,
    SINGLE_DIMM,
    block_ranges,
    find_unit,
    host_units,
    replaceable_units,
    smallest_unit,
)

GIB = 1 << 30
MIB = 1 << 20
BS = 128 * MIB


def _dimm(n: int, locator: str, size_mb: int, *, smbios: bool = True) -> DimmSpec:
    return DimmSpec(name=locator, locator=locator, bank_locator=f"P0_Node0_Channel{n}_Dimm0",
                    size_mb=size_mb, socket=0, channel=n, slot=0, mc=0,
                    serial=f"S{n:04d}", part_number="M393A1K43BB1-CTD",
                    edac_name=f"dimm{n}", edac_label=locator,
                    edac_location=f"channel {n} slot 0 ", in_smbios=smbios)


def four_dimms_one_device(*, smbios: bool = True, interleaved: bool = True) -> ServerSpec:
    """Four EDAC DIMMs; A and B interleaved over the 5 GiB of boot RAM (blocks 0-39,
    kernel zones), C and D over blocks 40-47 (Movable) under one hot-removable ACPI
    memory device PNP0C80:01 (PNP0C80:00 is an empty slot). Interleaved: C and D
    share the whole range; not: C on 40-43, D on 44-47."""
    dimms = [_dimm(0, "P1-DIMMA1", 2560, smbios=smbios), _dimm(1, "P1-DIMMB1", 2560,
                                                                 smbios=smbios),
             _dimm(2, "P1-DIMMC1", 512, smbios=smbios), _dimm(3, "P1-DIMMD1", 512,
                                                                smbios=smbios)]
    profiles._interleaved(dimms[:2], 0, 5 * GIB - 1)
    if interleaved:
        profiles._interleaved(dimms[2:], 5 * GIB, 6 * GIB - 1)
    else:
        dimms[2].range_start, dimms[2].range_end = 5 * GIB, 5 * GIB + 512 * MIB - 1
        dimms[3].range_start, dimms[3].range_end = 5 * GIB + 512 * MIB, 6 * GIB - 1
    slots = [AcpiSlotSpec("PNP0C80:00", "0", "\\_SB_.NOD0.MP00"),
             AcpiSlotSpec("PNP0C80:01", "1", "\\_SB_.NOD0.MP01", base=5 * GIB, size=GIB,
                          dimm="P1-DIMMC1")]
    blocks = [BlockRange(0, 1, 0, "none", unmovable=True),
              BlockRange(1, 31, 0, "DMA32", unmovable=True),
              BlockRange(32, 8, 0, "Normal", unmovable=True),
              BlockRange(40, 8, 0, "Movable")]
    return ServerSpec(profile="units", hostname="units-test", block_size=BS,
                      nodes={0: "0-7"}, blocks=blocks, dimms=dimms,
                      mcs=[McSpec(0, "Skylake Socket#0 IMC#0", "skx_edac",
                                  "channel 3 slot 0 ")],
                      acpi_slots=slots, auto_online_blocks="online_movable",
                      dmi={"sys_vendor": "Supermicro", "product_name": "SYS-test"}, seed=3)


@pytest.fixture
def host(tmp_path) -> Host:
    return profiles.write_server(four_dimms_one_device(), tmp_path / "srv").host()


def _units(host: Host):
    mm = read_memory_map(host)
    return replaceable_units(mm, dimm_inventory(host, memory_map=mm))


def test_block_ranges() -> None:
    assert block_ranges(range(40, 48)) == "40-47"
    assert block_ranges([47, 32, 33, 40]) == "32-33,40,47"
    assert block_ranges([]) == "-"


def test_one_device_over_an_interleave_set_is_a_unit_with_both_dimms(host) -> None:
    units = _units(host)
    dev = find_unit(units, "pnp0c80:01")
    assert dev is not None and dev.kind == ACPI_DEVICE and dev.removable
    assert (dev.block_text, dev.zones, dev.nodes, dev.size_bytes) == ("40-47", ("Movable",),
                                                                        (0,), GIB)
    assert dev.dimms == ("mc0/dimm2", "mc0/dimm3")
    # the boot pair has no device: an interleave set that nothing can eject
    boot = next(u for u in units if u.kind == INTERLEAVE_SET)
    assert (boot.id, boot.dimms, boot.removable) == ("set:0-39", ("mc0/dimm0", "mc0/dimm1"),
                                                     False)
    assert boot.zones == ("none", "DMA32", "Normal")
    assert find_unit(units, "PNP0C80:00") is None  # the empty slot is no unit
    assert smallest_unit(units, "mc0/dimm3") == dev
    assert smallest_unit(units, "mc0/dimm0") == boot


def test_one_device_over_two_separate_dimms_takes_both(tmp_path) -> None:
    host = profiles.write_server(four_dimms_one_device(interleaved=False), tmp_path).host()
    dev = find_unit(_units(host), "PNP0C80:01")
    assert dev is not None and dev.dimms == ("mc0/dimm2", "mc0/dimm3")
    assert dev.kind == ACPI_DEVICE and dev.block_text == "40-47"


def test_without_smbios_the_device_is_a_unit_of_unknown_dimms(tmp_path) -> None:
    host = profiles.write_server(four_dimms_one_device(smbios=False), tmp_path).host()
    units = _units(host)
    assert [u.id for u in units] == ["PNP0C80:01"]
    assert units[0].dimms == () and "unknown DIMMs" in units[0].how


def test_per_slot_devices_are_single_dimm_units(tmp_path) -> None:
    host = profiles.create("demo", tmp_path).host()
    units = host_units(host)
    one = find_unit(units, "PNP0C80:00")
    assert one is not None and one.kind == SINGLE_DIMM and len(one.dimms) == 1
    assert one.zones == ("Movable",) and len(one.blocks) == 32


def test_qemu_guest_pc_dimms_are_units_of_one(tmp_path) -> None:
    host = profiles.create("qemu-guest", tmp_path).host()
    units = {u.id: u for u in host_units(host)}
    assert units["PNP0C80:00"].kind == SINGLE_DIMM
    assert units["PNP0C80:00"].block_text == "32-35"
    assert units["PNP0C80:01"].block_text == "36-39"
