"""TUI fixtures: a simulated demo server, a filled database, a pinned clock."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from memras.tui.app import MemrasApp

from tests.tui.world import PINNED_NOW, World, build


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


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    """Run ``async def`` tests here with asyncio.run (no async plugin needed)."""
    if not asyncio.iscoroutinefunction(pyfuncitem.obj):
        return None
    names = pyfuncitem._fixtureinfo.argnames
    asyncio.run(pyfuncitem.obj(**{n: pyfuncitem.funcargs[n] for n in names}))
    return True
