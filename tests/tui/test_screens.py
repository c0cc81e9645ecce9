"""DIMM detail, memory map, alerts, audit and help screens, driven like a person would."""

from __future__ import annotations

import json

import pytest
from memras.tui.screens.alerts import AlertsScreen
from memras.tui.screens.audit import AuditScreen
from memras.tui.screens.dimm_detail import DimmDetailScreen
from memras.tui.screens.help import HelpScreen
from memras.tui.screens.memory_map import MemoryMapScreen
from memras.tui.widgets.block_grid import BlockGrid

from memras.audit.service import AuditTrail
from memras.fleet.ship import FleetConfig
from memras.store import Store
from tests.tui.conftest import wait_until
from tests.tui.helpers import dashboard_ready, static_text, table_rows
from tests.tui.world import BROKEN, FAILING


async def test_detail_shows_identity_verdict_cells_and_blocks(make_app) -> None:
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_until(pilot, lambda: dashboard_ready(app))
        app.open_dimm(FAILING)
        await wait_until(pilot, lambda: getattr(app.screen, "detail", None) is not None)
        screen = app.screen
        identity = static_text(screen, "#identity")
        assert "P1-DIMMB1" in identity and "M393A1K43BB1-CTD" in identity  # SMBIOS joined
        verdict = static_text(screen, "#verdict")
        assert "REPAIR: offline pages" in verdict
        cells = static_text(screen, "#cells")
        assert "14 events with bank/row/column" in cells
        assert "1 distinct  top: 0x2a1×14" in cells  # one row: a row fault
        assert "1 distinct  top: -.-.3×14" in cells  # banks as the verdict names them
        assert "0x2a1" in cells and "errors a cell" in cells  # the heat map's row and legend
        addresses = static_text(screen, "#addresses")
        assert "block 32" in addresses  # 4 GiB / 128 MiB


async def test_detail_b_highlights_the_dimm_blocks_in_the_map(make_app) -> None:
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_until(pilot, lambda: dashboard_ready(app))
        app.open_dimm(BROKEN)
        await wait_until(pilot, lambda: getattr(app.screen, "detail", None) is not None)
        await pilot.press("b")
        await wait_until(pilot, lambda: isinstance(app.screen, MemoryMapScreen)
                         and app.screen.selected is not None
                         and app.screen.selected.dimm_id == BROKEN)
        assert app.screen.query_one(BlockGrid).highlight == BROKEN
        assert "CPU_SrcID#1_MC#0_Chan#0_DIMM#0" in static_text(app.screen, "#block-info")


async def test_map_select_a_block_with_keys_and_mouse(make_app) -> None:
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("m")
        await wait_until(pilot, lambda: isinstance(app.screen, MemoryMapScreen)
                         and app.screen.selected is not None)
        grid = app.screen.query_one(BlockGrid)
        assert len(grid.cells) == 288
        await pilot.press("down", "right", "right")
        expected = grid.cells[grid.per_line + 2]  # block numbers skip the PCI hole
        assert app.screen.selected == expected
        assert f"memory{expected.index}" in static_text(app.screen, "#block-info")
        await pilot.click(grid, offset=(1 + 7 + 5, 1))  # border + label column + 5th cell
        await wait_until(pilot, lambda: app.screen.selected == grid.cells[5])
        await pilot.press("c")
        assert grid.mode == "zone" and "Movable" in static_text(app.screen, "#legend")
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, DimmDetailScreen))
        assert app.screen.dimm_id == "mc0/dimm0"


async def test_map_handles_16384_blocks(tmp_path, large_server) -> None:
    """16,384 blocks page through; how fast is bench/tui_first_paint.py's business (no
    timed assertion in a test: a loaded CI machine would fail it for no reason)."""
    from memras.tui.app import MemrasApp

    app = MemrasApp(large_server.root, str(tmp_path / "db.sqlite"))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("m")
        await wait_until(pilot, lambda: isinstance(app.screen, MemoryMapScreen)
                         and len(app.screen.query_one(BlockGrid).cells) == 16384, 60)
        grid = app.screen.query_one(BlockGrid)
        for _ in range(20):
            await pilot.press("pagedown")
        await pilot.pause()
        assert app.screen.selected == grid.cells[200 * grid.per_line]
        assert grid.scroll_offset.y > 150


