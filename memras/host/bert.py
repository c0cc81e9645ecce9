"""ACPI BERT: the errors the firmware recorded before this boot (ACPI 6.x §18.3.1).

Two files, both exported by drivers/acpi/sysfs.c:

- ``/sys/firmware/acpi/tables/BERT``: the table — the 36-byte ACPI header, then
  ``u32 region_length`` and ``u64 address`` of the Boot Error Region
  (``struct acpi_table_bert``, 48 bytes);
- ``/sys/firmware/acpi/tables/data/BERT``: the region itself (root only), a run of
  Generic Error Status Blocks (``struct acpi_hest_generic_status``, 20 bytes: block
  status, raw data offset and length, data length, error severity), each followed by
  its Generic Error Data Entries (``struct acpi_hest_generic_data``: section type GUID,
  severity, revision, validation bits, flags, data length, FRU id, FRU text; revision
  ≥ 3 adds a u64 CPER timestamp, ``acpi_hest_generic_data_v300``) and their sections.

Only CPER Platform Memory Error sections (UEFI 2.x Appendix N.2.5, ``struct
cper_sec_mem_err`` in include/linux/cper.h, GUID a5bc1114-6f64-4ede-b863-3e83ed7c83b1)
become records; other sections are counted. The walk follows drivers/acpi/apei/bert.c
(``bert_print_all``): a block whose ``block_status`` is 0 ends the region, a block
longer than what remains is truncated firmware data (counted, never read past).

A section's fields are decoded the way drivers/firmware/efi/cper.c prints them
(``cper_mem_err_location``), and the location text it builds is the one the kernel
log's GHES block carries, so the DimmLocation mapping is the GHES parser's (node →
socket; card and module stay in ``driver_detail``). The label is the SMBIOS type 17
device the module handle names (``"<bank locator> <locator>"``, as ghes_edac does).

A record read here and the same record read from the kernel log's printed copy (the
GHES parser, ``BERT: Error records from previous boot``) must come out the same: the
severity rule (a section never above a corrected block), the all-ones "no address",
and the timestamp's reading are one function each in memras.records, called by both.

Time: the entry's CPER timestamp when its validation bit says it is valid (kept as
the firmware's clock, read as UTC like Linux reads the RTC: ``time_source=kernel``);
otherwise the error happened at some moment before this boot, and the record is
placed at the boot time with ``time_source=inferred`` — history, never a rate.
"""

from __future__ import annotations

import hashlib
import struct
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from memras.errors import KernelInterfaceError
from memras.host._fs import KernelFs
from memras.records import (
    CPER_SEVERITY_WORDS,
    DimmLocation,
    ErrorType,
    MemoryErrorEvent,
    Source,
    TimeSource,
    cper_address,
    cper_datetime,
    cper_error_status_text,
    cper_error_type,
    cper_placed,
)

TABLE_FILE = "/sys/firmware/acpi/tables/BERT"
REGION_FILE = "/sys/firmware/acpi/tables/data/BERT"

ACPI_HEADER = struct.Struct("<4sIBB6s8sI4sI")  # 36 bytes
BERT_TABLE = struct.Struct("<IQ")  # region_length, address (after the header)
STATUS_BLOCK = struct.Struct("<5I")  # block_status, raw off, raw len, data len, severity
DATA_ENTRY = struct.Struct("<16sIHBBI16s20s")  # 64 bytes (acpi_hest_generic_data)
DATA_ENTRY_TIMESTAMP = struct.Struct("<Q")  # revision >= 3 (acpi_hest_generic_data_v300)
# struct cper_sec_mem_err (UEFI 2.3+): 80 bytes
MEMORY_SECTION = struct.Struct("<4Q8H3QBBHHH")

MEMORY_ERROR_GUID = uuid.UUID("a5bc1114-6f64-4ede-b863-3e83ed7c83b1")

# acpi_hest_generic_data.validation_bits (ACPI_HEST_GEN_VALID_*)
GEN_VALID_FRU_ID, GEN_VALID_FRU_STRING, GEN_VALID_TIMESTAMP = 0x1, 0x2, 0x4

