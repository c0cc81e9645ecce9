"""The shipper's COPY road (memras.fleet.ship.copy_csv_select, copy_new) on a real PostgreSQL.

SQLite writes each batch as COPY CSV itself; these tests put hostile values in a local
store (every control character, quotes, commas, backslashes, COPY's own markers, bytes
of every value, the extreme doubles and integers, times with and without a zone) and
read them back from the central tables: each must be what the local store holds, and
what psycopg's own row encoding (the road a non-SQLite local store takes) stores. A
re-sent batch must take the merge road and store nothing twice.
"""

from __future__ import annotations

import shutil
import sqlite3
import zlib
from collections import Counter
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, func, select

from memras.cli import main
from memras.errors import StoreError
from memras.fleet.identity import HostIdentity
from memras.fleet.schema import CENTRAL, SHIPPED
from memras.fleet.ship import CONFLICT, DIRECT, Shipper, central_engine
from memras.store import Store

HOSTILE = [
    "", ",", '"', '""', '"quoted", and a comma', "tab\there", "new\nline", "cr\rreturn",
    "crlf\r\nend", "back\\slash", "\\", "\\N", "\\.", "\\.\n\\.", "a\\\nb", "\\x00", "NULL",
    "all controls " + "".join(chr(c) for c in range(1, 32)) + "\x7f\x80\x9f",
    "ünïcødé ✓ 😀 \u2028 \u202e right-to-left", "%s %d %!.17g printf's own", "x" * 100_000,
]
DOUBLES = [0.1, 1 / 3, 1e-300, 5e-324, 2.2250738585072014e-308, 1.7976931348623157e308,
           float("inf"), float("-inf"), -123.456, 0.0, 12345678901234567.0]
INTEGERS = [2**63 - 1, -(2**63), 0, -1, 2**31 - 1]
BLOBS = [bytes(range(256)), b"", b"\x00" * 10, zlib.compress(b"raw text" * 50), b'"\\,\n']
TIMES = [datetime(2026, 11, 1, 0, 0, 0, 10_000), datetime(1900, 1, 1),
         datetime(9000, 12, 31, 23, 59, 59, 999_999),
         datetime(2026, 3, 29, 2, 30, tzinfo=timezone(timedelta(hours=2))),
         datetime(2026, 11, 1, 12, 0, tzinfo=UTC)]


@pytest.fixture
def central(pg_url: str) -> str:
    assert main(["fleet", "--url", pg_url, "init"]) == 0
    return pg_url


def _hostile_store(db: Path) -> Store:
    """A local store holding every hostile value in every kind of shipped column."""
    from memras.audit.models import AuditRow
    from memras.health.models import HealthVerdictRow
    from memras.store.models import ErrorRow

    store = Store.open(db)
    errors, verdicts, audit = [], [], []
    n = max(len(HOSTILE), len(DOUBLES), len(INTEGERS), len(BLOBS), len(TIMES))
    for i in range(n):
        text = HOSTILE[i % len(HOSTILE)]
        errors.append({
            "time": TIMES[i % len(TIMES)], "source": "trace", "type": "Corrected",
            "uptime": DOUBLES[i % len(DOUBLES)], "address": INTEGERS[i % len(INTEGERS)],
            "syndrome": None if i % 3 else INTEGERS[-1], "count": 2**31 - 1,
            "label": text, "message": HOSTILE[-1 - i % len(HOSTILE)], "driver": text[:64],
            "driver_detail": text, "dedup_key": f"k{i}", "identity": f"e:{i}", "raw": text,
            "texts": BLOBS[i % len(BLOBS)] if i % 4 else None, "flags": None,
            "dimm_id": text[:128] or None})
        verdicts.append({"dimm_id": text[:128], "time": TIMES[i % len(TIMES)],
                         "state": "watch", "previous_state": None if i % 2 else text[:40],
                         "rules": f'["{i}"]', "reasons": text, "evidence": '{"a": "\\\\"}',
                         "reached_at": None})
        audit.append({"seq": i + 1, "time": TIMES[i % len(TIMES)].isoformat(),
                      "replacement_id": i, "action": text[:64], "payload": text,
                      "prev_hash": "0" * 64, "hash": f"{i:064x}"})
    with store.session() as s:
        s.connection().execute(ErrorRow.__table__.insert(), errors)
        s.connection().execute(HealthVerdictRow.__table__.insert(), verdicts)
        s.connection().execute(AuditRow.__table__.insert(), audit)
    return store


