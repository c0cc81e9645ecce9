"""A DIMM label from firmware holding an escape sequence and Rich markup shows literally."""

from __future__ import annotations

from pathlib import Path

import pytest
from memras.tui.app import MemrasApp

from memras.text import escape
from tests.tui.conftest import wait_until
from tests.tui.helpers import dashboard_ready, static_text, table_rows
from tests.tui.world import FAILING, HOSTILE_LABEL, PINNED_NOW, build

SHOWN = escape(HOSTILE_LABEL)  # \x1b[2J[bold]red[/]EVIL, backslash and all


@pytest.fixture
def hostile_app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> MemrasApp:
    world = build(tmp_path, monkeypatch, label=HOSTILE_LABEL)
    return MemrasApp(world.root, str(world.db), clock=lambda: PINNED_NOW, poll_interval_s=0.05)


async def test_hostile_label_is_escaped_and_not_markup(hostile_app: MemrasApp) -> None:
    app = hostile_app
    async with app.run_test(size=(160, 40)) as pilot:
        await wait_until(pilot, lambda: dashboard_ready(app))
        labels = [r[6] for r in table_rows(app.screen, "#dimms")]
        assert SHOWN in labels
        assert SHOWN.startswith("\\x1b[2J[bold]red[/]")
        screen_text = _screen_text(app)
        assert "\\x1b[2J[bold]red[/]EVIL" in screen_text  # drawn literally, markup not parsed
        assert "\x1b[2J" not in screen_text
        app.open_dimm(FAILING)
        await wait_until(pilot, lambda: getattr(app.screen, "detail", None) is not None)
        assert SHOWN in static_text(app.screen, "#identity")
        await pilot.pause()
        detail_text = _screen_text(app)
        assert "\\x1b[2J[bold]red[/]EVIL" in detail_text
        # the identity table's title (slot name, EDAC label, id) too: no raw escape, no
        # markup read (it drew "\x1b[2JredEVIL" until 2026-12-07)
        assert f"DIMM P1-DIMMB1 ({SHOWN}," in detail_text
        assert "\x1b[2J" not in detail_text


def _screen_text(app: MemrasApp) -> str:
    """What the terminal shows, as text (from Textual's own SVG export)."""
    import html
    import re

    svg = app.export_screenshot()
    spans = re.findall(r"<text[^>]*>(.*?)</text>", svg, flags=re.S)
    return html.unescape("".join(spans)).replace("\xa0", " ")