# cper_sec_mem_err.validation_bits (CPER_MEM_VALID_*, include/linux/cper.h)
MEM_VALID_ERROR_STATUS = 0x0001
MEM_VALID_PA = 0x0002
MEM_VALID_PA_MASK = 0x0004
MEM_VALID_NODE = 0x0008
MEM_VALID_CARD = 0x0010
MEM_VALID_MODULE = 0x0020
MEM_VALID_BANK = 0x0040
MEM_VALID_DEVICE = 0x0080
MEM_VALID_ROW = 0x0100
MEM_VALID_COLUMN = 0x0200
MEM_VALID_BIT_POSITION = 0x0400
MEM_VALID_REQUESTOR_ID = 0x0800
MEM_VALID_RESPONDER_ID = 0x1000
MEM_VALID_TARGET_ID = 0x2000
MEM_VALID_ERROR_TYPE = 0x4000
MEM_VALID_RANK_NUMBER = 0x8000
MEM_VALID_MODULE_HANDLE = 0x20000
MEM_VALID_ROW_EXT = 0x40000
MEM_VALID_BANK_GROUP = 0x80000
MEM_VALID_BANK_ADDRESS = 0x100000
MEM_VALID_CHIP_ID = 0x200000
MEM_CHIP_ID_SHIFT = 5  # chip id in extended bits 5-7

# CPER_SEV_* — the section's (and block's) error_severity, as cper_severity_str words
SEVERITIES = dict(enumerate(CPER_SEVERITY_WORDS))

# cper_mem_err_type_strs[] (drivers/firmware/efi/cper.c)
MEMORY_ERROR_TYPES = (
    "unknown", "no error", "single-bit ECC", "multi-bit ECC",
    "single-symbol chipkill ECC", "multi-symbol chipkill ECC", "master abort",
    "target abort", "parity error", "watchdog timeout", "invalid address",
    "mirror Broken", "memory sparing", "scrub corrected error",
    "scrub uncorrected error", "physical memory map-out event",
)

MAX_BLOCKS = 4096  # a region of more status blocks than this is not firmware's
MAX_SECTIONS_PER_BLOCK = 1024  # block_status bits 4..13: at most 1023 entries


@dataclass(frozen=True, slots=True)
class BertTable:
    """``struct acpi_table_bert``: where the firmware put the Boot Error Region."""

    region_length: int
    address: int
    oem_id: str


@dataclass
class BertDecode:
    """What one region held: memory-error records and the rest, counted."""

    records: list[MemoryErrorEvent] = field(default_factory=list)
    blocks: int = 0
    other_sections: int = 0  # sections of other types (processor, PCIe …): not memory
    skipped: list[str] = field(default_factory=list)  # why a part could not be read
    digests: list[str] = field(default_factory=list)  # one per status block read


def parse_table(data: bytes) -> BertTable:
    """The BERT table; ValueError when it is not one (too short, wrong signature)."""
    if len(data) < ACPI_HEADER.size + BERT_TABLE.size:
        raise ValueError(f"BERT table is {len(data)} bytes, shorter than the 48 of "
                         "struct acpi_table_bert")
    signature, _length, _rev, _sum, oem_id, *_ = ACPI_HEADER.unpack_from(data)
    if signature != b"BERT":
        raise ValueError(f"table signature is {signature!r}, not b'BERT'")
    region_length, address = BERT_TABLE.unpack_from(data, ACPI_HEADER.size)
    return BertTable(region_length, address, oem_id.decode("ascii", "replace").strip())


def cper_timestamp(value: int) -> datetime | None:
    """A CPER timestamp (UEFI N.2.1: BCD seconds, minutes, hours, flags, day, month,
    year, century); None when it is no date. Each byte is read as the kernel's
    cper_print_tstamp reads it (``bcd2bin``: low nibble + high nibble × 10, whatever the
    nibbles), so the date is the one its printed copy gives (memras.records.cper_datetime).
    """
    sec, minute, hour, _flags, day, month, year, century = (
        (b & 0xF) + (b >> 4) * 10 for b in value.to_bytes(8, "little"))
    return cper_datetime(century, year, month, day, hour, minute, sec)


def _location_text(v: int, f: dict[str, int]) -> str:
    """``cper_mem_err_location``'s text (drivers/firmware/efi/cper.c, ≥ 5.18 spelling)."""
    parts = []
    for bit, name in ((MEM_VALID_NODE, "node"), (MEM_VALID_CARD, "card"),
                      (MEM_VALID_MODULE, "module"), (MEM_VALID_RANK_NUMBER, "rank")):
        if v & bit:
            parts.append(f"{name}:{f[name]}")
    if v & MEM_VALID_BANK:
        parts.append(f"bank:{f['bank']}")
    if v & MEM_VALID_BANK_GROUP:
        parts.append(f"bank_group:{f['bank'] >> 8}")
    if v & MEM_VALID_BANK_ADDRESS:
        parts.append(f"bank_address:{f['bank'] & 0xFF}")
    if v & MEM_VALID_DEVICE:
        parts.append(f"device:{f['device']}")
    if v & (MEM_VALID_ROW | MEM_VALID_ROW_EXT):
        parts.append(f"row:{f['row']}")
    if v & MEM_VALID_COLUMN:
        parts.append(f"column:{f['column']}")
    if v & MEM_VALID_BIT_POSITION:
        parts.append(f"bit_position:{f['bit_pos']}")
    for bit, name in ((MEM_VALID_REQUESTOR_ID, "requestor_id"),
                      (MEM_VALID_RESPONDER_ID, "responder_id"),
                      (MEM_VALID_TARGET_ID, "target_id")):
        if v & bit:
            parts.append(f"{name}:{f[name]:#018x}")
    if v & MEM_VALID_CHIP_ID:
        parts.append(f"chip_id:{f['extended'] >> MEM_CHIP_ID_SHIFT}")
    return " ".join(parts)


