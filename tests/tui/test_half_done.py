"""A half-done replacement is never hidden, and the TUI's navigation is not stale (issue 16).

The dashboard's banner, each wizard step at 80x24 (the slot label and "q Quit" on
screen, keys shown only where they work), a question before Escape or q undo or leave
memory offline, the waiting step's elapsed time and timeout, `d` from Alerts/Audit
landing on the dashboard, screens re-read after a replacement, alerts newest first, and
`memras tui` without a terminal.
"""

from __future__ import annotations

import html
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from memras.tui.app import MemrasApp
from memras.tui.screens.alerts import AlertsScreen
from memras.tui.screens.audit import AuditScreen
from memras.tui.screens.confirm import ConfirmScreen
from memras.tui.screens.dashboard import DashboardScreen
from memras.tui.screens.dimm_detail import DimmDetailScreen
from memras.tui.screens.wizard import WizardScreen
from textual.widgets import DataTable

from memras.host import Host
from memras.sim.actions import set_busy
from memras.workflow.runner import ReplaceOptions
from tests.tui.conftest import settle, wait_until
from tests.tui.helpers import dashboard_ready, static_text, table_rows
from tests.tui.test_wizard import DIMM, FAST, crash_mid_offline, make_app, reach
from tests.tui.world import FAILING, World, build

SMALL = (80, 24)


@pytest.fixture
def quiet_world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> World:
    return build(tmp_path, monkeypatch, with_data=False)


def screen_lines(app: MemrasApp) -> list[str]:
    """What the terminal shows, line by line (from Textual's own SVG export)."""
    svg = app.export_screenshot()
    lines: dict[int, str] = {}
    for line, text in re.findall(r'<text[^>]*clip-path="url\(#[\w-]+-line-(\d+)\)"[^>]*>'
                                 r"(.*?)</text>", svg, flags=re.S):
        lines[int(line)] = lines.get(int(line), "") + html.unescape(text).replace("\xa0", " ")
    return [lines.get(n, "") for n in range(max(lines, default=-1) + 1)]


def assert_chrome(app: MemrasApp, *, quit_key: bool = True) -> None:
    """At 80x24: the slot label somewhere, and the footer still offers q Quit (not while
    the label field has the focus: q is a letter of the label there)."""
    lines = screen_lines(app)
    assert len(lines) == SMALL[1], lines
    assert any(DIMM in line for line in lines), "\n".join(lines)
    assert ("q Quit" in lines[-1]) is quit_key, lines[-1]


def footer_keys(screen: Any) -> set[str]:
    """The actions the footer shows (bindings check_action lets through)."""
    return {b.binding.action for b in screen.active_bindings.values()
            if b.enabled and b.binding.show}


async def open_wizard(app: MemrasApp, pilot: Any, **options: Any) -> WizardScreen:
    policy = options.pop("policy", FAST)
    wizard = WizardScreen(DIMM, options=ReplaceOptions(operator="Ada", policy=policy, **options))
    app.push_screen(wizard)
    await wait_until(pilot, lambda: wizard.phase not in ("opening", "preflight"), 20)
    return wizard


async def test_dashboard_banner_shows_the_replacement_in_progress(quiet_world: World) -> None:
    crash_mid_offline(quiet_world)  # 10 of 32 blocks offline, the process gone
    app = make_app(quiet_world)
    async with app.run_test(size=SMALL) as pilot:
        await wait_until(pilot, lambda: dashboard_ready(app), 20)
        await settle(pilot)
        banner = static_text(app.screen, "#replacement-banner")
        assert banner.startswith(f" REPLACEMENT #1 IN PROGRESS  {DIMM} at offline_blocks")
        assert "10 of 32 blocks of the old module are offline: memory32–memory41" in banner
        assert "`memras replace --resume`" in banner and "`memras replace --abort`" in banner
        lines = screen_lines(app)
        assert any("REPLACEMENT #1 IN PROGRESS" in line for line in lines[:3]), lines
        assert_chrome(app)


async def test_no_banner_without_a_replacement(quiet_world: World) -> None:
    app = make_app(quiet_world)
    async with app.run_test(size=SMALL) as pilot:
        await wait_until(pilot, lambda: dashboard_ready(app), 20)
        assert not app.screen.query_one("#replacement-banner").display
        assert app.screen.pending is None


