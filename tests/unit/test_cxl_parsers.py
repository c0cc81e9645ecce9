"""CXL trace events → CxlEvent / MemoryErrorEvent (memras.ingest.parsers.cxl).

Lines marked "6.12 format" are written from the TP_printk formats of
drivers/cxl/core/trace.h at v6.12 (cited in the parser's docstring), with values a
QEMU CXL Type-3 device reports; the line marked "real" is quoted from a kernel log.
"""

from __future__ import annotations

import pytest

from memras.ingest.parsers.cxl import (
    DRAM_VALID,
    HDR_FLAGS,
    cxl_event_of,
    error_type,
    flag_bits,
    format_body,
    key_values,
    memory_error,
    parse_cxl_event,
)
from memras.ingest.parsers.ftrace import parse_trace_line
from memras.records import CxlEvent, ErrorType, MemoryErrorEvent

PREFIX = "    kworker/u8:3-112     [001] .....   512.408311: "
HDR_612 = ("memdev=mem0 host=0000:0d:00.0 serial=0 log=Informational : time=1733356800000000000 "
           "uuid=fbcd0a77-c260-417f-85a9-088b1621eba6 len=128 flags='' handle=1 "
           "related_handle=0 maint_op_class=0 : ")
GM_612 = (PREFIX + "cxl_general_media: " + HDR_612 +
          "dpa=40000 dpa_flags='' descriptor='' type='ECC Error' "
          "transaction_type='Host Read' channel=1 rank=0 device=3 comp_id=00 00 00 00 00 00 00 "
          "00 00 00 00 00 00 00 00 00 validity_flags='CHANNEL|RANK|DEVICE' hpa=290040000 "
          "region=region0 region_uuid=2f4c1a6e-3f0e-4a8d-9d1c-6f3b1e2a7c11")
DRAM_612 = (PREFIX + "cxl_dram: " + HDR_612.replace("Informational", "Failure").replace(
    "uuid=fbcd0a77-c260-417f-85a9-088b1621eba6", "uuid=601dcbb3-9c06-4eab-b8af-4e9bfb5c9624")
    + "dpa=1000 dpa_flags='VOLATILE' descriptor='UNCORRECTABLE_EVENT' type='ECC Error' "
    "transaction_type='Internal Media Scrub' channel=2 rank=1 nibble_mask=fb1 bank_group=3 "
    "bank=2 row=4660 column=288 cor_mask=00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 "
    "00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 validity_flags='CHANNEL|RANK|NIBBLE|"
    "BANK GROUP|BANK|ROW|COLUMN' hpa=ffffffffffffffff region= "
    "region_uuid=00000000-0000-0000-0000-000000000000")
MODULE_612 = (PREFIX + "cxl_memory_module: " + HDR_612.replace("Informational", "Warning")
              .replace("flags=''", "flags='MAINTENANCE_NEEDED | HARDWARE_REPLACEMENT_NEEDED'")
              + "event_type='Life Used Change' health_status='MAINTENANCE_NEEDED|"
              "REPLACEMENT_NEEDED' media_status='Normal' as_life_used=Critical "
              "as_dev_temp=Normal as_cor_vol_err_cnt=Warning as_cor_per_err_cnt=Normal "
              "life_used=97 device_temp=45 dirty_shutdown_cnt=3 cor_vol_err_cnt=120 "
              "cor_per_err_cnt=0")
POISON_612 = (PREFIX + "cxl_poison: memdev=mem0 host=0000:0d:00.0 serial=0 trace_type=List "
              "region=region0 region_uuid=2f4c1a6e-3f0e-4a8d-9d1c-6f3b1e2a7c11 "
              "hpa=0x290001000 dpa=0x1000 dpa_length=0x40 source=Injected flags= "
              "overflow_time=0")
AER_UE_612 = (PREFIX + "cxl_aer_uncorrectable_error: memdev=mem0 host=0000:0d:00.0 serial=0: "
              "status: 'Memory Data ECC Error | Received Poison From Peer' "
              "first_error: 'Memory Data ECC Error'")
AER_CE_612 = (PREFIX + "cxl_aer_correctable_error: memdev=mem0 host=0000:0d:00.0 serial=0: "
              "status: 'CRC Threshold Hit'")
OVERFLOW_612 = (PREFIX + "cxl_overflow: memdev=mem0 host=0000:0d:00.0 serial=0: log=Failure : "
                "12 records from 1733356800000000000 to 1733356860000000000")