def _location(v: int, f: dict[str, int], label: str | None) -> DimmLocation:
    """The GHES parser's mapping of the same text (memras.ingest.parsers.locations):
    node is the socket, card/module/bit position are not DimmLocation fields, and the
    first of ``bank:`` and ``bank_address:`` the text names is the bank."""
    bank = bank_group = None
    if v & MEM_VALID_BANK:
        bank = f["bank"]
    elif v & MEM_VALID_BANK_ADDRESS:
        bank = f["bank"] & 0xFF
    if v & MEM_VALID_BANK_GROUP:
        bank_group = f["bank"] >> 8
    return DimmLocation(
        socket=f["node"] if v & MEM_VALID_NODE else None,
        rank=f["rank"] if v & MEM_VALID_RANK_NUMBER else None,
        bank_group=bank_group,
        bank=bank,
        device=f["device"] if v & MEM_VALID_DEVICE else None,
        row=f["row"] if v & (MEM_VALID_ROW | MEM_VALID_ROW_EXT) else None,
        column=f["column"] if v & MEM_VALID_COLUMN else None,
        label=label,
    )


def _grain_bits(mask: int) -> int | None:
    return (mask & -mask).bit_length() - 1 if mask else None


def _memory_record(body: bytes, grade: ErrorType, when: datetime | None,
                   time_source: TimeSource, fru_text: str, raw: str,
                   label_of: Callable[[int], str | None] | None) -> MemoryErrorEvent:
    (valid, error_status, address, mask, node, card, module, bank, device, row, column,
     bit_pos, requestor, responder, target, error_type, extended, rank, _array_h,
     module_handle) = MEMORY_SECTION.unpack_from(body)
    if valid & MEM_VALID_ROW_EXT:  # row bits 16-17 in extended bits 0-1
        row |= (extended & 0x3) << 16
    f = {"node": node, "card": card, "module": module, "bank": bank, "device": device,
         "row": row, "column": column, "bit_pos": bit_pos, "rank": rank,
         "requestor_id": requestor, "responder_id": responder, "target_id": target,
         "extended": extended}
    label = None
    if valid & MEM_VALID_MODULE_HANDLE and label_of is not None:
        label = label_of(module_handle)
    label = label or fru_text or None
    kind = ""
    if valid & MEM_VALID_ERROR_TYPE:
        kind = (MEMORY_ERROR_TYPES[error_type] if error_type < len(MEMORY_ERROR_TYPES)
                else f"error type {error_type}")
    detail = _location_text(valid, f)
    pa = cper_address(address) if valid & MEM_VALID_PA else None
    return MemoryErrorEvent(
        error_type=grade,
        source=Source.FIRMWARE,
        timestamp=when,
        time_source=time_source if when is not None else None,
        address=pa,
        grain_bits=_grain_bits(mask) if valid & MEM_VALID_PA_MASK else None,
        message=kind or (cper_error_status_text(error_status)
                         if valid & MEM_VALID_ERROR_STATUS else "memory error"),
        driver="bert",
        driver_detail=detail,
        location=_location(valid, f, label),
        raw=raw,
        flags=() if pa is not None else ("address:not-valid",),
    )


