"""Bytes per stored event: a memras database vs rasdaemon's own for the same events.

The events are built from the real lines of the public corpus (tests/corpus/real, each
log citing its URL): every non-decoy log is parsed by memras's parsers, and its records
are the templates of four kinds — an EDAC/GHES CE (rasdaemon's ``mc_event``), an
uncorrected mc_event, a machine check with no EDAC decode (``mce_record`` only) and a
page action (``memory_failure_event``). ``--events`` of them are made in a fixed mix
(``MIX``), each a template's copy one second apart with its own address, and its raw text
carrying that address and time (so no two rows are alike, as in a real stream).

Two databases, both VACUUMed, sizes of the file (tables and indexes; WAL checkpointed):

- **rasdaemon**: rasdaemon 0.8.5's schema (memras.store.rasdaemon_schema, rasdaemon's
  literal DDL) with one row per event in the table(s) rasdaemon's handlers write for it
  (memras.store.rows.rasdaemon_tables), built by the same row builders as the ingest
  bench's rasdaemon-style writer (bench/ingest_vs_rasdaemon_writer.py: rs.insert_sql +
  rs.*_row), in one transaction (the size does not depend on commits).
- **memras**: ``Store.add_events`` in batches of 5000 — memras's tables *and* the
  rasdaemon mirror it writes beside them (so ras-mc-ctl reads it).

Reported: bytes per event of each, the ratio (issue #17's goal: <= 2x), memras's
bytes per event by table/index (SQLite's ``dbstat``), which says what costs, and a
third database written with the texts stored plain (as before schema migration 7) for
the before/after figure, and a fourth without the rasdaemon mirror
(``[store] rasdaemon_mirror = false``).
Run:  .venv/bin/python bench/storage_per_event.py [--events 100000] [--json]
      [--write-docs docs/performance.md]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import shutil
import sqlite3
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.corpus, bench._docs

from memras.ingest.parsers import (  # noqa: E402
    parse_kernel_log,
    parse_mcelog,
    parse_trace_line,
)
from memras.records import MemoryErrorEvent, MemoryFailureEvent, Record  # noqa: E402
from memras.store import Store  # noqa: E402
from memras.store import rasdaemon_schema as rs  # noqa: E402
from memras.store.rows import ROW_BUILDERS, rasdaemon_tables  # noqa: E402
from tests.corpus.loader import CorpusLog, load_all  # noqa: E402

# Share of each kind in the stream: CEs dominate any real fleet's logs; page actions
# follow UEs and soft-offlines; a no-EDAC machine check is what hosts without an EDAC
# driver (or AMD SMCA with it unloaded) leave.
MIX = (("mc_event CE", 0.85), ("mc_event UE", 0.03), ("mce_record", 0.08),
       ("memory_failure", 0.04))
BATCH = 5000
START = datetime(2025, 1, 1, tzinfo=UTC)
_HEX = re.compile(r"0x[0-9a-fA-F]{5,}")
_UPTIME = re.compile(r"\[\s*\d+\.\d+\]")


def _records(log: CorpusLog) -> list[Record]:
    if log.kind == "dmesg":
        return [r for r in parse_kernel_log(log.lines,
                                            page_shift=(log.page_size or 4096).bit_length() - 1)
                if isinstance(r, MemoryErrorEvent | MemoryFailureEvent)]
    if log.kind == "trace":
        return [r for line in log.lines if isinstance(
            r := parse_trace_line(line), MemoryErrorEvent | MemoryFailureEvent)]
    if log.kind == "mcelog":
        return list(parse_mcelog(log.text))
    return []  # ras-mc-ctl text: rows rasdaemon already holds, not events it receives


def kind_of(record: Record) -> str:
    tables = rasdaemon_tables(record)
    if tables[0] == "memory_failure_event":
        return "memory_failure"
    if tables[0] == "mce_record":
        return "mce_record"
    assert isinstance(record, MemoryErrorEvent)
    return "mc_event UE" if record.error_type.is_uncorrected else "mc_event CE"


def templates() -> tuple[dict[str, list[Record]], list[str]]:
    """The corpus's records by kind, and the URLs of the logs they came from."""
    by_kind: dict[str, list[Record]] = {kind: [] for kind, _ in MIX}
    urls: set[str] = set()
    for log in load_all():
        if "decoy" in log.families or log.known_gap:
            continue
        for record in _records(log):
            by_kind[kind_of(record)].append(record)
            urls.add(log.url)
    missing = [k for k, v in by_kind.items() if not v]
    if missing:
        raise SystemExit(f"no corpus record of kind {', '.join(missing)}")
    return by_kind, sorted(urls)