GENERIC_612 = (PREFIX + "cxl_generic_event: " + HDR_612.replace(
    "uuid=fbcd0a77-c260-417f-85a9-088b1621eba6", "uuid=ba5eba11-abcd-4321-a1b2-c3d4e5f60718")
    + "01 02 03 04")
# Real: Jonathan Cameron's QEMU arm64 guest, 6.8.0-rc3 with tp_printk, quoted at
# https://lore.kernel.org/all/20240214121153.00005c97@huawei.com/ (names the kernel
# had no words for printed as hex).
REAL_68 = ("[  193.086589] cxl_general_media: memdev=mem1 host=0000:0e:00.0 serial=5 "
           "log=Warning : time=1707903675590441508 uuid=fbcd0a77-c260-417f-85a9-088b1621eba6 "
           "len=128 flags='0x1' handle=0 related_handle=0 maint_op_class=0 : dpa=7c0 "
           "dpa_flags='0x10' descriptor='UNCORRECTABLE_EVENT|THRESHOLD_EVENT|"
           "POISON_LIST_OVERFLOW' type='0x3' transaction_type='0xc0' channel=3 rank=33 "
           "device=5 comp_id=69 72 61 73 20 6d 65 6d 32 00 00 00 00 00 00 00 "
           "validity_flags='CHANNEL|RANK|DEVICE|COMPONENT'")
# Real, Linux 6.12.95+deb12-amd64 (bookworm-backports) under QEMU 10.0.2: the line
# tests/lab/test_cxl_boot.py read from the guest's trace after QMP's
# cxl-inject-general-media-event (dpa 0x1000, channel 1, rank 0, flags 1).
REAL_612 = (" irq/32-0000:0d:-156     [001] .....    29.496189: cxl_general_media: "
            "memdev=mem0 host=0000:0d:00.0 serial=0 log=Informational : "
            "time=1796601194911813603 uuid=fbcd0a77-c260-417f-85a9-088b1621eba6 len=128 "
            "flags='0x1' handle=1 related_handle=0 maint_op_class=0 : dpa=1000 dpa_flags='' "
            "descriptor='' type='ECC Error' transaction_type='Host Read' channel=1 rank=0 "
            "device=0 comp_id=00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 "
            "validity_flags='CHANNEL|RANK' hpa=ffffffffffffffff region= "
            "region_uuid=00000000-0000-0000-0000-000000000000")
# master (6.15+) general media: sub_type, PLDM ids, cme fields, maint_op_sub_class
GM_MASTER = (PREFIX + "cxl_general_media: memdev=mem2 host=0000:0f:00.0 serial=3 log=Fatal : "
             "time=45104947948 uuid=fbcd0a77-c260-417f-85a9-088b1621eba6 len=128 "
             "flags='PERMANENT_CONDITION' handle=1 related_handle=0 maint_op_class=2 "
             "maint_op_sub_class=4 : dpa=30d40 dpa_flags='' descriptor='THRESHOLD_EVENT' "
             "type='TE State Violation' sub_type='Media Link CRC Error' "
             "transaction_type='Host Inject Poison' channel=3 rank=33 device=5 "
             "validity_flags='CHANNEL|RANK|DEVICE|COMPONENT|COMPONENT PLDM FORMAT' "
             "comp_id=03 74 c5 08 9a 1a 0b fc d2 7e 2f 31 9b 3c 81 4d "
             "comp_id_pldm_valid_flags='PLDM Entity ID | Resource ID' "
             "pldm_entity_id=74 c5 08 9a 1a 0b pldm_resource_id=fc d2 7e 2f "
             "hpa=ffffffffffffffff region= region_uuid=00000000-0000-0000-0000-000000000000 "
             "cme_threshold_ev_flags='Exceeded Programmable Threshold' cme_count=120")


def _body(line: str, event: str) -> str:
    return line.split(f"{event}: ", 1)[1]


def test_general_media_612_becomes_a_located_corrected_error() -> None:
    record = parse_trace_line(GM_612)
    assert isinstance(record, MemoryErrorEvent)
    assert record.error_type is ErrorType.CORRECTED
    assert record.driver == "cxl"
    assert record.address == 0x290040000 and record.uptime_s == pytest.approx(512.408311)
    loc = record.location
    assert (loc.label, loc.channel, loc.rank, loc.device) == ("mem0", 1, 0, 3)
    assert record.message == "CXL ECC Error (Host Read)"
    assert record.driver_detail.startswith("memdev=mem0 host=0000:0d:00.0")
    ev = cxl_event_of(record)
    assert ev is not None
    assert (ev.event, ev.dpa, ev.region, ev.hdr_handle, ev.hdr_ts) == (
        "general_media", 0x40000, "region0", 1, 1733356800000000000)
    assert ev.region_uuid == "2f4c1a6e-3f0e-4a8d-9d1c-6f3b1e2a7c11"
    assert ev.validity_flags == 0b111 and ev.transaction_type == 1 and ev.type == 0


