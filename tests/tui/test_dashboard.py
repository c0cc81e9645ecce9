"""Dashboard: summary, DIMM verdicts in words, open alerts, live feed, navigation."""

from __future__ import annotations

from datetime import timedelta

from memras.tui.messages import DashboardReady
from memras.tui.screens.dashboard import DashboardScreen
from memras.tui.screens.dimm_detail import DimmDetailScreen
from textual.message import Message

from memras.store import Store
from tests.tui.conftest import wait_until
from tests.tui.helpers import dashboard_ready, static_text, table_rows
from tests.tui.world import BROKEN, FAILING, PINNED_NOW, _event

FAILING_NAME, BROKEN_NAME = "P1-DIMMB1", "P2-DIMMA1"  # their slot locators, shown first


async def test_dashboard_shows_summary_dimms_alerts_and_feed(make_app) -> None:
    seen: list[Message] = []
    app = make_app()
    async with app.run_test(size=(120, 40), message_hook=seen.append) as pilot:
        await wait_until(pilot, lambda: dashboard_ready(app))
        await wait_until(pilot, lambda: any(isinstance(m, DashboardReady) for m in seen))
        screen = app.screen
        assert isinstance(screen, DashboardScreen)
        summary = static_text(screen, "#summary")
        assert "demo-db-01" in summary
        assert "14 CE, 1 UE" in summary  # the last 24 h, by the pinned clock
        rows = {r[0]: r for r in table_rows(screen, "#dimms")}  # by slot name (naming)
        assert len(rows) == 10
        assert rows[BROKEN_NAME][1] == "✖ REPLACE NOW"
        assert rows[FAILING_NAME][1] == "~ REPAIR: offline pages"
        assert rows["P1-DIMMD1"][1] == "! WATCH"  # mc1/dimm0
        assert rows["P1-DIMMA1"][1] == "- not judged"  # mc0/dimm0
        assert rows[FAILING_NAME][2] == "14" and rows[BROKEN_NAME][3] == "1"
        assert set(rows[FAILING_NAME][4]) - {"·", " "}  # the 24 h sparkline is not flat
        assert set(rows["P1-DIMMA1"][4]) == {"·"}
        alerts = static_text(screen, "#open-alerts")
        assert f"CRITICAL #4 {BROKEN_NAME} uncorrected memory error on mc2/dimm0" in alerts
        assert "CPU_SrcID" not in alerts  # the slot label, not the label stored at raise time
        feed = table_rows(screen, "#feed")
        assert len(feed) == 16 and feed[0][1] == "Corrected"
        assert {row[2] for row in feed} == {"P1-DIMMD1", BROKEN_NAME, FAILING_NAME}  # slots


async def test_feed_updates_without_a_refresh(make_app, world) -> None:
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_until(pilot, lambda: dashboard_ready(app))
        with Store.open(world.db) as store:
            store.add_events([_event(PINNED_NOW - timedelta(minutes=i), 3, 1, "NEW-LABEL-X",
                                     30 << 30, bank=1, row=i, column=0) for i in range(300)])
        await wait_until(pilot, lambda: table_rows(app.screen, "#feed")[0][2] == "NEW-LABEL-X")
        feed = table_rows(app.screen, "#feed")
        assert len(feed) == 50  # bounded: only the newest rows are drawn
        assert "last id 316" in static_text(app.screen, "#feed-title")


async def test_an_idle_reload_leaves_the_tables_alone(make_app) -> None:
    """The periodic reload (RELOAD_EVERY_S) with nothing new must not clear and refill the
    DIMM table: that redraw moved nothing for the user and, in CI under load, landed
    between a snapshot's settle and its screenshot (the suspect for stop 25's CI: the
    80x24 dashboard)."""
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_until(pilot, lambda: dashboard_ready(app))
        screen = app.screen
        assert isinstance(screen, DashboardScreen)
        before = table_rows(screen, "#dimms")
        loads: list[object] = []
        real_fill = screen._fill_dimms
        screen._fill_dimms = lambda rows: (loads.append(rows), real_fill(rows))  # type: ignore[method-assign]
        seen_before = screen._shown_dimms
        screen.load()
        await app.workers.wait_for_complete(
            [w for w in app.workers if w.group == "dashboard-load"])
        await pilot.pause()
        assert loads == [] and screen._shown_dimms is seen_before
        assert table_rows(screen, "#dimms") == before
        screen._shown_dimms = None  # what a changed store looks like to the screen
        screen.load()
        await wait_until(pilot, lambda: len(loads) == 1)
        assert table_rows(screen, "#dimms") == before


async def test_r_pushes_the_wizard_for_the_selected_dimm(make_app) -> None:
    from memras.tui.screens.wizard import WizardScreen

    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_until(pilot, lambda: dashboard_ready(app))
        await pilot.press("down")  # mc0/dimm2
        await pilot.press("r")
        await wait_until(pilot, lambda: isinstance(app.screen, WizardScreen))
        assert app.screen.dimm_id == FAILING
        app.pop_screen()
        await wait_until(pilot, lambda: isinstance(app.screen, DashboardScreen))


async def test_enter_opens_detail_and_escape_returns(make_app) -> None:
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_until(pilot, lambda: dashboard_ready(app))
        await pilot.press("down")  # mc0/dimm2
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, DimmDetailScreen))
        assert app.screen.dimm_id == FAILING
        await pilot.press("escape")
        assert isinstance(app.screen, DashboardScreen)


async def test_click_on_a_dimm_row_opens_detail(make_app) -> None:
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_until(pilot, lambda: dashboard_ready(app))
        table = app.screen.query_one("#dimms")
        await pilot.click(table, offset=(3, 6))  # header + 5 rows down: mc2/dimm0
        await wait_until(pilot, lambda: table.cursor_row == 5)
        await pilot.pause(0.1)
        await pilot.click(table, offset=(3, 6))  # clicking the highlighted row selects it
        await wait_until(pilot, lambda: isinstance(app.screen, DimmDetailScreen))
        assert app.screen.dimm_id == BROKEN


async def test_read_only_banner_says_what_needs_root(make_app) -> None:
    app = make_app(read_only=True)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: dashboard_ready(app))
        banner = app.screen.query_one("ReadOnlyBanner")
        assert banner.display
        assert "READ-ONLY" in static_text(app.screen, "ReadOnlyBanner")
        assert "replacing DIMMs" in static_text(app.screen, "ReadOnlyBanner")
        await pilot.press("r")
        assert any(n.title == "Cannot replace" for n in app._notifications)


async def test_writable_simulated_root_has_no_banner(make_app) -> None:
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: dashboard_ready(app))
        assert not app.read_only
        assert not app.screen.query_one("ReadOnlyBanner").display


def test_real_root_without_root_user_is_read_only(monkeypatch) -> None:
    from memras.tui import app as app_module

    from memras.host import Host

    monkeypatch.setattr(app_module.os, "geteuid", lambda: 1000)
    assert "need root" in app_module.read_only_reason(Host("/"), None)
    monkeypatch.setattr(app_module.os, "geteuid", lambda: 0)
    assert app_module.read_only_reason(Host("/"), None) == ""