async def test_each_wizard_step_at_80x24(quiet_world: World) -> None:
    """Confirm, swap, done: the slot label and q Quit visible; the footer offers only
    the keys that work in the step (no "Cancel offlining" after offlining)."""
    app = make_app(quiet_world)
    async with app.run_test(size=SMALL) as pilot:
        wizard = await open_wizard(app, pilot)
        await reach(pilot, wizard, "confirm")
        await settle(pilot)
        assert_chrome(app, quit_key=False)
        assert "esc Cancel/Back" in screen_lines(app)[-1]
        assert footer_keys(wizard) == {"back"}  # letters go to the label field
        await pilot.press(*DIMM, "enter")
        await reach(pilot, wizard, "swap")
        await settle(pilot)
        assert_chrome(app)
        assert any("PHYSICAL SWAP" in line for line in screen_lines(app))
        keys = footer_keys(wizard)
        assert {"technician", "go", "abort"} <= keys and "cancel" not in keys
        await pilot.press("t")
        await reach(pilot, wizard, "done")
        await settle(pilot)
        assert_chrome(app)
        assert any("REPLACED" in line for line in screen_lines(app))
        assert not {"cancel", "technician", "go", "abort"} & footer_keys(wizard)


async def test_offlining_shows_cancel_and_waiting_shows_elapsed_and_timeout(
        quiet_world: World) -> None:
    """The manual backend waits for a person to pull the module: the step says how long
    it has waited and when memras gives up; Cancel offlining is offered only while
    offlining."""
    # the first and last block of the module refuse once (EBUSY) and are retried 0.3 s
    # later, so offlining lasts long enough to be seen on a fast machine
    for block in (32, 63):
        set_busy(quiet_world.root, block, times=1)
    slow = {**FAST, "backoff_initial_s": 0.3, "backoff_max_s": 0.3}
    app = make_app(quiet_world)
    async with app.run_test(size=SMALL) as pilot:
        wizard = await open_wizard(app, pilot, backend="manual", detect_timeout_s=600,
                                   policy=slow)
        await reach(pilot, wizard, "confirm")
        await pilot.press(*DIMM, "enter")
        await wait_until(pilot, lambda: wizard.phase == "offlining")
        assert "cancel" in footer_keys(wizard)
        await reach(pilot, wizard, "swap")
        await pilot.press("enter")
        await wait_until(pilot, lambda: wizard.phase == "swapping")
        await wait_until(pilot, lambda: "0:01 elapsed" in static_text(wizard, "#wizard-main"))
        main = static_text(wizard, "#wizard-main")
        assert "waiting for the new one" in main and "gives up after 10:00" in main
        await pilot.pause(0.1)  # not settle(): the engine's worker waits for the module
        assert_chrome(app)
        assert "cancel" not in footer_keys(wizard)


async def test_escape_at_the_swap_step_asks_before_rolling_back(quiet_world: World) -> None:
    app = make_app(quiet_world)
    host = Host(quiet_world.root)
    async with app.run_test(size=SMALL) as pilot:
        wizard = await open_wizard(app, pilot)
        await reach(pilot, wizard, "confirm")
        await pilot.press(*DIMM, "enter")
        await reach(pilot, wizard, "swap")
        blocks = list(wizard.latest.snapshot["target"]["target"]["blocks"])
        await pilot.press("escape")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        question = static_text(app.screen, "#confirm-detail")
        assert "32 memory blocks go back online" in question
        await pilot.press("n")
        await wait_until(pilot, lambda: app.screen is wizard)
        assert wizard.phase == "swap"
        assert all(host.memory.state(b) == "offline" for b in blocks)
        await pilot.press("escape")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")
        await reach(pilot, wizard, "done")
        assert "ROLLED BACK" in static_text(wizard, "#wizard-main")
    assert all(host.memory.state(b) == "online" for b in blocks)


