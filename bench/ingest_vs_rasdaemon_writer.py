"""Parse + store of mc_event trace lines: memras vs a rasdaemon-style writer.

The anchor does what rasdaemon's ras-record.c does per event: one autocommit
``INSERT INTO mc_event (...) VALUES (NULL, ...)`` with sqlite3 on a database in the
default rollback-journal mode (no WAL, no PRAGMA). It is handed values already parsed
(rasdaemon reads binary trace records), so the comparison favours the anchor.
memras parses each text line (memras.ingest.parsers) and stores batches of 5000.
The machine may be shared: the load average is printed, and memras's rate per CPU-second
of its own process beside the wall-clock rate.
``--breakdown`` runs memras once more with each section timed in-process (CPU time of
the thread; the timers add ~1 µs a line, mostly to the parser's figure).
``--floor`` measures the floor under any memras: every SQL statement memras's run sent
(BEGIN, the dedup SELECTs, both INSERTs, the count bumps, the cursor, COMMIT) with its
exact values, captured, then replayed with plain sqlite3 into a fresh database of the
same schema and pragmas (and WAL checkpoints on their own thread, as memras's writer
runs them), alternating with memras's run. That is the store's work with
no parsing and no Python logic at all: lines/s cannot exceed 1 / (its time per line).
Run:  .venv/bin/python bench/ingest_vs_rasdaemon_writer.py [--lines 200000] [--anchor 5000]
      [--breakdown] [--floor [--rounds 3]]
"""

from __future__ import annotations

import argparse
import collections
import os
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


def breakdown(path: Path, lines: list[str]) -> None:
    """Per-line CPU cost of each section of parse+store (see the module docstring)."""
    from sqlalchemy import event

    from memras.store import rows as rows_mod
    from memras.store import store as store_mod

    acc: collections.Counter[str] = collections.Counter()
    clock = time.thread_time

    def timed(obj: object, name: str, label: str) -> None:
        fn = getattr(obj, name)

        def wrapper(*a, **k):
            t = clock()
            try:
                return fn(*a, **k)
            finally:
                acc[label] += clock() - t

        setattr(obj, name, wrapper)

    cls = store_mod.Store
    saved = {n: cls.__dict__[n] for n in ("_prepare", "_drop_known", "_bump_counts",
                                          "_set_cursor")}
    build, insert = rows_mod.RowBuilder.build, rows_mod.FastStatements.insert
    timed(cls, "_prepare", "dedup keys + identity digests")
    timed(cls, "_drop_known", "dedup look-up (SELECT ... IN)")
    timed(rows_mod.RowBuilder, "build", "row values, both tables")
    timed(rows_mod.FastStatements, "insert", "memras_error INSERT, 2 indexes")
    timed(cls, "_bump_counts", "memras_error_count bumps")
    timed(cls, "_set_cursor", "cursor")
    store = Store.open(path)

    @event.listens_for(store.engine, "before_cursor_execute")
    def _before(conn, cursor, statement, params, context, executemany):
        conn.info["memras_t"] = clock()

    @event.listens_for(store.engine, "after_cursor_execute")
    def _after(conn, cursor, statement, params, context, executemany):
        if statement.startswith("INSERT INTO mc_event"):
            acc["mc_event INSERT (rasdaemon mirror)"] += clock() - conn.info["memras_t"]

    try:
        start = clock()
        batch = []
        for line in lines:
            t = clock()
            batch.append(parse_trace_line(line))
            acc["parser"] += clock() - t
            if len(batch) == 5000:
                store.add_events(batch)
                batch = []
        store.add_events(batch)
        total = clock() - start
    finally:
        store.close()
        for name, fn in saved.items():
            setattr(cls, name, fn)
        rows_mod.RowBuilder.build, rows_mod.FastStatements.insert = build, insert
    n = len(lines)
    print(f"breakdown, CPU time per line ({n / total:,.0f} lines per CPU-second with timers):")
    for label, spent in acc.most_common():
        print(f"  {label:38s} {spent / n * 1e6:5.2f} µs")
    rest = total - sum(acc.values())
    print(f"  {'rest: commits, id/count SELECTs, loop':38s} {rest / n * 1e6:5.2f} µs")


def capture_statements(path: Path, lines: list[str]) -> list[tuple[str, object, bool]]:
    """Every statement memras sends while storing ``lines`` (batches of 5000, as
    memras_run), with its parameters; a COMMIT as ("COMMIT", None, False)."""
    from sqlalchemy import event

    store = Store.open(path)
    sent: list[tuple[str, object, bool]] = []

    @event.listens_for(store.engine, "before_cursor_execute")
    def _sent(conn, cursor, statement, params, context, executemany):
        sent.append((statement, params, executemany))

    @event.listens_for(store.engine, "commit")
    def _commit(conn):
        sent.append(("COMMIT", None, False))

    for start in range(0, len(lines), 5000):
        store.add_events([parse_trace_line(line) for line in lines[start:start + 5000]])
    store.close()
    return sent


def _kind(statement: str) -> str:
    words = statement.split()
    if words[0] == "INSERT":
        return f"INSERT {words[2]}"
    if words[0] == "SELECT" and " IN (" in statement:
        return "SELECT dedup keys"
    return words[0] if words[0] in ("BEGIN", "COMMIT") else "other (ids, counts, cursor)"