def decode_bert(region: bytes, *, boot_time: datetime | None = None,
                label_of: Callable[[int], str | None] | None = None) -> BertDecode:
    """Every CPER memory section of a Boot Error Region, as records.

    ``boot_time`` places sections without a valid timestamp (``inferred``); without it
    they stay undated. ``label_of`` maps an SMBIOS type 17 handle to a DIMM label.
    Never raises on bad input: what cannot be read is in ``skipped``, with why.
    """
    out = BertDecode()
    offset = 0
    while offset + STATUS_BLOCK.size <= len(region):
        if out.blocks >= MAX_BLOCKS:
            out.skipped.append(f"more than {MAX_BLOCKS} status blocks: the rest not read")
            break
        block_status, raw_off, raw_len, data_len, severity = STATUS_BLOCK.unpack_from(
            region, offset)
        if block_status == 0:
            break  # bert.c: an empty block ends the region
        length = raw_off + raw_len if raw_off else STATUS_BLOCK.size + data_len
        if length < STATUS_BLOCK.size or offset + length > len(region) \
                or data_len > length - STATUS_BLOCK.size:
            out.skipped.append(f"truncated status block at offset {offset} (length "
                               f"{length}, {len(region) - offset} bytes left)")
            break
        block = region[offset:offset + length]
        digest = hashlib.sha256(block).hexdigest()[:32]
        out.blocks += 1
        out.digests.append(digest)
        _decode_block(block, block_status, severity, digest, boot_time, label_of, out)
        offset += length
    else:
        if 0 < len(region) - offset < STATUS_BLOCK.size and any(region[offset:]):
            out.skipped.append(f"{len(region) - offset} trailing bytes, too few for a "
                               "status block")
    return out


def _decode_block(block: bytes, block_status: int, severity: int, digest: str,
                  boot_time: datetime | None, label_of: Callable[[int], str | None] | None,
                  out: BertDecode) -> None:
    data_len = STATUS_BLOCK.unpack_from(block)[3]
    entries = block[STATUS_BLOCK.size:STATUS_BLOCK.size + data_len]
    block_severity = SEVERITIES.get(severity, "info")
    pos = 0
    index = 0
    while pos + DATA_ENTRY.size <= len(entries):
        if index >= MAX_SECTIONS_PER_BLOCK:
            out.skipped.append(f"block {digest[:8]}: more than {MAX_SECTIONS_PER_BLOCK} "
                               "sections")
            return
        (guid, sec_severity, revision, valid, _flags, length, _fru_id,
         fru_raw) = DATA_ENTRY.unpack_from(entries, pos)
        head = DATA_ENTRY.size
        stamp = None
        if revision >> 8 >= 3:  # acpi_hest_get_version(): the major in the high byte
            if pos + head + DATA_ENTRY_TIMESTAMP.size > len(entries):
                out.skipped.append(f"block {digest[:8]} section {index}: truncated header")
                return
            stamp = DATA_ENTRY_TIMESTAMP.unpack_from(entries, pos + head)[0]
            head += DATA_ENTRY_TIMESTAMP.size
        body = entries[pos + head:pos + head + length]
        if len(body) < length:
            out.skipped.append(f"block {digest[:8]} section {index}: {length} bytes of "
                               f"data, {len(body)} present")
            return
        section_type = uuid.UUID(bytes_le=guid)
        if section_type != MEMORY_ERROR_GUID:
            out.other_sections += 1
        elif len(body) < MEMORY_SECTION.size:
            out.skipped.append(f"block {digest[:8]} section {index}: memory error section "
                               f"of {len(body)} bytes, shorter than {MEMORY_SECTION.size}")
        else:
            own = (cper_timestamp(stamp) if stamp is not None and valid & GEN_VALID_TIMESTAMP
                   else None)
            when, source = cper_placed(own, boot_time)
            fru = (fru_raw.split(b"\0", 1)[0].decode("ascii", "replace").strip()
                   if valid & GEN_VALID_FRU_STRING else "")
            severity_name = SEVERITIES.get(sec_severity, block_severity)
            raw = (f"BERT block {digest} section {index}: severity {severity_name}, "
                   f"memory error, {body[:MEMORY_SECTION.size].hex()}")
            error_type = cper_error_type(SEVERITIES.get(sec_severity), block_severity)
            out.records.append(_memory_record(body, error_type, when, source, fru, raw,
                                              label_of))
        pos += head + length
        index += 1
    if pos < len(entries):
        out.skipped.append(f"block {digest[:8]}: {len(entries) - pos} bytes after the last "
                           "section, too few for a section header")


class Bert:
    """The host's BERT files (both absent on machines without the table)."""

    def __init__(self, fs: KernelFs) -> None:
        self.fs = fs

    @property
    def present(self) -> bool:
        return self.fs.exists(TABLE_FILE) or self.fs.exists(REGION_FILE)

    def table(self) -> BertTable | None:
        """The table, or None when absent; KernelInterfaceError when it is not one."""
        if not self.fs.exists(TABLE_FILE):
            return None
        try:
            return parse_table(self.fs.read_bytes(TABLE_FILE))
        except ValueError as exc:
            raise KernelInterfaceError(f"{TABLE_FILE}: {exc}") from None

    def region(self) -> bytes | None:
        """The Boot Error Region's bytes; None when the file is absent. Reading it
        needs root (the kernel makes it 0400)."""
        if not self.fs.exists(REGION_FILE):
            return None
        return self.fs.read_bytes(REGION_FILE)
