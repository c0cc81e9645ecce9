"""One BERT record, two roads: its bytes (memras.host.bert) and the kernel's printed copy
(the GHES parser behind ``BERT: Error records from previous boot``) give the same error.

The region is built with test_bert's struct builders; the printed copy is written here
from drivers/firmware/efi/cper.c as of 6.x (``cper_estatus_print``,
``cper_estatus_print_section``, ``cper_print_tstamp``, ``cper_print_mem``,
``cper_mem_err_location``, ``cper_dimm_err_location``) and drivers/acpi/apei/bert.c,
independently of the decoder's own location text.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from memras.host.bert import decode_bert
from memras.ingest.parsers import KernelLogParser
from memras.ingest.sources import with_wall_time
from memras.records import ErrorType, MemoryErrorEvent, Source, TimeSource
from tests.unit.test_bert import MEM_GUID, cper_time, data_entry, mem_section, status_block

BOOT = datetime(2026, 12, 7, 8, 0, tzinfo=UTC)
SEVERITY_WORDS = {0: "recoverable", 1: "fatal", 2: "corrected", 3: "info"}  # cper.c
MEM_TYPES = {2: "single-bit ECC", 3: "multi-bit ECC", 5: "multi-symbol chipkill ECC"}
PA, PA_MASK, NODE, RANK, BANK, ROW, COLUMN = 0x2, 0x4, 0x8, 0x8000, 0x40, 0x100, 0x200
ERROR_TYPE, MODULE_HANDLE, BANK_GROUP, BANK_ADDRESS = 0x4000, 0x20000, 0x80000, 0x100000
REQUESTOR_ID, CHIP_ID = 0x800, 0x200000
DIMMS = {0x1100: ("P0_Node0_Channel1_Dimm0", "DIMM_B1")}  # SMBIOS type 17: bank, locator


@dataclass(frozen=True)
class Case:
    block: int  # CPER_SEV_* of the Generic Error Status Block
    section: int  # CPER_SEV_* of the data entry
    expected: ErrorType
    pa: int = 0x6A47D1F540
    valid: int = PA | PA_MASK | NODE | RANK | BANK | ROW | COLUMN | ERROR_TYPE
    bank: int = 4
    extended: int = 0
    stamp: int | None = None  # the entry's raw CPER timestamp (BCD bytes)
    when: datetime | None = None  # the time both roads give it; None: this boot's start
    fru: bytes = b""


CASES = {
    "corrected-block-fatal-section": Case(2, 1, ErrorType.CORRECTED),
    "corrected-block-recoverable-section": Case(2, 0, ErrorType.CORRECTED),
    "corrected-block-corrected-section": Case(2, 2, ErrorType.CORRECTED),
    "fatal-block-corrected-section": Case(1, 2, ErrorType.CORRECTED),
    "fatal-block-fatal-section": Case(1, 1, ErrorType.FATAL),
    "recoverable": Case(0, 0, ErrorType.UNCORRECTED),
    "unknown-section-severity-takes-the-block": Case(0, 7, ErrorType.UNCORRECTED),
    "all-ones-address-is-none": Case(1, 1, ErrorType.FATAL, pa=(1 << 64) - 1),
    # Yitian's firmware sets bank, bank group and bank address at once (bank:513
    # bank_group:2 bank_address:1): the first of bank/bank_address the text names wins
    "bank-and-its-group-and-address": Case(
        2, 2, ErrorType.CORRECTED, bank=2 << 8 | 1,
        valid=PA | NODE | BANK | BANK_GROUP | BANK_ADDRESS | ROW | ERROR_TYPE),
    # no bank, node, card, module or rank: the location line opens with bank_group
    "location-opening-with-bank-group": Case(
        2, 2, ErrorType.CORRECTED, bank=3 << 8 | 0x1F,
        valid=PA | BANK_GROUP | BANK_ADDRESS | ROW | COLUMN | ERROR_TYPE),
    # the 6.x tail of the location: requestor id, chip id (extended bits 5-7)
    "requestor-and-chip-id": Case(1, 1, ErrorType.FATAL, extended=5 << 5,
                                  valid=PA | NODE | ROW | REQUESTOR_ID | CHIP_ID | ERROR_TYPE),
    "own-timestamp": Case(0, 0, ErrorType.UNCORRECTED, stamp=cper_time(2026, 12, 6, 23, 59, 58),
                          when=datetime(2026, 12, 6, 23, 59, 58, tzinfo=UTC)),
    # a byte that is no BCD: the kernel's bcd2bin reads 0x0A as 10, and prints it so
    "non-bcd-day-read-as-the-kernel-reads-it": Case(
        0, 0, ErrorType.UNCORRECTED, stamp=int.from_bytes(
            bytes([0x58, 0x59, 0x23, 0, 0x0A, 0x12, 0x26, 0x20]), "little"),
        when=datetime(2026, 12, 10, 23, 59, 58, tzinfo=UTC)),
    # 0xA0 is 100 to bcd2bin: a three-digit year no date has; the boot's start stands
    "three-digit-year-is-no-date": Case(
        0, 0, ErrorType.UNCORRECTED, stamp=int.from_bytes(
            bytes([0x58, 0x59, 0x23, 0, 0x05, 0x12, 0xA0, 0x20]), "little")),
    "smbios-label": Case(1, 1, ErrorType.FATAL, valid=PA | NODE | ERROR_TYPE | MODULE_HANDLE,
                         fru=b"CPU0_DIMM_B1"),
    "fru-text-label": Case(2, 2, ErrorType.CORRECTED, fru=b"CPU1_DIMM_A0"),
}


def region_of(case: Case) -> tuple[bytes, bytes]:
    """(the Boot Error Region holding the case's one memory section, that section)."""
    body = mem_section(valid=case.valid, pa=case.pa, mask=~0xFFF & (2**64 - 1), node=1,
                       bank=case.bank, row=40948, column=560, error_type=3, rank=2,
                       module_handle=0x1100, extended=case.extended)
    entry = data_entry(MEM_GUID, body, severity=case.section, fru_text=case.fru,
                       timestamp=case.stamp)
    return status_block([entry], severity=case.block), body


def printed(case: Case, body: bytes) -> list[str]:
    """What bert.c and cper.c print for the region (the HW_ERR prefix's payloads)."""
    (valid, _status, pa, mask, node, _card, _module, bank, _device, row, column, _bit,
     req, _resp, _target, etype, ext, rank, _array, handle) = struct.unpack(
        "<4Q8H3QBBHHH", body)
    lines = ["event severity: " + SEVERITY_WORDS.get(case.block, "unknown")]
    if case.block == 2:
        lines.insert(0, "It has been corrected by h/w and requires no further action")
    if case.stamp is not None:  # cper_print_tstamp: bcd2bin of each byte, "%02d"
        sec, mi, h, flags, d, mo, y, c = ((b & 0xF) + (b >> 4) * 10
                                          for b in case.stamp.to_bytes(8, "little"))
        exact = "precise " if flags & 1 else "imprecise "
        lines.append(f" {exact}tstamp: {c:02d}{y:02d}-{mo:02d}-{d:02d} {h:02d}:{mi:02d}:{sec:02d}")
    lines.append(f" Error 0, type: {SEVERITY_WORDS.get(case.section, 'unknown')}")
    if case.fru:
        lines.append(f" fru_text: {case.fru.decode()}")
    lines.append("  section_type: memory error")
    if valid & PA:
        lines.append(f"  physical_address: 0x{pa:016x}")
    if valid & PA_MASK:
        lines.append(f"  physical_address_mask: 0x{mask:016x}")
    where = [(NODE, f"node:{node}"), (RANK, f"rank:{rank}"), (BANK, f"bank:{bank}"),
             (BANK_GROUP, f"bank_group:{bank >> 8}"),
             (BANK_ADDRESS, f"bank_address:{bank & 0xFF}"), (ROW, f"row:{row}"),
             (COLUMN, f"column:{column}"), (REQUESTOR_ID, f"requestor_id:0x{req:016x}"),
             (CHIP_ID, f"chip_id:{ext >> 5}")]
    lines.append("  " + " ".join(text for bit, text in where if valid & bit))
    if valid & MODULE_HANDLE:
        lines.append("  DIMM location: {} {}".format(*DIMMS[handle]))
    if valid & ERROR_TYPE:
        lines.append(f"  error_type: {etype}, {MEM_TYPES[etype]}")
    return lines


def read_log(lines: list[str], prefix: str) -> list[MemoryErrorEvent]:
    parser = KernelLogParser(source=Source.KMSG)
    out = []
    for line in ["BERT: Error records from previous boot:"] + [
            f"[Hardware Error]: {text}" for text in lines]:
        out += parser.feed(prefix + line)
    out += parser.flush()
    return [r for r in out if isinstance(r, MemoryErrorEvent)]


def both_roads(case: Case, prefix: str) -> tuple[MemoryErrorEvent, MemoryErrorEvent]:
    region, body = region_of(case)
    decoded = decode_bert(region, boot_time=BOOT,
                          label_of=lambda h: " ".join(DIMMS[h]) if h in DIMMS else None)
    assert decoded.skipped == [] and len(decoded.records) == 1
    text = with_wall_time(read_log(printed(case, body), prefix), BOOT)
    assert len(text) == 1
    return decoded.records[0], text[0]


# the kernel log as a syslog relay keeps it (wall clock and uptime), and as /dev/kmsg
# gives it (uptime only; the watcher's boot time dates it)
PREFIXES = {"iso+uptime": f"{BOOT + timedelta(seconds=5):%Y-%m-%dT%H:%M:%S.%f+00:00} "
                          "host kernel: [    5.000000] ",
            "uptime": "[    5.000000] "}


@pytest.mark.parametrize("prefix", PREFIXES.values(), ids=PREFIXES.keys())
@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_the_same_record_is_the_same_error_on_both_roads(case: Case, prefix: str) -> None:
    binary, text = both_roads(case, prefix)
    assert binary.error_type is text.error_type is case.expected
    assert binary.address == text.address
    assert binary.address == (None if case.pa == (1 << 64) - 1 else case.pa)
    assert binary.location == text.location
    assert binary.grain_bits == text.grain_bits
    assert binary.message == text.message == "multi-bit ECC"
    assert binary.driver_detail == text.driver_detail and binary.driver == text.driver
    assert binary.timestamp == text.timestamp == (case.when or BOOT)
    expected_source = TimeSource.KERNEL if case.when else TimeSource.INFERRED
    assert binary.time_source is text.time_source is expected_source


def test_the_cases_reach_what_they_name() -> None:
    """The table is not vacuous: labels, bank fields and the row are really decoded."""
    smbios, _ = both_roads(CASES["smbios-label"], PREFIXES["uptime"])
    assert smbios.location.label == "P0_Node0_Channel1_Dimm0 DIMM_B1"
    fru, _ = both_roads(CASES["fru-text-label"], PREFIXES["uptime"])
    assert fru.location.label == "CPU1_DIMM_A0"
    _, yitian = both_roads(CASES["bank-and-its-group-and-address"], PREFIXES["uptime"])
    assert (yitian.location.bank_group, yitian.location.bank) == (2, 2 << 8 | 1)
    _, grouped = both_roads(CASES["location-opening-with-bank-group"], PREFIXES["uptime"])
    loc = grouped.location
    assert (loc.bank_group, loc.bank, loc.row, loc.column) == (3, 0x1F, 40948, 560)
    ids, _ = both_roads(CASES["requestor-and-chip-id"], PREFIXES["uptime"])
    assert ids.driver_detail == "node:1 row:40948 requestor_id:0x0000000000000000 chip_id:5"
