"""The DIMM detail's bank × row heat map (memras.views.heat_map, drawn by the detail).

Banks are columns (bank group / bank), the rows the errors were seen in are lines
(min..max in at most views.HEAT_ROW_LINES ranges), a cell's shade is its count on a
linear scale up to the busiest cell, stated in the legend; the evidence lines beside
it (rows, banks) come from the same events and must agree with it. The snapshots show
it at 80x24 and 120x40 for P1-DIMMC1, given a bank fault in bank group 2 bank 1 and a
few scattered errors elsewhere.
"""

from __future__ import annotations

import io
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from memras.tui.screens.dimm_detail import DimmDetailScreen
from rich.console import Console

from memras import views
from memras.host import Host
from memras.records import DimmLocation, ErrorType, MemoryErrorEvent, Source
from memras.store import Store
from memras.topology.inventory import dimm_inventory
from tests.tui.conftest import settle, wait_until
from tests.tui.helpers import dashboard_ready
from tests.tui.world import FAILING, PINNED_NOW, World

SIZES = [(80, 24), (120, 40)]
SLOT = "mc0/dimm4"  # P1-DIMMC1: no errors in the shared world
Cells = Counter[tuple[views.BankKey, int]]


def _cells(*items: tuple[tuple[int | None, int | None, int], int, int]) -> Cells:
    out: Cells = Counter()
    for bank, row, n in items:
        out[(bank, row)] += n
    return out


def test_row_axis_spans_the_rows_seen_in_at_most_eight_lines() -> None:
    h = views.heat_map(_cells(((0, 1, 2), 0x1000, 3), ((0, 1, 2), 0x13ff, 1)))
    assert h is not None
    assert h.row_ranges[0][0] == 0x1000 and h.row_ranges[-1][1] == 0x13ff
    assert len(h.row_ranges) == views.HEAT_ROW_LINES
    assert all(b[0] == a[1] + 1 for a, b in zip(h.row_ranges, h.row_ranges[1:],
                                                          strict=False))
    assert h.counts == {(0, 2): 3, (7, 2): 1}  # first and last line, bank 2 of group 1
    few = views.heat_map(_cells(((None, None, 3), 0x2a1, 14), ((None, None, 3), 0x2a3, 1)))
    assert few is not None and few.row_ranges == ((0x2a1, 0x2a1), (0x2a2, 0x2a2),
                                                  (0x2a3, 0x2a3))  # a row a line


def test_columns_are_every_bank_of_each_group_up_to_the_highest_then_only_busy_ones() -> None:
    h = views.heat_map(_cells(((0, 0, 1), 5, 1), ((0, 2, 3), 5, 2)))
    assert h is not None
    assert h.columns == tuple((0, g, b) for g in (0, 2) for b in range(4))
    assert h.groups == ("bg 0",) * 4 + ("bg 2",) * 4
    spread = _cells(*(((r, g, b), 7, 1 + b) for r in (0, 1) for g in range(4) for b in range(4)))
    h = views.heat_map(spread)  # 32 banks over two ranks: the 16 busiest drawn
    assert h is not None and len(h.columns) == views.HEAT_BANK_COLUMNS
    assert {b for _, _, b in h.columns} == {2, 3} and h.groups[0] == "r0 bg 0"
    assert (h.hidden_banks, h.hidden_errors) == (16, 8 * 1 + 8 * 2)  # banks 0 and 1
    assert h.total + h.hidden_errors == sum(spread.values())


def test_shades_are_linear_to_the_peak_and_the_legend_covers_every_count() -> None:
    h = views.heat_map(_cells(((None, None, 0), 1, 14), ((None, None, 1), 1, 1)))
    assert h is not None and h.peak == 14
    assert h.legend() == [(1, 1, 3), (2, 4, 7), (3, 8, 10), (4, 11, 14)]
    for level, low, high in h.legend():
        assert all(h.level(n) == level for n in range(low, high + 1))
    assert h.level(0) == 0
    small = views.heat_map(_cells(((None, None, 0), 1, 2)))
    assert small is not None and small.legend() == [(2, 1, 1), (4, 2, 2)]


