"""The wizard's look at the confirmation and physical-swap steps, at 80x24 and 120x40.

Deterministic: the demo profile with no errors, a pinned clock, a fresh database (so
replacement #1), and only phases without timing text (no ETA on screen).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from memras.tui.app import MemrasApp
from memras.tui.screens.wizard import WizardScreen
from textual.widgets import Input

from memras.workflow.runner import ReplaceOptions
from tests.tui.conftest import settle, wait_until
from tests.tui.world import PINNED_NOW, build

SIZES = [(80, 24), (120, 40)]


def app_for(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> MemrasApp:
    world = build(tmp_path, monkeypatch, with_data=False)
    return MemrasApp(world.root, str(world.db), read_only=False, clock=lambda: PINNED_NOW,
                     poll_interval_s=60)


def to_phase(phase: str, label: str = ""):
    async def run_before(pilot: Any) -> None:
        wizard = WizardScreen("P1-DIMMB1", options=ReplaceOptions(operator="Ada"))
        pilot.app.push_screen(wizard)
        await wait_until(pilot, lambda: wizard.phase == "confirm", 20)
        wizard.query_one(Input).cursor_blink = False  # a blinking cursor is not a regression
        if phase == "swap":
            await pilot.press(*label, "enter")
            await wait_until(pilot, lambda: wizard.phase == "swap", 20)
        await settle(pilot)  # the wizard's worker done, its messages shown, frame drawn

    return run_before


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_confirmation_step(snap_compare: Any, tmp_path: Path,
                           monkeypatch: pytest.MonkeyPatch, size: tuple[int, int]) -> None:
    assert snap_compare(app_for(tmp_path, monkeypatch), terminal_size=size,
                        run_before=to_phase("confirm"))


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_physical_swap_step(snap_compare: Any, tmp_path: Path,
                            monkeypatch: pytest.MonkeyPatch, size: tuple[int, int]) -> None:
    assert snap_compare(app_for(tmp_path, monkeypatch), terminal_size=size,
                        run_before=to_phase("swap", "P1-DIMMB1"))
