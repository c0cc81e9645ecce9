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
    assert dev is not None and dev.kind == ACPI_DEVICE and dev.ejectable
    assert (dev.block_text, dev.zones, dev.nodes, dev.size_bytes) == ("40-47", ("Movable",),
                                                                        (0,), GIB)
    assert dev.dimms == ("mc0/dimm2", "mc0/dimm3")
    # the boot pair has no device: an interleave set that nothing can eject
    boot = next(u for u in units if u.kind == INTERLEAVE_SET)
    assert (boot.id, boot.dimms, boot.ejectable) == ("set:0-39", ("mc0/dimm0", "mc0/dimm1"),
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
    assert units[0].dimms == () and "4 DIMMs have no known address range" in units[0].how


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


# --- the CLI: memras dimms, memras replace --dry-run ---------------------------------------

def _cli(capsys, root, db, *argv: str) -> tuple[int, str, str]:
    from memras.cli import main

    code = main(["--root", str(root), "--db", str(db), *argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def srv(tmp_path, monkeypatch):
    from memras import config

    monkeypatch.setattr(config, "DEFAULT_CONFIG_PATH", tmp_path / "no-such-memras.toml")
    profiles.write_server(four_dimms_one_device(), tmp_path / "srv")
    return tmp_path / "srv", tmp_path / "memras.db"


def test_replace_unit_dry_run_shows_unit_blocks_zone_and_dimms(srv, capsys) -> None:
    """The check of issue 18: one ACPI device over blocks 40-47 Movable, several DIMMs."""
    code, out, err = _cli(capsys, *srv, "replace", "PNP0C80:01", "--dry-run")
    lines = out.splitlines()
    assert code == 0, out + err
    assert lines[0] == "dry run: replace PNP0C80:01 with backend simulated"
    assert lines[1] == ("  unit: PNP0C80:01 (ACPI memory device, slot 1): blocks 40-47, "
                        "zone Movable, 1G")
    assert lines[2] == ("  DIMMs in it: P1-DIMMC1 (mc0/dimm2, serial S0002), "
                        "P1-DIMMD1 (mc0/dimm3, serial S0003)")
    assert "PASS  mapping: 8 blocks memory40-memory47 (1G) goes out whole" in out
    assert "no DIMM called" not in out + err
    code, out, _ = _cli(capsys, *srv, "--json", "replace", "pnp0c80:01", "--dry-run")
    data = json.loads(out)
    assert code == 0 and data["ok"] and data["target"]["blocks"] == list(range(40, 48))
    unit = data["unit"]
    assert (unit["device"], unit["blocks"], unit["zones"], unit["size_bytes"]) == (
        "PNP0C80:01", "40-47", ["Movable"], GIB)
    assert unit["dimms"] == ["mc0/dimm2", "mc0/dimm3"]
    assert unit["dimm_names"] == ["P1-DIMMC1", "P1-DIMMD1"] and unit["goes_out"]


def test_replace_a_dimm_of_the_unit_says_which_modules_go_with_it(srv, capsys) -> None:
    code, out, _ = _cli(capsys, *srv, "replace", "P1-DIMMD1", "--dry-run")
    assert code == 0
    assert "  unit: PNP0C80:01 (ACPI memory device, slot 1): blocks 40-47" in out
    assert "  goes out with P1-DIMMD1: P1-DIMMC1" in out
    assert "P1-DIMMD1 cannot go alone" in out and "interleaved with P1-DIMMC1" in out


def test_a_dimm_no_device_can_remove_is_refused_naming_its_smallest_unit(srv, capsys) -> None:
    code, out, _ = _cli(capsys, *srv, "replace", "P1-DIMMA1", "--dry-run")
    assert code == 3 and "the replacement would be refused" in out  # a refusal: exit 3
    assert ("  smallest unit holding it: set:0-39 (interleave set, no ACPI memory device "
            "covers it): blocks 0-39, zone none/DMA32/Normal, 5G") in out
    assert ("the smallest unit that holds it is set:0-39 (blocks 0-39, none/DMA32/Normal, "
            "5G): P1-DIMMA1, P1-DIMMB1, and no ACPI memory device can remove it") in out


def test_without_smbios_the_unit_is_replaceable_and_a_dimm_points_at_it(tmp_path, capsys
                                                                        ) -> None:
    root = profiles.write_server(four_dimms_one_device(smbios=False), tmp_path / "s").root
    db = tmp_path / "memras.db"
    code, out, _ = _cli(capsys, root, db, "replace", "PNP0C80:01", "--dry-run")
    assert code == 0 and "  DIMMs in it: unknown (no SMBIOS type 20 range" in out
    code, out, _ = _cli(capsys, root, db, "replace", "P1-DIMMC1", "--dry-run")
    assert code == 3 and ("which unit holds it is unknown, these hold unknown DIMMs: "
                          "PNP0C80:01 (blocks 40-47, Movable, 1G): unknown DIMMs") in out


def test_dimms_lists_units_plain_and_json(srv, capsys) -> None:
    code, out, _ = _cli(capsys, *srv, "--wide", "dimms")  # every column, DIMMS in full
    assert code == 0
    rows = {line.split()[0]: line.split() for line in out.splitlines() if line.strip()}
    assert "UNIT" in rows["DIMM"] and "PNP0C80:01" in rows["P1-DIMMC1"]
    assert "set:0-39" in rows["P1-DIMMA1"]
    assert rows["PNP0C80:01"] == ["PNP0C80:01", "acpi-device", "40-47", "Movable", "1G",
                                  "P1-DIMMC1,", "P1-DIMMD1"]
    assert rows["set:0-39"][1:4] == ["interleave-set", "(no", "ACPI"]
    code, out, _ = _cli(capsys, *srv, "--json", "dimms")
    data = json.loads(out)
    units = {u["id"]: u for u in data["units"]}
    assert units["PNP0C80:01"]["dimms"] == ["mc0/dimm2", "mc0/dimm3"]
    assert units["PNP0C80:01"]["blocks"] == "40-47" and units["PNP0C80:01"]["ejectable"]
    assert {r["id"]: r["unit"] for r in data["dimms"]}["mc0/dimm3"] == "PNP0C80:01"


def test_replacing_the_unit_runs_to_close_on_the_simulator(srv, capsys) -> None:
    """Not only the plan: the unit named by its device is offlined, ejected, a new
    module inserted and onlined, and the replacement closes."""
    code, out, err = _cli(capsys, *srv, "--json", "replace", "PNP0C80:01", "--yes")
    data = json.loads(out)
    assert code == 0, out + err
    assert data["state"] == "closed"
    host = Host(srv[0])
    assert all(host.memory.read(b).state == "online" for b in range(40, 48))


def test_the_confirmation_lists_what_goes_out_and_a_wrong_answer_changes_nothing(
        srv, capsys, monkeypatch) -> None:
    import builtins
    import io

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    asked: list[str] = []
    monkeypatch.setattr("sys.stdin", Terminal())
    monkeypatch.setattr(builtins, "input", lambda prompt="": asked.append(prompt) or "nope")
    code, out, err = _cli(capsys, *srv, "replace", "P1-DIMMD1")
    assert code == 3 and len(asked) == 1 and "nothing was changed" in err
    assert "This will take 8 memory blocks offline" in out
    assert "  goes out with P1-DIMMD1: P1-DIMMC1" in out
    host = Host(srv[0])
    assert all(host.memory.read(b).state == "online" for b in range(40, 48))
