"""rasdaemon's SQLite tables, exactly as rasdaemon v0.8.5 writes them (one versioned adapter).

Source: mchehab/rasdaemon ras-record.c at v0.8.5 (HEAD 769593b), diffed against the
v0.6.8 tag that Debian 12 ships. rasdaemon creates each table with
``CREATE TABLE IF NOT EXISTS <t> (<name> <type>, ...)`` and SQLite stores the text as
``CREATE TABLE <t> (...)`` in sqlite_master; we execute the very same strings, so a
memras database is byte-for-byte the schema ``ras-mc-ctl`` of either version expects.
The v0.8.5 DDL is a superset of 0.6.8's: 0.6.8's ras-mc-ctl selects explicit columns
and ignores the extra ones.

This module also holds rasdaemon's *value conventions* (timestamp text in local time,
-1 for unused layers, u64 stored as signed int64, grain as log2 bytes, 32-bit mcgcap),
so the rest of memras converts records to rows in exactly one place. Nothing here is
used on a non-SQLite database: rasdaemon's format is a SQLite file.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from memras.ingest.parsers.cxl import RASDAEMON_CXL_TABLES, cxl_event_of
from memras.records import CxlEvent, MceRegisters, MemoryErrorEvent, MemoryFailureEvent

RASDAEMON_SCHEMA_VERSION = "0.8.5"

_ID = "id INTEGER PRIMARY KEY, timestamp TEXT"
_CXL = "memdev TEXT, host TEXT, serial INTEGER"
# The 16 header columns (id ... hdr_head_id) that the CXL event tables share, verbatim.
_CXL_HDR = (
    f"{_ID}, {_CXL}, log_type TEXT, hdr_uuid TEXT, hdr_flags INTEGER, hdr_handle INTEGER, "
    "hdr_related_handle INTEGER, hdr_ts TEXT, hdr_length INTEGER, hdr_maint_op_class INTEGER, "
    "hdr_maint_op_sub_class INTEGER, hdr_ld_id INTEGER, hdr_head_id INTEGER"
)

# Table name -> column list, in rasdaemon v0.8.5's order (ras-record.c *_fields[]).
TABLE_COLUMNS_V085: dict[str, str] = {
    "mc_event": f"{_ID}, err_count INTEGER, err_type TEXT, err_msg TEXT, label TEXT, "
    "mc INTEGER, top_layer INTEGER, middle_layer INTEGER, lower_layer INTEGER, "
    "address INTEGER, grain INTEGER, syndrome INTEGER, driver_detail TEXT",
    "aer_event": f"{_ID}, dev_name TEXT, err_type TEXT, err_msg TEXT",
    "non_standard_event": f"{_ID}, sec_type BLOB, fru_id BLOB, fru_text TEXT, "
    "severity TEXT, error BLOB",
    "arm_event": f"{_ID}, error_count INTEGER, affinity INTEGER, mpidr INTEGER, "
    "running_state INTEGER, psci_state INTEGER, err_info BLOB, context_info BLOB, "
    "vendor_info BLOB, error_type TEXT, error_flags TEXT, error_info INTEGER, "
    "virt_fault_addr INTEGER, phy_fault_addr INTEGER",
    "extlog_event": f"{_ID}, etype INTEGER, error_count INTEGER, severity INTEGER, "
    "address INTEGER, fru_id BLOB, fru_text TEXT, cper_data BLOB",
    "mce_record": f"{_ID}, mcgcap INTEGER, mcgstatus INTEGER, status INTEGER, addr INTEGER, "
    "misc INTEGER, ip INTEGER, tsc INTEGER, walltime INTEGER, ppin INTEGER, cpu INTEGER, "
    "cpuid INTEGER, apicid INTEGER, socketid INTEGER, cs INTEGER, bank INTEGER, "
    "cpuvendor INTEGER, microcode INTEGER, bank_name TEXT, error_msg TEXT, "
    "mcgstatus_msg TEXT, mcistatus_msg TEXT, mcastatus_msg TEXT, user_action TEXT, "
    "mc_location TEXT",
    "devlink_event": f"{_ID}, bus_name TEXT, dev_name TEXT, driver_name TEXT, "
    "reporter_name TEXT, msg TEXT",
    "disk_errors": f"{_ID}, dev TEXT, sector INTEGER, nr_sector INTEGER, error TEXT, "
    "rwbs TEXT, cmd TEXT",
    "memory_failure_event": f"{_ID}, pfn TEXT, page_type TEXT, action_result TEXT",
    "cxl_poison_event": f"{_ID}, {_CXL}, trace_type TEXT, region TEXT, region_uuid TEXT, "
    "hpa INTEGER, dpa INTEGER, dpa_length INTEGER, source TEXT, flags INTEGER, "
    "overflow_ts TEXT, hpa_alias0 INTEGER",
    "cxl_aer_ue_event": f"{_ID}, {_CXL}, error_status INTEGER, first_error INTEGER, "
    "header_log BLOB",
    "cxl_aer_ce_event": f"{_ID}, {_CXL}, error_status INTEGER",
    "cxl_overflow_event": f"{_ID}, {_CXL}, log_type TEXT, count INTEGER, first_ts TEXT, "
    "last_ts TEXT",
    "cxl_generic_event": f"{_CXL_HDR}, data BLOB",
    "cxl_general_media_event": f"{_CXL_HDR}, dpa INTEGER, dpa_flags INTEGER, "
    "descriptor INTEGER, type INTEGER, transaction_type INTEGER, channel INTEGER, "
    "rank INTEGER, device INTEGER, comp_id BLOB, hpa INTEGER, region TEXT, "
    "region_uuid TEXT, pldm_entity_id BLOB, pldm_resource_id BLOB, sub_type INTEGER, "
    "cme_threshold_ev_flags INTEGER, cme_count INTEGER, hpa_alias0 INTEGER",
    "cxl_dram_event": f"{_CXL_HDR}, dpa INTEGER, dpa_flags INTEGER, descriptor INTEGER, "
    "type INTEGER, transaction_type INTEGER, channel INTEGER, rank INTEGER, "
    "nibble_mask INTEGER, bank_group INTEGER, bank INTEGER, row INTEGER, column INTEGER, "
    "cor_mask BLOB, hpa INTEGER, region TEXT, region_uuid TEXT, comp_id BLOB, "
    "pldm_entity_id BLOB, pldm_resource_id BLOB, sub_type INTEGER, sub_channel INTEGER, "
    "cme_threshold_ev_flags INTEGER, cvme_count INTEGER, hpa_alias0 INTEGER",
    "cxl_memory_module_event": f"{_CXL_HDR}, event_type INTEGER, health_status INTEGER, "
    "media_status INTEGER, life_used INTEGER, dirty_shutdown_cnt INTEGER, "
    "cor_vol_err_cnt INTEGER, cor_per_err_cnt INTEGER, device_temp INTEGER, "
    "add_status INTEGER, event_sub_type INTEGER, comp_id BLOB, pldm_entity_id BLOB, "
    "pldm_resource_id BLOB",
    "signal_event": f"{_ID}, sig INTEGER, errorno INTEGER, code INTEGER, comm TEXT, "
    "pid INTEGER, grp INTEGER, res INTEGER",
    "reri_event": f"{_ID}, err_src_id INTEGER, source_type INTEGER, severity INTEGER, "
    "hart_id INTEGER, cluster_id INTEGER, status INTEGER, addr_info INTEGER, info INTEGER, "
    "suppl_info INTEGER, timestamp_val INTEGER",
}

# rasdaemon 0.6.8 (Debian 12): mce_record without ppin and microcode (24 columns); the
# Debian build knows only these four tables. Used to recognise and test old databases.
TABLE_COLUMNS_V068: dict[str, str] = {
    "mc_event": TABLE_COLUMNS_V085["mc_event"],
    "aer_event": TABLE_COLUMNS_V085["aer_event"],
    "extlog_event": TABLE_COLUMNS_V085["extlog_event"],
    "mce_record": TABLE_COLUMNS_V085["mce_record"]
    .replace(" ppin INTEGER,", "")
    .replace(" microcode INTEGER,", ""),
}


def create_table_sql(table: str, columns: dict[str, str] = TABLE_COLUMNS_V085) -> str:
    """The statement rasdaemon runs at start-up: ``CREATE TABLE IF NOT EXISTS mc_event (…)``."""
    return f"CREATE TABLE IF NOT EXISTS {table} ({columns[table]})"


def all_create_statements(columns: dict[str, str] = TABLE_COLUMNS_V085) -> list[str]:
    return [create_table_sql(table, columns) for table in columns]


def column_names(table: str, columns: dict[str, str] = TABLE_COLUMNS_V085) -> list[str]:
    return [part.strip().split()[0] for part in columns[table].split(",")]


def insert_sql(table: str, names: list[str]) -> str:
    """rasdaemon's insert shape: named columns, id given explicitly by memras (see store)."""
    return f"INSERT INTO {table} ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})"


