"""CXL memdevs in the memory map (their blocks marked, highlighted from the memdev's
detail) and the dashboard's memdev rows kept between reloads until the store changes
(views.MemdevCache). Same ``cxl-single`` world as test_cxl_tui.py: mem0 backs blocks
82-83 through region0; the database holds a media CE, a DRAM CE and a poison record."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from pathlib import Path

from memras.tui.screens.dimm_detail import DimmDetailScreen
from memras.tui.screens.memory_map import MemoryMapScreen
from memras.tui.widgets.block_grid import BlockGrid

from memras import views
from memras.host import Host
from memras.ingest.parsers.ftrace import parse_trace_line
from memras.sim import profiles
from memras.store import Store
from memras.topology.inventory import dimm_inventory
from tests.tui.conftest import wait_until
from tests.tui.helpers import static_text, table_rows
from tests.tui.test_cxl_tui import PINNED_NOW, build, make_app, ready, select_row
from tests.unit.test_cxl_parsers import REAL_612_POISON


def second_poison() -> object:
    """Another poison record of mem0 (another DPA page), an hour before the clock."""
    record = parse_trace_line(REAL_612_POISON.replace("dpa=0x40000", "dpa=0x80000"))
    return replace(record, timestamp=PINNED_NOW - timedelta(hours=1))


def test_block_cells_name_the_memdevs_backing_each_block(tmp_path: Path) -> None:
    host = profiles.create("cxl", tmp_path / "root").host()
    cells = views.block_cells(host, dimm_inventory(host))
    cxl = {c.index: c.memdevs for c in cells if c.memdevs}
    assert cxl == dict.fromkeys(range(82, 86), ("mem0", "mem1"))  # one 2-way region
    assert all(c.dimm_id is None for c in cells if c.memdevs)
    assert {c.index for c in cells if c.belongs_to("mem1")} == set(range(82, 86))


def test_memdev_rows_are_read_again_only_when_the_store_changes(tmp_path: Path) -> None:
    root, db = build(tmp_path)
    host = Host(root)
    cache = views.MemdevCache()
    with Store.open(db) as store:
        first = views.memdev_rows(host, store, PINNED_NOW, cache=cache)
        again = views.memdev_rows(host, store, PINNED_NOW, cache=cache)
        assert again == first == views.memdev_rows(host, store, PINNED_NOW)  # no cache
        assert cache.reads == 1  # nothing stored between the two calls
        (mem0,) = first
        assert (mem0.ce, mem0.ue) == (2, 1)  # the poison record is an uncorrected error
        store.add_events([second_poison()])
        (after,) = views.memdev_rows(host, store, PINNED_NOW, cache=cache)
    assert cache.reads == 2
    assert (after.ce, after.ue) == (2, 2)
    assert after.verdict == mem0.verdict == "repair-by-page-offlining"  # 2 pages: < 4


async def test_a_new_event_shows_on_the_next_dashboard_reload(tmp_path: Path) -> None:
    root, db = build(tmp_path)
    app = make_app(root, db)
    async with app.run_test(size=(160, 40)) as pilot:
        await ready(pilot)
        screen = app.screen
        assert screen.memdev_cache.reads == 1
        row = {r[0]: r for r in table_rows(screen, "#dimms")}["mem0"]
        assert (row[2].strip(), row[3].strip()) == ("2", "1")
        await screen.load().wait()  # a reload with nothing new: the cached judgement
        assert screen.memdev_cache.reads == 1
        with Store.open(db) as store:
            store.add_events([second_poison()])
        screen.load()
        await wait_until(pilot, lambda: {r[0]: r for r in table_rows(screen, "#dimms")}
                         ["mem0"][3].strip() == "2")
        assert screen.memdev_cache.reads == 2


async def test_the_memdev_detail_b_highlights_its_blocks_in_the_map(tmp_path: Path) -> None:
    root, db = build(tmp_path)
    app = make_app(root, db)
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(pilot)
        await select_row(pilot, "mem0")
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, DimmDetailScreen)
                         and app.screen.detail is not None)
        await pilot.press("b")
        await wait_until(pilot, lambda: isinstance(app.screen, MemoryMapScreen)
                         and app.screen.selected is not None
                         and "mem0" in app.screen.selected.memdevs)
        screen = app.screen
        grid = screen.query_one(BlockGrid)
        assert grid.highlight == "mem0" and screen.selected.index == 82
        info = static_text(screen, "#block-info")
        assert "memory82" in info and "CXL     mem0" in info and "DIMM    -\n" in info
        legend = static_text(screen, "#legend")
        assert "CXL mem0 (2)" in legend and "highlight: mem0" in legend
        await pilot.press("enter")  # a CXL block opens its memdev's detail
        await wait_until(pilot, lambda: isinstance(app.screen, DimmDetailScreen)
                         and app.screen is not screen)
        assert app.screen.dimm_id == "mem0"


async def test_n_steps_through_the_memdevs_after_the_dimms(tmp_path: Path) -> None:
    root, db = build(tmp_path, with_data=False)
    app = make_app(root, db)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("m")
        await wait_until(pilot, lambda: isinstance(app.screen, MemoryMapScreen)
                         and app.screen.selected is not None)
        screen = app.screen
        for _ in range(len(screen.dimms) + 1):
            await pilot.press("n")
        await pilot.pause()
        assert screen.highlighted == "mem0"
        assert screen.selected is not None and screen.selected.memdevs == ("mem0",)
