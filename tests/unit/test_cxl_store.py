"""CXL media errors in the store: one memras_error row each, rasdaemon's cxl_* mirror row
in the exact v0.8.5 schema, and back through rasdaemon's rows (memras.ingest.sources)."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import pytest

from memras.ingest.parsers.cxl import (
    RASDAEMON_CXL_TABLES,
    from_cxl_row,
    memory_error,
    parse_cxl_event,
)
from memras.ingest.parsers.ftrace import parse_trace_line
from memras.ingest.sources import RasdaemonSource
from memras.records import ErrorType, MemoryErrorEvent, Source
from memras.store import Store
from memras.store import rasdaemon_schema as rs

REFERENCE = Path("/work/shared/reference/rasdaemon.md")
PREFIX = "    kworker/u8:3-112     [001] .....   512.408311: "
HDR = ("memdev=mem0 host=0000:0d:00.0 serial=7 log=Warning : time=1733356800000000000 "
       "uuid=601dcbb3-9c06-4eab-b8af-4e9bfb5c9624 len=128 flags='MAINTENANCE_NEEDED' handle=2 "
       "related_handle=0 maint_op_class=0 : ")
DRAM = (PREFIX + "cxl_dram: " + HDR + "dpa=1000 dpa_flags='VOLATILE' descriptor='' "
        "type='ECC Error' transaction_type='Host Read' channel=2 rank=1 nibble_mask=fb1 "
        "bank_group=3 bank=2 row=4660 column=288 cor_mask=00 00 validity_flags='CHANNEL|RANK|"
        "NIBBLE|BANK GROUP|BANK|ROW|COLUMN' hpa=290001000 region=region0 "
        "region_uuid=2f4c1a6e-3f0e-4a8d-9d1c-6f3b1e2a7c11")


def _reference_columns() -> dict[str, list[str]]:
    """rasdaemon 0.8.5's cxl_* columns as the reference text lists them (HDR expanded)."""
    text = REFERENCE.read_text()
    ddl = dict(re.findall(r"CREATE TABLE IF NOT EXISTS (cxl_\w+) \((.*)\)\n", text))
    hdr = ddl["cxl_generic_event"].rsplit(", data BLOB", 1)[0]
    return {t: [c.strip().split()[0] for c in body.replace("HDR", hdr).split(",")]
            for t, body in ddl.items()}


def test_cxl_tables_match_rasdaemon_085_column_by_column() -> None:
    reference = _reference_columns()
    assert set(reference) == set(RASDAEMON_CXL_TABLES)
    for table, columns in reference.items():
        assert rs.column_names(table) == columns, table
        assert rs.CXL_TABLE_COLUMNS[table] == columns, table


@pytest.fixture
def store(tmp_path: Path):
    s = Store.open(tmp_path / "memras.db")
    yield s
    s.close()


def test_a_cxl_dram_error_is_stored_once_with_its_rasdaemon_row(store: Store) -> None:
    record = parse_trace_line(DRAM)
    assert isinstance(record, MemoryErrorEvent)
    from datetime import UTC, datetime
    record = record.__class__(**{**{f: getattr(record, f) for f in record.__slots__},
                                 "timestamp": datetime(2024, 12, 5, 0, 0, 0, tzinfo=UTC)})
    store.add_events([record])
    store.add_events([record])  # the same line read twice: stored once
    errors = store.errors()
    assert len(errors) == 1
    stored = errors[0]
    assert stored.rasdaemon_table == "cxl_dram_event"
    db = sqlite3.connect(store.engine.url.database)
    db.row_factory = sqlite3.Row
    rows = db.execute("SELECT * FROM cxl_dram_event").fetchall()
    assert len(rows) == 1
    row = dict(rows[0])
    assert row["id"] == stored.rasdaemon_id
    assert (row["memdev"], row["host"], row["serial"], row["log_type"]) == (
        "mem0", "0000:0d:00.0", 7, "Warning")
    assert (row["dpa"], row["dpa_flags"], row["descriptor"], row["hdr_flags"]) == (
        0x1000, 1, 0, 8)
    assert (row["channel"], row["rank"], row["bank_group"], row["bank"], row["row"],
            row["column"], row["nibble_mask"]) == (2, 1, 3, 2, 4660, 288, 0xFB1)
    assert (row["hpa"], row["region"], row["transaction_type"], row["hdr_handle"]) == (
        0x290001000, "region0", 1, 2)
    assert row["region_uuid"] == "2f4c1a6e-3f0e-4a8d-9d1c-6f3b1e2a7c11"
    assert row["hdr_ts"] == rs.cxl_timestamp(1733356800000000000)
    # ... and read back as rasdaemon's row: the same error, the same fields
    back = from_cxl_row("cxl_dram_event", row)
    ev = parse_cxl_event("cxl_dram", DRAM.split("cxl_dram: ", 1)[1])
    assert back is not None and ev is not None
    for name in ("memdev", "host", "serial", "log_type", "hdr_flags", "hdr_handle", "dpa",
                 "dpa_flags", "descriptor", "type", "transaction_type", "channel", "rank",
                 "nibble_mask", "bank_group", "bank", "row", "column", "hpa", "region",
                 "region_uuid", "hdr_ts"):
        assert getattr(back, name) == getattr(ev, name), name
    db.close()


