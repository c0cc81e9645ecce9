"""What the integrity check at watcher start and in ``memras doctor`` costs, by size.

``Store.quick_check`` (SQLite's ``PRAGMA quick_check``) reads the whole file once; this
times it on databases of growing size (median of 3), plus a whole ``memras doctor`` run
(process start included) on the largest, and a read-only ``memras errors --limit 10``
beside it for scale. Figures go to docs/performance.md ("Integrity check").
Run:  .venv/bin/python bench/quick_check.py [--rows 100000 1000000]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _docs import replace_figures  # noqa: E402
from ingest_scaling import build_db  # noqa: E402

from memras.store import Store  # noqa: E402

START, END = "<!-- figures: quick-check -->", "<!-- end figures: quick-check -->"
SECTION = """<!-- section: quick-check -->
## Integrity check (`PRAGMA quick_check`) at watcher start and in `memras doctor`
`bench/quick_check.py`: the check reads the whole file once, so its cost grows with the
database; the watcher pays it once at start (before `READY=1`), `memras doctor` on each
run. Read commands do not run it.

{figures}
<!-- end: quick-check -->"""


def median_s(fn: object, runs: int = 3) -> float:
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()  # type: ignore[operator]
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def command_s(argv: list[str], runs: int = 3) -> float:
    def run() -> None:
        subprocess.run(argv, capture_output=True, check=False)
    return median_s(run, runs)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000])
    ap.add_argument("--no-docs", action="store_true", help="print only")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="memras-bench-"))
    lines = []
    try:
        for rows in args.rows:
            db = tmp / f"{rows}.db"
            build_db(db, rows).close()
            size = db.stat().st_size
            with Store.open_readonly(db) as store:
                assert store.quick_check() == []
                t = median_s(store.quick_check)
            lines.append(f"- {rows:,} events, {size / 2**20:,.0f} MiB: quick_check "
                         f"**{t:.2f} s** (median of 3)")
        memras = [sys.executable, "-m", "memras", "--db", str(db)]
        doctor = command_s([*memras, "doctor"])
        errors = command_s([*memras, "errors", "--limit", "10"])
        lines.append(f"- on the {args.rows[-1]:,}-event database, as commands (process start "
                     f"included, median of 3): `memras doctor` {doctor:.2f} s, `memras errors "
                     f"--limit 10` {errors:.2f} s")
        load = os.getloadavg()[0]
        lines.append(f"- {time.strftime('%Y-%m-%d')}, shared 2-core machine, load average "
                     f"{load:.1f}. Reproduce: `.venv/bin/python bench/quick_check.py`")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    figures = "\n".join(lines)
    print(figures)
    if not args.no_docs:
        replace_figures(START, END, figures, new_section=SECTION)


if __name__ == "__main__":
    main()
