"""memras.views: the read models behind the screens (no Textual involved)."""

from __future__ import annotations

from memras import views
from memras.host import Host
from memras.store import Store
from memras.topology.inventory import dimm_inventory
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
    assert cells.heat is not None and cells.heat.total == 14
    assert {b for _, _, b in cells.heat.columns} == set(range(4))  # banks 0..3, 3 erring
    assert detail.addresses[0][1] == 32  # 4 GiB + 0x1234000 is in block 32 (128 MiB blocks)
    assert detail.verdict is not None and str(detail.verdict.state) == "repair-by-page-offlining"


def test_dimm_detail_after_a_replacement_shows_the_new_modules_evidence_only(world) -> None:
    from datetime import timedelta

    from memras.health.keys import naive_utc
    from memras.health.models import PageStateRow
    from memras.health.module_registry import (
        ModuleIdentity,
        current_modules,
        record_replacement,
        register_modules,
    )

    host = Host(world.root)
    dimm = next(d for d in dimm_inventory(host) if d.id == FAILING)
    swapped = PINNED_NOW - timedelta(hours=10)  # 8 of the 14 CEs before, 6 after
    with Store.open(world.db) as store:
        register_modules(store, dimm_inventory(host), now=swapped - timedelta(days=30))
        old_module = current_modules(store, [FAILING])[FAILING]
        assert record_replacement(store, slot_id=FAILING, replacement_id=7,
                                  old=ModuleIdentity.of_dimm(dimm),
                                  new=ModuleIdentity.of("NEWSERIAL01"), at=swapped)
        new_module = current_modules(store, [FAILING])[FAILING]
        with store.session() as s:  # one page of each module, one unregistered after
            for page, module_id, hours in ((0x111, old_module.id, 12), (0x222, new_module.id, 2),
                                           (0x333, 0, 1)):
                s.add(PageStateRow(page=page, module_id=module_id, dimm_id=FAILING,
                                   action="soft-offline", outcome="offlined",
                                   time=naive_utc(PINNED_NOW - timedelta(hours=hours))))
        detail = views.dimm_detail(host, store, dimm)
    assert detail.since == swapped and detail.module.serial == "NEWSERIAL01"
    assert (detail.events_read, detail.earlier_events) == (6, 8)
    assert sum(ce + ue for _, ce, ue in detail.timeline) == 6
    assert sum(n for _, _, n in detail.addresses) == 6
    assert [p["page"] for p in detail.pages] == [0x222, 0x333]
    earlier = [p["page"] for p in detail.earlier_pages]  # the world's own page action too
    assert 0x111 in earlier and 0x222 not in earlier and 0x333 not in earlier


def test_dimm_events_are_the_rows_errors_dimm_selects(world, capsys) -> None:
    """One DIMM filter (DimmNames.error_filter): the detail reads the rows `memras errors
    --dimm` gives, attributed or not. Half the FAILING DIMM's rows lose their dimm_id, as
    rows stored before memras attributed them; a stranger's row printed with the same
    EDAC label but attributed elsewhere stays out."""
    import json

    from sqlalchemy import update

    from memras.cli import main
    from memras.health.dimm_names import DimmNames
    from memras.store.models import ErrorRow

    host = Host(world.root)
    dimm = next(d for d in dimm_inventory(host) if d.id == FAILING)
    t = ErrorRow.__table__
    with Store.open(world.db) as store:
        with store.engine.begin() as conn:
            conn.execute(update(t).where(t.c.dimm_id == FAILING, t.c.id % 2 == 0)
                         .values(dimm_id=None))
            conn.execute(update(t).where(t.c.id == 16).values(label=dimm.label))
        names = DimmNames.of(host, store)
        detail = [e.id for e in views.dimm_events(store, dimm, names=names)]
        assert views.dimm_detail(host, store, dimm).events_read == 14  # the screen's read
    assert main(["--root", str(world.root), "--db", str(world.db), "--json", "errors",
                 "--dimm", "P1-DIMMB1"]) == 0
    listed = [r["id"] for r in json.loads(capsys.readouterr().out)]
    assert len(detail) == 14 and sorted(detail) == sorted(listed)
    assert 16 not in detail  # the label alone does not make a row this DIMM's
