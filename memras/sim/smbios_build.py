"""Builds SMBIOS tables the way firmware lays them out, for simulated servers and tests.

The simulator writes the two files the kernel exposes in /sys/firmware/dmi/tables/
(``smbios_entry_point`` and ``DMI``, see drivers/firmware/dmi-sysfs.c and
dmi_scan.c) from these bytes, so memras's parser (memras.host.smbios) reads a
simulated server through exactly the code path it uses on real hardware.

Layouts follow DMTF DSP0134 3.3: the 24-byte 64-bit ``_SM3_`` entry point (3.x) or
the 31-byte ``_SM_`` entry point with its ``_DMI_`` intermediate anchor (2.x);
type 16 (physical memory array), 17 (memory device), 19 (memory array mapped
address), 20 (memory device mapped address) and 127 (end of table). Addresses in
type 19/20 are kilobytes with an inclusive end; the extended 64-bit byte fields are
used when a kilobyte value would not fit 32 bits (at or beyond 4 TiB) or the range
is not kilobyte-aligned, as the spec requires.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

KIB = 1024
_NO_HANDLE = 0xFFFE  # "not provided" for memory error information handles
_USE_EXTENDED_32 = 0xFFFFFFFF  # type 19/20: the address is in the extended field
_SIZE_USE_EXTENDED = 0x7FFF  # type 17: the size is in the extended size field
_DEFAULT_TABLE_ADDRESS = 0x000E_0000


@dataclass(frozen=True, slots=True)
class Type17:
    """One memory device (a DIMM slot). ``size_mb == 0`` is an empty slot."""

    handle: int
    locator: str
    bank_locator: str
    size_mb: int
    speed_mts: int
    manufacturer: str
    serial: str
    part_number: str
    asset_tag: str = ""
    memory_type: int = 0x1A  # DDR4
    form_factor: int = 0x09  # DIMM
    array_handle: int = 0x1000
    rank: int = 1


@dataclass(frozen=True, slots=True)
class Type19:
    """A range of system physical addresses served by one memory array (bytes, end inclusive)."""

    handle: int
    start: int
    end: int
    array_handle: int = 0x1000
    partition_width: int = 1


@dataclass(frozen=True, slots=True)
class Type20:
    """A range of system physical addresses backed by one memory device (bytes, end inclusive)."""

    handle: int
    start: int
    end: int
    device_handle: int
    array_mapped_handle: int
    partition_row_position: int = 1
    interleave_position: int = 0
    interleaved_data_depth: int = 1


def _string_set(strings: Sequence[str]) -> tuple[list[int], bytes]:
    """String indexes (0 = no string) and the encoded string set of a structure."""
    indexes: list[int] = []
    encoded: list[bytes] = []
    for text in strings:
        if text == "":
            indexes.append(0)
            continue
        encoded.append(text.encode("utf-8"))
        indexes.append(len(encoded))
    if not encoded:
        return indexes, b"\x00\x00"
    return indexes, b"\x00".join(encoded) + b"\x00\x00"


def _structure(kind: int, handle: int, body: bytes, strings: bytes = b"\x00\x00") -> bytes:
    header = struct.pack("<BBH", kind, 4 + len(body), handle)
    return header + body + strings


def _type16(handle: int, capacity_bytes: int, slots: int) -> bytes:
    capacity_kb = capacity_bytes // KIB
    if capacity_kb >= 0x8000_0000:
        max_kb, extended = 0x8000_0000, capacity_bytes
    else:
        max_kb, extended = capacity_kb, 0
    body = struct.pack(
        "<BBBIHHQ", 0x03, 0x03, 0x06, max_kb, _NO_HANDLE, slots, extended
    )  # system board, system memory, multi-bit ECC
    return _structure(16, handle, body)


def _type17_length(version: tuple[int, int]) -> int:
    if version >= (3, 3):
        return 0x5C
    if version >= (3, 2):
        return 0x54
    return 0x28


def _type17(dev: Type17, version: tuple[int, int]) -> bytes:
    (loc, bank, manuf, serial, asset, part), strings = _string_set(
        [dev.locator, dev.bank_locator, dev.manufacturer, dev.serial, dev.asset_tag]
        + [dev.part_number]
    )
    if dev.size_mb >= _SIZE_USE_EXTENDED:
        size_word, extended_size = _SIZE_USE_EXTENDED, dev.size_mb
    else:
        size_word, extended_size = dev.size_mb, 0
    speed_word = dev.speed_mts if dev.speed_mts < 0xFFFF else 0xFFFF
    type_detail = 0x0080 if dev.size_mb else 0x0004  # synchronous / unknown (empty)
    body = struct.pack(
        "<HHHHHBBBBBHHBBBBBIHHHH",
        dev.array_handle,
        _NO_HANDLE,
        72 if dev.size_mb else 0xFFFF,  # total width: 64 data + 8 ECC bits
        64 if dev.size_mb else 0xFFFF,
        size_word,
        dev.form_factor,
        0,  # device set: none
        loc,
        bank,
        dev.memory_type if dev.size_mb else 0x02,  # unknown type for an empty slot
        type_detail,
        speed_word,
        manuf,
        serial,
        asset,
        part,
        dev.rank & 0x0F,
        extended_size,
        speed_word,  # configured speed = rated speed
        1200,
        1200,
        1200,  # min/max/configured voltage in mV (DDR4)
    )
    length = _type17_length(version)
    if length >= 0x54:
        volatile = dev.size_mb * 1024 * 1024
        # memory technology DRAM, operating mode volatile, no firmware version string,
        # no module/controller ids; non-volatile, volatile, cache and logical sizes
        body += struct.pack("<BHBHHHHQQQQ", 0x03, 0x0004, 0, 0, 0, 0, 0, 0, volatile, 0, volatile)
    if length >= 0x5C:
        body += struct.pack("<II", dev.speed_mts, dev.speed_mts)
    assert len(body) == length - 4, (len(body), length)
    return _structure(17, dev.handle, body, strings)


def _kb_fields(start: int, end: int) -> tuple[int, int, int, int]:
    """(start_kb, end_kb, extended_start, extended_end) following DSP0134 §7.20/7.21."""
    if start < 0 or end < start:
        raise ValueError(f"bad range {start:#x}-{end:#x}")
    aligned = start % KIB == 0 and (end + 1) % KIB == 0
    start_kb, end_kb = start // KIB, end // KIB
    if aligned and start_kb < _USE_EXTENDED_32 and end_kb < _USE_EXTENDED_32:
        return start_kb, end_kb, 0, 0
    return _USE_EXTENDED_32, _USE_EXTENDED_32, start, end


def _type19(rng: Type19) -> bytes:
    start_kb, end_kb, ext_start, ext_end = _kb_fields(rng.start, rng.end)
    body = struct.pack(
        "<IIHBQQ", start_kb, end_kb, rng.array_handle, rng.partition_width, ext_start, ext_end
    )
    return _structure(19, rng.handle, body)


def _type20(rng: Type20) -> bytes:
    start_kb, end_kb, ext_start, ext_end = _kb_fields(rng.start, rng.end)
    body = struct.pack(
        "<IIHHBBBQQ",
        start_kb,
        end_kb,
        rng.device_handle,
        rng.array_mapped_handle,
        rng.partition_row_position,
        rng.interleave_position,
        rng.interleaved_data_depth,
        ext_start,
        ext_end,
    )
    return _structure(20, rng.handle, body)


def _checksum(data: bytes) -> int:
    """The byte that makes ``data`` plus itself sum to zero modulo 256."""
    return (-sum(data)) & 0xFF


def _entry_point_3(table: bytes, version: tuple[int, int], address: int) -> bytes:
    # layout: anchor(5) checksum(1) length major minor docrev eprev reserved(1) max(4) addr(8)
    raw = b"_SM3_" + b"\x00" + struct.pack("<BBBBBB", 0x18, version[0], version[1], 0, 0x01, 0)
    raw += struct.pack("<IQ", len(table), address)
    return raw[:5] + bytes([_checksum(raw)]) + raw[6:]


def _entry_point_2(
    table: bytes, version: tuple[int, int], address: int, count: int, max_structure: int
) -> bytes:
    bcd = ((version[0] & 0x0F) << 4) | (version[1] & 0x0F)
    intermediate = b"_DMI_" + b"\x00" + struct.pack("<HIHB", len(table), address, count, bcd)
    intermediate = intermediate[:5] + bytes([_checksum(intermediate)]) + intermediate[6:]
    head = b"_SM_" + b"\x00" + struct.pack("<BBBHB", 0x1F, version[0], version[1], max_structure, 0)
    raw = head + b"\x00" * 5 + intermediate
    assert len(raw) == 0x1F
    return raw[:4] + bytes([_checksum(raw)]) + raw[5:]


def build_smbios(
    type17s: Iterable[Type17],
    type19s: Iterable[Type19],
    type20s: Iterable[Type20],
    *,
    version: tuple[int, int] = (3, 3),
    table_address: int = _DEFAULT_TABLE_ADDRESS,
) -> tuple[bytes, bytes]:
    """``(smbios_entry_point, DMI)`` bytes for the given memory devices and ranges.

    One type 16 array is emitted per distinct ``array_handle`` of the type 17s (and
    type 19s), sized by the type 19 ranges that belong to it.
    """
    devices, arrays_ranges, device_ranges = list(type17s), list(type19s), list(type20s)
    if version[0] not in (2, 3):
        raise ValueError(f"unsupported SMBIOS version {version}")
    structures: list[bytes] = []
    array_handles = sorted(
        {d.array_handle for d in devices} | {r.array_handle for r in arrays_ranges}
    )
    for handle in array_handles:
        capacity = sum(r.end - r.start + 1 for r in arrays_ranges if r.array_handle == handle)
        slots = sum(1 for d in devices if d.array_handle == handle)
        structures.append(_type16(handle, capacity, slots))
    structures += [_type17(d, version) for d in devices]
    structures += [_type19(r) for r in arrays_ranges]
    structures += [_type20(r) for r in device_ranges]
    used = {d.handle for d in devices} | set(array_handles)
    used |= {r.handle for r in arrays_ranges} | {r.handle for r in device_ranges}
    structures.append(_structure(127, max(used, default=0) + 1, b""))
    table = b"".join(structures)
    if version[0] == 3:
        return _entry_point_3(table, version, table_address), table
    max_structure = max(len(s) for s in structures)
    return _entry_point_2(table, version, table_address, len(structures), max_structure), table
