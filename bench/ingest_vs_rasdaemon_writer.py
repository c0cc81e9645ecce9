"""Parse + store of mc_event trace lines: memras vs a rasdaemon-style writer.

The anchor does what rasdaemon's ras-record.c does per event: one autocommit
``INSERT INTO mc_event (...) VALUES (NULL, ...)`` with sqlite3 on a database in the
default rollback-journal mode (no WAL, no PRAGMA). It is handed values already parsed
(rasdaemon reads binary trace records), so the comparison favours the anchor.
memras parses each text line (memras.ingest.parsers) and stores batches of 5000.
Run:  .venv/bin/python bench/ingest_vs_rasdaemon_writer.py [--lines 200000] [--anchor 5000]
"""

from __future__ import annotations

import argparse
import shutil
import sqlite3
import tempfile
import time
from pathlib import Path

from memras.ingest.parsers import parse_trace_line
from memras.store import Store
from memras.store import rasdaemon_schema as rs

LINE = ("rasdaemon-{pid} [{cpu:03d}] ..... {ts:.6f}: mc_event: {n} {kind} error{s}: memory "
        "{op} error on CPU_SrcID#{sock}_Ha#0_Chan#{ch}_DIMM#{d} (mc:{mc} location:{ch}:{d}:-1 "
        "address:0x{addr:x} grain:32 syndrome:0x{syn:08x} area:DRAM socket:{sock} rank:{r})")


def make_lines(n: int) -> list[str]:
    return [LINE.format(pid=1000 + i % 50, cpu=i % 8, ts=1000 + i * 0.001, n=1 + i % 3,
                        kind="Uncorrected" if i % 101 == 0 else "Corrected",
                        s="s" if i % 3 else "", op="read" if i % 2 else "write",
                        sock=i % 2, ch=i % 3, d=i % 2, mc=i % 4, addr=0x1_0000_0000 + i * 0x1040,
                        syn=i % 256, r=i % 4) for i in range(n)]


def memras_run(path: Path, lines: list[str]) -> float:
    store = Store.open(path)
    global CPU_S
    cpu = time.process_time()
    t = time.perf_counter()
    batch = []
    for line in lines:
        batch.append(parse_trace_line(line))
        if len(batch) == 5000:
            store.add_events(batch)
            batch = []
    store.add_events(batch)
    elapsed = time.perf_counter() - t
    CPU_S = time.process_time() - cpu
    assert store.count() == len(lines)
    store.close()
    return elapsed


CPU_S = 0.0  # CPU time of the last memras_run: the machine is shared, wall time is not ours


def anchor_run(path: Path, lines: list[str]) -> float:
    events = [parse_trace_line(line) for line in lines]  # parsed outside the timing
    db = sqlite3.connect(path, isolation_level=None)  # autocommit, like sqlite3_step
    db.execute(rs.create_table_sql("mc_event"))
    sql = rs.insert_sql("mc_event", rs.MC_EVENT_COLUMNS)
    t = time.perf_counter()
    for e in events:
        db.execute(sql, rs.mc_event_row(None, rs.format_timestamp(e.timestamp or
                                                                  _now()), e))
    elapsed = time.perf_counter() - t
    db.close()
    return elapsed


def _now():
    from datetime import UTC, datetime

    return datetime.now(UTC)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--lines", type=int, default=200_000)
    ap.add_argument("--anchor", type=int, default=5_000, help="events for the slow anchor")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="memras-bench-"))
    try:
        lines = make_lines(args.lines)
        a = anchor_run(tmp / "ras.db", lines[:args.anchor]) / args.anchor
        m = memras_run(tmp / "memras.db", lines) / args.lines
        print(f"rasdaemon-style writer: {1 / a:,.0f} events/s ({args.anchor} events)")
        print(f"memras parse+store:     {1 / m:,.0f} lines/s ({args.lines} lines; "
              f"{args.lines / CPU_S:,.0f} lines per CPU-second)")
        print(f"speed-up {a / m:.1f}x (goal >= 10x and >= 100k lines/s)")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
