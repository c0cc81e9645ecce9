"""The pipeline fuzz at bench scale: >= 100,000 Hypothesis examples through parser ->
store -> health and the live watcher (the same harness and checks as the CI subset,
tests/unit/ingest/test_fuzz_pipeline.py, which runs ~2,000).

Each example is one capture: real corpus lines mutated (tests/corpus/hostile.py) and
imported with ``run_import`` (dmesg, trace, mcelog), parsed and stored (ras-mc-ctl
text), appended to a rasdaemon database and imported by its cursor, or written as
/dev/kmsg records of a simulated root and read by KmsgSource through the Watcher. Every
example must hold the harness's invariants (nothing raises; the report matches the
store's rows, flags and skips; every new row in its domain; the kmsg cursor at the last
line); the first failure stops the run, is shrunk by Hypothesis and printed.

Run:   .venv/bin/python bench/fuzz_pipeline.py [--examples 100000] [--json]
                                                [--write-docs docs/performance.md]
``--write-docs`` replaces the "## Fuzz" section of the file with this run's figures.
Not a timing bench: the rate is printed for planning a run, nothing is compared to it.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.corpus

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from tests.corpus.hostile import (  # noqa: E402
    Pipeline,
    hostile_line,
    hostile_text,
    rasdaemon_rows,
)

# Share of the examples per road (the CI subset's proportions, the watcher's smaller:
# each of its examples starts the watcher's threads).
SHARES = {"dmesg": 0.40, "trace": 0.15, "mcelog": 0.10, "ras-mc-ctl": 0.15,
          "rasdaemon": 0.15, "watch": 0.05}
# A road's examples run in chunks (each its own Hypothesis run, seed + chunk number, and
# store), so --jobs processes share the work evenly.
CHUNK = 5000


def _run(pipeline: Pipeline, road: str, examples: int, seed: int) -> None:
    config = settings(max_examples=examples, deadline=None, database=None,
                      derandomize=False, suppress_health_check=list(HealthCheck))
    strategy: st.SearchStrategy[Any]
    if road in ("dmesg", "trace"):
        strategy = hostile_text(road)
        action = lambda data: pipeline.import_bytes(road, data)  # noqa: E731
    elif road == "mcelog":
        strategy = hostile_text("mcelog", max_lines=30)
        action = lambda data: pipeline.import_bytes("mcelog", data)  # noqa: E731
    elif road == "ras-mc-ctl":
        strategy = hostile_text("ras-mc-ctl")
        action = pipeline.import_ras_mc_ctl
    elif road == "rasdaemon":
        strategy = rasdaemon_rows()
        action = pipeline.import_rasdaemon_rows
    else:
        strategy = st.lists(hostile_line("dmesg"), min_size=1, max_size=4)
        action = pipeline.watch_lines

    @config
    @given(strategy)
    def road_examples(value: Any) -> None:
        action(value)

    from hypothesis import seed as with_seed

    with_seed(seed)(road_examples)()


def _road(road: str, examples: int, seed: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """One road's examples in a store of its own: (its row of the table, its totals)."""
    pipeline = Pipeline(read_back_every=50)
    t0 = time.perf_counter()
    try:
        _run(pipeline, road, examples, seed)
    finally:
        pipeline.close()
    totals = asdict(pipeline.totals)
    row = {k: totals[k] for k in ("examples", "inserted", "flagged", "skipped",
                                  "duplicates", "health_changes")}
    row["seconds"] = round(time.perf_counter() - t0, 1)
    print(f"{road}: {row}", file=sys.stderr, flush=True)
    return row, totals


def _add(into: dict[str, Any], more: dict[str, Any]) -> None:
    for key, value in more.items():
        if isinstance(value, dict):
            _add(into.setdefault(key, {}), value)
        else:
            into[key] = round(into.get(key, 0) + value, 1)


