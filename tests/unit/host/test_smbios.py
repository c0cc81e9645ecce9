"""SMBIOS parser: hand-assembled tables (independent of the builder), builder round trips,
damage at every offset, and fuzzing."""

from __future__ import annotations

import contextlib
import os
import struct
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from memras.errors import ParseError
from memras.host import Host
from memras.host.smbios import (
    TableDamaged,
    decode_array_mapped_range,
    decode_device_mapped_range,
    decode_memory_device,
    parse_entry_point,
    parse_structures,
)
from memras.sim.smbios_build import Type17, Type19, Type20, build_smbios

GIB = 1 << 30
TIB = 1 << 40


# --- a table assembled byte by byte from DSP0134's layouts, not by the builder ---------

def _hand_type17() -> bytes:
    """SMBIOS 2.7 type 17 (length 0x22): size 0x7FFF with a 64 GiB extended size."""
    formatted = bytes([
        17, 0x22, 0x11, 0x00,        # type, length, handle 0x0011
        0x10, 0x00,                  # 04 physical memory array handle 0x0010
        0xFE, 0xFF,                  # 06 error info handle: not provided
        0x48, 0x00, 0x40, 0x00,      # 08 total width 72, 0A data width 64
        0xFF, 0x7F,                  # 0C size 0x7FFF: see extended size
        0x09, 0x00,                  # 0E form factor DIMM, 0F device set
        0x01, 0x02,                  # 10 locator = string 1, 11 bank locator = string 2
        0x1A, 0x80, 0x00,            # 12 DDR4, 13 type detail synchronous
        0x80, 0x0C,                  # 15 speed 3200 MT/s
        0x03, 0x04, 0x00, 0x05,      # 17 manufacturer 3, 18 serial 4, 19 asset 0, 1A part 5
        0x02,                        # 1B attributes: rank 2
        0x00, 0x00, 0x01, 0x00,      # 1C extended size 0x10000 MB = 64 GiB
        0x60, 0x09,                  # 20 configured speed 2400 MT/s
    ])
    assert len(formatted) == 0x22
    strings = b"P1-DIMMA1\x00_Node0_Channel0_Dimm0\x00Samsung\x00S3R1AL\x00M393A8G40AB2\x00\x00"
    return formatted + strings


def _hand_type19() -> bytes:
    # 0 .. 64 GiB - 1 in kilobytes, partition width 1; 2.x length 0x0F (no extended fields)
    return bytes([19, 0x0F, 0x13, 0x00]) + struct.pack("<IIHB", 0, 0x3FFFFFF, 0x0010, 1) \
        + b"\x00\x00"


def _hand_type20_extended() -> bytes:
    start, end = 4 * TIB, 4 * TIB + 64 * GIB - 1  # beyond 32-bit kilobytes: extended fields
    return bytes([20, 0x23, 0x14, 0x00]) + struct.pack(
        "<IIHHBBBQQ", 0xFFFFFFFF, 0xFFFFFFFF, 0x0011, 0x0013, 1, 2, 2, start, end
    ) + b"\x00\x00"


def _hand_table() -> bytes:
    return _hand_type17() + _hand_type19() + _hand_type20_extended() + bytes(
        [127, 4, 0xFF, 0xFE, 0, 0])


def _hand_entry_point_2(table: bytes) -> bytes:
    dmi = bytearray(b"_DMI_\x00" + struct.pack("<HIHB", len(table), 0xF0000, 4, 0x27))
    dmi[5] = (-sum(dmi)) & 0xFF
    head = bytearray(b"_SM_\x00\x1f\x02\x07" + struct.pack("<H", 0x47) + b"\x00" * 6 + dmi)
    head[4] = (-sum(head)) & 0xFF
    return bytes(head)


