"""Store behaviour: rasdaemon tables and values, dedup, atomic cursors, queries, migrations."""

from __future__ import annotations

import re
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy.exc import OperationalError

from memras.errors import StoreError
from memras.records import (
    ErrorType,
    MceRegisters,
    MemoryErrorEvent,
    MemoryFailureEvent,
    Source,
)
from memras.store import MEMORY_FAILURE_TYPE, Store
from memras.store import rasdaemon_schema as rs
from memras.store.migrations import LATEST_VERSION

T0 = datetime(2024, 12, 19, 3, 52, 38, tzinfo=UTC)  # same instant as conftest's factory


def raw_key(event: object) -> tuple:
    return (str(event.source), event.raw)  # type: ignore[attr-defined]


def _db(store: Store) -> sqlite3.Connection:
    return sqlite3.connect(store.engine.url.database)


def test_rasdaemon_tables_have_rasdaemons_exact_ddl(sqlite_store: Store) -> None:
    store = sqlite_store  # rasdaemon's mirror and the file are SQLite's
    master = dict(_db(store).execute("SELECT name, sql FROM sqlite_master WHERE type='table'"))
    for table, columns in rs.TABLE_COLUMNS_V085.items():
        assert master[table] == f"CREATE TABLE {table} ({columns})"
    assert master["mc_event"].startswith(
        "CREATE TABLE mc_event (id INTEGER PRIMARY KEY, timestamp TEXT, err_count INTEGER, "
        "err_type TEXT, err_msg TEXT, label TEXT, mc INTEGER, top_layer INTEGER")
    assert "HDR" not in master["cxl_dram_event"]
    assert len(rs.column_names("mce_record")) == 26
    assert len(rs.column_names("mce_record", rs.TABLE_COLUMNS_V068)) == 24


def test_sqlite_pragmas(sqlite_store: Store) -> None:
    store = sqlite_store  # rasdaemon's mirror and the file are SQLite's
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 5000
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1


def test_mc_event_row_uses_rasdaemon_conventions(sqlite_store: Store, make_event) -> None:
    store = sqlite_store  # rasdaemon's mirror and the file are SQLite's
    event = make_event(location=(1, 2, None, None), syndrome=0xFFFF_FFFF_FFFF_FFFF,
                       grain_bits=6, kind=ErrorType.DEFERRED, count=3)
    store.add_events([event])
    row = _db(store).execute(
        "SELECT timestamp, err_count, err_type, err_msg, label, mc, top_layer, middle_layer,"
        " lower_layer, address, grain, syndrome, driver_detail FROM mc_event").fetchone()
    local = T0.astimezone().strftime("%Y-%m-%d %H:%M:%S %z")
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d [+-]\d{4}", row[0])
    assert row[0] == local
    assert row[1:5] == (3, "Deferred", "memory read error", event.location.label)
    assert row[5:9] == (1, 2, -1, -1)
    assert row[9] == event.address
    assert row[10] == 6  # log2 of the grain, not bytes
    assert row[11] == -1  # u64 0xffff...ffff bound as int64
    assert row[12] == "area:DRAM socket:0 rank:0"


def test_mce_and_memory_failure_rows(sqlite_store: Store) -> None:
    store = sqlite_store  # rasdaemon's mirror and the file are SQLite's
    regs = MceRegisters(status=0x9C00_0040_0101_0090, bank=7, addr=0x20B5CF8880,
                        mcgcap=0x1_F000_0C14, mcgstatus=0x5, cpu=3, socketid=1)
    mce = MemoryErrorEvent(ErrorType.CORRECTED, Source.MCELOG, mce=regs, timestamp=T0,
                           address=0x20B5CF8880, raw="mce")
    failure = MemoryFailureEvent(pfn=0x12345, page_type="dirty LRU page",
                                 action_result="Recovered", source=Source.TRACE,
                                 timestamp=T0, raw="mf")
    store.add_events([mce, failure])
    db = _db(store)
    m = db.execute("SELECT mcgcap, mcgstatus, status, addr, bank, cpu, socketid, bank_name,"
                   " mcistatus_msg, mcgstatus_msg FROM mce_record").fetchone()
    assert m[0] == 0xF000_0C14 - (1 << 32)  # low 32 bits, signed: rasdaemon bind_int
    assert m[1] == 5
    assert m[2] == rs.as_int64(regs.status) and m[2] < 0
    assert m[3:7] == (0x20B5CF8880, 7, 3, 1)
    assert m[7] == "memory controller"
    assert m[8].startswith("Corrected_error Error_enabled")
    assert m[9] == "RIPV MCIP"
    assert db.execute("SELECT pfn, page_type, action_result FROM memory_failure_event"
                      ).fetchone() == ("0x12345", "dirty LRU page", "Recovered")
    stored = {e.type: e for e in store.errors()}
    assert stored[MEMORY_FAILURE_TYPE].page == 0x12345
    assert stored[MEMORY_FAILURE_TYPE].rasdaemon_table == "memory_failure_event"
    assert stored["Corrected"].rasdaemon_table == "mce_record"


