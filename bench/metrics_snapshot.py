"""The prometheus hook's snapshot (``memras.alerts.metrics.StoreMetrics``) on a big database.

``memras watch`` publishes every DIMM's metrics every 15 s from its writer thread. The
first snapshot groups every row of ``memras_error`` by DIMM once; each later one reads
only the rows stored since (an id range). This times, on a database of ``--events`` rows
(8 DIMMs of the ``demo`` profile over 90 days, every row attributed):

- ``first``: the first snapshot (the whole-table grouping, once per watcher start);
- ``tick``: a later snapshot with nothing new (what every 15 s costs when quiet);
- ``render``: the snapshot as Prometheus text (prometheus_client).

    .venv/bin/python bench/metrics_snapshot.py [--events 1000000] [--runs 5]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from memras.plugins.alerts.prometheus_hook import render
from tui_first_paint import fill  # bench/ is the script directory on sys.path

from memras.alerts.metrics import StoreMetrics
from memras.alerts.service import SqlAlertStore
from memras.health.dimm_names import attribute_from_host
from memras.sim.profiles import create
from memras.store import Store


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        host = create("demo", base / "root").host()
        db = base / "m.db"
        print(f"filled {args.events:,} events in {fill(db, args.events):.1f} s")
        with Store.open(db) as store:
            attribute_from_host(store, host)
            alerts = SqlAlertStore(store)
            firsts, ticks = [], []
            for _ in range(args.runs):
                metrics = StoreMetrics(store, host)
                start = time.perf_counter()
                snapshot = metrics(alerts)
                firsts.append(time.perf_counter() - start)
                start = time.perf_counter()
                metrics(alerts)
                ticks.append(time.perf_counter() - start)
            start = time.perf_counter()
            text = render(snapshot)
            rendered = time.perf_counter() - start
    print(f"{len(snapshot.dimms)} DIMMs, {len(text):,} bytes of text")
    print(f"first       median {statistics.median(firsts) * 1000:,.0f} ms")
    print(f"tick        median {statistics.median(ticks) * 1000:,.1f} ms")
    print(f"render      {rendered * 1000:,.1f} ms")


if __name__ == "__main__":
    main()
