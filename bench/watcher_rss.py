"""The watcher's memory during a 1M-event mc_event storm vs when idle (goal: <= 1.5x).

What runs is what a user runs: ``memras watch --sources trace`` in a subprocess on a
simulated server (``memras.sim.profiles.create("demo", root)``), once with
``--no-health`` and once with the health pipeline. After the watcher has settled, its
idle RSS is sampled (psutil, median of 10 samples over 1 s); then the simulator's
trace file (``.memras-sim/trace``, which the watcher tails as it would
``instances/memras/trace_pipe``) gets N mc_event lines appended in 10k-line slices,
templated from the lines ``memras.sim.actions.inject_ce`` writes (so they are the
real skx_edac format), each with its own uptime and address. RSS is sampled every
50 ms until every event is stored (read from the database's count table), and the
peak is compared with idle. Nothing touches this machine's kernel files.

Run:  .venv/bin/python bench/watcher_rss.py [--events 1000000] [--health-events 1000000]
      [--no-health-only]
"""

from __future__ import annotations

import argparse
import re
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

from memras.sim import actions
from memras.sim.profiles import create

DIMMS = ("P1-DIMMA1", "P1-DIMMC1", "P2-DIMMB1", "P2-DIMME1")
SLICE = 10_000
_TS = re.compile(r"\] (\.{4,5}) \d+\.\d+: ")
_ADDR = re.compile(r"address:0x[0-9a-f]+")


def templates(root: Path) -> list[str]:
    """Real mc_event lines from the simulator, one per DIMM, as format templates."""
    trace = root / ".memras-sim" / "trace"
    start = trace.stat().st_size if trace.exists() else 0
    for dimm in DIMMS:
        actions.inject_ce(root, dimm)
    with trace.open() as f:
        f.seek(start)
        lines = [ln.rstrip("\n") for ln in f if " mc_event: " in ln]
    out = []
    for line in lines:
        line = line.replace("{", "{{").replace("}", "}}")
        line = _TS.sub(r"] \1 {ts:.6f}: ", line, count=1)
        out.append(_ADDR.sub("address:0x{addr:x}", line, count=1))
    return out


def storm_slice(tmpl: list[str], start: int, n: int) -> str:
    # distinct uptime and page per event: every line is a new event for the store
    return "".join(tmpl[i % len(tmpl)].format(ts=10_000 + i * 1e-4,
                                               addr=0x1_0000_0000 + (i << 12) + (i & 0xFF0))
                   + "\n" for i in range(start, start + n))


def stored(db: Path) -> int:
    try:
        with sqlite3.connect(f"{db.as_uri()}?mode=ro", uri=True, timeout=5) as conn:
            return conn.execute("SELECT coalesce(sum(events), 0) FROM memras_error_count"
                                ).fetchone()[0]
    except sqlite3.Error:
        return -1


def rss(proc: psutil.Process) -> int:
    return proc.memory_info().rss


def run(events: int, health: bool, tmp: Path) -> dict[str, float]:
    root, db = tmp / f"root-{health}", tmp / f"memras-{health}.db"
    create("demo", root)
    tmpl = templates(root)
    cmd = [sys.executable, "-m", "memras", "watch", "--root", str(root), "--db", str(db),
           "--sources", "trace"] + ([] if health else ["--no-health"])
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    ps = psutil.Process(proc.pid)
    try:
        base = len(DIMMS)
        while stored(db) < base:  # started, and the injected lines are stored
            if proc.poll() is not None:
                raise SystemExit(f"watcher exited: {proc.stderr.read().decode()}")
            time.sleep(0.2)
        time.sleep(1.0)
        idle_samples = []
        for _ in range(10):
            idle_samples.append(rss(ps))
            time.sleep(0.1)
        idle = statistics.median(idle_samples)
        peak = idle
        trace = root / ".memras-sim" / "trace"
        t0 = time.perf_counter()
        with trace.open("a") as f:
            for start in range(0, events, SLICE):
                f.write(storm_slice(tmpl, start, min(SLICE, events - start)))
                f.flush()
                peak = max(peak, rss(ps))
        while stored(db) < base + events:
            if proc.poll() is not None:
                raise SystemExit(f"watcher exited: {proc.stderr.read().decode()}")
            peak = max(peak, rss(ps))
            time.sleep(0.05)
        elapsed = time.perf_counter() - t0
        proc.send_signal(signal.SIGTERM)
        while proc.poll() is None:  # the health pipeline may still be judging the storm
            peak = max(peak, rss(ps))
            time.sleep(0.05)
        drained = time.perf_counter() - t0
    finally:
        if proc.poll() is None:
            proc.kill()
    return {"idle_mib": idle / 2**20, "peak_mib": peak / 2**20, "ratio": peak / idle,
            "seconds": elapsed, "events_per_s": events / elapsed, "exit_s": drained}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--health-events", type=int, default=1_000_000,
                    help="storm size for the run with the health pipeline (it judges "
                         "~6k events/s here, so 1M takes ~3 minutes)")
    ap.add_argument("--no-health-only", action="store_true")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="memras-bench-"))
    try:
        modes = [False] if args.no_health_only else [False, True]
        print(f"load average {' '.join(f'{x:.2f}' for x in psutil.getloadavg())}")
        for health in modes:
            n = args.health_events if health else args.events
            r = run(n, health, tmp)
            name = "with health pipeline" if health else "--no-health"
            print(f"{name}: idle {r['idle_mib']:.1f} MiB, peak {r['peak_mib']:.1f} MiB, "
                  f"ratio {r['ratio']:.2f} (goal <= 1.5); {n} events stored in "
                  f"{r['seconds']:.1f} s ({r['events_per_s']:,.0f}/s), watcher exited "
                  f"after {r['exit_s']:.1f} s", flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