def make_events(n: int, by_kind: dict[str, list[Record]]) -> list[Record]:
    """``n`` events in MIX's shares, one second apart, each with its own address."""
    plan: list[str] = []
    for kind, share in MIX:
        plan += [kind] * round(n * share)
    plan = (plan + [MIX[0][0]] * n)[:n]
    # interleave the kinds evenly (a stream, not four blocks)
    order = sorted(range(n), key=lambda i: (i * 7919) % n)
    out: list[Record] = []
    seen: dict[str, int] = {}
    for i, slot in enumerate(order):
        kind = plan[slot]
        pool = by_kind[kind]
        k = seen.get(kind, 0)
        seen[kind] = k + 1
        out.append(_variant(pool[k % len(pool)], i))
    return out


def _variant(t: Record, i: int) -> Record:
    when = START + timedelta(seconds=i)
    uptime = 1000.0 + i
    if isinstance(t, MemoryFailureEvent):
        pfn = 0x100000 + i * 7
        raw = _HEX.sub(f"{pfn:#x}", t.raw, count=1)
        raw = _UPTIME.sub(f"[{uptime:12.6f}]", raw, count=1)
        return dataclasses.replace(t, pfn=pfn, timestamp=when, uptime_s=uptime, raw=raw,
                                   kmsg_seq=None)
    address = 0x1_0000_0000 + i * 0x1040
    raw = _HEX.sub(f"{address:#x}", t.raw, count=1)
    raw = _UPTIME.sub(f"[{uptime:12.6f}]", raw, count=1)
    return dataclasses.replace(t, address=address, timestamp=when, uptime_s=uptime, raw=raw,
                               kmsg_seq=None)


def write_rasdaemon(path: Path, events: list[Record]) -> None:
    """What rasdaemon stores for the events: its DDL, its rows (the ingest bench's
    rasdaemon-style writer's statements), ids allocated by SQLite as rasdaemon's NULL."""
    db = sqlite3.connect(path, isolation_level=None)
    for statement in rs.all_create_statements():
        db.execute(statement)
    db.execute("BEGIN")
    for e in events:
        stamp = rs.format_timestamp(e.timestamp or START)
        for table in rasdaemon_tables(e):
            builder, names = ROW_BUILDERS[table]
            db.execute(rs.insert_sql(table, names), builder(None, stamp, e))
    db.execute("COMMIT")
    db.close()


def write_memras(path: Path, events: list[Record], *, packed: bool = True,
                 mirror: bool = True) -> None:
    """``packed=False``: message, detail and raw stored plain, as rows written before
    schema migration 7 (memras.store.packed_texts) are — the "before" figure.
    ``mirror=False``: as with ``[store] rasdaemon_mirror = false``."""
    from memras.store import rows

    saved = rows.pack
    if not packed:
        rows.pack = lambda *_: None
    try:
        _write_memras(path, events, mirror)
    finally:
        rows.pack = saved


def _write_memras(path: Path, events: list[Record], mirror: bool) -> None:
    from memras.store.settings import StoreSettings

    with StoreSettings(rasdaemon_mirror=mirror).apply(Store.open(path)) as store:
        for start in range(0, len(events), BATCH):
            result = store.add_events(events[start:start + BATCH])
            assert result.skipped == 0, result.skip_reasons
        assert store.count() == len(events), (store.count(), len(events))


def vacuumed_size(path: Path) -> tuple[int, dict[str, int]]:
    """(file bytes after VACUUM, bytes per table/index from dbstat)."""
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.execute("PRAGMA journal_mode=DELETE")
    db.execute("VACUUM")
    parts = dict(db.execute("SELECT name, SUM(pgsize) FROM dbstat GROUP BY name"))
    db.close()
    return path.stat().st_size, parts


def run(n: int) -> dict[str, Any]:
    by_kind, urls = templates()
    events = make_events(n, by_kind)
    tmp = Path(tempfile.mkdtemp(prefix="memras-storage-"))
    try:
        write_rasdaemon(tmp / "ras.db", events)
        write_memras(tmp / "memras.db", events)
        write_memras(tmp / "plain.db", events, packed=False)
        write_memras(tmp / "no-mirror.db", events, mirror=False)
        ras_bytes, ras_parts = vacuumed_size(tmp / "ras.db")
        mem_bytes, mem_parts = vacuumed_size(tmp / "memras.db")
        plain_bytes, _ = vacuumed_size(tmp / "plain.db")
        bare_bytes, _ = vacuumed_size(tmp / "no-mirror.db")
        pruned = prune_half(tmp / "memras.db", n)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    mix = {kind: sum(1 for e in events if kind_of(e) == kind) for kind, _ in MIX}
    return {
        "events": n, "mix": mix,
        "templates": {k: len(v) for k, v in by_kind.items()}, "corpus_urls": urls,
        "rasdaemon_bytes": ras_bytes, "memras_bytes": mem_bytes,
        "rasdaemon_bytes_per_event": ras_bytes / n, "memras_bytes_per_event": mem_bytes / n,
        "ratio": mem_bytes / ras_bytes,
        "plain_texts_bytes_per_event": plain_bytes / n,
        "plain_texts_ratio": plain_bytes / ras_bytes,
        "no_mirror_bytes_per_event": bare_bytes / n, "no_mirror_ratio": bare_bytes / ras_bytes,
        "memras_parts_per_event": {name: size / n for name, size in sorted(
            mem_parts.items(), key=lambda kv: -kv[1]) if size / n >= 1},
        "rasdaemon_parts_per_event": {name: size / n for name, size in sorted(
            ras_parts.items(), key=lambda kv: -kv[1]) if size / n >= 1},
        "prune": pruned,
    }


