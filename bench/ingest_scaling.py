"""Per-event ingest cost with 1M rows already stored vs with 1k (goal: ratio <= 1.2).

Run:  .venv/bin/python bench/ingest_scaling.py [--big 1000000] [--probe 50000]
Also provides make_events()/build_db() for bench/summary_vs_ras_mc_ctl.py.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from memras.records import DimmLocation, ErrorType, MemoryErrorEvent, Source
from memras.store import Store

LABELS = [f"CPU_SrcID#{s}_MC#{m}_Chan#{c}_DIMM#0" for s in range(2) for m in range(2)
          for c in range(3)]
T0 = datetime(2024, 1, 1, tzinfo=UTC)
BATCH = 5000


def make_events(start: int, n: int) -> list[MemoryErrorEvent]:
    """Varied mc_event-like events: 12 DIMMs, CE/UE, distinct pages and seconds."""
    out = []
    for i in range(start, start + n):
        label = LABELS[i % len(LABELS)]
        kind = ErrorType.UNCORRECTED if i % 97 == 0 else ErrorType.CORRECTED
        loc = DimmLocation(label=label, mc=i % 4, top_layer=i % 3, middle_layer=0)
        out.append(MemoryErrorEvent(kind, Source.TRACE, count=1 + i % 3, uptime_s=float(i),
                                    timestamp=T0 + timedelta(seconds=i),
                                    address=0x1_0000_0000 + (i << 12), grain_bits=5,
                                    message="memory read error", location=loc,
                                    raw=f"synthetic mc_event {i}"))
    return out


def build_db(path: Path, rows: int) -> Store:
    store = Store.open(path)
    for start in range(0, rows, BATCH):
        store.add_events(make_events(start, min(BATCH, rows - start)))
    return store


def per_event_cost(store: Store, start: int, n: int) -> float:
    events = make_events(start, n)
    t = time.perf_counter()
    for i in range(0, n, BATCH):
        store.add_events(events[i:i + BATCH])
    return (time.perf_counter() - t) / n


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--big", type=int, default=1_000_000)
    ap.add_argument("--small", type=int, default=1_000)
    ap.add_argument("--probe", type=int, default=50_000)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="memras-bench-"))
    try:
        small = build_db(tmp / "small.db", args.small)
        big = build_db(tmp / "big.db", args.big)
        # interleave the two probes so machine load hits both alike
        half = args.probe // 2
        c_small = per_event_cost(small, 10_000_000, half) + per_event_cost(
            small, 20_000_000, half)
        c_big = per_event_cost(big, 10_000_000, half) + per_event_cost(big, 20_000_000, half)
        print(f"rows before: {args.small} vs {args.big}; probe {args.probe} events each")
        print(f"per-event cost: {c_small / 2 * 1e6:.1f} us (1k) vs {c_big / 2 * 1e6:.1f} us "
              f"(1M); ratio {c_big / c_small:.2f} (goal <= 1.2)")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