# ---- value conventions -----------------------------------------------------------

_U64 = 1 << 64
_I64_MAX = (1 << 63) - 1


def as_int64(value: int | None) -> int | None:
    """sqlite3_bind_int64 of a u64: values >= 2^63 become negative (two's complement)."""
    if value is None:
        return None
    value &= _U64 - 1
    return value - _U64 if value > _I64_MAX else value


def as_u64(value: int | None) -> int | None:
    """Undo :func:`as_int64` when reading a rasdaemon row back."""
    return None if value is None else value & (_U64 - 1)


def as_int32(value: int) -> int:
    """sqlite3_bind_int of a u64 register (mcgcap, mcgstatus): the low 32 bits, signed."""
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value >= 1 << 31 else value


def layer(value: int | None) -> int:
    """EDAC layer/mc index: rasdaemon stores -1 for "not used"."""
    return -1 if value is None else value


def format_timestamp(when: datetime) -> str:
    """``strftime("%Y-%m-%d %H:%M:%S %z", localtime)``, e.g. ``2024-12-19 03:52:38 +0000``."""
    local = when.astimezone() if when.tzinfo is not None else when.astimezone()
    return local.strftime("%Y-%m-%d %H:%M:%S %z")


def parse_timestamp(text: str | None) -> datetime | None:
    """A rasdaemon timestamp back to an aware datetime; None when absent or malformed."""
    if not text:
        return None
    for fmt in ("%Y-%m-%d %H:%M:%S %z", "%Y-%m-%d %H:%M:%S"):
        try:
            parsed = datetime.strptime(text.strip(), fmt)
        except ValueError:
            continue
        return parsed if parsed.tzinfo else parsed.astimezone()
    return None


