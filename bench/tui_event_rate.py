"""Is the TUI responsive while 1,000 events/s arrive? Key-to-frame latency, writer on vs off.

The same simulated ``demo`` server and database, the dashboard at 120x40 following the
live feed (the app's default 0.5 s poll). In the busy rounds a *separate process*
stores 1,000 events per second in batches of 50 every 50 ms, as the watcher does (it is
never a thread of the TUI in production, so it must not compete for the TUI's GIL
here); in the idle rounds nothing writes. Rounds alternate, each with a fresh app.

What is timed, per key: from posting the key event to the first frame the app hands to
its display in which the key's effect is visible (``App._display`` is wrapped; the
effect is checked right after the compositor rendered that frame, on the UI thread):

- ``down``/``up`` in the DIMM table: the cursor row moves (the screen the feed repaints);
- ``m``/``d``: the memory map, then the dashboard, is the screen on display (after
  ``d`` the dashboard's reload is let finish before the next press).

Presses are 130 ms apart (a fast typist), so they land all over the feed's poll cycle.

Goal: median latency with events arriving <= 1.5x idle. The writer's achieved rate and
the load average are printed, so a run that could not reach 1k/s, or ran on a busy
machine, says so.

    .venv/bin/python bench/tui_event_rate.py [--rate 1000] [--presses 20] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

BATCH = 50
SIZE = (120, 40)
GAP_S = 0.13  # between presses; not a divisor of the 0.5 s feed poll


def write_events(db: str, rate: int, stop: Any, stored: Any, seconds: Any) -> None:
    """The writer process: ``rate`` events/s into ``db`` until ``stop`` is set."""
    from memras.records import DimmLocation, ErrorType, MemoryErrorEvent, Source
    from memras.store import Store

    start = time.perf_counter()
    with Store.open(db) as store:
        n = 0
        while not stop.is_set():
            store.add_events([MemoryErrorEvent(
                ErrorType.CORRECTED, Source.TRACE, timestamp=datetime.now(UTC),
                address=(4 << 30) + (n + i) * 64, message="memory read error",
                driver="skx_edac", raw=f"rate {n + i}",
                location=DimmLocation(mc=0, channel=1, slot=0, top_layer=1, middle_layer=0,
                                      bank=(n + i) % 16, row=(n + i) % 4096,
                                      label="CPU_SrcID#0_MC#0_Chan#1_DIMM#0"))
                for i in range(BATCH)])
            n += BATCH
            stored.value = n
            stop.wait(max(0.0, start + n / rate - time.perf_counter()))
    seconds.value = time.perf_counter() - start


class Writer:
    """The writer process; ``achieved`` is its events/s over its whole life."""

    def __init__(self, db: Path, rate: int) -> None:
        ctx = mp.get_context("spawn")
        self.stop, self.stored, self.seconds = ctx.Event(), ctx.Value("q", 0), ctx.Value("d")
        self.proc = ctx.Process(target=write_events,
                                args=(str(db), rate, self.stop, self.stored, self.seconds))

    def __enter__(self) -> Writer:
        self.proc.start()
        deadline = time.monotonic() + 30
        while self.stored.value == 0:  # it has imported, opened the store, written once
            if time.monotonic() > deadline or not self.proc.is_alive():
                raise RuntimeError("the writer process did not start writing")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.proc.join(30)

    @property
    def achieved(self) -> float:
        return self.stored.value / self.seconds.value if self.seconds.value else 0.0


class FrameWatch:
    """Wraps ``app._display``: the time of the first frame in which ``predicate()`` holds."""

    def __init__(self, app: Any) -> None:
        self.predicate: Callable[[], bool] | None = None
        self.hit: float | None = None
        original = app._display

        def display(screen: Any, renderable: Any) -> None:
            original(screen, renderable)
            if renderable is not None and self.predicate is not None and self.predicate():
                self.hit = time.perf_counter()
                self.predicate = None

        app._display = display

    async def latency(self, app: Any, key: str, predicate: Callable[[], bool]) -> float:
        self.hit, self.predicate = None, predicate
        start = time.perf_counter()
        app.simulate_key(key)
        deadline = start + 30
        while self.hit is None:
            if time.perf_counter() > deadline:
                raise RuntimeError(f"no frame showed the effect of {key!r} within 30 s")
            await asyncio.sleep(0.001)
        return self.hit - start


async def measure(root: Path, db: Path, presses: int) -> dict[str, list[float]]:
    from memras.tui.app import MemrasApp
    from memras.tui.screens.dashboard import DashboardScreen
    from memras.tui.screens.memory_map import MemoryMapScreen

    out: dict[str, list[float]] = {"cursor": [], "screen": [], "feed": []}
    app = MemrasApp(root, str(db))
    async with app.run_test(size=SIZE) as pilot:
        watch = FrameWatch(app)
        while not getattr(app.screen, "ready", False):  # the app's own DashboardReady
            await pilot.pause(0.01)
        await pilot.pause(0.5)  # the feed has polled at least once
        dashboard = app.screen
        first_id = dashboard.feed_last_id
        table = dashboard.query_one("#dimms")
        for i in range(presses):  # a person's pace: presses land all over the poll cycle
            key, row = ("down", 1) if i % 2 == 0 else ("up", 0)
            out["cursor"].append(await watch.latency(app, key,
                                                     lambda r=row: table.cursor_row == r))
            await asyncio.sleep(GAP_S)
        for _ in range(presses):
            out["screen"].append(await watch.latency(
                app, "m", lambda: isinstance(app.screen, MemoryMapScreen)))
            await asyncio.sleep(GAP_S)
            out["screen"].append(await watch.latency(
                app, "d", lambda: isinstance(app.screen, DashboardScreen)))
            # back on the dashboard it re-reads everything (on_screen_resume); let that
            # finish, so each switch starts from the same state, busy or idle
            while any(w.group == "dashboard-load" and not w.is_finished for w in app.workers):
                await asyncio.sleep(0.005)  # (a newer load cancels an older one: poll)
            await asyncio.sleep(GAP_S)
        out["feed"].append(dashboard.feed_last_id - first_id)  # events the feed went past
    return out


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=int, default=1000)
    parser.add_argument("--presses", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    from memras.sim.profiles import create
    from memras.store import Store

    print(f"load average at start: {load_average()} ({os.cpu_count()} CPUs)")
    idle: dict[str, list[float]] = {"cursor": [], "screen": [], "feed": []}
    busy: dict[str, list[float]] = {"cursor": [], "screen": [], "feed": []}
    achieved: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        root = create("demo", base / "root").root
        db = base / "memras.db"
        Store.open(db).close()
        asyncio.run(measure(root, db, 2))  # warm imports and the page cache
        for _ in range(args.rounds):
            for kind, times in asyncio.run(measure(root, db, args.presses)).items():
                idle[kind] += times
            with Writer(db, args.rate) as writer:
                time.sleep(1.0)  # the feed is following a full-rate stream
                for kind, times in asyncio.run(measure(root, db, args.presses)).items():
                    busy[kind] += times
            achieved.append(writer.achieved)
        with Store.open(db) as store:
            from sqlalchemy import text

            with store.session(write=False) as session:
                rows = session.execute(text("SELECT count(*) FROM memras_error")).scalar()
    print(f"load average at end: {load_average()}")
    print(f"writer achieved {statistics.median(achieved):,.0f} events/s per busy round "
          f"(asked {args.rate:,}); {rows:,} events stored in all; the live feed followed "
          f"{sum(busy['feed']):,.0f} of them while keys were timed (busy), "
          f"{sum(idle['feed']):,.0f} (idle)")
    for kind, what in (("cursor", "down/up in the DIMM table"), ("screen", "m/d screen switch")):
        i, b = statistics.median(idle[kind]), statistics.median(busy[kind])
        ip = sorted(idle[kind])[int(len(idle[kind]) * 0.9)]
        bp = sorted(busy[kind])[int(len(busy[kind]) * 0.9)]
        print(f"{what:<26} n={len(idle[kind])}+{len(busy[kind])}  median idle {i * 1000:.1f} ms, "
              f"busy {b * 1000:.1f} ms, ratio {b / i:.2f} (goal <= 1.5); "
              f"p90 idle {ip * 1000:.1f} ms, busy {bp * 1000:.1f} ms")


if __name__ == "__main__":
    main()
