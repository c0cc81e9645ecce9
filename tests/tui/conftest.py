"""TUI fixtures: a simulated demo server, a filled database, a pinned clock."""

from __future__ import annotations

import asyncio
import difflib
import html
import pickle
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from memras.tui.app import MemrasApp

from tests.tui.world import PINNED_NOW, World, build


@pytest.fixture(autouse=True)
def no_host_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """This machine's /etc/memras/memras.toml never decides a result (its alert hooks
    would run on every ack); tests that want hooks pass ``config_path``."""
    from memras import config

    monkeypatch.setattr(config, "DEFAULT_CONFIG_PATH", tmp_path / "no-such-memras.toml")


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> World:
    return build(tmp_path, monkeypatch)


@pytest.fixture
def make_app(world: World) -> Callable[..., MemrasApp]:
    def factory(**kwargs: Any) -> MemrasApp:
        kwargs.setdefault("clock", lambda: PINNED_NOW)
        kwargs.setdefault("poll_interval_s", 0.05)
        return MemrasApp(world.root, str(world.db), **kwargs)

    return factory


async def wait_until(pilot: Any, predicate: Callable[[], bool], timeout_s: float = 10.0) -> None:
    """Pause the pilot until ``predicate()`` holds; fail with a clear message if it never does."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"condition not met within {timeout_s}s: {predicate}")
        await pilot.pause(0.02)


async def settle(pilot: Any, timeout_s: float = 10.0) -> None:
    """Wait until the screen's workers are done, its tables have measured their rows, it
    is not ``settling`` (a scroll waiting for the layout) and the frame after that has
    been drawn: what a snapshot must see, with no fixed sleeps."""
    from memras.tui.widgets.settled import MeasuredTable

    screen = pilot.app.screen
    busy = [w for w in pilot.app.workers if w.node is screen and not w.is_finished
            and w.group != "dashboard-feed"]  # the live feed's worker never finishes
    if busy:
        await asyncio.wait_for(pilot.app.workers.wait_for_complete(busy), timeout_s)
    await pilot.pause()  # their messages are handled: rows added, text updated
    await wait_until(pilot, lambda: all(t.measured for t in screen.query(MeasuredTable))
                     and not getattr(screen, "settling", False), timeout_s)
    await pilot.wait_for_scheduled_animations()
    await pilot.pause()
    await wait_for_a_still_frame(pilot, timeout_s)


async def wait_for_a_still_frame(pilot: Any, timeout_s: float = 10.0) -> None:
    """Two frames drawn a pause apart are the same: nothing is still being laid out or
    redrawn (a timer's reload, a late message) when the snapshot is taken."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    frame = pilot.app.export_screenshot()
    while True:
        await pilot.pause(0.05)
        again = pilot.app.export_screenshot()
        if again == frame:
            return
        if loop.time() > deadline:
            raise AssertionError(f"the screen kept changing for {timeout_s}s")
        frame = again


@pytest.fixture
def snap_compare(snap_compare: Callable[..., bool], request: pytest.FixtureRequest
                 ) -> Callable[..., bool]:
    """pytest-textual-snapshot's compare, whose failure also says which lines of the
    screen differ: CI shows the end of the log, not the HTML report."""
    from pytest_textual_snapshot import node_to_report_path

    def compare(*args: Any, **kwargs: Any) -> bool:
        if snap_compare(*args, **kwargs):
            return True
        data = pickle.loads(node_to_report_path(request.node).read_bytes())
        expected, actual = svg_lines(data[1]), svg_lines(data[2])
        diff = "\n".join(difflib.unified_diff(expected, actual, "snapshot", "this run",
                                               lineterm="", n=1))
        raise AssertionError("the screen differs from its snapshot:\n" + (
            diff or "the same text; the difference is in colours or styles (a cursor, focus)"))

    return compare


def svg_lines(svg: str) -> list[str]:
    """The text on each terminal line of a Textual SVG screenshot."""
    lines: dict[int, list[tuple[float, str]]] = {}
    for m in re.finditer(r'<text[^>]*?x="([\d.]+)"[^>]*?clip-path="url\(#[^)]*-line-(\d+)\)"'
                         r"[^>]*>(.*?)</text>", svg, re.S):
        lines.setdefault(int(m[2]), []).append((float(m[1]), html.unescape(m[3])))
    return [_place(sorted(parts)) for _, parts in sorted(lines.items())]


def _place(parts: list[tuple[float, str]], cell_px: float = 12.2) -> str:
    """One line's runs at their columns (Textual draws a cell 12.2 px wide)."""
    line = ""
    for x, text in parts:
        line = line.ljust(round(x / cell_px)) + text.replace("\xa0", " ")
    return line.rstrip()


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    """Run ``async def`` tests here with asyncio.run (no async plugin needed)."""
    if not asyncio.iscoroutinefunction(pyfuncitem.obj):
        return None
    names = pyfuncitem._fixtureinfo.argnames
    asyncio.run(pyfuncitem.obj(**{n: pyfuncitem.funcargs[n] for n in names}))
    return True