def test_hand_assembled_type17_decodes_every_field():
    [dev17, r19, r20, end] = parse_structures(_hand_table())
    dev = decode_memory_device(dev17)
    assert (dev.handle, dev.array_handle) == (0x11, 0x10)
    assert dev.size_bytes == 64 * GIB
    assert dev.locator == "P1-DIMMA1"
    assert dev.bank_locator == "_Node0_Channel0_Dimm0"
    assert (dev.manufacturer, dev.serial, dev.asset_tag, dev.part_number) == (
        "Samsung", "S3R1AL", "", "M393A8G40AB2")
    assert (dev.speed_mts, dev.configured_speed_mts, dev.rank) == (3200, 2400, 2)
    assert (dev.memory_type_name, dev.form_factor_name) == ("DDR4", "DIMM")
    assert dev.full_locator == "_Node0_Channel0_Dimm0 P1-DIMMA1"
    assert end.type == 127


def test_hand_assembled_type19_plain_and_type20_extended():
    structures = parse_structures(_hand_table())
    r19 = decode_array_mapped_range(structures[1])
    assert (r19.start, r19.end, r19.array_handle, r19.partition_width) == (0, 64 * GIB - 1,
                                                                          0x10, 1)
    r20 = decode_device_mapped_range(structures[2])
    assert (r20.start, r20.end) == (4 * TIB, 4 * TIB + 64 * GIB - 1)
    assert (r20.device_handle, r20.array_mapped_handle) == (0x11, 0x13)
    assert (r20.partition_row_position, r20.interleave_position,
            r20.interleaved_data_depth) == (1, 2, 2)
    assert r20.interleaved and r20.contains(4 * TIB) and not r20.contains(4 * TIB - 1)


def test_hand_assembled_smbios2_entry_point():
    table = _hand_table()
    ep = parse_entry_point(_hand_entry_point_2(table))
    assert (ep.anchor, ep.version, ep.table_length, ep.structure_count) == (
        "_SM_", (2, 7), len(table), 4)
    assert ep.table_address == 0xF0000


@pytest.mark.parametrize(("size_word", "extended", "expected"), [
    (0x0000, 0, 0),                 # empty slot
    (0xFFFF, 0, None),              # unknown
    (0x2000, 0, 8 * GIB),           # 8192 MB
    (0x8200, 0, 512 * 1024),        # bit 15: kilobyte granularity, 512 KB
    (0x7FFF, 0x20000, 128 * GIB),   # extended size in MB
    (0x7FFF, 0x80020000, 128 * GIB),  # bit 31 of the extended size is reserved
])
def test_type17_size_encodings(size_word, extended, expected):
    raw = bytearray(_hand_type17())
    struct.pack_into("<H", raw, 0x0C, size_word)
    struct.pack_into("<I", raw, 0x1C, extended)
    [s] = parse_structures(bytes(raw))
    assert decode_memory_device(s).size_bytes == expected


def test_string_index_zero_is_empty_and_missing_index_is_counted():
    raw = bytearray(_hand_type17())
    raw[0x18] = 9  # serial points past the five strings
    raw[0x10] = 0  # no locator
    [s] = parse_structures(bytes(raw))
    dev = decode_memory_device(s)
    assert dev.locator == "" and dev.serial == "" and dev.missing_strings == 1


def test_structure_without_strings_ends_in_two_nuls():
    [s, end] = parse_structures(_hand_type19() + bytes([127, 4, 0, 1, 0, 0]))
    assert s.strings == () and end.handle == 0x100


def test_old_short_type17_has_no_speed_rank_or_extended_size():
    raw = bytearray(_hand_type17()[:0x15])
    raw[1] = 0x15  # an SMBIOS 2.1 memory device: no speed, no manufacturer…
    [s] = parse_structures(bytes(raw) + b"P1-DIMMA1\x00BANK\x00\x00")
    dev = decode_memory_device(s)
    assert (dev.locator, dev.speed_mts, dev.rank, dev.manufacturer) == ("P1-DIMMA1", None,
                                                                       None, "")
    assert dev.size_bytes is None  # 0x7FFF without the extended field


# --- the builder, read back by the parser -------------------------------------------------

