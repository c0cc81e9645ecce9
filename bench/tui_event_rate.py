"""Is the TUI responsive while 1,000 events/s arrive? Key-to-screen latency, feed on vs off.

The same `demo` simulated server and database; a writer thread stores 1,000 events per
second (batches of 50 every 50 ms, as the watcher would) while the dashboard follows the
live feed. We time pressing a screen key (`m`, memory map; then `d`, back to the
dashboard) until that screen is the active one, 20 times each, with the writer running
and without it, interleaved. Goal: median latency with events arriving ≤ 1.5x idle.
The writer's achieved rate is printed, so a run that could not reach 1k/s says so.

    .venv/bin/python bench/tui_event_rate.py [--rate 1000] [--presses 20]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

from memras.tui.app import MemrasApp

from memras.records import DimmLocation, ErrorType, MemoryErrorEvent, Source
from memras.sim.profiles import create
from memras.store import Store

BATCH = 50


class Writer(threading.Thread):
    """Stores ``rate`` events per second in batches until stopped."""

    def __init__(self, db: Path, rate: int) -> None:
        super().__init__(daemon=True)
        self.db, self.rate = db, rate
        self.stop = threading.Event()
        self.stored = 0
        self.seconds = 0.0

    def run(self) -> None:
        start = time.perf_counter()
        with Store.open(self.db) as store:
            n = 0
            while not self.stop.is_set():
                events = [MemoryErrorEvent(
                    ErrorType.CORRECTED, Source.TRACE, timestamp=datetime.now(UTC),
                    address=(4 << 30) + (n + i) * 64, message="memory read error",
                    driver="skx_edac", raw=f"rate {n + i}",
                    location=DimmLocation(mc=0, channel=1, slot=0, top_layer=1, middle_layer=0,
                                          bank=(n + i) % 16, row=(n + i) % 4096,
                                          label="CPU_SrcID#0_MC#0_Chan#1_DIMM#0"))
                    for i in range(BATCH)]
                store.add_events(events)
                n += BATCH
                self.stored = n
                next_at = start + n / self.rate
                self.stop.wait(max(0.0, next_at - time.perf_counter()))
        self.seconds = time.perf_counter() - start


async def latencies(root: Path, db: Path, presses: int) -> list[float]:
    out: list[float] = []
    app = MemrasApp(root, str(db))
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause(1.0)
        for _ in range(presses):
            for key, mode in (("m", "map"), ("d", "dashboard")):
                start = time.perf_counter()
                await pilot.press(key)
                while app.current_mode != mode:
                    await asyncio.sleep(0.002)
                await pilot.pause()  # the frame after the switch
                out.append(time.perf_counter() - start)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=int, default=1000)
    parser.add_argument("--presses", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        root = create("demo", base / "root").root
        db = base / "memras.db"
        Store.open(db).close()
        asyncio.run(latencies(root, db, 2))  # warm imports
        idle: list[float] = []
        busy: list[float] = []
        achieved: list[float] = []
        for _ in range(3):
            idle += asyncio.run(latencies(root, db, args.presses))
            writer = Writer(db, args.rate)
            writer.start()
            busy += asyncio.run(latencies(root, db, args.presses))
            writer.stop.set()
            writer.join()
            achieved.append(writer.stored / writer.seconds)
    i, b = statistics.median(idle), statistics.median(busy)
    print(f"writer achieved {statistics.median(achieved):,.0f} events/s (asked {args.rate:,})")
    print(f"key -> screen, median of {len(idle)}: idle {i * 1000:.0f} ms, "
          f"with events arriving {b * 1000:.0f} ms; ratio {b / i:.2f} (goal <= 1.5)")
    print(f"p90: idle {sorted(idle)[int(len(idle) * 0.9)] * 1000:.0f} ms, "
          f"busy {sorted(busy)[int(len(busy) * 0.9)] * 1000:.0f} ms")


if __name__ == "__main__":
    main()
