"""TUI fixtures: a simulated demo server, a filled database, a pinned clock."""

from __future__ import annotations

import asyncio
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


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    """Run ``async def`` tests here with asyncio.run (no async plugin needed)."""
    if not asyncio.iscoroutinefunction(pyfuncitem.obj):
        return None
    names = pyfuncitem._fixtureinfo.argnames
    asyncio.run(pyfuncitem.obj(**{n: pyfuncitem.funcargs[n] for n in names}))
    return True
