"""SMBIOS memory tables: /sys/firmware/dmi/tables/{smbios_entry_point,DMI}, in pure Python.

The kernel exports the firmware's entry point and structure table verbatim
(drivers/firmware/dmi-sysfs.c, dmi_scan.c); this module decodes them without
dmidecode, following DMTF DSP0134 3.3 and mirroring the kernel's walk in
``dmi_decode_table()``: a structure is a formatted area (type, length, handle, …)
followed by a string set ending in a double NUL; the walk stops at type 127 or when
fewer than 4 bytes remain.

It decides three things memras relies on to name a module:
- which memory devices exist (type 17: locator, bank locator, size, serial…);
- which system physical ranges each memory array serves (type 19);
- which ranges each device backs, and whether interleaved (type 20).

Damage is never a traceback: a structure whose length or strings run past the end
raises :class:`TableDamaged` (a ParseError naming the offset) carrying every
structure parsed before it, and :class:`Smbios` keeps those and records the problem,
because a type 17 that parsed completely before the damage is still true.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import TypeVar

from memras.errors import KernelInterfaceError, ParseError
from memras.host._fs import KernelFs

DMI_TABLES_DIR = "/sys/firmware/dmi/tables"
ENTRY_POINT_FILE = f"{DMI_TABLES_DIR}/smbios_entry_point"
TABLE_FILE = f"{DMI_TABLES_DIR}/DMI"

TYPE_MEMORY_DEVICE = 17
TYPE_ARRAY_MAPPED_ADDRESS = 19
TYPE_DEVICE_MAPPED_ADDRESS = 20
TYPE_END_OF_TABLE = 127
_HEADER_LEN = 4
_USE_EXTENDED_32 = 0xFFFFFFFF
KIB = 1024
MIB = 1024 * 1024
_R = TypeVar("_R")

# DSP0134 §7.18.2 memory device type (subset; unknown codes print as hex)
MEMORY_TYPES = {
    0x01: "Other", 0x02: "Unknown", 0x0F: "SDRAM", 0x12: "DDR", 0x13: "DDR2",
    0x18: "DDR3", 0x1A: "DDR4", 0x1B: "LPDDR", 0x1C: "LPDDR2", 0x1D: "LPDDR3",
    0x1E: "LPDDR4", 0x1F: "Logical non-volatile device", 0x20: "HBM", 0x21: "HBM2",
    0x22: "DDR5", 0x23: "LPDDR5", 0x24: "HBM3",
}
# DSP0134 §7.18.1 form factor (subset)
FORM_FACTORS = {
    0x01: "Other", 0x02: "Unknown", 0x09: "DIMM", 0x0D: "SODIMM", 0x0F: "FB-DIMM",
    0x10: "Die",
}


class TableDamaged(ParseError):
    """The structure table is truncated or corrupt at ``offset``."""

    def __init__(self, msg: str, *, offset: int, parsed: list[Structure]) -> None:
        super().__init__(msg, hint="the firmware table is damaged; "
                         "what was parsed before this offset is kept")
        self.offset = offset
        self.parsed = parsed


@dataclass(frozen=True, slots=True)
class EntryPoint:
    anchor: str  # "_SM3_", "_SM_" or "_DMI_" (legacy)
    version: tuple[int, int]
    table_address: int
    table_length: int  # 3.x: the maximum size; 2.x: the exact length
    structure_count: int | None  # 2.x only


@dataclass(frozen=True, slots=True)
class Structure:
    """One structure: its formatted area (header included) and its strings."""

    type: int
    handle: int
    offset: int  # where it starts in the table
    data: bytes  # formatted area, header included
    strings: tuple[str, ...]

    def byte(self, off: int) -> int | None:
        return self.data[off] if off < len(self.data) else None

    def word(self, off: int) -> int | None:
        return struct.unpack_from("<H", self.data, off)[0] if off + 2 <= len(self.data) else None

    def dword(self, off: int) -> int | None:
        return struct.unpack_from("<I", self.data, off)[0] if off + 4 <= len(self.data) else None

    def qword(self, off: int) -> int | None:
        return struct.unpack_from("<Q", self.data, off)[0] if off + 8 <= len(self.data) else None

    def string(self, off: int) -> str | None:
        """The string the byte at ``off`` points to; "" for index 0, None if it is missing."""
        index = self.byte(off)
        if index is None or index == 0:
            return ""
        return self.strings[index - 1] if index <= len(self.strings) else None


@dataclass(frozen=True, slots=True)
class MemoryDevice:
    """Type 17. ``size_bytes`` is 0 for an empty slot and None when unknown."""

    handle: int
    array_handle: int | None
    size_bytes: int | None
    form_factor: int | None
    locator: str
    bank_locator: str
    memory_type: int | None
    speed_mts: int | None
    configured_speed_mts: int | None
    manufacturer: str
    serial: str
    asset_tag: str
    part_number: str
    rank: int | None
    missing_strings: int = 0  # string references past the string set

    @property
    def populated(self) -> bool:
        return self.size_bytes != 0

    @property
    def memory_type_name(self) -> str:
        if self.memory_type is None:
            return ""
        return MEMORY_TYPES.get(self.memory_type, f"{self.memory_type:#04x}")

    @property
    def form_factor_name(self) -> str:
        if self.form_factor is None:
            return ""
        return FORM_FACTORS.get(self.form_factor, f"{self.form_factor:#04x}")

    @property
    def full_locator(self) -> str:
        """``"<bank locator> <locator>"``: how ghes_edac labels a DIMM."""
        return " ".join(p for p in (self.bank_locator, self.locator) if p)


@dataclass(frozen=True, slots=True)
class ArrayMappedRange:
    """Type 19: bytes ``start..end`` (inclusive) served by memory array ``array_handle``."""

    handle: int
    start: int
    end: int
    array_handle: int
    partition_width: int | None

    def contains(self, address: int) -> bool:
        return self.start <= address <= self.end


@dataclass(frozen=True, slots=True)
class DeviceMappedRange:
    """Type 20: bytes ``start..end`` (inclusive) backed by memory device ``device_handle``."""

    handle: int
    start: int
    end: int
    device_handle: int
    array_mapped_handle: int
    partition_row_position: int | None  # 0xFF = unknown
    interleave_position: int | None  # 0 = not interleaved, 0xFF = unknown
    interleaved_data_depth: int | None  # rows read in a row from this device; 0xFF unknown

    def contains(self, address: int) -> bool:
        return self.start <= address <= self.end

    @property
    def interleaved(self) -> bool:
        """Whether the firmware says (or cannot rule out) that other devices share the range."""
        depth = self.interleaved_data_depth
        position = self.interleave_position
        return (depth is not None and depth != 1 and depth != 0) or position not in (0, None)


# --- entry point ---------------------------------------------------------------------

def _checksum_ok(data: bytes) -> bool:
    return sum(data) & 0xFF == 0


def parse_entry_point(data: bytes) -> EntryPoint:
    """Decode a 64-bit ``_SM3_``, 32-bit ``_SM_`` or legacy ``_DMI_`` entry point."""
    if data.startswith(b"_SM3_"):
        return _entry_point_3(data)
    if data.startswith(b"_SM_"):
        return _entry_point_2(data)
    if data.startswith(b"_DMI_"):
        return _legacy_dmi(data, anchor="_DMI_")
    raise ParseError(f"not an SMBIOS entry point: starts with {data[:5]!r}",
                     hint="expected the _SM3_, _SM_ or _DMI_ anchor")


def _entry_point_3(data: bytes) -> EntryPoint:
    if len(data) < 0x18:
        raise ParseError(f"SMBIOS 3 entry point is {len(data)} bytes, needs 24")
    length = data[6]
    if length < 0x18 or length > len(data):
        raise ParseError(f"SMBIOS 3 entry point length byte {length} does not fit {len(data)} "
                         "bytes")
    if not _checksum_ok(data[:length]):
        raise ParseError("SMBIOS 3 entry point checksum is wrong",
                         hint="the entry point is corrupt or was truncated")
    max_size, address = struct.unpack_from("<IQ", data, 0x0C)
    return EntryPoint("_SM3_", (data[7], data[8]), address, max_size, None)


def _entry_point_2(data: bytes) -> EntryPoint:
    if len(data) < 0x1F:
        raise ParseError(f"SMBIOS 2 entry point is {len(data)} bytes, needs 31")
    length = data[5]
    # the kernel accepts 0x1E..0x20: some firmware reports 0x1E for a 0x1F structure
    if not 0x1E <= length <= min(0x20, len(data)) or not _checksum_ok(data[:length]):
        raise ParseError("SMBIOS 2 entry point length or checksum is wrong",
                         hint="the entry point is corrupt or was truncated")
    if data[0x10:0x15] != b"_DMI_":
        raise ParseError("SMBIOS 2 entry point lacks the _DMI_ anchor at offset 0x10")
    legacy = _legacy_dmi(data[0x10:0x1F], anchor="_SM_")
    return EntryPoint("_SM_", (data[6], data[7]), legacy.table_address,
                      legacy.table_length, legacy.structure_count)


def _legacy_dmi(data: bytes, *, anchor: str) -> EntryPoint:
    if len(data) < 15:
        raise ParseError(f"_DMI_ entry point is {len(data)} bytes, needs 15")
    if not _checksum_ok(data[:15]):
        raise ParseError("_DMI_ intermediate checksum is wrong",
                         hint="the entry point is corrupt or was truncated")
    length, address, count = struct.unpack_from("<HIH", data, 6)
    bcd = data[14]
    return EntryPoint(anchor, (bcd >> 4, bcd & 0x0F), address, length, count)


# --- structures ------------------------------------------------------------------------

def parse_structures(table: bytes) -> list[Structure]:
    """Every structure up to type 127 or the end; :class:`TableDamaged` at damage."""
    out: list[Structure] = []
    offset = 0
    while offset + _HEADER_LEN <= len(table):
        kind, length, handle = struct.unpack_from("<BBH", table, offset)
        if length < _HEADER_LEN:
            raise TableDamaged(f"SMBIOS structure at offset {offset:#x} has length {length}, "
                               "less than its 4-byte header", offset=offset, parsed=out)
        strings_at = offset + length
        if strings_at > len(table):
            raise TableDamaged(f"SMBIOS structure type {kind} at offset {offset:#x} is cut off: "
                               f"needs {length} bytes, {len(table) - offset} remain",
                               offset=offset, parsed=out)
        end = table.find(b"\x00\x00", strings_at)
        if end < 0:
            raise TableDamaged(f"SMBIOS structure type {kind} at offset {offset:#x} has no "
                               "double-NUL end to its strings", offset=offset, parsed=out)
        out.append(Structure(kind, handle, offset, table[offset:strings_at],
                             _split_strings(table[strings_at:end])))
        offset = end + 2
        if kind == TYPE_END_OF_TABLE:
            break
    return out


def _split_strings(raw: bytes) -> tuple[str, ...]:
    if not raw:
        return ()
    return tuple(s.decode("utf-8", errors="replace") for s in raw.split(b"\x00"))


# --- decoders --------------------------------------------------------------------------

def _size_bytes(s: Structure) -> int | None:
    """Size word at 0x0C: 0 empty, 0xFFFF unknown, 0x7FFF extended (MB), bit 15 = KB units."""
    word = s.word(0x0C)
    if word is None or word == 0xFFFF:
        return None
    if word == 0x7FFF:
        extended = s.dword(0x1C)
        return None if extended is None else (extended & 0x7FFFFFFF) * MIB
    if word & 0x8000:
        return (word & 0x7FFF) * KIB
    return word * MIB


def _speed(s: Structure, word_off: int, extended_off: int) -> int | None:
    """MT/s; 0 unknown; 0xFFFF means the 3.3 extended dword holds it."""
    word = s.word(word_off)
    if word == 0xFFFF:
        extended = s.dword(extended_off)
        return (extended & 0x7FFFFFFF) or None if extended is not None else None
    return word or None


def decode_memory_device(s: Structure) -> MemoryDevice:
    names = {"locator": 0x10, "bank_locator": 0x11, "manufacturer": 0x17, "serial": 0x18,
             "asset_tag": 0x19, "part_number": 0x1A}
    values = {key: s.string(off) for key, off in names.items()}
    missing = sum(1 for v in values.values() if v is None)
    rank = s.byte(0x1B)
    return MemoryDevice(
        handle=s.handle,
        array_handle=s.word(0x04),
        size_bytes=_size_bytes(s),
        form_factor=s.byte(0x0E),
        memory_type=s.byte(0x12),
        speed_mts=_speed(s, 0x15, 0x54),
        configured_speed_mts=_speed(s, 0x20, 0x58),
        rank=(rank & 0x0F) or None if rank is not None else None,
        missing_strings=missing,
        **{key: v or "" for key, v in values.items()},
    )


def _range(s: Structure, ext_off: int) -> tuple[int, int] | None:
    start_kb, end_kb = s.dword(0x04), s.dword(0x08)
    if start_kb is None or end_kb is None:
        return None
    if start_kb == _USE_EXTENDED_32:
        start, end = s.qword(ext_off), s.qword(ext_off + 8)
        if start is None or end is None:
            return None
    else:
        start, end = start_kb * KIB, end_kb * KIB + KIB - 1  # end names the last KB
    return (start, end) if end >= start else None


def decode_array_mapped_range(s: Structure) -> ArrayMappedRange | None:
    """Type 19, or None when its addresses are absent or end before they start."""
    span = _range(s, 0x0F)
    handle = s.word(0x0C)
    if span is None or handle is None:
        return None
    return ArrayMappedRange(s.handle, span[0], span[1], handle, s.byte(0x0E))


def decode_device_mapped_range(s: Structure) -> DeviceMappedRange | None:
    """Type 20, or None when its addresses are absent or end before they start."""
    span = _range(s, 0x13)
    device, array = s.word(0x0C), s.word(0x0E)
    if span is None or device is None or array is None:
        return None
    return DeviceMappedRange(s.handle, span[0], span[1], device, array,
                             s.byte(0x10), s.byte(0x11), s.byte(0x12))


# --- the host reader -----------------------------------------------------------------------

class Smbios:
    """The machine's SMBIOS memory description, read once and kept."""

    def __init__(self, fs: KernelFs) -> None:
        self.fs = fs
        self.problems: list[str] = []  # damage and unreadable files, shown to the user

    @property
    def present(self) -> bool:
        return self.fs.exists(TABLE_FILE)

    @cached_property
    def entry_point(self) -> EntryPoint | None:
        if not self.fs.exists(ENTRY_POINT_FILE):
            return None
        try:
            return parse_entry_point(self.fs.read_bytes(ENTRY_POINT_FILE))
        except (ParseError, KernelInterfaceError) as exc:
            self.problems.append(exc.msg)
            return None

    @cached_property
    def structures(self) -> list[Structure]:
        if not self.present:
            return []
        try:
            table = self.fs.read_bytes(TABLE_FILE)
        except KernelInterfaceError as exc:
            self.problems.append(f"{exc.msg} (SMBIOS tables are readable by root only)")
            return []
        _ = self.entry_point  # its problems are worth reporting; the table stands alone
        try:
            structures = parse_structures(table)
        except TableDamaged as exc:
            self.problems.append(exc.msg)
            return exc.parsed
        if structures and structures[-1].type != TYPE_END_OF_TABLE:
            self.problems.append(f"SMBIOS table ends after {len(table)} bytes without an "
                                 "end-of-table structure; it may be truncated")
        return structures

    def _of_type(self, kind: int) -> list[Structure]:
        return [s for s in self.structures if s.type == kind]

    def memory_devices(self) -> list[MemoryDevice]:
        return [decode_memory_device(s) for s in self._of_type(TYPE_MEMORY_DEVICE)]

    def array_mapped_ranges(self) -> list[ArrayMappedRange]:
        return self._ranges(TYPE_ARRAY_MAPPED_ADDRESS, decode_array_mapped_range)

    def device_mapped_ranges(self) -> list[DeviceMappedRange]:
        return self._ranges(TYPE_DEVICE_MAPPED_ADDRESS, decode_device_mapped_range)

    def _ranges(self, kind: int, decode: Callable[[Structure], _R | None]) -> list[_R]:
        """Decoded ranges; one without a valid address range is skipped and counted."""
        out: list[_R] = []
        skipped = 0
        for structure in self._of_type(kind):
            decoded = decode(structure)
            if decoded is None:
                skipped += 1
            else:
                out.append(decoded)
        note = f"type {kind} structures without a valid address range skipped: {skipped}"
        if skipped and note not in self.problems:
            self.problems.append(note)
        return out

    def device(self, handle: int) -> MemoryDevice | None:
        return next((d for d in self.memory_devices() if d.handle == handle), None)