def test_the_evidence_beside_the_map_agrees_with_it(world: World) -> None:
    host = Host(world.root)
    dimm = next(d for d in dimm_inventory(host) if d.id == FAILING)
    with Store.open(world.db) as store:
        detail = views.dimm_detail(host, store, dimm)
    cells, h = detail.cells, detail.cells.heat
    assert h is not None
    assert h.total == sum(cells.rows.values()) == sum(cells.banks.values()) == 14
    for row, n in cells.rows.items():  # every row of the evidence is a shaded line
        line = h.row_of(row)
        assert line is not None and sum(v for (r, _), v in h.counts.items() if r == line) == n
    shaded = {views.bank_text(h.columns[c]) for _, c in h.counts}
    assert shaded == set(cells.banks) == {"-.-.3"}
    assert detail.verdict is not None
    assert set(detail.verdict.evidence.get("banks") or []) <= set(cells.banks)
    assert {int(r, 16) for r in detail.verdict.evidence.get("rows") or []} <= set(cells.rows)
    from memras.tui.screens.dimm_detail import _cells as draw

    out = _plain(draw(detail), 76)
    assert "1 distinct  top: -.-.3×14" in out and "0x2a1" in out
    assert "errors a cell, linear up to the busiest (14)" in out
    assert max(len(line) for line in out.splitlines()) <= 76  # beside the scrollbar at 80


def _plain(renderable: Any, width: int) -> str:
    console = Console(width=width, color_system=None, record=True, file=io.StringIO())
    console.print(renderable)
    return "\n".join(line.rstrip() for line in console.export_text().splitlines())


def _bank_fault() -> list[MemoryErrorEvent]:
    """Bank group 2 bank 1: 30 CEs over rows 0x1400–0x1402 and many columns (a bank
    fault's look), and a scattered CE in six other banks, over the last two days."""
    out = []
    spots = [(2, 1, 0x1400 + i % 3, 0x10 * i) for i in range(30)]
    spots += [(0, 0, 0x1211, 8), (0, 3, 0x12d0, 0x40), (1, 1, 0x1385, 0x18),
              (3, 2, 0x14f0, 0x30), (1, 3, 0x13e5, 0x28), (2, 1, 0x1460, 0x88)]
    for i, (group, bank, row, column) in enumerate(spots):
        t = PINNED_NOW - timedelta(hours=40) + timedelta(minutes=70 * i)
        out.append(MemoryErrorEvent(
            error_type=ErrorType.CORRECTED, source=Source.TRACE, count=1, timestamp=t,
            address=None, message="memory read error", driver="skx_edac",
            driver_detail=f"bank_group:{group} bank:{bank} row:{row:#x} col:{column:#x}",
            location=DimmLocation(socket=0, mc=0, channel=2, slot=0, rank=0,
                                  bank_group=group, bank=bank, row=row, column=column,
                                  label="CPU_SrcID#0_MC#0_Chan#2_DIMM#0", top_layer=2,
                                  middle_layer=0),
            raw=f"test {t.isoformat()} bg{group} b{bank} row {row:#x}"))
    return out


@pytest.fixture
def bank_fault_world(world: World) -> World:
    from memras.health.api import HealthEngine
    from memras.health.dimm_names import attribute_from_host

    host = Host(world.root)
    with Store.open(world.db) as store:
        events = _bank_fault()
        store.add_events(events)
        attribute_from_host(store, host)
        HealthEngine(None, store, host).process(events)
    return world


async def _at_heat_map(pilot: Any) -> None:
    await wait_until(pilot, lambda: dashboard_ready(pilot.app))
    await settle(pilot)
    pilot.app.open_dimm(SLOT)
    await wait_until(pilot, lambda: isinstance(pilot.app.screen, DimmDetailScreen)
                     and pilot.app.screen.detail is not None)
    await settle(pilot)
    pilot.app.screen.query_one("#cells").scroll_visible(top=True, animate=False)
    await settle(pilot)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_heat_map_snapshot(snap_compare, bank_fault_world: World, size: tuple[int, int],
                           tmp_path: Path) -> None:
    from memras.tui.app import MemrasApp

    app = MemrasApp(bank_fault_world.root, str(bank_fault_world.db),
                    clock=lambda: PINNED_NOW, poll_interval_s=0.05)
    assert snap_compare(app, terminal_size=size, run_before=_at_heat_map)
