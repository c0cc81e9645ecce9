"""The dashboard's CXL memdev rows kept between reloads (memras.views.MemdevCache): a
change judges again only the memdevs it touched, reading only their new media errors
(memras.health.cxl.MediaRecords), and the rows always equal a computation from
scratch."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from memras import views
from memras.health.classify import ClassifyParams
from memras.health.config import Config
from memras.health.cxl import MediaRecords, judge_cxl, memdev_verdicts
from memras.health.engine import HealthEngine
from memras.host import Host
from memras.ingest.parsers.cxl import HDR_FLAGS, memory_error
from memras.records import CxlEvent, MemoryErrorEvent, Source
from memras.sim.profiles import create
from memras.store import AddResult, Store
from memras.store.retention import prune
from memras.topology.cxl import CxlUnit, cxl_units

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


def device_event(memdev: str, n: int, *, hours_ago: float, log: str = "Informational",
                 flags: int = 0) -> CxlEvent:
    """A general media record of ``memdev``: the ``n``-th, ``hours_ago`` before NOW."""
    return CxlEvent("general_media", memdev, host="0000:0d:00.0", serial=int(memdev[3:]),
                    log_type=log, hdr_flags=flags, hdr_handle=n, hdr_ts=n * 1_000_000_000,
                    dpa=n * 64, descriptor=0, type=0, transaction_type=1, channel=0, rank=0,
                    validity_flags=3, source=Source.TRACE,
                    timestamp=NOW - timedelta(hours=hours_ago), raw=f"test {memdev} {n}")


def media(memdev: str, n: int, **kw: object) -> MemoryErrorEvent:
    error = memory_error(device_event(memdev, n, **kw))  # type: ignore[arg-type]
    assert error is not None
    return error


def poison(memdev: str, page: int, hours_ago: float) -> CxlEvent:
    return CxlEvent("poison", memdev, host="0000:0d:00.0", trace_type="List",
                    dpa=page * 4096, source=Source.TRACE,
                    timestamp=NOW - timedelta(hours=hours_ago), raw=f"poison {memdev} {page}")


@pytest.fixture
def world(tmp_path: Path) -> tuple[Host, list[CxlUnit], Store]:
    host = Host(create("cxl", tmp_path / "root").root)
    units = cxl_units(host)
    assert [u.memdev.name for u in units] == ["mem0", "mem1"]
    store = Store.open(tmp_path / "memras.db")
    store.add_events([media(f"mem{i % 2}", i, hours_ago=100 - i) for i in range(40)])
    yield host, units, store
    store.close()


def rows(world: tuple[Host, list[CxlUnit], Store], cache: views.MemdevCache | None = None,
         config: Config | None = None) -> list[views.DimmRow]:
    host, units, store = world
    return views.memdev_rows(host, store, NOW, units=units, cache=cache, config=config)


def test_one_new_event_judges_only_its_memdev_and_reads_only_that_event(world) -> None:
    cache = views.MemdevCache()
    first = rows(world, cache)
    assert cache.judged == Counter(mem0=1, mem1=1)
    assert {m: r.parsed for m, r in cache.media.items()} == {"mem0": 20, "mem1": 20}
    assert rows(world, cache) == first and cache.reads == 1  # nothing new: nothing read
    world[2].add_events([media("mem1", 100, hours_ago=1)])
    after = rows(world, cache)
    assert cache.judged == Counter(mem0=1, mem1=2)
    assert {m: r.parsed for m, r in cache.media.items()} == {"mem0": 20, "mem1": 21}
    assert cache.reads == 2
    assert after == rows(world)  # what a reader without the cache shows
    assert [(r.ce, r.ue) for r in after] == [(20, 0), (21, 0)]


def test_a_change_that_is_no_memdevs_judges_none_again(world) -> None:
    cache = views.MemdevCache()
    rows(world, cache)
    world[2].add_events([media("mem7", 1, hours_ago=1)])  # a memdev not on this host
    rows(world, cache)
    assert cache.judged == Counter(mem0=1, mem1=1) and cache.reads == 1


def test_the_cached_rows_equal_a_full_computation_after_each_change(world) -> None:
    host, units, store = world
    cache = views.MemdevCache()
    stored: list[AddResult] = []
    lower = replace(Config(), classify=replace(ClassifyParams(), offlined_pages_min=1,
                                               spread_min=1))
    changes = [
        ("a new media error", lambda: store.add_events([media("mem0", 50, hours_ago=2)])),
        ("an older one from the Failure log, stored late",
         lambda: store.add_events([media("mem1", 51, hours_ago=200, log="Failure")])),
        ("one asking for maintenance", lambda: store.add_events([media(
            "mem0", 52, hours_ago=3, flags=HDR_FLAGS["MAINTENANCE_NEEDED"])])),
        ("poison at two pages", lambda: store.add_events([poison("mem1", 1, 5),
                                                          poison("mem1", 2, 4)])),
        ("a media error from the Fatal log", lambda: stored.append(
            store.add_events([media("mem0", 53, hours_ago=1, log="Fatal")]))),
        ("the engine's verdict on it (no new error)",
         lambda: HealthEngine(store=store).process(stored[-1].new_events)),
        ("retention deletes the oldest errors",
         lambda: prune(store, keep_s=80 * 3600, now=NOW)),
    ]
    seen = [rows(world, cache)]
    for what, change in changes:
        change()
        kept = rows(world, cache)
        assert kept == rows(world), what
        assert kept != seen[-1], f"{what} changed nothing the test can see"
        seen.append(kept)
    config_rows = rows(world, cache, config=lower)  # spread from 2 pages, not 4
    assert config_rows == rows(world, config=lower)
    mem1 = {r.id: r for r in config_rows}["mem1"]
    assert any("replace from 2" in why for why in mem1.reasons)  # cxl-poison-spread
    assert config_rows != seen[-1]


def test_judging_the_oldest_media_error_of_each_kind_judges_them_all(tmp_path) -> None:
    """MediaRecords keeps one media error a kind; the verdict is judge_cxl's over every
    record in time order, the order the reasons come in included."""
    flags = HDR_FLAGS
    made = [device_event("mem0", 1, hours_ago=10),
            device_event("mem0", 2, hours_ago=30, flags=flags["PERFORMANCE_DEGRADED"]),
            device_event("mem0", 3, hours_ago=20, log="Failure"),
            device_event("mem0", 4, hours_ago=40, flags=flags["PERFORMANCE_DEGRADED"]),
            device_event("mem0", 5, hours_ago=5, log="Failure",
                         flags=flags["HARDWARE_REPLACEMENT_NEEDED"]),
            device_event("mem0", 6, hours_ago=50, log="Failure")]
    records = MediaRecords("mem0")
    with Store.open(tmp_path / "m.db") as store:
        for ev in made:  # one by one, read after each: the newest is not the latest
            error = memory_error(ev)
            assert error is not None
            store.add_events([error])
            verdict = memdev_verdicts(store, ["mem0"], media={"mem0": records})["mem0"]
            so_far = sorted(made[:made.index(ev) + 1], key=lambda e: e.timestamp or NOW)
            expected = judge_cxl(so_far)["mem0"]
            assert (verdict.state, verdict.rules, verdict.reasons) == (
                expected.state, expected.rules, expected.reasons)
    assert records.parsed == len(made)  # each stored error read once
    assert len(records.kept) == 4  # Informational, degraded, Failure, Failure+replace