def test_rasdaemon_cxl_rows_import_as_memory_errors(tmp_path: Path) -> None:
    db_path = tmp_path / "ras-mc_event.db"
    db = sqlite3.connect(db_path)
    for statement in rs.all_create_statements():
        db.execute(statement)
    gm = {"id": 1, "timestamp": "2024-12-05 00:00:01 +0000", "memdev": "mem1",
          "host": "0000:0e:00.0", "serial": 5, "log_type": "Informational",
          "hdr_uuid": "fbcd0a77-c260-417f-85a9-088b1621eba6", "hdr_flags": 0, "hdr_handle": 4,
          "hdr_ts": "1970-01-01 00:00:00 +0000", "dpa": 0x7C0, "dpa_flags": 0,
          "descriptor": 1, "type": 0, "transaction_type": 5, "channel": 3, "rank": 1,
          "device": 5, "hpa": -1, "region": "", "region_uuid": rs._UUID_NULL}
    db.execute(f"INSERT INTO cxl_general_media_event ({', '.join(gm)}) "
               f"VALUES ({', '.join('?' * len(gm))})", list(gm.values()))
    db.commit()
    db.close()
    source = RasdaemonSource(str(db_path))
    source.start(None)
    batch = source.poll(0)
    assert batch.skipped == []
    assert len(batch.records) == 1
    error = batch.records[0]
    assert isinstance(error, MemoryErrorEvent)
    assert error.source is Source.RASDAEMON and error.driver == "cxl"
    assert error.error_type is ErrorType.UNCORRECTED  # descriptor bit 0
    assert error.address is None  # -1: no region maps the DPA
    assert (error.location.label, error.location.channel, error.location.rank) == ("mem1", 3, 1)
    assert error.timestamp is not None and error.timestamp.second == 1
    again = parse_cxl_event("cxl_general_media", error.driver_detail)
    assert again is not None and again.dpa == 0x7C0 and again.transaction_type == 5
    assert memory_error(again) is not None


MODULE = (PREFIX.replace("512.408311", "600.000000") + "cxl_memory_module: " + HDR +
          "event_type='Life Used Change' health_status='MAINTENANCE_NEEDED' "
          "media_status='Normal' as_life_used=Warning as_dev_temp=Normal "
          "as_cor_vol_err_cnt=Normal as_cor_per_err_cnt=Normal life_used=91 device_temp=40 "
          "dirty_shutdown_cnt=2 cor_vol_err_cnt=0 cor_per_err_cnt=0")
POISON = (PREFIX.replace("512.408311", "601.000000") + "cxl_poison: memdev=mem0 "
          "host=0000:0d:00.0 serial=7 trace_type=List region=region0 "
          "region_uuid=2f4c1a6e-3f0e-4a8d-9d1c-6f3b1e2a7c11 hpa=0x290001000 dpa=0x1000 "
          "dpa_length=0x40 source=Injected flags= overflow_time=0")