# ---- record -> row ------------------------------------------------------------------

MC_EVENT_COLUMNS = column_names("mc_event")
MCE_RECORD_COLUMNS = column_names("mce_record")
MEMORY_FAILURE_COLUMNS = column_names("memory_failure_event")


def mc_event_row(row_id: int, stamp: str, event: MemoryErrorEvent) -> tuple[Any, ...]:
    """One mc_event row as ras-mc-handler.c fills it (v0.8.3+ err_type strings).

    ``stamp`` is the rasdaemon timestamp text (:func:`format_timestamp`)."""
    loc = event.location
    return (
        row_id,
        stamp,
        event.count,
        str(event.error_type),
        event.message,
        loc.label,
        layer(loc.mc),
        layer(loc.top_layer),
        layer(loc.middle_layer),
        layer(loc.lower_layer),
        as_int64(event.address),
        event.grain_bits,
        as_int64(event.syndrome),
        event.driver_detail,
    )


# MCi_STATUS / MCG_STATUS bits (arch/x86/include/asm/mce.h), named as rasdaemon's
# ras-mce-handler.c prints them.
_MCI_STATUS_BITS = (
    (62, "Error_overflow"),
    (60, "Error_enabled"),
    (59, "MCi_MISC_register_valid"),
    (58, "MCi_ADDR_register_valid"),
    (57, "Processor_context_corrupt"),
)
_MCG_STATUS_BITS = ((0, "RIPV"), (1, "EIPV"), (2, "MCIP"))


def _mci_status_msg(status: int) -> str:
    words = ["Uncorrected_error" if status >> 61 & 1 else "Corrected_error"]
    words += [name for bit, name in _MCI_STATUS_BITS if status >> bit & 1]
    return " ".join(words)


def _mcg_status_msg(mcgstatus: int) -> str:
    return " ".join(name for bit, name in _MCG_STATUS_BITS if mcgstatus >> bit & 1)


def _mc_location(event: MemoryErrorEvent) -> str:
    loc = event.location
    parts = [f"memory_channel={loc.channel}"] if loc.channel is not None else []
    if loc.csrow is not None:
        parts.append(f"csrow={loc.csrow}")
    return ",".join(parts)


def mce_record_row(row_id: int, stamp: str, event: MemoryErrorEvent) -> tuple[Any, ...]:
    """One mce_record row: raw registers plus the decoded text columns ras-mc-ctl shows."""
    regs: MceRegisters = event.mce or MceRegisters(status=0, bank=0)
    memory_error = bool(regs.status & 0x80)  # MCACOD bit 7: memory controller error
    return (
        row_id,
        stamp,
        as_int32(regs.mcgcap),
        as_int32(regs.mcgstatus),
        as_int64(regs.status),
        as_int64(regs.addr),
        as_int64(regs.misc),
        as_int64(regs.ip),
        as_int64(regs.tsc),
        as_int64(regs.walltime),
        as_int64(regs.ppin),
        regs.cpu,
        regs.cpuid,
        regs.apicid,
        regs.socketid,
        regs.cs,
        regs.bank,
        regs.cpuvendor,
        regs.microcode,
        "memory controller" if memory_error else f"bank {regs.bank}",
        event.message or ("memory error" if memory_error else "machine check"),
        _mcg_status_msg(regs.mcgstatus),
        _mci_status_msg(regs.status),
        "",
        "",
        _mc_location(event),
    )


def memory_failure_row(row_id: int, stamp: str, event: MemoryFailureEvent) -> tuple[Any, ...]:
    """ras-memory-failure-handler.c: pfn as ``0x%llx`` text."""
    return (row_id, stamp, f"0x{event.pfn:x}", event.page_type,
            event.action_result)


