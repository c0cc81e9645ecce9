"""``[store]`` (memras.store.settings): rasdaemon_mirror = false writes no mirror rows and
reads back the same errors; memory failures are still read as memory failures."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from memras.cli import main
from memras.errors import UsageError
from memras.health.api import record_from_stored
from memras.records import MemoryFailureEvent, Source
from memras.store import Store
from memras.store.retention import prune
from memras.store.settings import StoreSettings
from tests.unit.store.conftest import T0, EventFactory


def _mirror_rows(path: Path) -> int:
    db = sqlite3.connect(path)
    try:
        return sum(db.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
                   for t in ("mc_event", "mce_record", "memory_failure_event"))
    finally:
        db.close()


def _failure() -> MemoryFailureEvent:
    return MemoryFailureEvent(pfn=0x54321, page_type="dirty LRU page", action_result="Recovered",
                              source=Source.KMSG, timestamp=T0,
                              raw="Memory failure: 0x54321: recovery action for dirty LRU page: "
                                  "Recovered")


def test_settings_from_section():
    assert StoreSettings.from_section({}) == StoreSettings(None, True)
    assert StoreSettings.from_section({"keep": "2d", "rasdaemon_mirror": False}) == \
        StoreSettings(2 * 86400.0, False)
    for bad in ({"rasdaemon_mirror": "no"}, {"mirror": False}, {"keep": "10m"}):
        with pytest.raises(UsageError):
            StoreSettings.from_section(bad)


def test_without_mirror_the_same_errors_and_no_mirror_rows(tmp_path: Path,
                                                           make_event: EventFactory):
    events = [make_event("A", minutes=i) for i in range(3)]
    with Store.open(tmp_path / "on.db") as on:
        on.add_events([*events, _failure()])
        with_mirror = on.errors()
        counts = on.summary()
    with StoreSettings(rasdaemon_mirror=False).apply(Store.open(tmp_path / "off.db")) as off:
        off.add_events([*events, _failure()])
        without = off.errors()
        assert off.summary() == counts
    assert _mirror_rows(tmp_path / "on.db") == 4
    assert _mirror_rows(tmp_path / "off.db") == 0

    def facts(e):
        return (e.time, e.type, e.count, e.address, e.location, e.message, e.driver_detail,
                e.raw)

    assert [facts(e) for e in without] == [facts(e) for e in with_mirror]
    assert {e.rasdaemon_table for e in without} == {None}
    failure = next(e for e in without if "Memory failure" in e.raw)
    assert isinstance(record_from_stored(failure), MemoryFailureEvent)


def test_prune_without_mirror_and_of_rows_from_before_the_switch(tmp_path: Path,
                                                                  make_event: EventFactory):
    path = tmp_path / "m.db"
    with Store.open(path) as store:  # mirrored rows first, then the switch
        store.add_events([make_event("A", minutes=i) for i in range(2)])
    with StoreSettings(rasdaemon_mirror=False).apply(Store.open(path)) as store:
        store.add_events([make_event("A", minutes=10 + i) for i in range(2)])
        assert _mirror_rows(path) == 2
        result = prune(store, 400 * 86400.0)
        assert (result.deleted, result.mirror_deleted) == (4, 2)
    assert _mirror_rows(path) == 0


def test_import_honours_the_setting(tmp_path: Path, capsys):
    log = tmp_path / "dmesg.txt"
    log.write_text("[  100.000000] EDAC MC0: 1 CE memory read error on "
                   "CPU_SrcID#0_Ha#0_Chan#0_DIMM#0 (channel:0 slot:0 page:0x12345 offset:0x0 "
                   "grain:32 syndrome:0x0 - area:DRAM err_code:0001:0090 socket:0 ha:0 "
                   "channel_mask:1 rank:0)\n")
    config = tmp_path / "memras.toml"
    config.write_text("[store]\nrasdaemon_mirror = false\n")
    db = tmp_path / "m.db"
    assert main(["--db", str(db), "--config", str(config), "--json", "import", "dmesg",
                 str(log)]) == 0
    capsys.readouterr()
    assert _mirror_rows(db) == 0
    with Store.open(db) as store:
        assert store.count() == 1
