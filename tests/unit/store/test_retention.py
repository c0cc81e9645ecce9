"""``[store] keep`` retention (memras.store.retention) and ``memras prune``."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

import memras.health.models  # noqa: F401 - registers memras_health_verdict
import memras.workflow.models  # noqa: F401 - registers memras_replacement
from memras.cli import main
from memras.errors import UsageError
from memras.store import Store
from memras.store.retention import PeriodicPrune, keep_from_config, prune
from tests.unit.store.conftest import T0, EventFactory

DAY = 86400.0
NOW = T0 + timedelta(days=500)  # events at T0 + minutes are ~500 days old


def _tag(store: Store, dimm_id: str, label: str) -> None:
    """What health does after an insert: the row's DIMM id (here: by label)."""
    from sqlalchemy import text

    with store.engine.begin() as conn:
        conn.execute(text("UPDATE memras_error SET dimm_id = :d WHERE label = :l"),
                     {"d": dimm_id, "l": label})


def _verdict(store: Store, dimm_id: str, state: str, days: float) -> None:
    from memras.health.models import HealthVerdictRow as VerdictRow

    with store.session() as s:
        s.connection().execute(VerdictRow.__table__.insert().values(
            dimm_id=dimm_id, time=(T0 + timedelta(days=days)).replace(tzinfo=None),
            state=state, rules="[]", reasons="[]", evidence="{}"))


def _rows(store: Store, sql: str) -> int:
    with store.engine.connect() as conn:
        return int(conn.exec_driver_sql(sql).scalar() or 0)


def _mirror_has(store: Store, table: str, n: int) -> bool:
    """rasdaemon's mirror holds ``n`` rows in ``table``; on PostgreSQL there is no mirror
    (rasdaemon's format is a SQLite file) and the table must not exist at all."""
    if store.mirrors_rasdaemon:
        return _rows(store, f"SELECT count(*) FROM {table}") == n
    from sqlalchemy import inspect

    with store.engine.connect() as conn:
        return not inspect(conn).has_table(table)


def _mirrored(store: Store, n: int) -> int:
    return n if store.mirrors_rasdaemon else 0


def _summary_matches_rows(store: Store) -> None:
    """summary without filters (the maintained counts) == grouped rows (a filter)."""
    plain = store.summary()
    grouped = store.summary(since=T0 - timedelta(days=10_000))
    assert plain == grouped


def test_old_rows_go_with_their_mirror_rows_and_counts(store, make_event: EventFactory):
    old = [make_event("A", minutes=i, count=2) for i in range(5)]
    new = [make_event("A", minutes=int(490 * 24 * 60) + i) for i in range(3)]
    store.add_events(old + new)
    assert _mirror_has(store, "mc_event", 8)
    result = prune(store, 400 * DAY, now=NOW)
    assert (result.old, result.deleted, result.kept_open_verdict) == (5, 5, 0)
    assert result.mirror_deleted == _mirrored(store, 5)
    assert store.count() == 3
    assert _mirror_has(store, "mc_event", 3)
    assert [e.time for e in store.errors()] == [e.timestamp for e in new]
    summary = store.summary()
    assert sum(g.events for g in summary.groups) == 3
    assert sum(g.errors for g in summary.groups) == 3  # the count-2 rows' errors went too
    _summary_matches_rows(store)


def test_count_rows_reaching_zero_are_removed(store, make_event: EventFactory):
    store.add_events([make_event("GONE", minutes=i) for i in range(3)])
    prune(store, 400 * DAY, now=NOW)
    assert store.summary().groups == []
    assert _rows(store, "SELECT count(*) FROM memras_error_count") == 0


def test_open_verdict_keeps_the_whole_dimm(store, make_event: EventFactory):
    store.add_events([make_event("OPEN", minutes=i) for i in range(4)]
                     + [make_event("HEALED", minutes=10 + i) for i in range(4)])
    _tag(store, "mc0/dimm0", "OPEN")
    _tag(store, "mc0/dimm1", "HEALED")
    _verdict(store, "mc0/dimm0", "watch", 1)
    _verdict(store, "mc0/dimm1", "replace-now", 1)
    _verdict(store, "mc0/dimm1", "ok", 2)  # the latest verdict counts
    result = prune(store, 400 * DAY, now=NOW)
    assert (result.deleted, result.kept_open_verdict, result.kept_replacement) == (4, 4, 0)
    assert {e.location.label for e in store.errors()} == {"OPEN"}
    _summary_matches_rows(store)


def test_replacement_keeps_the_rows_before_it(store, make_event: EventFactory):
    store.add_events([make_event("R", minutes=i * 24 * 60) for i in range(6)])  # days 0..5
    _tag(store, "mc0/dimm2", "R")
    from memras.workflow.models import ReplacementRow

    done = (T0 + timedelta(days=2, hours=13)).replace(tzinfo=None)
    with store.session() as s:  # the table's insert: `user` is a keyword on PostgreSQL
        s.connection().execute(ReplacementRow.__table__.insert().values(
            dimm_id="mc0/dimm2", dimm_label="R", state="done", backend="sim",
            on_failure="rollback", uid=0, user="root", host="h", root="/", options={},
            target={}, created_at=(T0 + timedelta(days=2, hours=12)).replace(tzinfo=None),
            updated_at=done, finished_at=done))
    result = prune(store, 400 * DAY, now=NOW)
    assert (result.kept_replacement, result.deleted) == (3, 3)  # days 0-2 kept, 3-5 gone
    assert [e.time.date() for e in store.errors()] == [
        (T0 + timedelta(days=d)).date() for d in range(3)]