# ---- CXL rows (ras-cxl-handler.c, ras-record.c ras_store_cxl_*) ----------------------

CXL_TABLE_COLUMNS = {table: column_names(table) for table in RASDAEMON_CXL_TABLES}
_CXL_FIELD = {"source": "source_text", "flags": "poison_flags", "cvme_count": "cme_count"}
_CXL_TIMES = frozenset({"hdr_ts", "overflow_ts", "first_ts", "last_ts"})
_UUID_NULL = "00000000-0000-0000-0000-000000000000"


def cxl_timestamp(ns: int | None) -> str:
    """convert_timestamp(): a device time (ns since the epoch) as local-time text;
    0 or unknown as ``1970-01-01 00:00:00 +0000``."""
    if not ns:
        return "1970-01-01 00:00:00 +0000"
    return format_timestamp(datetime.fromtimestamp(ns // 1_000_000_000).astimezone())


def cxl_row(table: str, row_id: int | None, stamp: str, ev: CxlEvent) -> tuple[Any, ...]:
    """One rasdaemon cxl_* row of ``ev`` in v0.8.5's column order.

    rasdaemon stores the raw fields: an HPA no region maps as all ones (bound as int64:
    -1), the serial as int64, device times as local-time text, the region UUID as text
    (the null UUID without a region), BLOB columns it fills from the record's bytes
    (comp_id, cor_mask, header_log, PLDM ids) NULL here: the kernel's text does not
    carry them all."""
    values: list[Any] = []
    for column in CXL_TABLE_COLUMNS[table]:
        if column == "id":
            values.append(row_id)
        elif column == "timestamp":
            values.append(stamp)
        elif column in _CXL_TIMES:
            values.append(cxl_timestamp(getattr(ev, column)))
        elif column in ("hpa", "hpa_alias0"):
            value = getattr(ev, column)
            values.append(as_int64(_U64 - 1 if value is None else value))
        elif column == "serial":
            values.append(as_int64(ev.serial or 0))
        elif column == "region_uuid":
            values.append(ev.region_uuid or _UUID_NULL)
        elif column == "data":
            values.append(bytes.fromhex(ev.data) if ev.data else None)
        else:
            name = _CXL_FIELD.get(column, column)
            value = getattr(ev, name, None)
            values.append(as_int64(value) if isinstance(value, int) else value)
    return tuple(values)


def cxl_media_row(table: str) -> Callable[[int, str, MemoryErrorEvent], tuple[Any, ...]]:
    """The row builder of a CXL media error's table: its event re-read from the
    driver detail (memras.ingest.parsers.cxl.cxl_event_of)."""
    event = RASDAEMON_CXL_TABLES[table]

    def build(row_id: int, stamp: str, error: MemoryErrorEvent) -> tuple[Any, ...]:
        ev = cxl_event_of(error) or CxlEvent(event=event, memdev=error.location.label or "")
        return cxl_row(table, row_id, stamp, ev)

    return build


class LocalTimestamps:
    """:func:`format_timestamp` for many events: the local UTC offset is looked up once
    per 15 minutes of event time (every zone's offset changes only on such a boundary),
    instead of a tz conversion plus strftime per row — the ingest hot path. The text has
    one-second resolution, so it is also kept per second: a storm's events share it."""

    BUCKET_S = 900
    MAX_SECONDS = 4096  # per-second texts kept; cleared when full (bounded memory)

    def __init__(self) -> None:
        self._suffix: dict[int, tuple[timedelta, str]] = {}
        self._by_second: dict[int, str] = {}

    def format(self, when_utc: datetime) -> str:
        return self.format_epoch(when_utc, when_utc.timestamp())

    def format_epoch(self, when_utc: datetime, epoch: float) -> str:
        """:meth:`format` when the caller already has ``when_utc.timestamp()``."""
        second = int(epoch // 1)
        text = self._by_second.get(second)
        if text is None:
            if len(self._by_second) >= self.MAX_SECONDS:
                self._by_second.clear()
            text = self._by_second[second] = self._format(when_utc, epoch)
        return text

    def _format(self, when_utc: datetime, epoch: float) -> str:
        bucket = int(epoch // self.BUCKET_S)
        cached = self._suffix.get(bucket)
        if cached is None:
            gmtoff = time.localtime(bucket * self.BUCKET_S).tm_gmtoff
            sign = "-" if gmtoff < 0 else "+"
            hours, minutes = divmod(abs(gmtoff) // 60, 60)
            cached = (timedelta(seconds=gmtoff), f" {sign}{hours:02d}{minutes:02d}")
            self._suffix[bucket] = cached
        offset, suffix = cached
        return str(when_utc.replace(tzinfo=None) + offset)[:19] + suffix