def test_dram_612_uncorrectable_with_bank_row_column_and_no_region() -> None:
    record = parse_trace_line(DRAM_612)
    assert isinstance(record, MemoryErrorEvent)
    assert record.error_type is ErrorType.UNCORRECTED
    assert record.address is None  # hpa all ones: no region maps the DPA
    loc = record.location
    assert (loc.channel, loc.rank, loc.bank_group, loc.bank, loc.row, loc.column) == (
        2, 1, 3, 2, 4660, 288)
    ev = parse_cxl_event("cxl_dram", _body(DRAM_612, "cxl_dram"))
    assert ev is not None
    assert (ev.log_type, ev.dpa, ev.dpa_flags, ev.descriptor, ev.nibble_mask) == (
        "Failure", 0x1000, 1, 1, 0xFB1)
    assert ev.transaction_type == 5 and ev.region == "" and ev.hpa is None
    assert ev.validity_flags == sum(DRAM_VALID[k] for k in (
        "CHANNEL", "RANK", "NIBBLE", "BANK GROUP", "BANK", "ROW", "COLUMN"))


def test_fields_the_validity_flags_mark_invalid_are_none() -> None:
    line = DRAM_612.replace("validity_flags='CHANNEL|RANK|NIBBLE|BANK GROUP|BANK|ROW|COLUMN'",
                            "validity_flags='CHANNEL'")
    ev = parse_cxl_event("cxl_dram", _body(line, "cxl_dram"))
    assert ev is not None
    assert ev.channel == 2
    assert (ev.rank, ev.bank_group, ev.bank, ev.row, ev.column) == (None,) * 5


def test_real_68_line_with_hex_for_unnamed_values() -> None:
    ev = parse_cxl_event("cxl_general_media", _body(REAL_68, "cxl_general_media"),
                         raw=REAL_68)
    assert ev is not None
    assert (ev.memdev, ev.host, ev.serial, ev.log_type) == ("mem1", "0000:0e:00.0", 5, "Warning")
    assert ev.hdr_flags == 0x1 and ev.dpa_flags == 0x10 and ev.type == 3
    assert ev.transaction_type == 0xC0 and ev.descriptor == 0b111
    assert (ev.channel, ev.rank, ev.device, ev.dpa) == (3, 33, 5, 0x7C0)
    assert error_type(ev) is ErrorType.UNCORRECTED
    err = memory_error(ev)
    assert err is not None and err.driver_detail.startswith("memdev=mem1 ")


def test_master_format_fatal_log_and_new_fields() -> None:
    ev = parse_cxl_event("cxl_general_media", _body(GM_MASTER, "cxl_general_media"))
    assert ev is not None
    assert error_type(ev) is ErrorType.FATAL  # the Fatal log, whatever the descriptor
    assert ev.hdr_flags == HDR_FLAGS["PERMANENT_CONDITION"]
    assert (ev.hdr_maint_op_class, ev.hdr_maint_op_sub_class) == (2, 4)
    assert (ev.type, ev.sub_type, ev.transaction_type) == (3, 5, 4)
    assert ev.cme_threshold_ev_flags == 2 and ev.cme_count == 120
    assert ev.validity_flags == 0b11111


def test_memory_module_health_info() -> None:
    result = parse_trace_line(MODULE_612)
    assert isinstance(result, CxlEvent)
    assert result.event == "memory_module" and error_type(result) is ErrorType.INFO
    assert result.event_type == 2 and result.health_status == 0b101
    assert result.hdr_flags == HDR_FLAGS["MAINTENANCE_NEEDED"] | HDR_FLAGS[
        "HARDWARE_REPLACEMENT_NEEDED"]
    assert (result.life_used, result.device_temp, result.dirty_shutdown_cnt) == (97, 45, 3)
    assert (result.cor_vol_err_cnt, result.cor_per_err_cnt, result.media_status) == (120, 0, 0)
    assert result.add_status == 2 | 1 << 4  # life used critical, volatile CE count warning


