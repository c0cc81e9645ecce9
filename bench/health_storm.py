"""Health engine cost per event in a CE storm: 50,000 events vs 5,000 (goal: ratio <= 1.5).

A storm on one DIMM over thousands of pages is the worst case for the health engine:
every event updates buckets, trends and verdicts. Before running sums, grouped
crossings and geometric reclassification, 10,000 events took ~45 s and 50,000 more
than 15 minutes (quadratic). Run: .venv/bin/python bench/health_storm.py
"""

from __future__ import annotations

import statistics
import time
from datetime import UTC, datetime, timedelta

from memras.health.engine import HealthEngine
from memras.records import DimmLocation, ErrorType, MemoryErrorEvent, Source


def storm(n: int) -> list[MemoryErrorEvent]:
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    return [MemoryErrorEvent(
        ErrorType.CORRECTED, Source.TRACE, timestamp=t0 + timedelta(milliseconds=10 * i),
        address=0x100000000 + (i % 4096) * 4096,
        location=DimmLocation(mc=0, top_layer=0, middle_layer=0, label="D0", rank=0, bank=2,
                              row=0x1A2F, column=i % 64)) for i in range(n)]


def per_event_us(events: list[MemoryErrorEvent]) -> float:
    engine = HealthEngine()
    start = time.perf_counter()
    for i in range(0, len(events), 500):  # the watcher's batch size
        engine.process(events[i:i + 500])
    return (time.perf_counter() - start) / len(events) * 1e6


def main() -> None:
    small, large = storm(5_000), storm(50_000)
    runs = [(per_event_us(small), per_event_us(large)) for _ in range(3)]
    s = statistics.median(r[0] for r in runs)
    big = statistics.median(r[1] for r in runs)
    print(f"per event: 5k storm {s:.0f} us, 50k storm {big:.0f} us, ratio {big / s:.2f} "
          "(goal <= 1.5)")


if __name__ == "__main__":
    main()