DEVICES = [
    Type17(0x1100, "CPU0_DIMM_A1", "NODE 0", 32768, 3200, "Samsung", "S1", "P1", rank=2),
    Type17(0x1101, "CPU0_DIMM_B1", "NODE 0", 65536, 2933, "Hynix", "S2", "P2"),
    Type17(0x1102, "CPU0_DIMM_C1", "NODE 0", 0, 0, "", "", ""),
]
ARRAYS = [Type19(0x1300, 0, 96 * GIB - 1), Type19(0x1301, 4 * TIB, 4 * TIB + GIB - 1)]
RANGES = [
    Type20(0x1400, 0, 32 * GIB - 1, 0x1100, 0x1300),
    Type20(0x1401, 32 * GIB, 96 * GIB - 1, 0x1101, 0x1300, interleaved_data_depth=2),
    Type20(0x1402, 4 * TIB, 4 * TIB + GIB - 1, 0x1101, 0x1301),
]


@pytest.mark.parametrize("version", [(2, 8), (3, 0), (3, 2), (3, 3)])
def test_builder_round_trip(version):
    ep_bytes, table = build_smbios(DEVICES, ARRAYS, RANGES, version=version)
    ep = parse_entry_point(ep_bytes)
    assert ep.version == version
    assert ep.anchor == ("_SM3_" if version[0] == 3 else "_SM_")
    assert ep.table_length == len(table)
    structures = parse_structures(table)
    assert [s.type for s in structures] == [16, 17, 17, 17, 19, 19, 20, 20, 20, 127]
    devices = [decode_memory_device(s) for s in structures if s.type == 17]
    assert [(d.locator, d.size_bytes, d.speed_mts, d.serial) for d in devices] == [
        ("CPU0_DIMM_A1", 32 * GIB, 3200, "S1"), ("CPU0_DIMM_B1", 64 * GIB, 2933, "S2"),
        ("CPU0_DIMM_C1", 0, None, "")]
    assert not devices[2].populated and devices[0].rank == 2
    ranges = [decode_device_mapped_range(s) for s in structures if s.type == 20]
    assert [(r.start, r.end, r.device_handle, r.interleaved) for r in ranges] == [
        (0, 32 * GIB - 1, 0x1100, False), (32 * GIB, 96 * GIB - 1, 0x1101, True),
        (4 * TIB, 4 * TIB + GIB - 1, 0x1101, False)]
    # at 4 TiB the kilobyte fields are the 0xFFFFFFFF escape, the addresses extended
    assert structures[-2].dword(0x04) == 0xFFFFFFFF


def test_builder_speed_and_size_above_the_word_limits():
    huge = Type17(0x1100, "D", "B", 0x10000, 0x1_0000, "", "", "")
    _, table = build_smbios([huge], [], [])
    dev = decode_memory_device(parse_structures(table)[1])
    assert dev.size_bytes == 0x10000 * (1 << 20)
    assert dev.speed_mts == 0x1_0000  # via the SMBIOS 3.3 extended speed


# --- damage -----------------------------------------------------------------------------------

def test_truncated_at_every_offset_gives_clear_error_or_a_prefix():
    _, table = build_smbios(DEVICES, ARRAYS, RANGES)
    full = parse_structures(table)
    for cut in range(len(table)):
        try:
            parsed = parse_structures(table[:cut])
        except TableDamaged as exc:
            assert f"{exc.offset:#x}" in exc.msg
            parsed = exc.parsed
        assert parsed == full[: len(parsed)]


def test_corrupted_length_bytes_raise_parse_error_naming_the_offset():
    _, table = build_smbios(DEVICES, ARRAYS, RANGES)
    second = parse_structures(table)[1].offset
    bad = bytearray(table)
    bad[second + 1] = 2  # a length shorter than the header
    with pytest.raises(TableDamaged, match=f"offset {second:#x}") as info:
        parse_structures(bytes(bad))
    assert [s.type for s in info.value.parsed] == [16]