def _local_rows(store: Store) -> dict[str, dict[int, dict[str, Any]]]:
    out = {}
    with store.engine.connect() as conn:
        for s in SHIPPED:
            if s.mutable:
                continue
            rows = conn.execute(select(s.local)).mappings().all()
            out[s.name] = {r[s.key]: {k: v for k, v in r.items() if k != s.key} for r in rows}
    return out


def _central_rows(url: str, host_id: str) -> dict[str, dict[int, dict[str, Any]]]:
    engine = create_engine(url)
    out = {}
    with engine.connect() as conn:
        for s in SHIPPED:
            if s.mutable:
                continue
            table = CENTRAL[s.local.name]
            rows = conn.execute(select(table).where(table.c.host_id == host_id)
                                ).mappings().all()
            out[s.name] = {r["local_id"]: {k: v for k, v in r.items()
                                           if k not in ("host_id", "local_id")} for r in rows}
    engine.dispose()
    return out


def test_hostile_values_arrive_exactly_as_stored_by_either_road(tmp_path: Path,
                                                               central: str) -> None:
    with _hostile_store(tmp_path / "h.db") as local:
        local_rows = _local_rows(local)
    shutil.copy(tmp_path / "h.db", tmp_path / "twin.db")  # its own shipping cursors
    with Store.open(tmp_path / "h.db") as local:
        by_csv = Shipper(local, central_engine(central), HostIdentity("c" * 32, "csv"),
                         batch_rows=7)
        assert by_csv._copy_csv  # SQLite to PostgreSQL: the CSV road
        by_csv.ship_once()
        assert by_csv.roads == Counter({DIRECT: 3 * 3})  # 21 rows a table, no conflict
    with Store.open(tmp_path / "twin.db") as local:
        by_rows = Shipper(local, central_engine(central), HostIdentity("d" * 32, "rows"),
                          batch_rows=7)
        by_rows._copy_csv = False  # psycopg's write_row, as from a PostgreSQL local store
        by_rows.ship_once()
        assert by_rows.roads == Counter({DIRECT: 3 * 3})
    csv_rows, psycopg_rows = _central_rows(central, "c" * 32), _central_rows(central, "d" * 32)
    assert {name: len(rows) for name, rows in local_rows.items()} == {
        "fleet_error": len(HOSTILE), "fleet_health_verdict": len(HOSTILE),
        "fleet_audit": len(HOSTILE)}
    for name, rows in local_rows.items():
        for key, row in rows.items():  # column by column, for a readable failure
            for column, value in row.items():
                assert csv_rows[name][key][column] == value, (name, key, column)
                assert psycopg_rows[name][key][column] == value, (name, key, column)
    # the values really were hostile: the 100,000-character one, Inf, every byte
    errors = csv_rows["fleet_error"].values()
    assert any(r["uptime"] == float("inf") for r in errors)
    assert any(r["texts"] == bytes(range(256)) for r in errors)
    assert any(r["uptime"] == 5e-324 for r in errors)
    assert {r["raw"] for r in errors} == set(HOSTILE)


