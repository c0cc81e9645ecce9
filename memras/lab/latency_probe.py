"""Kernel-to-stored latency in a lab guest: ``python3 latency_probe.py inject|poll|summary``.

Three guest-side parts of the ``ingest-latency`` scenario, standard library only (it
runs from the read-only 9p share with the host's Python and must start fast):

* ``inject``: software corrected MCEs through the guest's mce-inject debugfs files at
  a paced rate for at most ``--seconds``, one page per event (:data:`STEP`). The
  kernel queues each record in its MCE genpool (2 pages, ~64 records) and logs it from
  a work item; under TCG that work item, printing to the serial console, falls behind
  near 1,000/s and the kernel drops records ("MCE records pool full!"), which no reader
  could ever see. So with ``--counter`` (a tracefs instance that records every
  ``mce_record`` and is never read) the injector never lets more than ``--max-pending``
  records wait in the kernel: the achieved rate is what the guest really sustains.
* ``poll``: what the product does not record, the moment a row becomes visible in the
  store. Every ``--interval`` it reads the rows committed since the last read (WAL: a
  reader sees exactly the committed rows) and stamps them with the time the read began;
  a row committed after the previous read began is stamped at most one interval late,
  so the latency is over- rather than under-stated. It also maps the kernel's clocks
  to the wall clock, at start and end, by writing markers between two ``time.time()``
  reads: to its own trace instance (the trace's ``local`` clock, raw ``sched_clock``)
  and to /dev/kmsg (printk's ``local_clock``, which adds a per-boot offset: 0.35 s and
  1.24 s in two lab boots). A row's stamp is mapped with its own road's offset; one
  mapping for both put kmsg-dated rows 1.24 s before their injection. (Each road's
  two offsets agree to a few microseconds: both clocks run on the guest's TSC.)
* ``summary``: per phase, each injected address against the stored rows of this run:
  how many were stored once, twice, never; and the latency (seen - kernel timestamp of
  the row mapped to the wall clock) as p50/p90/p99/max.

    python3 latency_probe.py poll --db /tmp/w.db --out /tmp/seen.txt
    python3 latency_probe.py inject --rate 1000 --seconds 60 --base 0x100200000 \\
        --counter /sys/kernel/tracing/instances/c --out /tmp/steady.json
    python3 latency_probe.py summary --seen /tmp/seen.txt --phase /tmp/steady.json \\
        --since 1796580000
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import sqlite3
import sys
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

MCE_INJECT = "/sys/kernel/debug/mce-inject/"
TRACING = "/sys/kernel/tracing"
CE_STATUS = b"0x9c0000000000009f"  # VAL|EN|MISCV|ADDRV, MCACOD 0x9f (memory read)
CE_MISC = b"0x86"  # physical address mode, LSB 6
# One event per 4 KiB page: memras's dedup key is the page, and a page's reports are
# matched across roads (trace, kmsg) by counting; one page per event keeps "stored once"
# a question about each event, not about that matching.
STEP = 4096
MARKER = re.compile(r"\s(\d+\.\d+): tracing_mark_write: memras-clock-(\d+)")


# --- pure parts (unit-tested on the host) -----------------------------------------------

def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of an ascending, non-empty sequence."""
    rank = max(1, -(-len(sorted_values) * q // 100))  # ceil(n*q/100), at least 1
    return sorted_values[int(rank) - 1]


def clock_offset(samples: Iterable[tuple[float, float, float]]) -> float:
    """Wall - kernel clock from (wall before, wall after, kernel stamp) marker samples:
    the tightest bracket wins (a preempted write widens it)."""
    before, after, stamp = min(samples, key=lambda s: s[1] - s[0])
    return (before + after) / 2 - stamp


Row = tuple[float, int, float, str]  # seen (wall), address, kernel stamp (uptime), source


def parse_seen(lines: Iterable[str]) -> tuple[list[Row], dict[str, list[float]]]:
    """The poller's output: its rows, and each road's clock offsets (wall - kernel)."""
    rows: list[Row] = []
    offsets: dict[str, list[float]] = {}
    for line in lines:
        parts = line.split()
        if len(parts) == 3 and parts[0] == "offset":
            offsets.setdefault(parts[1], []).append(float(parts[2]))
        elif len(parts) == 4:
            rows.append((float(parts[0]), int(parts[1]), float(parts[2]), parts[3]))
    return rows, offsets


def phase_summary(injected: Sequence[int], rows: Sequence[Row], offsets: dict[str, float],
                  since: float) -> dict[str, Any]:
    """Injected addresses against the run's stored rows: counts and latency figures.

    A row's kernel stamp is mapped to the wall clock with its road's offset (kmsg:
    printk's clock, trace: the trace clock; see the module doc). Only rows stamped at
    or after ``since`` (wall) belong to this run (the watcher also imports the kernel
    ring, which in a shared guest holds earlier runs' errors at these addresses).
    """
    wanted = set(injected)
    mine = [(seen, addr, uptime + offsets[source]) for seen, addr, uptime, source in rows
            if addr in wanted and uptime + offsets[source] >= since]
    stored = Counter(r[1] for r in mine)
    latencies = sorted(seen - stamp for seen, _, stamp in mine)
    figures = {}
    if latencies:
        figures = {f"p{q}_s": round(percentile(latencies, q), 4) for q in (50, 90, 99)}
        figures.update(max_s=round(latencies[-1], 4), min_s=round(latencies[0], 4))
        # how fast rows of this phase became visible once they started to (the watcher's
        # throughput when the phase outruns it)
        seen = [r[0] for r in mine]
        figures["stored_per_s"] = round(len(mine) / max(max(seen) - min(seen), 1e-3), 1)
    missing = [a for a in injected if a not in stored]
    return {"injected": len(injected), "stored": len(stored),
            "stored_twice_or_more": sum(1 for n in stored.values() if n > 1),
            "missing": len(missing), "missing_sample": [f"{a:#x}" for a in missing[:5]],
            **figures}


def addresses(base: int, count: int) -> list[int]:
    return [base + i * STEP for i in range(count)]


# --- guest side ---------------------------------------------------------------------------

def counted(counter: str) -> int:
    """Records a never-read trace instance holds (entries + overrun, every CPU)."""
    total = 0
    for cpu in os.listdir(f"{counter}/per_cpu"):
        with open(f"{counter}/per_cpu/{cpu}/stats") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key in ("entries", "overrun"):
                    total += int(value)
    return total


def inject(args: argparse.Namespace) -> None:
    fds = {k: os.open(MCE_INJECT + k, os.O_WRONLY) for k in ("status", "addr", "misc", "bank")}
    flags = os.open(MCE_INJECT + "flags", os.O_WRONLY)
    os.write(flags, b"sw\n")  # flags_write drops the last byte (the newline echo sends)
    os.close(flags)
    base_count = counted(args.counter) if args.counter else 0
    throttled = 0.0
    start = time.time()
    count = min(args.max_count, round(args.rate * args.seconds))
    for i in range(count):
        lag = start + i / args.rate - time.time()
        if lag > 0:
            time.sleep(lag)
        elif time.time() - start > args.seconds:
            count = i  # the time is up: the rate achieved is below the target
            break
        if args.counter and i % 4 == 0:
            throttled += _wait_kernel(args.counter, base_count + i - args.max_pending)
        # bank last: its write fires the injection and resets status/addr/misc
        os.write(fds["status"], CE_STATUS)
        os.write(fds["addr"], b"%#x" % (args.base + i * STEP))
        os.write(fds["misc"], CE_MISC)
        os.write(fds["bank"], b"7")
    end = time.time()
    if args.counter:
        _wait_kernel(args.counter, base_count + count, limit_s=30)
    result = {"base": args.base, "count": count, "rate_target": args.rate,
              "start": start, "end": end, "rate": round(count / max(end - start, 1e-9), 1),
              "throttled_s": round(throttled, 3),
              "kernel_logged": counted(args.counter) - base_count if args.counter else None}
    with open(args.out, "w") as f:
        json.dump(result, f)


def _wait_kernel(counter: str, at_least: int, limit_s: float = 10.0) -> float:
    """Sleep until the kernel has logged ``at_least`` records; the seconds waited."""
    started = time.time()
    while counted(counter) < at_least and time.time() - started < limit_s:
        time.sleep(0.002)
    return time.time() - started


def _trace_samples(instance: str, n: int = 5) -> list[tuple[float, float, float]]:
    """(wall before, wall after, trace stamp) of ``n`` markers in a trace instance."""
    marks = {}
    fd = os.open(f"{instance}/trace_marker", os.O_WRONLY)
    for i in range(n):
        before = time.time()
        os.write(fd, f"memras-clock-{i}".encode())
        marks[i] = (before, time.time())
    os.close(fd)
    with open(f"{instance}/trace") as f:
        text = f.read()
    with open(f"{instance}/trace", "w"):
        pass  # opened for writing truncates: the next calibration sees only its markers
    return [(*marks[int(m.group(2))], float(m.group(1))) for m in MARKER.finditer(text)]


def _kmsg_samples(n: int = 4) -> list[tuple[float, float, float]]:
    """The same through /dev/kmsg: a written line becomes a record stamped by printk's
    clock. (Few: writes are rate-limited to a burst of 10 per open file.)"""
    fd = os.open("/dev/kmsg", os.O_RDWR | os.O_NONBLOCK)
    try:
        os.lseek(fd, 0, os.SEEK_END)  # read only what is logged from now on
        marks = {}
        nonce = time.monotonic_ns()  # this call's markers only, whatever the ring holds
        for i in range(n):
            before = time.time()
            # the newline ends the record: an open one is not yet readable
            os.write(fd, f"memras-clock-{nonce}-{i}\n".encode())
            marks[f"{nonce}-{i}"] = (before, time.time())
        samples: list[tuple[float, float, float]] = []
        while len(samples) < n:
            try:
                record = os.read(fd, 8192).decode(errors="replace")
            except BlockingIOError:
                break
            except BrokenPipeError:  # overwritten before we read it: skip
                continue
            prefix, _, text = record.partition(";")
            fields = prefix.split(",")
            mark = text.strip().removeprefix("memras-clock-")
            if mark in marks and len(fields) >= 3:
                samples.append((*marks[mark], int(fields[2]) / 1e6))
        return samples
    finally:
        os.close(fd)


def _offsets(instance: str) -> str:
    return (f"offset trace {clock_offset(_trace_samples(instance)):.6f}\n"
            f"offset kmsg {clock_offset(_kmsg_samples()):.6f}\n")


def poll(args: argparse.Namespace) -> None:
    instance = f"{TRACING}/instances/memras-latency-clock"
    os.makedirs(instance, exist_ok=True)
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    with open(args.out, "w", buffering=1) as out:
        out.write(_offsets(instance) + "ready\n")
        db = sqlite3.connect(args.db, timeout=30)
        last = db.execute("SELECT coalesce(max(id), 0) FROM memras_error").fetchone()[0]
        while not stop:
            seen = time.time()
            rows = db.execute("SELECT id, address, uptime, source FROM memras_error "
                              "WHERE id > ? AND address IS NOT NULL AND uptime IS NOT NULL "
                              "ORDER BY id", (last,)).fetchall()
            if rows:
                last = rows[-1][0]
                out.write("".join(f"{seen:.6f} {a} {u} {src}\n" for _, a, u, src in rows))
            time.sleep(max(0.0, args.interval - (time.time() - seen)))
        out.write(_offsets(instance))
    os.rmdir(instance)


def summary(args: argparse.Namespace) -> None:
    with open(args.seen) as f:
        rows, calibrations = parse_seen(f)
    # Two calibrations per road bracket the run; their mean maps it (the spread is printed).
    offsets = {road: sum(v) / len(v) for road, v in calibrations.items()}
    phases = {}
    for path in args.phase:
        with open(path) as f:
            phase = json.load(f)
        figures = phase_summary(addresses(phase["base"], phase["count"]), rows, offsets,
                                args.since)
        phases[os.path.basename(path).rsplit(".", 1)[0]] = {**phase, **figures}
    spread = max(max(v) - min(v) for v in calibrations.values())
    json.dump({"clock_offset_spread_s": round(spread, 6),
               "kmsg_minus_trace_clock_s": round(offsets["trace"] - offsets["kmsg"], 6),
               "phases": phases}, sys.stdout)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    i = sub.add_parser("inject")
    i.add_argument("--rate", type=float, required=True, help="events per second")
    i.add_argument("--seconds", type=float, required=True, help="stop after this long")
    i.add_argument("--max-count", type=int, default=10**9, help="(the address range)")
    i.add_argument("--base", type=lambda s: int(s, 0), required=True)
    i.add_argument("--counter", help="trace instance counting mce_record (throttles)")
    i.add_argument("--max-pending", type=int, default=16,
                   help="records waiting in the kernel's ~64-record pool, at most")
    i.add_argument("--out", required=True)
    p = sub.add_parser("poll")
    p.add_argument("--db", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--interval", type=float, default=0.05)
    s = sub.add_parser("summary")
    s.add_argument("--seen", required=True)
    s.add_argument("--phase", action="append", required=True)
    s.add_argument("--since", type=float, required=True,
                   help="wall time (guest clock) before the run's first injection")
    args = ap.parse_args(argv)
    {"inject": inject, "poll": poll, "summary": summary}[args.cmd](args)


if __name__ == "__main__":
    main()