def test_every_single_byte_corruption_is_handled():
    _, table = build_smbios(DEVICES[:1], ARRAYS[:1], RANGES[:1])
    for offset in range(len(table)):
        for value in (0x00, 0x01, 0xFF):
            bad = bytearray(table)
            bad[offset] = value
            try:
                for s in parse_structures(bytes(bad)):
                    _decode_any(s)
            except ParseError:
                pass


def _decode_any(s):
    return {17: decode_memory_device, 19: decode_array_mapped_range,
            20: decode_device_mapped_range}.get(s.type, lambda _: None)(s)


@pytest.mark.parametrize("version", [(2, 8), (3, 3)])
def test_entry_point_truncated_or_corrupt_is_a_parse_error(version):
    ep, _ = build_smbios(DEVICES, ARRAYS, RANGES, version=version)
    for cut in range(len(ep)):
        with pytest.raises(ParseError):
            parse_entry_point(ep[:cut])
    for offset in range(len(ep)):
        bad = bytearray(ep)
        bad[offset] ^= 0x5A
        with pytest.raises(ParseError):
            parse_entry_point(bytes(bad))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_fuzz_parse_structures_never_raises_anything_else(data):
    try:
        for s in parse_structures(data):
            _decode_any(s)
    except ParseError:
        pass


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.binary(max_size=40),
                 st.sampled_from([b"_SM3_", b"_SM_", b"_DMI_"]).flatmap(
                     lambda a: st.binary(max_size=40).map(lambda b: a + b))))
def test_fuzz_parse_entry_point_never_raises_anything_else(data):
    with contextlib.suppress(ParseError):
        parse_entry_point(data)


# --- the host reader ------------------------------------------------------------------------

def _write_tables(root: Path, ep: bytes, table: bytes) -> Host:
    tables = root / "sys/firmware/dmi/tables"
    tables.mkdir(parents=True)
    (tables / "smbios_entry_point").write_bytes(ep)
    (tables / "DMI").write_bytes(table)
    return Host(root)


def test_host_smbios_reads_the_sysfs_tables(tmp_path):
    host = _write_tables(tmp_path, *build_smbios(DEVICES, ARRAYS, RANGES))
    assert host.smbios.present
    assert [d.locator for d in host.smbios.memory_devices()] == [
        "CPU0_DIMM_A1", "CPU0_DIMM_B1", "CPU0_DIMM_C1"]
    assert len(host.smbios.array_mapped_ranges()) == 2
    assert host.smbios.device(0x1101).serial == "S2"
    assert host.smbios.problems == []


def test_host_smbios_keeps_what_parsed_before_damage(tmp_path):
    ep, table = build_smbios(DEVICES, ARRAYS, RANGES)
    cut = parse_structures(table)[3].offset + 10  # inside the third type 17
    host = _write_tables(tmp_path, ep, table[:cut])
    assert [d.locator for d in host.smbios.memory_devices()] == ["CPU0_DIMM_A1", "CPU0_DIMM_B1"]
    assert any("cut off" in p or "double-NUL" in p for p in host.smbios.problems)


def test_host_smbios_notes_a_table_without_end_of_table(tmp_path):
    ep, table = build_smbios(DEVICES, ARRAYS, RANGES)
    host = _write_tables(tmp_path, ep, table[: parse_structures(table)[4].offset])
    assert len(host.smbios.memory_devices()) == 3
    assert any("end-of-table" in p for p in host.smbios.problems)


def test_host_without_dmi_tables(tmp_path):
    host = Host(tmp_path)
    assert not host.smbios.present and host.smbios.memory_devices() == []


DMI = Path("/sys/firmware/dmi/tables/DMI")


@pytest.mark.skipif(not DMI.exists(), reason="this machine exports no /sys/firmware/dmi tables")
@pytest.mark.skipif(DMI.exists() and not os.access(DMI, os.R_OK),
                    reason="/sys/firmware/dmi/tables/DMI is readable by root only")
def test_this_machines_table_parses():
    host = Host("/")
    structures = host.smbios.structures
    assert structures and host.smbios.problems == []
    for s in structures:
        _decode_any(s)
