"""DIMM inventory: joining EDAC, SMBIOS and ACPI, and resolving what users type."""

from __future__ import annotations

import pytest
from test_locate import acpi, blocks, dimm, edac, smbios

from memras.errors import UsageError
from memras.host import Host
from memras.sim import profiles
from memras.sim.smbios_build import Type20
from memras.topology.inventory import dimm_inventory, resolve_dimm

GIB = 1 << 30


def test_ghes_labels_join_bank_and_locator(tmp_path):
    blocks(tmp_path, 16)
    edac(tmp_path, 0, "dimm0", "N0 DIMM_A0", 1024, ce=7)
    edac(tmp_path, 0, "dimm1", "N0 DIMM_B0", 1024)
    smbios(tmp_path, [dimm(0x11, "DIMM_A0", 1024, "N0", "SA"),
                      dimm(0x12, "DIMM_B0", 1024, "N0", "SB")],
           [Type20(0x21, 0, GIB - 1, 0x11, 0x1200), Type20(0x22, GIB, 2 * GIB - 1, 0x12, 0x1200)])
    inv = dimm_inventory(Host(tmp_path))
    assert [(d.id, d.smbios.serial, d.match, d.ce_count) for d in inv] == [
        ("mc0/dimm0", "SA", "label", 7), ("mc0/dimm1", "SB", "label", 0)]
    assert inv[0].mapping == "mapped" and inv[0].blocks == tuple(range(8))


def test_same_sizes_and_foreign_labels_stay_unmatched(tmp_path):
    blocks(tmp_path, 16)
    edac(tmp_path, 0, "dimm0", "mc#0csrow#0channel#0", 1024)
    edac(tmp_path, 0, "dimm1", "mc#0csrow#0channel#1", 1024)
    smbios(tmp_path, [dimm(0x11, "X", 1024), dimm(0x12, "Y", 1024)], [])
    inv = dimm_inventory(Host(tmp_path))
    assert len(inv) == 2  # the same two modules, not four
    assert all(d.smbios is None and d.match.startswith("edac only") for d in inv)


def test_unique_size_joins(tmp_path):
    blocks(tmp_path, 8)
    edac(tmp_path, 0, "dimm0", "whatever", 2048)
    smbios(tmp_path, [dimm(0x11, "X", 2048)], [])
    [d] = dimm_inventory(Host(tmp_path))
    assert d.smbios.locator == "X" and d.match == "size"


def test_qemu_guest_one_entry_per_populated_slot(tmp_path):
    profiles.create("qemu-guest", tmp_path)
    inv = dimm_inventory(Host(tmp_path))
    by_id = {d.id: d for d in inv}
    assert {"PNP0C80:00", "PNP0C80:01"} <= set(by_id)
    assert "PNP0C80:02" not in by_id  # empty slot
    slot0 = by_id["PNP0C80:00"]
    assert (slot0.acpi_uid, slot0.mapping, slot0.ce_count) == ("0", "mapped", None)


def test_skylake_joins_by_socket_channel_dimm(tmp_path):
    profiles.create("skylake-2s", tmp_path)
    inv = dimm_inventory(Host(tmp_path))
    d = next(x for x in inv if x.id == "mc1/dimm2")  # socket 0, IMC 1, channel 1 → E
    assert d.smbios.locator == "P1-DIMME1" and d.match == "socket/channel/dimm"


@pytest.mark.parametrize("text", ["mc0/dimm1", "N0 DIMM_B0", "n0   dimm_b0", "DIMM_B0", "SB",
                                  "0:0:0:-1"])
def test_resolve_accepts_every_name(tmp_path, text):
    blocks(tmp_path, 16)
    edac(tmp_path, 0, "dimm0", "N0 DIMM_A0", 1024)
    edac(tmp_path, 0, "dimm1", "N0 DIMM_B0", 1024)
    smbios(tmp_path, [dimm(0x11, "DIMM_A0", 1024, "N0", "SA"),
                      dimm(0x12, "DIMM_B0", 1024, "N0", "SB")], [])
    host = Host(tmp_path)
    if text == "0:0:0:-1":  # both EDAC DIMMs sit at "channel 0 slot 0": ambiguous
        with pytest.raises(UsageError, match="names 2 DIMMs") as info:
            resolve_dimm(host, text)
        assert "mc0/dimm0" in info.value.hint
        return
    assert resolve_dimm(host, text).id == "mc0/dimm1"


def test_resolve_unknown_lists_candidates(tmp_path):
    blocks(tmp_path, 8)
    acpi(tmp_path, "PNP0C80:00", "0", range(0, 8))
    with pytest.raises(UsageError, match="no DIMM called") as info:
        resolve_dimm(Host(tmp_path), "nope")
    assert "PNP0C80:00" in info.value.hint
