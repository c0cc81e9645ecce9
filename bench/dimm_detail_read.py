"""The TUI's DIMM detail read (``memras.views.dimm_detail``) on a big database.

The detail reads a DIMM's newest rows through the one DIMM filter ``memras errors
--dimm`` uses (``DimmNames.error_filter``): the DIMM's id, plus rows not attributed yet
at locations that resolve to it. Those locations are grouped from the unattributed rows
only; before, the filter grouped every row of ``memras_error``. This times, on the same
database with every row attributed (as the watcher and ``memras import`` leave it):

- ``detail``: ``views.dimm_detail`` of one DIMM (5,000 newest rows read);
- ``filter``: ``DimmNames.error_filter`` alone (what ``errors --dimm`` pays first);
- ``group all``: ``stored_dimms`` over every row, the grouping the filter used to do.

    .venv/bin/python bench/dimm_detail_read.py [--events 1000000] [--runs 5]

Same events as bench/tui_first_paint.py (8 DIMMs of the ``demo`` profile over 90 days).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from tui_first_paint import fill  # bench/ is the script directory on sys.path

from memras import views
from memras.health.dimm_names import DimmNames, attribute_from_host
from memras.sim.profiles import create
from memras.store import Store
from memras.store.dimm_ids import stored_dimms
from memras.topology.inventory import dimm_inventory

DIMM = "mc0/dimm2"  # P1-DIMMB1, one of the 8 DIMMs the events land on


def median_s(runs: int, call: Callable[[], object]) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


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
        dimm = next(d for d in dimm_inventory(host) if d.id == DIMM)
        with Store.open(db) as store:
            start = time.perf_counter()
            attribute_from_host(store, host)
            print(f"attributed in {time.perf_counter() - start:.1f} s")
            read = views.dimm_detail(host, store, dimm).events_read
            figures = {
                "detail": median_s(args.runs, lambda: views.dimm_detail(host, store, dimm)),
                "filter": median_s(args.runs, lambda: DimmNames.of(host, store)
                                   .error_filter(DIMM)),
                "group all": median_s(args.runs, lambda: stored_dimms(store)),
            }
    print(f"{'read':<12}{'median':>10}   ({read:,} rows in the detail, {args.runs} runs)")
    for name, seconds in figures.items():
        print(f"{name:<12}{seconds * 1000:>7.0f} ms")


if __name__ == "__main__":
    main()
