"""memras.views: the read models behind the screens (no Textual involved)."""

from __future__ import annotations

from memras import views
from memras.host import Host
from memras.inventory import dimm_inventory
from memras.store import Store
from tests.tui.world import BROKEN, FAILING, PINNED_NOW


def test_recent_errors_group_by_dimm_and_hour(world) -> None:
    with Store.open(world.db) as store:
        recent = views.recent_errors(store, PINNED_NOW)
        rows = {r.id: r for r in views.dimm_rows(dimm_inventory(Host(world.root)), store,
                                                  PINNED_NOW)}
    assert (recent.ce, recent.ue) == (14, 1)  # the 3-day-old CE is outside the window
    assert sum(rows[FAILING].rate) == 14 and len(rows[FAILING].rate) == 24
    assert rows[BROKEN].rate[20] == 1  # 3 h before noon: the hour starting 09:00
    assert sum(rows["mc1/dimm0"].rate) == 0


def test_events_after_is_a_cursor_newest_first(world) -> None:
    with Store.open(world.db) as store:
        newest = views.events_after(store, None, 5)
        assert [r.id for r in newest] == [16, 15, 14, 13, 12]
        assert views.events_after(store, 16, 5) == []
        assert [r.id for r in views.events_after(store, 14, 50)] == [16, 15]


def test_fault_cells_fold_rows_columns_banks(world) -> None:
    host = Host(world.root)
    dimm = next(d for d in dimm_inventory(host) if d.id == FAILING)
    with Store.open(world.db) as store:
        detail = views.dimm_detail(host, store, dimm)
    cells = detail.cells
    assert (len(cells.rows), len(cells.columns), len(cells.banks)) == (1, 14, 1)
    assert sum(cells.heat.values()) == 14 and {b for b, _ in cells.heat} == {3}
    assert detail.addresses[0][1] == 32  # 4 GiB + 0x1234000 is in block 32 (128 MiB blocks)
    assert detail.verdict is not None and str(detail.verdict.state) == "repair-by-page-offlining"