def test_cxl_events_and_memory_errors_in_one_batch(store: Store) -> None:
    from datetime import UTC, datetime

    from memras.store.cxl import cxl_events
    from memras.store.migrations import LATEST_VERSION, applied_versions

    boot = datetime(2024, 12, 5, tzinfo=UTC)
    batch = [parse_trace_line(line) for line in (DRAM, MODULE, POISON)]
    result = store.add_events(batch, boot_time=boot)  # type: ignore[arg-type]
    assert (result.inserted, result.cxl_inserted, result.cxl_duplicates) == (1, 2, 0)
    assert len(result.new_events) == 1  # health gets the memory error only
    again = store.add_events(batch, boot_time=boot)  # type: ignore[arg-type]
    assert (again.inserted, again.duplicates, again.cxl_inserted, again.cxl_duplicates) == (
        0, 1, 0, 2)
    stored = cxl_events(store, memdev="mem0")
    assert [e.event for e in stored] == ["memory_module", "poison"]
    module, poison = stored
    assert (module.life_used, module.health_status, module.dirty_shutdown_cnt,
            module.log_type, module.hdr_flags, module.add_status) == (91, 1, 2, "Warning", 8, 1)
    assert module.timestamp == datetime(2024, 12, 5, 0, 10, tzinfo=UTC)  # boot + 600 s
    assert (poison.dpa, poison.hpa, poison.dpa_length, poison.trace_type, poison.source_text,
            poison.serial) == (0x1000, 0x290001000, 0x40, "List", "Injected", 7)
    assert poison.raw == POISON
    with store.engine.connect() as conn:
        assert 9 in applied_versions(conn) and LATEST_VERSION == 9


def test_import_of_a_trace_file_stores_every_cxl_event(store: Store, tmp_path: Path) -> None:
    from memras.store.cxl import cxl_events
    from memras.watcher.importing import run_import

    path = tmp_path / "trace.txt"
    broken = PREFIX + "cxl_poison: memdev=mem0 host=0000:0d:00.0 serial=7 trace_type=List"
    path.write_text("\n".join([DRAM, MODULE, POISON, broken]) + "\n")
    report = run_import(store, "trace", str(path))
    assert (report.inserted, report.skipped) == (3, 1)
    assert len(store.errors()) == 1 and len(cxl_events(store)) == 2
    assert run_import(store, "trace", str(path)).duplicates == 3


def test_cxl_records_get_their_rasdaemon_rows_and_come_back_from_them(store: Store,
                                                                      tmp_path: Path) -> None:
    """memras writes rasdaemon's cxl_memory_module_event/cxl_poison_event rows; a rasdaemon
    database with such rows imports into memras_cxl_event, each once."""
    from datetime import UTC, datetime

    from memras.store.cxl import cxl_events

    boot = datetime(2024, 12, 5, tzinfo=UTC)
    store.add_events([parse_trace_line(MODULE), parse_trace_line(POISON)],  # type: ignore[list-item]
                     boot_time=boot)
    db = sqlite3.connect(store.engine.url.database)
    db.row_factory = sqlite3.Row
    (module,) = [dict(r) for r in db.execute("SELECT * FROM cxl_memory_module_event")]
    (poison,) = [dict(r) for r in db.execute("SELECT * FROM cxl_poison_event")]
    db.close()
    assert (module["memdev"], module["life_used"], module["health_status"],
            module["dirty_shutdown_cnt"], module["log_type"], module["hdr_flags"]) == (
        "mem0", 91, 1, 2, "Warning", 8)
    assert (poison["dpa"], poison["hpa"], poison["dpa_length"], poison["source"],
            poison["trace_type"], poison["flags"], poison["serial"]) == (
        0x1000, 0x290001000, 0x40, "Injected", "List", 0, 7)
    assert module["timestamp"] == rs.format_timestamp(datetime(2024, 12, 5, 0, 10, tzinfo=UTC))

    # those rows, in a rasdaemon database of their own, import back as the same events
    ras = tmp_path / "ras-mc_event.db"
    conn = sqlite3.connect(ras)
    for statement in rs.all_create_statements():
        conn.execute(statement)
    for table, row in (("cxl_memory_module_event", module), ("cxl_poison_event", poison)):
        conn.execute(f"INSERT INTO {table} ({', '.join(row)}) VALUES "
                     f"({', '.join('?' * len(row))})", list(row.values()))
    conn.commit()
    conn.close()
    other = Store.open(tmp_path / "other.db")
    try:
        source = RasdaemonSource(str(ras))
        source.start(None)
        batch = source.poll(0)
        assert batch.skipped == [] and len(batch.records) == 2
        result = other.add_events(batch.records)
        assert (result.inserted, result.cxl_inserted) == (0, 2)
        got = {e.event: e for e in cxl_events(other)}
        assert got["memory_module"].life_used == 91
        assert got["memory_module"].source is Source.RASDAEMON
        assert (got["poison"].dpa, got["poison"].source_text) == (0x1000, "Injected")
        assert other.add_events(batch.records).cxl_duplicates == 2
    finally:
        other.close()