@pytest.mark.parametrize(("line", "event", "expected"), [
    (POISON_612, "poison", {"trace_type": "List", "dpa": 0x1000, "dpa_length": 0x40,
                            "hpa": 0x290001000, "source_text": "Injected", "poison_flags": 0,
                            "region": "region0", "overflow_ts": 0}),
    (AER_UE_612, "aer_uncorrectable_error", {"error_status": 1 << 7 | 1 << 10,
                                             "first_error": 1 << 7}),
    (AER_CE_612, "aer_correctable_error", {"error_status": 1 << 2, "first_error": None}),
    (OVERFLOW_612, "overflow", {"log_type": "Failure", "count": 12,
                                "first_ts": 1733356800000000000,
                                "last_ts": 1733356860000000000}),
    (GENERIC_612, "generic_event", {"data": "01020304", "hdr_handle": 1,
                                    "hdr_uuid": "ba5eba11-abcd-4321-a1b2-c3d4e5f60718"}),
])
def test_other_events(line: str, event: str, expected: dict[str, object]) -> None:
    result = parse_trace_line(line)
    assert isinstance(result, CxlEvent)
    assert result.event == event and result.memdev == "mem0" and result.serial == 0
    for name, value in expected.items():
        assert getattr(result, name) == value, name
    assert result.raw == line


@pytest.mark.parametrize(("event", "kind"), [
    ("poison", ErrorType.UNCORRECTED), ("aer_uncorrectable_error", ErrorType.UNCORRECTED),
    ("aer_correctable_error", ErrorType.CORRECTED), ("overflow", ErrorType.INFO)])
def test_ce_ue_of_non_media_events(event: str, kind: ErrorType) -> None:
    assert error_type(CxlEvent(event=event, memdev="mem0")) is kind
    assert error_type(CxlEvent(event="poison", memdev="mem0", trace_type="Clear")) is (
        ErrorType.INFO)


@pytest.mark.parametrize("line", [
    PREFIX + "cxl_general_media: memdev=mem0 host=x serial=0",  # no header, no dpa
    PREFIX + "cxl_poison: garbage",
    PREFIX + "cxl_aer_correctable_error: memdev=mem0 host=x serial=zero: status: ''",
    PREFIX + "cxl_overflow: memdev=mem0 host=x serial=0: log=Failure : many records",
    PREFIX + "cxl_memory_module: event_type='Life Used Change'",
])
def test_malformed_lines_are_none(line: str) -> None:
    assert parse_trace_line(line) is None


def test_key_values_keeps_spaces_in_hex_dumps_and_flag_lists() -> None:
    pairs = key_values("a=1 comp_id=00 01 02 flags='A | B' log=Warning : time=5")
    assert pairs == {"a": "1", "comp_id": "00 01 02", "flags": "A | B", "log": "Warning",
                     "time": "5"}
    assert flag_bits("", HDR_FLAGS) == 0
    assert flag_bits("NOT_A_FLAG", HDR_FLAGS) is None


@pytest.mark.parametrize("line", [GM_612, DRAM_612])
def test_format_body_reads_back_the_same_fields(line: str) -> None:
    event = "cxl_dram" if "cxl_dram:" in line else "cxl_general_media"
    ev = parse_cxl_event(event, _body(line, event))
    assert ev is not None
    again = parse_cxl_event(event, format_body(ev))
    assert again is not None
    skip = {"raw", "region_uuid"}
    for name in CxlEvent.__dataclass_fields__:
        if name not in skip and name not in ("hdr_uuid",):
            assert getattr(again, name) == getattr(ev, name), name


def test_the_kernel_log_form_of_a_media_event() -> None:
    """tp_printk prints trace events to the log: the real 6.8 line above, in dmesg."""
    from memras.ingest.parsers._common import ParserStats
    from memras.ingest.parsers.kernel_log import parse_kernel_log
    from memras.records import Source

    stats = ParserStats()
    module = ("[  194.000001] cxl_memory_module: " + HDR_612 + "event_type='Life Used Change' "
              "health_status='' media_status='Normal' as_life_used=Normal as_dev_temp=Normal "
              "as_cor_vol_err_cnt=Normal as_cor_per_err_cnt=Normal life_used=1 device_temp=3 "
              "dirty_shutdown_cnt=0 cor_vol_err_cnt=0 cor_per_err_cnt=0")
    broken = "[  194.000002] cxl_dram: memdev=mem0 host=x serial=0"
    records = list(parse_kernel_log([REAL_68, module, broken], stats=stats))
    assert len(records) == 1
    (error,) = records
    assert isinstance(error, MemoryErrorEvent)
    assert error.source is Source.KMSG and error.uptime_s == pytest.approx(193.086589)
    assert error.error_type is ErrorType.UNCORRECTED and error.location.label == "mem1"
    assert error.raw == REAL_68
    assert stats.malformed == 1 and stats.malformed_samples == [broken]


