"""Time per ``views.memdev_rows`` call (the dashboard's reload of its CXL rows), with and
without a ``MemdevCache``, on a store of CXL media events spread over four memdevs.

Without the cache every call judges each memdev's records again (memdev_verdicts reads
all its stored errors, the counts group them); with it, a call while nothing new is
stored reads the store's version (newest ids, row counts) and reuses the last result.
The last line times the call after one new event is stored (the cache is refreshed).

    .venv/bin/python bench/memdev_rows_reload.py [--events 50000] [--runs 5]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from dimm_detail_read import median_s  # bench/ is the script directory on sys.path

from memras import views
from memras.host import Host
from memras.ingest.parsers.cxl import memory_error
from memras.records import CxlEvent, MemoryErrorEvent, Source
from memras.sim.profiles import create
from memras.store import Store
from memras.topology.cxl import cxl_units

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
SPAN = timedelta(days=30)
MEMDEVS = ("mem0", "mem1", "mem2", "mem3")


def media_event(i: int, n: int) -> MemoryErrorEvent:
    memdev = MEMDEVS[i % len(MEMDEVS)]
    ev = CxlEvent("general_media", memdev, host=f"0000:{13 + i % 4:02x}:00.0",
                  serial=i % 4, log_type="Informational", hdr_handle=i, hdr_ts=i,
                  dpa=(i * 64) & 0xFFFFFFF, descriptor=0, type=0, transaction_type=1,
                  channel=i % 2, rank=0, validity_flags=3, source=Source.TRACE,
                  timestamp=NOW - SPAN + SPAN * (i / n), raw=f"bench {i}")
    error = memory_error(ev)
    assert error is not None
    return error


def fill(db: Path, n: int, batch: int = 10_000) -> float:
    start = time.perf_counter()
    with Store.open(db) as store:
        for first in range(0, n, batch):
            store.add_events([media_event(i, n) for i in range(first, min(n, first + batch))])
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        host = Host(create("cxl", base / "root").root)
        # the profile has two memdevs: two more units of the same shape, named mem2, mem3
        two = cxl_units(host)
        units = [*two, *(replace(u, memdev=replace(u.memdev, name=f"mem{k + 2}"))
                         for k, u in enumerate(two))]
        db = base / "memras.db"
        print(f"stored {args.events} CXL media events on {len(units)} memdevs in "
              f"{fill(db, args.events):.1f} s")
        cache = views.MemdevCache()
        with Store.open_readonly(db) as store:
            recent = views.recent_errors(store, NOW)

            def rows(cache: views.MemdevCache | None = None) -> list[views.DimmRow]:
                return views.memdev_rows(host, store, NOW, recent=recent, units=units,
                                         cache=cache)

            assert rows() == rows(cache), "the cache changes nothing shown"
            before = median_s(args.runs, rows)
            after = median_s(args.runs, lambda: rows(cache))
            print(f"memdev_rows, no cache:           {before * 1000:8.1f} ms a call")
            print(f"memdev_rows, cache, no change:   {after * 1000:8.2f} ms a call "
                  f"({before / after:.0f}x)")
        with Store.open(db) as store:
            print(one_new_event(store, args, cache, lambda cache=None: views.memdev_rows(
                host, store, NOW, recent=recent, units=units, cache=cache)))


def one_new_event(store: Store, args: argparse.Namespace, cache: views.MemdevCache,
                  rows: Callable[..., list[views.DimmRow]]) -> str:
    """Time the reload after one new media error of mem1, ``args.runs`` times (a new
    error each time); then check the rows against a computation without the cache."""
    times = []
    parsed = cache.media["mem1"].parsed
    for k in range(args.runs):
        i = args.events + 4 * k + 1  # MEMDEVS[i % 4] == "mem1"
        store.add_events([replace(media_event(i, args.events), raw=f"new {k}")])
        start = time.perf_counter()
        kept = rows(cache)
        times.append(time.perf_counter() - start)
    assert kept == rows(), "the cached rows are a full computation's"
    judged = ", ".join(f"{m} {n}" for m, n in sorted(cache.judged.items()))
    return (f"memdev_rows, cache, one new event: {statistics.median(times) * 1000:6.1f} ms "
            f"a call (median of {args.runs}; times each memdev was judged: {judged}; "
            f"media errors of mem1 read back: {cache.media['mem1'].parsed - parsed})")

if __name__ == "__main__":
    main()
