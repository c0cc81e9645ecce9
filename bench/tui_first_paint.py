"""Time from app start to the dashboard's first complete paint: empty DB vs 1M events.

Same simulated ``demo`` server for both; the only difference is the database. The
app posts ``DashboardReady`` after the frame that shows the host summary, the DIMM
table (with 24 h sparklines and verdicts) and the open alerts; we time from
constructing ``MemrasApp`` to that message, headless (``run_test``), runs interleaved.

    .venv/bin/python bench/tui_first_paint.py [--events 1000000] [--runs 5]

The 1M events span 90 days (about 11k in the last 24 h): the dashboard reads only
the last 24 h through the time index and the newest 50 rows by primary key.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from memras.tui.app import MemrasApp
from memras.tui.messages import DashboardReady

from memras.records import DimmLocation, ErrorType, MemoryErrorEvent, Source
from memras.sim.profiles import create
from memras.store import Store

NOW = datetime(2024, 5, 14, 12, 0, tzinfo=UTC)
SPAN = timedelta(days=90)
DIMMS = [(mc, ch) for mc in range(4) for ch in range(2)]


def fill(db: Path, n: int, batch: int = 50_000) -> float:
    start = time.perf_counter()
    with Store.open(db) as store:
        for first in range(0, n, batch):
            events = []
            for i in range(first, min(n, first + batch)):
                mc, ch = DIMMS[i % len(DIMMS)]
                label = f"CPU_SrcID#{mc // 2}_MC#{mc % 2}_Chan#{ch}_DIMM#0"
                t = NOW - SPAN + SPAN * (i / n)
                events.append(MemoryErrorEvent(
                    ErrorType.CORRECTED, Source.TRACE, timestamp=t,
                    address=(4 << 30) + i * 64, message="memory read error", driver="skx_edac",
                    location=DimmLocation(mc=mc, channel=ch, slot=0, top_layer=ch,
                                          middle_layer=0, bank=i % 16, row=i % 4096,
                                          label=label),
                    raw=f"bench {i}"))
            store.add_events(events)
    return time.perf_counter() - start


async def first_paint(root: Path, db: Path) -> float:
    ready = asyncio.Event()

    def hook(message: object) -> None:
        if isinstance(message, DashboardReady):
            ready.set()

    start = time.perf_counter()
    app = MemrasApp(root, str(db), clock=lambda: NOW)
    async with app.run_test(size=(120, 40), message_hook=hook):
        await asyncio.wait_for(ready.wait(), 120)
        elapsed = time.perf_counter() - start
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        root = create("demo", base / "root").root
        empty, full = base / "empty.db", base / "full.db"
        Store.open(empty).close()
        fill_s = fill(full, args.events)
        print(f"filled {args.events:,} events in {fill_s:.1f} s")
        asyncio.run(first_paint(root, empty))  # warm imports and the page cache
        asyncio.run(first_paint(root, full))
        times: dict[str, list[float]] = {"empty": [], "full": []}
        for _ in range(args.runs):
            times["empty"].append(asyncio.run(first_paint(root, empty)))
            times["full"].append(asyncio.run(first_paint(root, full)))
    e, f = statistics.median(times["empty"]), statistics.median(times["full"])
    print(f"{'database':<22}{'median first paint':>20}")
    print(f"{'empty':<22}{e * 1000:>17.0f} ms")
    print(f"{f'{args.events:,} events':<22}{f * 1000:>17.0f} ms")
    print(f"ratio {f / e:.2f}x (goal <= 1.5x)")


if __name__ == "__main__":
    main()