def test_the_real_612_line_from_the_cxl_lab() -> None:
    record = parse_trace_line(REAL_612)
    assert isinstance(record, MemoryErrorEvent)
    assert record.error_type is ErrorType.CORRECTED and record.address is None
    assert (record.location.label, record.location.channel, record.location.rank,
            record.location.device) == ("mem0", 1, 0, None)  # device not valid
    ev = cxl_event_of(record)
    assert ev is not None
    assert (ev.dpa, ev.hdr_flags, ev.hdr_handle, ev.hdr_ts, ev.transaction_type) == (
        0x1000, 1, 1, 1796601194911813603, 1)
    assert record.uptime_s == pytest.approx(29.496189)


# Lines the same 6.12 kernel wrote in the CXL lab (tests/lab/test_scenario_cxl.py's
# records, injected over QMP: cxl-inject-dram-event, cxl-inject-memory-module-event,
# cxl-inject-poison + trigger_poison_list), quoted from its trace buffer.
REAL_612_DRAM = (
    " irq/33-0000:0d:-157     [000] .....     7.588115: cxl_dram: memdev=mem0 host=0000:0"
    "d:00.0 serial=0 log=Warning : time=1796604183566116626 uuid=601dcbb3-9c06-4eab-b8af-"
    "4e9bfb5c9624 len=128 flags='' handle=1 related_handle=0 maint_op_class=0 : dpa=3000 "
    "dpa_flags='' descriptor='' type='ECC Error' transaction_type='Host Read' channel=2 r"
    "ank=1 nibble_mask=0 bank_group=1 bank=3 row=66 column=8 cor_mask=00 00 00 00 00 00 0"
    "0 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 validit"
    "y_flags='CHANNEL|RANK|BANK GROUP|BANK|ROW|COLUMN' hpa=ffffffffffffffff region= regio"
    "n_uuid=00000000-0000-0000-0000-000000000000")
REAL_612_MODULE = (
    " irq/33-0000:0d:-157     [000] .....     7.592180: cxl_memory_module: memdev=mem0 ho"
    "st=0000:0d:00.0 serial=0 log=Warning : time=1796604183571178163 uuid=fe927475-dd59-4"
    "339-a586-79bab113b774 len=128 flags='' handle=2 related_handle=0 maint_op_class=0 : "
    "event_type='Health Status Change' health_status='MAINTENANCE_NEEDED' media_status='N"
    "ormal' as_life_used=Normal as_dev_temp=Normal as_cor_vol_err_cnt=Normal as_cor_per_e"
    "rr_cnt=Normal life_used=95 device_temp=45 dirty_shutdown_cnt=0 cor_vol_err_cnt=0 cor"
    "_per_err_cnt=0")
REAL_612_POISON = (
    "              sh-195     [000] .....     7.623338: cxl_poison: memdev=mem0 host=0000"
    ":0d:00.0 serial=0 trace_type=List region= region_uuid=00000000-0000-0000-0000-000000"
    "000000 hpa=0xffffffffffffffff dpa=0x40000 dpa_length=0x40 source=Internal flags= ove"
    "rflow_time=0")


def test_the_real_612_dram_line_keeps_its_valid_location() -> None:
    record = parse_trace_line(REAL_612_DRAM)
    assert isinstance(record, MemoryErrorEvent)
    assert record.error_type is ErrorType.CORRECTED and record.address is None  # no region
    loc = record.location
    assert (loc.label, loc.channel, loc.rank, loc.bank_group, loc.bank, loc.row,
            loc.column) == ("mem0", 2, 1, 1, 3, 66, 8)
    ev = cxl_event_of(record)
    assert ev is not None and (ev.dpa, ev.log_type, ev.hdr_handle) == (0x3000, "Warning", 1)


def test_the_real_612_memory_module_and_poison_lines() -> None:
    module = parse_trace_line(REAL_612_MODULE)
    assert isinstance(module, CxlEvent)
    assert (module.event, module.log_type, module.event_type, module.health_status,
            module.media_status, module.life_used, module.device_temp) == (
        "memory_module", "Warning", 0, 1, 0, 95, 45)
    poison = parse_trace_line(REAL_612_POISON)
    assert isinstance(poison, CxlEvent)
    assert (poison.event, poison.trace_type, poison.dpa, poison.dpa_length, poison.hpa,
            poison.source_text) == ("poison", "List", 0x40000, 0x40, None, "Internal")
    assert error_type(poison) is ErrorType.UNCORRECTED
