"""Compatibility with the real Debian rasdaemon, both ways.

memras → rasdaemon: a database memras wrote is read by the real ``ras-mc-ctl``
(``--summary`` and ``--errors``), which lists exactly the errors memras lists.
rasdaemon → memras: databases in rasdaemon 0.6.8's four-table shape and in the
v0.8.5 shape (built here with the literal DDL) import without loss, and ras-mc-ctl
summarises the memras copy exactly as it summarises the original.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import ras_mc_ctl_runner as ras

from memras.records import ErrorType, MceRegisters, MemoryErrorEvent, Source
from memras.store import Store
from memras.store import rasdaemon_schema as rs


@pytest.fixture
def store(sqlite_store: Store) -> Store:
    """ras-mc-ctl reads rasdaemon's tables in the SQLite file: SQLite only
    (the store's other behaviour runs on both dialects)."""
    return sqlite_store

pytestmark = pytest.mark.rasdaemon


@pytest.fixture(autouse=True)
def _real_ras_mc_ctl() -> None:
    ras.require_ras_mc_ctl()


LABELS = ["CPU_SrcID#0_Ha#0_Chan#0_DIMM#0", "DIMM A1", "any memory", "mc#0csrow#1channel#0"]


def _events(make_event) -> list[MemoryErrorEvent]:
    events = []
    for i in range(24):
        label = LABELS[i % len(LABELS)]
        loc = (i % 2, i % 3, -1 if i % 4 == 0 else 1, None)
        loc = tuple(None if v == -1 else v for v in loc)
        kind = [ErrorType.CORRECTED, ErrorType.UNCORRECTED, ErrorType.DEFERRED][i % 3]
        events.append(make_event(label, kind=kind, count=1 + i % 5, minutes=i, location=loc,
                                 syndrome=i * 0x11, grain_bits=i % 7))
    events.append(make_event("DIMM A1", address=0xFFFF_8000_0000_0000))  # u64 >= 2^63
    mce = MceRegisters(status=0x9C00_0040_0101_0090, bank=7, addr=0x20B5CF8880)
    events.append(MemoryErrorEvent(ErrorType.CORRECTED, Source.MCELOG, mce=mce, raw="mce 1"))
    return events


def test_ras_mc_ctl_reads_a_memras_database(store: Store, make_event, tmp_path: Path) -> None:
    events = _events(make_event)
    store.add_events(events)
    db_dir = ras.checkpointed_copy(Path(store.engine.url.database), tmp_path / "ras")

    theirs = ras.summary(db_dir)
    ours = {(g.type, g.label, g.location): g.events for g in store.summary().groups
            if g.label is not None}  # the MCE-only event has no EDAC location
    assert theirs == ours
    assert sum(theirs.values()) == len(events) - 1

    listed = ras.errors(db_dir)
    stored = {e.rasdaemon_id: e for e in store.errors() if e.rasdaemon_table == "mc_event"}
    assert len(listed) == len(stored) == len(events) - 1
    for line in listed:
        e = stored[line.id]
        assert (line.type, line.count, line.msg, line.label) == (
            e.type, e.count, e.message, e.label)
        assert line.time == rs.format_timestamp(e.time)
        assert line.location == ":".join(str(-1 if v is None else v) for v in (
            e.location.mc, e.location.top_layer, e.location.middle_layer,
            e.location.lower_layer))
        assert line.addr == rs.as_int64(e.address)
        assert line.detail == e.driver_detail


def test_ras_mc_ctl_needs_the_tables_memras_creates(store: Store, tmp_path: Path) -> None:
    db_dir = ras.checkpointed_copy(Path(store.engine.url.database), tmp_path / "empty")
    out = ras.run(db_dir, "--summary")  # run() also fails on "prepare failed" in stderr
    assert "No Memory errors." in out
    assert "No PCIe AER errors." in out and "No MCE errors." in out


def _rasdaemon_db(path: Path, columns: dict[str, str], rows: int) -> Path:
    """A database as that rasdaemon version writes it: its literal DDL, its value shapes."""
    import sqlite3

    db = sqlite3.connect(path)
    for statement in rs.all_create_statements(columns):
        db.execute(statement)
    for i in range(rows):
        stamp = f"2024-12-19 03:{i // 60 % 60:02d}:{i % 60:02d} +0000"
        db.execute(
            "INSERT INTO mc_event (id, timestamp, err_count, err_type, err_msg, label, mc, "
            "top_layer, middle_layer, lower_layer, address, grain, syndrome, driver_detail) "
            "VALUES (NULL, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (stamp, 1 + i % 3, ["Corrected", "Uncorrected", "Fatal"][i % 3],
             "memory read error", LABELS[i % len(LABELS)], 0, i % 2, i % 3, -1,
             0x1000 * (i % 4), 6, 0, "area:DRAM"))  # repeats: same page, same second
    mce_cols = rs.column_names("mce_record", columns)[1:]
    values = {"timestamp": "2024-12-19 04:00:00 +0000", "status": rs.as_int64(
        0x9C00_0040_0101_0090), "addr": 0x20B5CF8880, "bank": 7, "error_msg": "memory error"}
    for _ in range(3):
        db.execute(f"INSERT INTO mce_record ({', '.join(mce_cols)}) VALUES "
                   f"({', '.join('?' * len(mce_cols))})", [values.get(c, 0) for c in mce_cols])
    if "memory_failure_event" in columns:
        db.execute("INSERT INTO memory_failure_event (id, timestamp, pfn, page_type, "
                   "action_result) VALUES (NULL, '2024-12-19 05:00:00 +0000', '0x12345', "
                   "'dirty LRU page', 'Recovered')")
    db.commit()
    db.close()
    return path


@pytest.mark.parametrize("version, columns", [("0.6.8", rs.TABLE_COLUMNS_V068),
                                              ("0.8.5", rs.TABLE_COLUMNS_V085)])
def test_import_rasdaemon_db_without_loss(version: str, columns: dict[str, str],
                                          tmp_path: Path) -> None:
    from memras.watcher.importing import run_import

    source = _rasdaemon_db(tmp_path / f"ras-{version}.db", columns, rows=30)
    before = source.read_bytes()
    store = Store.open(tmp_path / "memras.db")
    report = run_import(store, "rasdaemon", str(source))
    expected_rows = 30 + 3 + (1 if "memory_failure_event" in columns else 0)
    assert (report.inserted, report.skipped) == (expected_rows, 0)
    assert store.count() == expected_rows
    assert run_import(store, "rasdaemon", str(source)).inserted == 0  # cursor: no doubles
    assert source.read_bytes() == before  # opened read-only, never altered

    db_dir = ras.checkpointed_copy(Path(store.engine.url.database), tmp_path / "copy")
    store.close()
    original = tmp_path / "orig"
    original.mkdir()
    (original / ras.DB_NAME).write_bytes(before)
    if version == "0.6.8":
        assert ras.summary(db_dir) == ras.summary(original)  # 0.6.8's own tool, both DBs
    else:
        assert sum(ras.summary(db_dir).values()) == 30