def test_a_nul_arrives_as_the_replacement_character(tmp_path: Path, central: str) -> None:
    """No PostgreSQL text can hold a NUL, which the local store can (a trace string);
    the shipper sends it as U+FFFD instead of failing on that row forever."""
    from memras.store.models import ErrorRow

    with Store.open(tmp_path / "n.db") as local:
        with local.session() as s:
            s.connection().execute(ErrorRow.__table__.insert(), [
                {"time": TIMES[0], "source": "trace", "type": "Corrected", "dedup_key": "k",
                 "identity": f"e:{i}", "raw": raw, "label": label, "message": "ok"}
                for i, (raw, label) in enumerate([("plain", "P1"), ("before\x00after", "\x00"),
                                                  ('"\x00",', "x")])])
        shipper = Shipper(local, central_engine(central), HostIdentity("e" * 32, "n"))
        assert shipper.ship_once().shipped["fleet_error"] == 3
        assert shipper.roads == Counter({DIRECT: 1})  # the batch went through Python
    rows = sorted(_central_rows(central, "e" * 32)["fleet_error"].items())
    assert [(r["raw"], r["label"], r["message"]) for _, r in rows] == [
        ("plain", "P1", "ok"), ("before\ufffdafter", "\ufffd", "ok"), ('"\ufffd",', "x", "ok")]


def test_a_resent_batch_goes_the_merge_road_and_stores_nothing_twice(
        tmp_path: Path, central: str) -> None:
    from tests.unit.test_fleet_ship import T0, _events

    identity = HostIdentity("f" * 32, "resend")
    table = CENTRAL["memras_error"]
    engine = create_engine(central)
    with Store.open(tmp_path / "r.db") as local:
        local.add_events(_events(250, T0, timedelta(seconds=1)))
        first = Shipper(local, central_engine(central), identity, batch_rows=100)
        first.ship_once()
        assert first.roads == Counter({DIRECT: 3})  # 100 + 100 + 50 rows, no conflict
        keys = sorted(_central_rows(central, identity.host_id)["fleet_error"])
        # the cursor saved before the last commit was lost (a crash between the two):
        # rows 201-250 are sent again, with 100 new ones behind them
        local.set_cursor("fleet:memras_error", str(keys[199]))
        local.add_events(_events(100, T0 + timedelta(days=1), timedelta(seconds=1)))
        again = Shipper(local, central_engine(central), identity, batch_rows=100)
        result = again.ship_once()
        # 201-300 meets 201-250 stored: rolled back, merged; 301-350 goes straight in
        assert again.roads == Counter({CONFLICT: 1, DIRECT: 1})
        assert result.shipped["fleet_error"] == 150 and result.backlog == 0
        local_keys = set(_local_rows(local)["fleet_error"])
    with engine.connect() as conn:
        stored = list(conn.scalars(select(table.c.local_id)
                                   .where(table.c.host_id == identity.host_id)))
        assert conn.scalar(select(func.count()).select_from(table)) == 350
    engine.dispose()
    assert sorted(stored) == sorted(local_keys) and len(local_keys) == 350


def test_text_that_is_not_utf8_is_one_line_and_shipping_resumes_once_repaired(
        tmp_path: Path, central: str) -> None:
    """memras itself cannot store such text (Python writes UTF-8), another writer of the
    file can: the batch is refused by the server, with one line, nothing half-stored."""
    from tests.unit.test_fleet_ship import T0, _events

    db = tmp_path / "u.db"
    identity = HostIdentity("9" * 32, "utf")
    with Store.open(db) as local:
        local.add_events(_events(5, T0, timedelta(seconds=1)))
    raw = sqlite3.connect(db)
    raw.execute("UPDATE memras_error SET label = CAST(x'41ff42' AS TEXT) WHERE id = 3")
    raw.commit()
    with Store.open(db) as local:
        shipper = Shipper(local, central_engine(central), identity)
        with pytest.raises(StoreError) as failed:
            shipper.ship_once()
        assert "\n" not in str(failed.value) and "UTF8" in str(failed.value)
        assert local.get_cursor("fleet:memras_error") is None
        assert _central_rows(central, identity.host_id)["fleet_error"] == {}
        raw.execute("UPDATE memras_error SET label = 'P1-DIMMB1' WHERE id = 3")
        raw.commit()
        assert shipper.ship_once().shipped["fleet_error"] == 5
    raw.close()
