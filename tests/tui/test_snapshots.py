"""SVG snapshots of every screen at 80x24 and 120x40 (pinned clock, deterministic data).

Update after an intended change: ``pytest tests/tui/test_snapshots.py --snapshot-update``,
then ``python -m tests.tui.docs_img`` to copy the ones the user guide shows to docs/img.

Each ``run_before`` waits for the screen's own signals (the dashboard's ``ready``, a
screen's loaded data, every ``MeasuredTable`` measured, workers done), never a sleep:
the frames these once caught half laid out came from races inside Textual, fixed in
memras.tui.widgets.settled (see there), not from waiting too little.
"""

from __future__ import annotations

import pytest
from memras.tui.screens.memory_map import MemoryMapScreen

from tests.tui.conftest import settle, wait_until
from tests.tui.helpers import dashboard_ready
from tests.tui.world import BROKEN

SIZES = [(80, 24), (120, 40)]


async def _dashboard(pilot) -> None:
    await wait_until(pilot, lambda: dashboard_ready(pilot.app))  # the app's DashboardReady
    await settle(pilot)


async def _detail(pilot) -> None:
    await _dashboard(pilot)
    pilot.app.open_dimm(BROKEN)
    await wait_until(pilot, lambda: getattr(pilot.app.screen, "detail", None) is not None)
    await settle(pilot)


async def _map(pilot) -> None:
    await _dashboard(pilot)
    await pilot.press("m")
    await wait_until(pilot, lambda: isinstance(pilot.app.screen, MemoryMapScreen)
                     and pilot.app.screen.selected is not None)
    pilot.app.screen.highlight_dimm(BROKEN)
    await settle(pilot)


async def _alerts(pilot) -> None:
    await _dashboard(pilot)
    await pilot.press("a")
    await wait_until(pilot, lambda: bool(getattr(pilot.app.screen, "alerts", None)))
    await settle(pilot)


async def _audit(pilot) -> None:
    await _dashboard(pilot)
    await pilot.press("u")
    await wait_until(pilot, lambda: len(getattr(pilot.app.screen, "entries", [])) == 3)
    await pilot.press("v")
    await wait_until(pilot, lambda: pilot.app.screen._verified)
    await settle(pilot)


async def _help(pilot) -> None:
    await _dashboard(pilot)
    await pilot.press("question_mark")
    await settle(pilot)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("name,run_before", [
    ("dashboard", _dashboard), ("detail", _detail), ("map", _map), ("alerts", _alerts),
    ("audit", _audit), ("help", _help)])
def test_screen_snapshot(snap_compare, make_app, name, run_before, size) -> None:
    assert snap_compare(make_app(), terminal_size=size, run_before=run_before)