def replay(path: Path, schema_from: Path, sent: list[tuple[str, object, bool]],
           spent: collections.Counter[str] | None = None) -> float:
    """Wall time to run ``sent`` with plain sqlite3 on a fresh copy of memras's schema,
    with the pragmas memras's connections set (memras.store.store._configure_sqlite).
    ``spent`` collects the time per kind of statement."""
    from memras.store.checkpoint import WalCheckpointer
    from memras.store.store import SQLITE_BUSY_TIMEOUT_MS, SQLITE_CACHE_KIB

    source = sqlite3.connect(schema_from)
    ddl = [sql for (sql,) in source.execute(
        "SELECT sql FROM sqlite_master WHERE sql IS NOT NULL AND name NOT LIKE 'sqlite_%'"
        " ORDER BY type = 'index', rowid")]
    source.close()
    db = sqlite3.connect(path, isolation_level=None)
    for pragma in ("journal_mode=WAL", f"busy_timeout={SQLITE_BUSY_TIMEOUT_MS}",
                   "foreign_keys=ON", "synchronous=NORMAL", f"cache_size=-{SQLITE_CACHE_KIB}"):
        db.execute(f"PRAGMA {pragma}")
    for sql in ddl:
        db.execute(sql)
    db.execute("PRAGMA wal_autocheckpoint=0")  # as memras's event writer: checkpoints run
    checkpointer = WalCheckpointer(path)       # on their own thread, after each commit
    t = time.perf_counter()
    for statement, params, many in sent:
        started = time.perf_counter()
        if many:
            db.executemany(statement, params)
        elif params is None:
            db.execute(statement)
        else:
            db.execute(statement, params).fetchall()
        if spent is not None:
            spent[_kind(statement)] += time.perf_counter() - started
        if statement == "COMMIT":
            checkpointer.batch_committed()
    elapsed = time.perf_counter() - t
    checkpointer.close()
    db.close()
    return elapsed


def floor(tmp: Path, lines: list[str], rounds: int) -> None:
    sent = capture_statements(tmp / "capture.db", lines)
    inserts = sum(len(p) if many else 1 for s, p, many in sent if s.startswith("INSERT"))
    print(f"floor: {len(sent)} statements captured ({inserts} rows inserted)")
    n = len(lines)
    floors, full = [], []
    for i in range(rounds):  # alternating, so a change in the machine's load hits both
        for name in ("floor.db", "memras.db"):
            for suffix in ("", "-wal", "-shm"):
                (tmp / f"{name}{suffix}").unlink(missing_ok=True)
        floors.append(replay(tmp / "floor.db", tmp / "capture.db", sent) / n)
        full.append(memras_run(tmp / "memras.db", lines) / n)
        print(f"  round {i + 1}: replay {floors[-1] * 1e6:.2f} µs/line "
              f"({1 / floors[-1]:,.0f} lines/s at most), memras {full[-1] * 1e6:.2f} µs/line "
              f"({1 / full[-1]:,.0f} lines/s): ratio {full[-1] / floors[-1]:.2f}")
    spent: collections.Counter[str] = collections.Counter()
    for suffix in ("", "-wal", "-shm"):
        (tmp / f"floor.db{suffix}").unlink(missing_ok=True)
    replay(tmp / "floor.db", tmp / "capture.db", sent, spent)
    print("  one more replay, per kind of statement: " + ", ".join(
        f"{kind} {t / n * 1e6:.2f}" for kind, t in spent.most_common()) + " µs/line")
    f, m = sorted(floors)[rounds // 2], sorted(full)[rounds // 2]
    print(f"floor median: {f * 1e6:.2f} µs/line = {1 / f:,.0f} lines/s ceiling; memras "
          f"{m * 1e6:.2f} µs/line; memras's own share (parsing, keys, rows, Python) "
          f"{(m - f) * 1e6:.2f} µs/line")


def _now():
    from datetime import UTC, datetime

    return datetime.now(UTC)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--lines", type=int, default=200_000)
    ap.add_argument("--anchor", type=int, default=5_000, help="events for the slow anchor")
    ap.add_argument("--breakdown", action="store_true",
                    help="also time each section of memras's parse+store in-process")
    ap.add_argument("--floor", action="store_true",
                    help="also replay memras's SQL with plain sqlite3: the store's floor")
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds for --floor")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="memras-bench-"))
    print("load average " + " ".join(f"{x:.2f}" for x in os.getloadavg()))
    try:
        lines = make_lines(args.lines)
        a = anchor_run(tmp / "ras.db", lines[:args.anchor]) / args.anchor
        m = memras_run(tmp / "memras.db", lines) / args.lines
        print(f"rasdaemon-style writer: {1 / a:,.0f} events/s ({args.anchor} events)")
        print(f"memras parse+store:     {1 / m:,.0f} lines/s ({args.lines} lines; "
              f"{args.lines / CPU_S:,.0f} lines per CPU-second)")
        print(f"speed-up {a / m:.1f}x (goal >= 10x and >= 100k lines/s)")
        if args.breakdown:
            breakdown(tmp / "breakdown.db", lines)
        if args.floor:
            floor(tmp, lines, args.rounds)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
