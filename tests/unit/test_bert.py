"""ACPI BERT decoding (memras.host.bert) against tables built here with struct.

The layouts are written out field by field from the kernel's headers, independently of
the decoder: ``struct acpi_table_bert`` (include/acpi/actbl1.h), ``struct
acpi_hest_generic_status`` / ``acpi_hest_generic_data[_v300]`` (actbl1.h), ``struct
cper_sec_mem_err`` and the CPER_MEM_VALID_* bits (include/linux/cper.h), and the walk
of drivers/acpi/apei/bert.c.
"""

from __future__ import annotations

import struct
import uuid
from datetime import UTC, datetime

import pytest

from memras.host import Host
from memras.host.bert import decode_bert, parse_table
from memras.ingest.parsers.locations import location_from_pairs
from memras.records import DimmLocation, ErrorType, Source, TimeSource

MEM_GUID = uuid.UUID("a5bc1114-6f64-4ede-b863-3e83ed7c83b1").bytes_le
PROC_GUID = uuid.UUID("9876ccad-47b4-4bdb-b65e-16f193c4f3db").bytes_le  # CPER_SEC_PROC_GENERIC
BOOT = datetime(2026, 12, 6, 22, 0, tzinfo=UTC)


def mem_section(*, valid: int, pa: int = 0, mask: int = 0, node: int = 0, card: int = 0,
                module: int = 0, bank: int = 0, device: int = 0, row: int = 0,
                column: int = 0, bit_pos: int = 0, error_type: int = 0, extended: int = 0,
                rank: int = 0, module_handle: int = 0) -> bytes:
    """struct cper_sec_mem_err, packed: 4×u64, 8×u16, 3×u64, u8 u8, 3×u16 = 80 bytes."""
    body = struct.pack("<QQQQ", valid, 0x400, pa, mask)
    body += struct.pack("<HHHHHHHH", node, card, module, bank, device, row, column, bit_pos)
    body += struct.pack("<QQQ", 0, 0, 0)
    body += struct.pack("<BBHHH", error_type, extended, rank, 0, module_handle)
    assert len(body) == 80
    return body


def data_entry(guid: bytes, body: bytes, *, severity: int, fru_text: bytes = b"",
               revision: int = 0x0300, timestamp: int | None = None) -> bytes:
    """acpi_hest_generic_data (64 bytes) or _v300 (+ u64 time_stamp: 72) before the body."""
    valid = 0x2 if fru_text else 0
    if timestamp is not None:
        valid |= 0x4
    head = guid + struct.pack("<IHBBI", severity, revision, valid, 0, len(body))
    head += bytes(16) + fru_text.ljust(20, b"\0")
    assert len(head) == 64
    if revision >> 8 >= 3:
        head += struct.pack("<Q", timestamp or 0)
    return head + body


def status_block(entries: list[bytes], *, severity: int) -> bytes:
    data = b"".join(entries)
    block_status = 0x1 | (len(entries) << 4)  # UE valid, entry count in bits 4..13
    return struct.pack("<5I", block_status, 0, 0, len(data), severity) + data