def prune_half(path: Path, n: int) -> dict[str, Any]:
    """``[store] keep`` pruning of the older half of the events (memras.store.retention),
    with each batch's write transaction timed: how long the watcher's writer could wait."""
    from memras.store import retention

    spent: list[float] = []
    delete = retention._delete  # noqa: SLF001 - timed, not changed

    def timed(store: Any, rows: list[Any]) -> int:
        started = time.perf_counter()
        try:
            return delete(store, rows)
        finally:
            spent.append(time.perf_counter() - started)

    retention._delete = timed  # noqa: SLF001
    try:
        with Store.open(path) as store:
            keep_s = 86400.0
            now = START + timedelta(seconds=n // 2 + keep_s)
            result = retention.prune(store, keep_s, now=now)
            left = store.count()
    finally:
        retention._delete = delete  # noqa: SLF001
    return {"deleted": result.deleted, "mirror_deleted": result.mirror_deleted,
            "batches": result.batches, "seconds": result.seconds, "left": left,
            "longest_batch_ms": max(spent, default=0.0) * 1000,
            "median_batch_ms": sorted(spent)[len(spent) // 2] * 1000 if spent else 0.0}


def figures(r: dict[str, Any]) -> str:
    mix = ", ".join(f"{k} {v:,}" for k, v in r["mix"].items())
    lines = [
        f"- {r['events']:,} events ({mix}), from the real lines of "
        f"{len(r['corpus_urls'])} corpus logs; each database VACUUMed",
        f"- rasdaemon 0.8.5's own database: {r['rasdaemon_bytes']:,} bytes = "
        f"**{r['rasdaemon_bytes_per_event']:.0f} bytes/event**",
        f"- memras's database (its tables + the rasdaemon mirror): {r['memras_bytes']:,} bytes"
        f" = **{r['memras_bytes_per_event']:.0f} bytes/event**: "
        f"**{r['ratio']:.2f}x** rasdaemon (goal <= 2x)",
        f"- the same with message, detail and raw stored plain (rows from before schema "
        f"migration 7): {r['plain_texts_bytes_per_event']:.0f} bytes/event = "
        f"{r['plain_texts_ratio']:.2f}x",
        f"- with `[store] rasdaemon_mirror = false` (beside rasdaemon, which keeps those rows "
        f"itself): {r['no_mirror_bytes_per_event']:.0f} bytes/event = "
        f"**{r['no_mirror_ratio']:.2f}x**",
        "- memras's bytes/event by table and index (dbstat): " + ", ".join(
            f"{name} {b:.0f}" for name, b in r["memras_parts_per_event"].items()),
        f"- `[store] keep` pruning of the older half: {r['prune']['deleted']:,} rows (and "
        f"{r['prune']['mirror_deleted']:,} mirror rows) in {r['prune']['batches']} batches, "
        f"{r['prune']['seconds']:.1f} s; each batch's write transaction: median "
        f"{r['prune']['median_batch_ms']:.0f} ms, longest {r['prune']['longest_batch_ms']:.0f}"
        f" ms (the longest the watcher's writer waits)",
    ]
    return "\n".join(lines)


SECTION = """## Storage per event vs rasdaemon

`bench/storage_per_event.py`: the same events stored by rasdaemon (its schema, its
rows) and by memras (its tables and the rasdaemon mirror beside them), both VACUUMed;
the events are copies of the real corpus's records (tests/corpus/real) one second apart,
each with its own address. Run:
`.venv/bin/python bench/storage_per_event.py --events 100000 --write-docs docs/performance.md`

{figures}
"""
START_MARK = "<!-- storage-per-event:start -->"
END_MARK = "<!-- storage-per-event:end -->"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=100_000)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--write-docs", type=Path, metavar="PERFORMANCE_MD",
                    help="put the figures into this file (docs/performance.md)")
    args = ap.parse_args()
    if args.events < 1:
        ap.error("--events must be at least 1")
    result = run(args.events)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(figures(result))
    if args.write_docs:
        from bench._docs import replace_figures

        replace_figures(START_MARK, END_MARK, figures(result), new_section=SECTION,
                        path=args.write_docs)


if __name__ == "__main__":
    main()