def test_duplicates_skipped_within_and_across_batches(store: Store, make_event) -> None:
    a, b = make_event(), make_event()
    first = store.add_events([a, b, a])
    assert (first.inserted, first.duplicates) == (2, 1)
    assert first.new_events == [a, b]
    again = store.add_events([b, make_event()])
    assert (again.inserted, again.duplicates) == (1, 1)
    assert store.count() == 3
    if store.mirrors_rasdaemon:
        assert _db(store).execute("SELECT count(*) FROM mc_event").fetchone() == (3,)


def test_rasdaemon_link_points_at_the_mirrored_row(sqlite_store: Store, make_event) -> None:
    store = sqlite_store  # rasdaemon's mirror and the file are SQLite's
    store.add_events([make_event(), make_event(label="DIMM_B1")])
    db = _db(store)
    for e in store.errors():
        label = db.execute("SELECT label FROM mc_event WHERE id=?", (e.rasdaemon_id,))
        assert label.fetchone() == (e.label,)


def test_cursor_moves_only_with_its_batch(store: Store, make_event, monkeypatch) -> None:
    store.add_events([make_event()], cursor=("kmsg", "10"))
    assert store.get_cursor("kmsg") == "10"

    def broken(*_a: object) -> None:
        raise OperationalError("UPDATE memras_error_count", {}, Exception("disk I/O error"))

    monkeypatch.setattr(Store, "_bump_counts", broken)
    with pytest.raises(StoreError, match="disk I/O error"):
        store.add_events([make_event(), make_event()], cursor=("kmsg", "12"))
    assert store.get_cursor("kmsg") == "10"
    assert store.count() == 1
    if store.mirrors_rasdaemon:
        assert _db(store).execute("SELECT count(*) FROM mc_event").fetchone() == (1,)


def test_errors_filters_and_limit(store: Store, make_event) -> None:
    store.add_events([
        make_event("A", minutes=0), make_event("A", minutes=10, kind=ErrorType.UNCORRECTED),
        make_event("B", minutes=20), make_event("B", minutes=30),
    ])
    assert [e.label for e in store.errors()] == ["A", "A", "B", "B"]
    assert len(store.errors(since=T0 + timedelta(minutes=10))) == 3
    assert len(store.errors(until=T0 + timedelta(minutes=10))) == 1
    assert [e.type for e in store.errors(dimm="A")] == ["Corrected", "Uncorrected"]
    assert len(store.errors(type="Uncorrected")) == 1
    newest = store.errors(limit=2)
    assert [e.time for e in newest] == [T0 + timedelta(minutes=20), T0 + timedelta(minutes=30)]
    assert newest[0].time.tzinfo is UTC


def test_summary_counts_rows_and_error_counts(store: Store, make_event) -> None:
    store.add_events([make_event("A", count=5), make_event("A", count=2),
                      make_event("B", location=(1, 0, 1, None)),
                      make_event("A", kind=ErrorType.UNCORRECTED)])
    summary = store.summary()
    by_key = {(g.type, g.label, g.location): (g.events, g.errors) for g in summary.groups}
    assert by_key == {("Corrected", "A", "0:0:0:-1"): (2, 7),
                      ("Corrected", "B", "1:0:1:-1"): (1, 1),
                      ("Uncorrected", "A", "0:0:0:-1"): (1, 1)}
    assert [(t.type, t.events, t.errors) for t in summary.totals] == [
        ("Corrected", 3, 8), ("Uncorrected", 1, 1)]
    # the maintained table and a GROUP BY over every row agree
    far_past = datetime(2000, 1, 1, tzinfo=UTC)
    assert store.summary(since=far_past) == summary
    assert [g.label for g in store.summary(dimm="B").groups] == ["B"]