def bcd(n: int) -> int:
    return (n // 10) << 4 | n % 10


def cper_time(y: int, mo: int, d: int, h: int, mi: int, s: int) -> int:
    raw = bytes([bcd(s), bcd(mi), bcd(h), 1, bcd(d), bcd(mo), bcd(y % 100), bcd(y // 100)])
    return int.from_bytes(raw, "little")


# CPER_MEM_VALID_*: PA 0x2, PA_MASK 0x4, NODE 0x8, CARD 0x10, MODULE 0x20, BANK 0x40,
# DEVICE 0x80, ROW 0x100, COLUMN 0x200, BIT_POSITION 0x400, ERROR_TYPE 0x4000,
# RANK_NUMBER 0x8000, MODULE_HANDLE 0x20000, ROW_EXT 0x40000
FULL = 0x2 | 0x4 | 0x8 | 0x10 | 0x20 | 0x40 | 0x80 | 0x100 | 0x200 | 0x400 | 0x4000 | 0x8000


def test_fatal_memory_section_decodes_every_field() -> None:
    body = mem_section(valid=FULL | 0x20000, pa=0x6A47D1F540, mask=~0x3F & (2**64 - 1),
                       node=1, card=2, module=3, bank=4, device=11, row=40948, column=560,
                       bit_pos=7, error_type=3, rank=1, module_handle=0x1100)
    region = status_block([data_entry(MEM_GUID, body, severity=1, fru_text=b"P1-DIMMB1")],
                          severity=1)
    out = decode_bert(region, boot_time=BOOT,
                      label_of=lambda h: "P1_Node1_Channel1_Dimm0 P1-DIMMB1"
                      if h == 0x1100 else None)
    assert out.skipped == [] and out.blocks == 1 and len(out.records) == 1
    r = out.records[0]
    assert r.error_type is ErrorType.FATAL and r.source is Source.FIRMWARE
    assert r.address == 0x6A47D1F540 and r.grain_bits == 6
    assert r.message == "multi-bit ECC" and r.driver == "bert"
    assert r.driver_detail == ("node:1 card:2 module:3 rank:1 bank:4 device:11 row:40948 "
                               "column:560 bit_position:7")
    assert r.location == DimmLocation(socket=1, rank=1, bank=4, device=11, row=40948,
                                      column=560, label="P1_Node1_Channel1_Dimm0 P1-DIMMB1")
    # the GHES parser's mapping of the same text (node → socket; card/module not fields)
    assert location_from_pairs(r.driver_detail) == DimmLocation(
        socket=1, rank=1, bank=4, device=11, row=40948, column=560)
    # no timestamp in the entry: placed at this boot, as a guess
    assert r.timestamp == BOOT and r.time_source is TimeSource.INFERRED


def test_timestamp_used_when_valid_and_severity_per_section() -> None:
    stamp = cper_time(2026, 12, 5, 23, 59, 58)
    ce = data_entry(MEM_GUID, mem_section(valid=0x2 | 0x4000, pa=0x1000, error_type=2),
                    severity=2, timestamp=stamp)
    ue = data_entry(MEM_GUID, mem_section(valid=0x1 | 0x2, pa=0x2000), severity=0)
    out = decode_bert(status_block([ce, ue], severity=0), boot_time=BOOT)
    assert [r.error_type for r in out.records] == [ErrorType.CORRECTED, ErrorType.UNCORRECTED]
    assert out.records[0].timestamp == datetime(2026, 12, 5, 23, 59, 58, tzinfo=UTC)
    assert out.records[0].time_source is TimeSource.KERNEL
    assert out.records[0].message == "single-bit ECC"
    assert out.records[1].timestamp == BOOT  # no valid stamp
    # no error type: the status, in the words a 5.18+ kernel prints for it
    assert out.records[1].message == "Storage error in DRAM memory (0x0000000000000400)"


def test_bank_group_address_and_row_extension() -> None:
    valid = 0x2 | 0x100 | 0x40000 | 0x80000 | 0x100000  # PA ROW ROW_EXT BANK_GROUP BANK_ADDRESS
    body = mem_section(valid=valid, pa=0x5000, bank=(3 << 8) | 0x1F, row=0x1234, extended=0x2)
    out = decode_bert(status_block([data_entry(MEM_GUID, body, severity=2)], severity=2))
    loc = out.records[0].location
    assert (loc.bank_group, loc.bank, loc.row) == (3, 0x1F, 0x1234 | 2 << 16)
    assert out.records[0].timestamp is None  # no boot time given: undated


def test_old_revision_entry_without_timestamp_field_and_other_sections_counted() -> None:
    proc = data_entry(PROC_GUID, bytes(40), severity=1, revision=0x0201)
    mem = data_entry(MEM_GUID, mem_section(valid=0x2, pa=0x9000), severity=1, revision=0x0201)
    out = decode_bert(status_block([proc, mem], severity=1), boot_time=BOOT)
    assert out.other_sections == 1
    assert [r.address for r in out.records] == [0x9000]


def test_several_blocks_then_an_empty_one_ends_the_region() -> None:
    one = status_block([data_entry(MEM_GUID, mem_section(valid=0x2, pa=0x1000),
                                   severity=1)], severity=1)
    two = status_block([data_entry(MEM_GUID, mem_section(valid=0x2, pa=0x2000),
                                   severity=2)], severity=2)
    region = one + two + bytes(20) + one  # block_status 0: bert.c stops there
    out = decode_bert(region + bytes(100))
    assert [r.address for r in out.records] == [0x1000, 0x2000]
    assert out.blocks == 2 and out.skipped == []
    assert len(set(out.digests)) == 2


def test_identity_is_stable_and_differs_per_block() -> None:
    block = status_block([data_entry(MEM_GUID, mem_section(valid=0x2, pa=0x1000),
                                     severity=1)], severity=1)
    first = decode_bert(block, boot_time=BOOT).records[0]
    again = decode_bert(block, boot_time=datetime(2026, 12, 7, tzinfo=UTC)).records[0]
    assert first.raw == again.raw  # the bytes, not the boot, make the identity
    other = status_block([data_entry(MEM_GUID, mem_section(valid=0x2, pa=0x2000),
                                     severity=1)], severity=1)
    assert decode_bert(other).records[0].raw != first.raw


@pytest.mark.parametrize("cut", [0, 7, 19, 20, 50, 91, 100, 171])
def test_truncated_regions_are_counted_never_raised(cut: int) -> None:
    region = status_block([data_entry(MEM_GUID, mem_section(valid=FULL, pa=0x1000),
                                      severity=1)], severity=1)
    assert len(region) == 20 + 72 + 80  # status block, v300 entry header, section
    out = decode_bert(region[:cut])
    assert out.records == []
    if cut >= 20:
        assert out.skipped and "truncated" in out.skipped[0]


def test_status_block_claiming_more_than_remains_is_not_read_past() -> None:
    region = struct.pack("<5I", 1, 0, 0, 0xFFFFFF00, 1) + bytes(64)
    out = decode_bert(region)
    assert out.records == [] and out.blocks == 0
    assert out.skipped == [f"truncated status block at offset 0 (length {20 + 0xFFFFFF00}, "
                           "84 bytes left)"]


def test_section_length_past_the_block_is_skipped() -> None:
    entry = bytearray(data_entry(MEM_GUID, mem_section(valid=0x2, pa=0x1000), severity=1))
    struct.pack_into("<I", entry, 24, 4000)  # error_data_length far past the block
    out = decode_bert(status_block([bytes(entry)], severity=1))
    assert out.records == [] and "4000 bytes of data" in out.skipped[0]


def test_short_memory_section_is_skipped() -> None:
    out = decode_bert(status_block([data_entry(MEM_GUID, bytes(40), severity=1)], severity=1))
    assert out.records == [] and "shorter than 80" in out.skipped[0]


def test_garbage_never_raises() -> None:
    import random

    rng = random.Random(18)
    for size in (0, 1, 20, 64, 200, 1000, 5000):
        for _ in range(50):
            data = bytes(rng.getrandbits(8) for _ in range(size))
            out = decode_bert(data, boot_time=BOOT)  # must not raise
            assert all(r.driver == "bert" for r in out.records)


def test_bad_timestamp_falls_back_to_boot() -> None:
    entry = data_entry(MEM_GUID, mem_section(valid=0x2, pa=0x1000), severity=1,
                       timestamp=int.from_bytes(bytes([0x99, 0x99, 0x99, 0, 0x45, 0x13,
                                                       0x26, 0x20]), "little"))
    out = decode_bert(status_block([entry], severity=1), boot_time=BOOT)
    assert out.records[0].timestamp == BOOT
    assert out.records[0].time_source is TimeSource.INFERRED


def test_table_parse_and_host_reader(tmp_path) -> None:
    header = struct.pack("<4sIBB6s8sI4sI", b"BERT", 48, 1, 0, b"QEMU  ", b"BOCHS   ",
                         1, b"BXPC", 1)
    table = header + struct.pack("<IQ", 180, 0x7FFF0000)
    parsed = parse_table(table)
    assert (parsed.region_length, parsed.address, parsed.oem_id) == (180, 0x7FFF0000, "QEMU")
    with pytest.raises(ValueError, match="shorter than the 48"):
        parse_table(table[:40])
    with pytest.raises(ValueError, match="not b'BERT'"):
        parse_table(b"HEST" + table[4:])
    host = Host(tmp_path)
    assert not host.bert.present and host.bert.region() is None
    (tmp_path / "sys/firmware/acpi/tables/data").mkdir(parents=True)
    (tmp_path / "sys/firmware/acpi/tables/BERT").write_bytes(table)
    region = status_block([data_entry(MEM_GUID, mem_section(valid=0x2, pa=0x1000),
                                      severity=1)], severity=1)
    (tmp_path / "sys/firmware/acpi/tables/data/BERT").write_bytes(region)
    assert host.bert.present and host.bert.table() == parsed
    assert host.bert.region() == region


def test_watch_stores_a_bert_record_once_across_boots(tmp_path) -> None:
    """Firmware may keep its BERT region for several boots; a section without its own
    timestamp is placed at each boot's time, so the cursor, not the time, keeps it single."""
    from memras.ingest.before_boot import BeforeBootSource
    from memras.store import Store
    from memras.watcher.watch import Watcher

    tables = tmp_path / "sys/firmware/acpi/tables/data"
    tables.mkdir(parents=True)
    (tmp_path / "proc").mkdir()
    region = status_block([data_entry(MEM_GUID, mem_section(valid=0x2, pa=0x1000),
                                      severity=1)], severity=1)
    (tables / "BERT").write_bytes(region)
    db = str(tmp_path / "m.db")
    for boot, inserted in ((1_796_000_000, 1), (1_796_090_000, 0)):
        (tmp_path / "proc/stat").write_text(f"cpu 0 0 0 0\nbtime {boot}\n")
        with Store.open(db, create=True) as store:
            stats = Watcher(store, [BeforeBootSource(Host(tmp_path), "bert")]).run(once=True)
            assert stats.sources["bert"].inserted == inserted
            rows = store.errors()
            assert len(rows) == 1 and rows[0].time_source == "inferred"
            assert rows[0].type == "Fatal"
    # a new error the firmware adds is stored; the old one still is not
    second = status_block([data_entry(MEM_GUID, mem_section(valid=0x2, pa=0x2000),
                                      severity=2)], severity=2)
    (tables / "BERT").write_bytes(region + second)
    with Store.open(db, create=True) as store:
        stats = Watcher(store, [BeforeBootSource(Host(tmp_path), "bert")]).run(once=True)
        assert stats.sources["bert"].inserted == 1
        assert sorted(r.address for r in store.errors()) == [0x1000, 0x2000]


def test_unreadable_region_is_one_skipped_line(tmp_path) -> None:
    from memras.ingest.before_boot import read_bert

    region = tmp_path / "sys/firmware/acpi/tables/data/BERT"
    region.mkdir(parents=True)  # a directory where the file should be: read fails
    found = read_bert(Host(tmp_path), [])
    assert found.records == [] and len(found.skipped) == 1
    assert found.skipped[0].startswith("cannot read the BERT region")