def test_dry_run_counts_and_changes_nothing(store, make_event: EventFactory):
    store.add_events([make_event("A", minutes=i) for i in range(7)])
    before = store.summary()
    result = prune(store, 400 * DAY, now=NOW, dry_run=True)
    assert (result.old, result.deleted, result.mirror_deleted) == (7, 7, 0)
    assert store.count() == 7
    assert store.summary() == before


def test_small_batches(store, make_event: EventFactory):
    store.add_events([make_event("A", minutes=i) for i in range(10)])
    result = prune(store, 400 * DAY, now=NOW, batch_rows=3)
    assert result.batches == 4 and result.deleted == 10 and store.count() == 0


def test_nothing_old_nothing_deleted(store, make_event: EventFactory):
    store.add_events([make_event("A", minutes=i) for i in range(3)])
    result = prune(store, 600 * DAY, now=NOW)
    assert (result.old, result.deleted, result.batches) == (0, 0, 0)
    assert store.count() == 3


def test_periodic_prune_steps_a_few_batches_per_tick(store, make_event: EventFactory):
    store.add_events([make_event("A", minutes=i) for i in range(10)])
    task = PeriodicPrune(store, 400 * DAY, every_s=100, batches_per_tick=2, batch_rows=2,
                         wall=lambda: NOW)
    task(0.0)
    assert store.count() == 6  # two batches of two
    task(1.0)
    task(2.0)
    assert store.count() == 0
    assert task.next_at is not None  # the pass ended: the next waits every_s
    store.add_events([make_event("A", minutes=100 + i) for i in range(2)])
    task(50.0)
    assert store.count() == 2  # not yet
    task(task.next_at + 1)
    assert store.count() == 0


def test_keep_from_config():
    assert keep_from_config({}) is None
    assert keep_from_config({"keep": "400d"}) == 400 * DAY
    assert keep_from_config({"keep": 2 * DAY}) == 2 * DAY
    for bad in ({"keep": "1h"}, {"keep": "forever"}, {"keep": True}, {"kept": "400d"}):
        with pytest.raises(UsageError):
            keep_from_config(bad)


def test_cli_prune(tmp_path: Path, make_event: EventFactory, capsys):
    db = tmp_path / "m.db"
    with Store.open(db) as s:
        s.add_events([make_event("A", minutes=i) for i in range(4)])
    # no keep anywhere: one line saying what to do
    assert main(["--db", str(db), "prune"]) == 2
    err = capsys.readouterr().err
    assert "[store] keep" in err and len(err.strip().splitlines()) <= 2
    assert main(["--db", str(db), "--json", "prune", "--keep", "1d", "--dry-run"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["dry_run"] and data["deleted"] == 4 and data["kept"] == 0
    config = tmp_path / "memras.toml"
    config.write_text('[store]\nkeep = "1d"\n')
    assert main(["--db", str(db), "--config", str(config), "prune"]) == 0
    assert "deleted 4 of 4" in capsys.readouterr().out
    with Store.open(db) as s:
        assert s.count() == 0
    config.write_text('[store]\nkeep = "1h"\n')
    assert main(["--db", str(db), "--config", str(config), "prune"]) == 2
    assert "keep = '1h' is out of range (at least 1d)" in capsys.readouterr().err


def test_watch_prunes_by_itself(server, tmp_path: Path, make_event: EventFactory, capsys):
    """`memras watch` with [store] keep runs the pruning task: the old rows go, the
    stream it just stored (the simulated server's errors, dated now) stays."""
    db = tmp_path / "m.db"
    with Store.open(db) as s:
        s.add_events([make_event("OLD", minutes=i) for i in range(3)])  # Dec 2024
    config = tmp_path / "memras.toml"
    config.write_text('[store]\nkeep = "400d"\n')
    assert main(["--root", str(server), "--db", str(db), "--config", str(config), "--json",
                 "watch", "--once", "--no-health"]) == 0
    capsys.readouterr()
    with Store.open(db) as s:
        labels = [e.location.label for e in s.errors()]
    assert "OLD" not in labels and len(labels) == 12


def test_an_mc_events_mce_record_companion_goes_with_it(store, make_event: EventFactory):
    """An EDAC decode with its machine-check registers (sb_edac, skx) is written to both
    mc_event and mce_record; the memras row links the mc_event and names the companion
    (rasdaemon_mce_id), and pruning deletes both."""
    from memras.records import MceRegisters

    regs = MceRegisters(status=0x8C00004000010090, bank=7, addr=0x12345000)
    store.add_events([make_event("A", minutes=i, mce=regs) for i in range(3)])
    assert _mirror_has(store, "mc_event", 3)
    assert _mirror_has(store, "mce_record", 3)
    assert _rows(store, "SELECT count(*) FROM memras_error WHERE rasdaemon_mce_id IS NOT NULL") \
        == _mirrored(store, 3)
    result = prune(store, 400 * DAY, now=NOW)
    assert (result.deleted, result.mirror_deleted) == (3, _mirrored(store, 6))
    assert _mirror_has(store, "mce_record", 0)