def test_events_without_a_timestamp_use_boot_time_plus_uptime(store: Store, make_event
                                                              ) -> None:
    boot = datetime(2024, 1, 1, tzinfo=UTC)
    store.add_events([make_event(timestamp=None, uptime_s=90.5)], boot_time=boot)
    assert store.errors()[0].time == boot + timedelta(seconds=90.5)


def test_gap_skipped_and_session(store: Store) -> None:
    store.add_gap(source="edac", subject="0:0:0:-1", count=4, error_type="Corrected",
                  message="counter rose by 4")
    store.count_skipped("kmsg", "garbage 1")
    store.count_skipped("kmsg", "garbage 2", n=2)
    assert store.skipped() == {"kmsg": 3}
    assert [(g["subject"], g["count"]) for g in store.gaps()] == [("0:0:0:-1", 4)]
    from memras.store.models import SkippedRow

    with store.session() as s:
        assert s.get(SkippedRow, "kmsg").sample == "garbage 2"


def test_migrations_recorded_and_idempotent(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "dir" / "m.db"  # parent directories are created
    Store.open(path, key_fn=raw_key).close()
    Store.open(path, key_fn=raw_key).close()
    db = sqlite3.connect(path)
    versions = [v for (v,) in db.execute("SELECT version FROM memras_schema ORDER BY version")]
    assert versions == list(range(1, LATEST_VERSION + 1))


def test_old_database_gets_only_missing_migrations(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    Store.open(path, key_fn=raw_key).close()
    db = sqlite3.connect(path)
    db.execute("DELETE FROM memras_schema WHERE version = 2")
    db.execute("DROP TABLE disk_errors")
    db.commit()
    Store.open(path, key_fn=raw_key).close()
    names = {n for (n,) in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert "disk_errors" in names
    assert db.execute("SELECT count(*) FROM memras_schema").fetchone() == (LATEST_VERSION,)


def test_other_areas_models_are_created(store: Store) -> None:
    from sqlalchemy import inspect

    from memras.store.base import Base

    with store.engine.connect() as conn:
        names = set(inspect(conn).get_table_names())
    assert set(Base.metadata.tables) <= names


def test_open_errors_are_one_line(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="no memras database"):
        Store.open(tmp_path / "absent.db", create=False)
    not_db = tmp_path / "text.db"
    not_db.write_text("this is not sqlite\n" * 100)
    with pytest.raises(StoreError, match="not a database"):
        Store.open(not_db)


def test_value_helpers_round_trip() -> None:
    assert rs.as_int64(1 << 63) == -(1 << 63)
    assert rs.as_u64(rs.as_int64(0xFFFF_0000_0000_0001)) == 0xFFFF_0000_0000_0001
    assert rs.as_int32(0xFFFF_FFFF) == -1
    assert rs.layer(None) == -1
    when = datetime(2024, 6, 1, 12, 0, 0, tzinfo=UTC)
    assert rs.parse_timestamp(rs.format_timestamp(when)) == when
    assert rs.parse_timestamp("not a time") is None


def test_real_dedup_keeps_second_faults_and_drops_other_sources(tmp_path: Path,
                                                                 make_event) -> None:
    store = Store.open(tmp_path / "real.db")  # the parsers' dedup_keys
    trace = make_event(uptime_s=100.0, address=0x5000, raw="trace line 1")
    second = make_event(uptime_s=100.5, address=0x5008, raw="trace line 2")  # same page
    kmsg = make_event(uptime_s=101.9, address=0x5000, raw="EDAC MC0: 1 CE …",
                      source=Source.KMSG)  # same fault through kmsg, next 2 s bucket
    first = store.add_events([trace, second])
    assert first.inserted == 2  # one source, two lines: two faults, not one
    again = store.add_events([trace, kmsg])
    assert (again.inserted, again.duplicates) == (0, 2)  # a re-read and a cross-source copy
    store.close()


def test_rows_of_mixed_shapes_keep_nulls_values_and_order(tmp_path: Path) -> None:
    """Rows leave their NULL columns out of the INSERT (see memras.store.rows): every
    column must still read back exactly, NULLs as NULL, ids in record order."""
    from memras.records import DimmLocation

    store = Store.open(tmp_path / "shapes.db")
    full = DimmLocation(socket=1, mc=2, channel=3, slot=0, csrow=4, rank=5, bank_group=6,
                        bank=7, row=8, column=9, device=10, label="DIMM_A1", top_layer=0,
                        middle_layer=1, lower_layer=2)
    events = [
        MemoryErrorEvent(ErrorType.CORRECTED, Source.TRACE, count=3, uptime_s=10.0,
                         address=0xFFFF_0000_0000_1000, normalized_address=1 << 63,
                         grain_bits=6, syndrome=0xFFFF_FFFF_FFFF_FFFF, message="m",
                         driver="skx_edac", driver_detail="d", location=full, raw="a"),
        MemoryErrorEvent(ErrorType.UNCORRECTED, Source.KMSG, timestamp=T0, raw="b"),
        MemoryFailureEvent(pfn=0x1234, page_type="dirty LRU page", action_result="Recovered",
                           source=Source.TRACE, uptime_s=11.0, raw="c"),
        MemoryErrorEvent(ErrorType.CORRECTED, Source.TRACE, uptime_s=12.0, address=0x2000,
                         location=DimmLocation(mc=0, top_layer=1), raw="d"),
        MemoryErrorEvent(ErrorType.CORRECTED, Source.TRACE, count=3, uptime_s=13.0,
                         address=0x3000, grain_bits=6, syndrome=1, location=full, raw="e"),
    ]
    assert store.add_events(events, boot_time=T0).inserted == 5
    got = store.errors()
    assert [e.raw for e in got] == ["b", "a", "c", "d", "e"]  # by time; b has T0 itself
    with _db(store) as db:
        assert [r[0] for r in db.execute("SELECT raw FROM memras_error ORDER BY id")] == \
            list("abcde")
        nulls = db.execute("SELECT uptime, address, page, normalized_address, grain_bits, "
                           "syndrome, socket, label, top_layer, dimm_id FROM memras_error "
                           "WHERE raw = 'b'").fetchone()
        assert nulls == (None,) * 10
        assert db.execute("SELECT typeof(uptime) FROM memras_error WHERE raw = 'a'"
                          ).fetchone() == ("real",)
    a, c, d = (next(e for e in got if e.raw == r) for r in "acd")
    assert a.location == full and a.count == 3 and a.driver == "skx_edac"
    assert (a.address, a.normalized_address, a.uptime) == (0xFFFF_0000_0000_1000, 1 << 63, 10.0)
    assert a.page == 0xFFFF_0000_0000_1000 >> 12
    assert a.rasdaemon_table == "mc_event" and a.message == "m" and a.driver_detail == "d"
    assert (c.type, c.address, c.page, c.message) == (
        MEMORY_FAILURE_TYPE, 0x1234 << 12, 0x1234, "dirty LRU page: Recovered")
    assert c.rasdaemon_table == "memory_failure_event"
    assert d.location.mc == 0 and d.location.label is None and d.location.socket is None
    with _db(store) as db:
        syndromes = [r[0] for r in db.execute("SELECT syndrome FROM mc_event ORDER BY id")]
        assert syndromes == [-1, None, None, 1]  # u64 as int64, like sqlite3_bind_int64
    store.close()


def test_fast_dedup_key_text_equals_the_generic_one(tmp_path: Path, make_event) -> None:
    """The store builds the parsers' key text directly (dedup_key_parts); it must hash to
    exactly what the generic path (dedup_key -> _neighbour_texts) gives, or re-reads of rows
    stored by the generic path would not be recognised."""
    from memras.ingest.parsers import dedup_key
    from memras.store.store import _neighbour_texts

    store = Store.open(tmp_path / "keys.db")
    records = [
        make_event(uptime_s=100.0, address=0x5008),
        make_event(uptime_s=3.9, address=0xFFFF_FFFF_FFFF_FFFF, kind=ErrorType.DEFERRED),
        make_event(uptime_s=7.0, address=0x7000, kind=ErrorType.FATAL),
        MemoryFailureEvent(pfn=0x99, page_type="x", action_result="Ignored",
                           source=Source.TRACE, uptime_s=5.0),
        make_event(address=None, uptime_s=5.0),  # generic path (no page)
        make_event(uptime_s=None, address=0x1000),  # generic path (wall-clock bucket)
    ]
    prepared = store._prepare(records, None)
    for record, p in zip(records, prepared, strict=True):
        wall_s = p[4].timestamp() if p[5].is_real else None  # the row's time, if real
        assert p[:2] == _neighbour_texts(dedup_key(record, wall_s=wall_s))
    store.close()