async def test_alerts_filter_and_ack_with_note(make_app, world) -> None:
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("a")
        await wait_until(pilot, lambda: isinstance(app.screen, AlertsScreen)
                         and app.screen.query_one("#alert-table").row_count > 0)
        rows = table_rows(app.screen, "#alert-table")
        assert all(r[2] == "open" for r in rows) and len(rows) == 5
        first_id = int(rows[0][0])
        await pilot.press("k")
        await pilot.press(*"swapping at 14:00")
        await pilot.press("enter")
        await wait_until(pilot, lambda: len(table_rows(app.screen, "#alert-table")) == 4)
        with Store.open(world.db) as store:
            from memras.alerts.service import SqlAlertStore

            acked = SqlAlertStore(store).get(first_id)
        assert acked.state.value == "acked" and acked.ack_note == "swapping at 14:00"
        await pilot.press("f")  # acked
        await wait_until(pilot, lambda: [r[0] for r in table_rows(app.screen, "#alert-table")]
                         == [str(first_id)])
        assert "swapping at 14:00" in static_text(app.screen, "#alert-detail")


async def test_alerts_ack_refused_when_read_only(make_app) -> None:
    app = make_app(read_only=True)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("a")
        await wait_until(pilot, lambda: app.screen.query_one("#alert-table").row_count > 0)
        await pilot.press("k")
        assert not any(type(s).__name__ == "PromptScreen" for s in app.screen_stack)
        assert any(n.title == "Cannot ack" for n in app._notifications)


async def test_audit_list_export_and_verify(make_app, world, tmp_path) -> None:
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("u")
        await wait_until(pilot, lambda: isinstance(app.screen, AuditScreen)
                         and len(app.screen.entries) == 3)
        assert [r[3] for r in table_rows(app.screen, "#audit-table")] == \
            ["start", "offline", "finish"]
        await pilot.press("v")
        await wait_until(pilot, lambda: "INTACT" in static_text(app.screen, "#verify-result"))
        out = tmp_path / "audit.json"
        await pilot.press("e")
        prompt = app.screen
        prompt.query_one("Input").value = str(out)
        await pilot.press("enter")
        await wait_until(pilot, lambda: out.exists())
        assert [e["action"] for e in json.loads(out.read_text())] == ["start", "offline", "finish"]
        with Store.open(world.db) as store, store.engine.begin() as conn:  # tamper with row 2
            conn.exec_driver_sql("UPDATE memras_audit SET payload = replace(payload, "
                                 "'\"done\"', '\"failed\"') WHERE seq = 2")
        assert not AuditTrail(Store.open(world.db)).verify().ok
        await pilot.press("v")
        await wait_until(pilot, lambda: "TAMPERED" in static_text(app.screen, "#verify-result"))
        chain = [r[6] for r in table_rows(app.screen, "#audit-table")]
        assert chain[1] == "✖ FAILS" and chain[0] != "✖ FAILS"


@pytest.mark.parametrize("fleet_url", [None, "postgresql://fleet@127.0.0.1/memras"])
async def test_help_is_generated_from_bindings(make_app, fleet_url) -> None:
    """Every binding the key runs now is listed, once; of the app's two ``f`` bindings
    (a fleet database set or not) only the one that fits."""
    app = make_app(fleet=FleetConfig(fleet_url) if fleet_url else None)
    async with app.run_test(size=(100, 40)) as pilot:
        await wait_until(pilot, lambda: dashboard_ready(app))
        await pilot.press("question_mark")
        await wait_until(pilot, lambda: isinstance(app.screen, HelpScreen))
        text = static_text(app.screen, "#help Static")
        for binding in [*type(app).BINDINGS, *app.screen.under.BINDINGS]:
            if binding.id != ("screen.fleet" if fleet_url is None else "screen.fleet_unset"):
                assert f" {binding.id} " in text and binding.description in text
        fleet_rows = [line for line in text.splitlines() if line.startswith("│ f ")]
        assert len(fleet_rows) == 1
        assert ("screen.fleet_unset" in fleet_rows[0]) == (fleet_url is None)
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)