def run(examples: int, seed: int, jobs: int = 1) -> dict[str, Any]:
    """Every road in chunks, ``jobs`` at a time (each chunk its own process and store)."""
    from concurrent.futures import ProcessPoolExecutor

    started = time.perf_counter()
    tasks = []
    for road, share in SHARES.items():
        n = max(1, round(examples * share))
        tasks += [(road, min(CHUNK, n - start), seed + i)
                  for i, start in enumerate(range(0, n, CHUNK))]
    per_road: dict[str, dict[str, Any]] = {}
    totals: dict[str, Any] = {}
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        futures = [(road, pool.submit(_road, road, n, s)) for road, n, s in tasks]
        for road, future in futures:
            row, chunk_totals = future.result()
            _add(per_road.setdefault(road, {}), row)
            _add(totals, chunk_totals)
            # progress on stderr: a run cut short still says how far it got
            print(f"[{time.perf_counter() - started:7.0f} s] {road}: {row['examples']:,} "
                  f"passed; {totals['examples']:,} of {examples:,} in all",
                  file=sys.stderr, flush=True)
    return {"examples": totals["examples"], "seed": seed, "failures": 0, "jobs": jobs,
            "seconds": round(time.perf_counter() - started, 1),
            "load_average": [round(x, 1) for x in os.getloadavg()],
            "per_road": per_road, "totals": totals}


def _top(counts: dict[str, int], n: int = 8) -> str:
    items = sorted(counts.items(), key=lambda kv: -kv[1])[:n]
    return ", ".join(f"{reason} {count:,}" for reason, count in items) or "none"


def markdown(result: dict[str, Any]) -> str:
    t = result["totals"]
    rows = "\n".join(
        f"| {road} | {r['examples']:,} | {r['inserted']:,} | {r['flagged']:,} | "
        f"{r['skipped']:,} | {r['duplicates']:,} | {r['health_changes']:,} | {r['seconds']:,} |"
        for road, r in result["per_road"].items())
    return f"""## Fuzz

`bench/fuzz_pipeline.py --examples {result['examples']:,} --jobs {result['jobs']}` (seed
{result['seed']}; load average {result['load_average']} at the end, 2-core machine shared
with other jobs):
{result['examples']:,} Hypothesis examples through parser -> store -> health and the live
watcher, **{result['failures']} failures** in {result['seconds']:,} s. Each example is one
capture of real corpus lines mutated (a number swapped for 2^64, 2^63, a negative or 40
digits; NUL, CR, invalid UTF-8, escapes; lines grown past any kernel record) or one batch
of rasdaemon rows of any SQLite type; each must hold the harness's invariants
(tests/corpus/hostile.py): nothing raises, the report matches the store's new rows, flags
and skips, every new row is within its domain, the health engine judges the stored
records, and the watcher's kmsg cursor reaches the last line. The CI subset
(tests/unit/ingest/test_fuzz_pipeline.py) runs ~2,000 derandomized examples of the same.

| road | examples | inserted | flagged | skipped | duplicates | health changes | s, chunks summed |
|---|---:|---:|---:|---:|---:|---:|---:|
{rows}

Flag reasons (rows): {_top(t['flag_reasons'])}.
Skip reasons (records and lines): {_top(t['skip_reasons'])}.

What the fuzz found on its way in (fixed in the same change): an uptime of 2^52 s ended
an import (the import clock's timedelta) and killed the kmsg source on every restart
(with_wall_time); a BLOB in a rasdaemon text column reached the store as bytes; a NaN or
infinite rasdaemon integer raised; a text column that is not UTF-8 failed every read of
the rasdaemon database.
"""


def write_docs(path: Path, section: str) -> None:
    """Replace the "## Fuzz" section (up to the next "## " heading), or append it."""
    text = path.read_text()
    pattern = re.compile(r"^## Fuzz\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(text):
        text = pattern.sub(lambda _: section + "\n", text, count=1)
    else:
        text = text.rstrip("\n") + "\n\n" + section
    path.write_text(text)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--examples", type=int, default=100_000)
    p.add_argument("--seed", type=int, default=20261206)
    p.add_argument("--jobs", type=int, default=2, help="roads run at once (processes)")
    p.add_argument("--json", action="store_true")
    p.add_argument("--write-docs", type=Path, metavar="PERFORMANCE_MD")
    args = p.parse_args(argv)
    result = run(args.examples, args.seed, args.jobs)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(markdown(result))
    if args.write_docs is not None:
        write_docs(args.write_docs, markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