async def test_q_mid_replacement_asks_and_says_what_stays(
        quiet_world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    app = make_app(quiet_world)
    exits: list[bool] = []
    monkeypatch.setattr(app, "exit", lambda *a, **k: exits.append(True))
    async with app.run_test(size=SMALL) as pilot:
        wizard = await open_wizard(app, pilot)
        await reach(pilot, wizard, "confirm")
        await pilot.press(*DIMM, "enter")
        await reach(pilot, wizard, "swap")
        await pilot.press("q")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        detail = static_text(app.screen, "#confirm-detail")
        assert "Replacement #1 stays where it is: 32 of 32 blocks" in detail
        assert "`memras replace --resume`" in detail and "`memras replace --abort`" in detail
        await pilot.press("n")
        await wait_until(pilot, lambda: app.screen is wizard)
        assert exits == []
        await pilot.press("q")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")
        await wait_until(pilot, lambda: exits == [True])


async def test_d_from_alerts_or_audit_lands_on_the_dashboard(make_app: Any) -> None:
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_until(pilot, lambda: dashboard_ready(app))
        for key, screen_type in (("a", AlertsScreen), ("u", AuditScreen)):
            app.open_dimm(FAILING)
            await wait_until(pilot, lambda: isinstance(app.screen, DimmDetailScreen))
            await pilot.press(key)
            await wait_until(pilot, lambda: isinstance(app.screen, screen_type))  # noqa: B023
            await pilot.press("d")
            await wait_until(pilot, lambda: isinstance(app.screen, DashboardScreen))
            assert len(app.screen_stack) == 1


async def test_detail_and_audit_are_fresh_after_a_replacement(quiet_world: World) -> None:
    app = make_app(quiet_world)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_until(pilot, lambda: dashboard_ready(app), 20)
        await pilot.press("u")
        await wait_until(pilot, lambda: isinstance(app.screen, AuditScreen))
        await settle(pilot)
        audit = app.screen
        assert audit.entries == []
        await pilot.press("d")
        app.open_dimm("mc0/dimm2")
        await wait_until(pilot, lambda: getattr(app.screen, "detail", None) is not None)
        detail = app.screen
        assert "none recorded" in static_text(detail, "#history")
        wizard = await open_wizard(app, pilot)
        await reach(pilot, wizard, "confirm")
        await pilot.press(*DIMM, "enter")
        await reach(pilot, wizard, "swap")
        await pilot.press("t")
        await reach(pilot, wizard, "done")
        await pilot.press("escape")
        await wait_until(pilot, lambda: app.screen is detail)
        await wait_until(pilot, lambda: "#1 closed" in static_text(detail, "#history"))
        await pilot.press("u")
        await wait_until(pilot, lambda: app.screen is audit and
                         [e.action for e in audit.entries][-1:] == ["close"])


async def test_alerts_newest_first_with_full_times_and_end_keeps_the_header(
        make_app: Any) -> None:
    app = make_app()
    async with app.run_test(size=SMALL) as pilot:
        await pilot.press("a")
        await wait_until(pilot, lambda: isinstance(app.screen, AlertsScreen)
                         and app.screen.query_one("#alert-table").row_count > 1)
        await settle(pilot)
        alerts = app.screen.alerts
        assert [(a.time, a.id) for a in alerts] == sorted(
            ((a.time, a.id) for a in alerts), reverse=True)
        times = [row[5] for row in table_rows(app.screen, "#alert-table")]
        assert all(re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", t) for t in times), times
        table = app.screen.query_one("#alert-table", DataTable)
        await pilot.press("end")
        await pilot.pause()
        assert table.cursor_row == table.row_count - 1 and table.scroll_x == 0
        await pilot.press("home")
        await pilot.pause()
        assert table.cursor_row == 0 and table.scroll_x == 0
        header = next(line for line in screen_lines(app) if "Severity" in line)
        assert "#" in header and "State" in header


@pytest.mark.parametrize("argv", [["tui"], []], ids=["tui", "bare"])
def test_without_a_terminal_tui_exits_2_with_one_line(tmp_path: Path, argv: list[str]) -> None:
    world_root = tmp_path / "root"  # a directory: --root is checked before the terminal
    world_root.mkdir()
    with open(os.devnull) as devnull:
        proc = subprocess.run([sys.executable, "-m", "memras", "--root", str(world_root),
                               "--db", str(tmp_path / "m.db"), *argv], stdin=devnull,
                              capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == ""  # no escape codes into the pipe
    assert proc.stderr.splitlines() == [
        "memras: memras tui needs a terminal: stdin and stdout must be a tty (run it in a "
        "terminal; for text use `memras status` or `memras status --json`)"]
