"""Recall of memras's import path on the public real-log corpus (tests/corpus/real).

Every log goes through the code `memras import` runs (run_import: the parser, the
batcher, Store.add_events) into a fresh SQLite store, and the rows read back with
Store.errors() are compared with the records the log states (tests/corpus/check.py).
``ras-mc-ctl`` text has no `memras import` kind: its lines go through
parse_ras_mc_ctl_error and the same Store.add_events. Each log's decoys are imported
on their own into another fresh store, which must stay empty.

Reported per family and in total: records expected vs stored and paired (recall), the
CE/UE split, stated fields the store got wrong, duplicates (a fault stored twice),
spurious rows (no stated record), and decoys stored. The store keeps no machine-check
registers, raw line counts, grain or syndrome in StoredError, so those stated fields
are not checked here (test_real_corpus.py checks them on the parsers' records).

Run:  .venv/bin/python bench/real_log_recall.py [--json] [--failing]
Goal (issue): recall >= 98%, 0 decoys stored as errors, 0 duplicates.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.corpus

from memras.ingest.parsers import parse_ras_mc_ctl_error  # noqa: E402
from memras.store import Store  # noqa: E402
from tests.corpus.check import Observed, Outcome, compare  # noqa: E402
from tests.corpus.loader import LOCATION_KEYS, CorpusLog, load_all  # noqa: E402

try:  # the importer is moving from memras.store to memras.watcher
    from memras.watcher.importing import run_import  # type: ignore[import-not-found,unused-ignore]
except ImportError:  # pragma: no cover - before the move
    from memras.store.importing import run_import  # type: ignore[no-redef,unused-ignore]

IMPORT_KIND = {"dmesg": "dmesg", "trace": "trace", "mcelog": "mcelog"}


def _observed(e: Any, window: tuple[datetime, datetime]) -> Observed:
    """A stored row as the comparison sees it; a wall clock the store filled in
    (import time, for a record that had none) does not count as the record's."""
    invented = window[0] <= e.time <= window[1]
    if e.rasdaemon_table == "memory_failure_event":
        page_type, _, result = e.message.rpartition(": ")
        values: dict[str, Any] = {"pfn": e.page, "page_type": page_type, "action_result": result}
        return Observed("memory_failure", values, e.uptime, e.time, sees_mce=False,
                        sees_wall_clock=not invented, raw=e.raw, source=e.source)  # fmt: skip
    values = {
        "error_type": e.type, "count": e.count, "address": e.address,
        "normalized_address": e.normalized_address, "message": e.message, "driver": e.driver,
        "driver_detail": e.driver_detail,
    }  # fmt: skip
    values.update({k: getattr(e.location, k) for k in LOCATION_KEYS})
    return Observed("error", values, e.uptime, e.time, sees_mce=False,
                    sees_wall_clock=not invented, raw=e.raw, source=e.source)  # fmt: skip


def import_text(kind: str, text: str, workdir: Path, year: int | None = None) -> list[Observed]:
    """``text`` of ``kind`` through memras's import path into a fresh store; its rows."""
    workdir.mkdir(parents=True)
    started = datetime.now(UTC)
    with Store.open(workdir / "memras.db") as store:
        if kind == "ras-mc-ctl":
            records = [r for line in text.splitlines() if (r := parse_ras_mc_ctl_error(line))]
            store.add_events(records)
        else:
            path = workdir / "input.log"
            path.write_text(text + "\n", encoding="utf-8")
            run_import(store, IMPORT_KIND[kind], str(path), year=year)
        window = (started, datetime.now(UTC))
        return [_observed(e, window) for e in store.errors()]


@dataclass
class Tally:
    logs: int = 0
    expected: int = 0
    paired: int = 0
    stored: int = 0
    expected_ce: int = 0
    expected_ue: int = 0
    paired_ce: int = 0
    paired_ue: int = 0
    failures_expected: int = 0
    failures_paired: int = 0
    wrong_fields: int = 0
    records_with_wrong_fields: int = 0
    unchecked_fields: int = 0
    duplicates: int = 0
    spurious: int = 0
    decoys: int = 0
    decoys_stored: int = 0
    logs_ok: int = 0

    def add(self, outcome: Outcome, stored: int) -> None:
        self.logs += 1
        self.logs_ok += outcome.ok
        self.stored += stored
        self.decoys += len(outcome.log.decoys)
        self.decoys_stored += len(outcome.decoys_stored)
        self.duplicates += len(outcome.duplicates)
        self.spurious += len(outcome.spurious)
        for p in outcome.pairs:
            e = p.expected
            self.expected += 1
            paired = p.observed is not None
            self.paired += paired
            self.unchecked_fields += p.unchecked
            self.wrong_fields += len(p.diffs)
            self.records_with_wrong_fields += bool(p.diffs)
            if e.record == "memory_failure":
                self.failures_expected += 1
                self.failures_paired += paired
                continue
            ue = e.fields["error_type"] not in ("CE", "Corrected")
            self.expected_ue += ue
            self.expected_ce += not ue
            if paired:
                self.paired_ue += ue
                self.paired_ce += not ue

    @property
    def recall(self) -> float:
        return self.paired / self.expected if self.expected else 1.0


@dataclass
class Report:
    date: str
    seconds: float
    total: Tally = field(default_factory=Tally)
    families: dict[str, Tally] = field(default_factory=lambda: defaultdict(Tally))
    failing: list[dict[str, Any]] = field(default_factory=list)


def run(logs: list[CorpusLog]) -> Report:
    t0 = time.perf_counter()
    report = Report(date=datetime.now(UTC).strftime("%Y-%m-%d"), seconds=0.0)
    with tempfile.TemporaryDirectory(prefix="memras-recall-") as tmp:
        for n, log in enumerate(logs):
            rows = import_text(log.kind, log.text, Path(tmp) / f"{n}", log.year)
            decoys = (import_text(log.kind, "\n".join(log.decoys), Path(tmp) / f"{n}-decoys")
                      if log.decoys else [])  # fmt: skip
            outcome = compare(log, rows, decoys)
            report.total.add(outcome, len(rows))
            for family in log.families:
                report.families[family].add(outcome, len(rows))
            if not outcome.ok:
                report.failing.append({"id": log.id, "known_gap": log.known_gap,
                                       "problems": outcome.problems()})  # fmt: skip
    report.seconds = time.perf_counter() - t0
    return report


def _row(name: str, t: Tally) -> str:
    return (f"{name:<16} {t.logs:>4} {t.expected:>5} {t.paired:>6} {t.recall:>7.1%}"
            f" {t.paired_ce:>3}/{t.expected_ce:<3} {t.paired_ue:>3}/{t.expected_ue:<3}"
            f" {t.failures_paired:>2}/{t.failures_expected:<2} {t.wrong_fields:>5}"
            f" {t.duplicates:>4} {t.spurious:>4} {t.decoys_stored:>3}/{t.decoys:<3}")  # fmt: skip


def print_table(report: Report, *, failing: bool) -> None:
    print(f"real-log recall, {report.date}: {report.total.logs} logs in {report.seconds:.1f} s")
    print(f"{'family':<16} {'logs':>4} {'recs':>5} {'stored':>6} {'recall':>7}"
          f" {'CE':>7} {'UE':>7} {'MF':>5} {'wrong':>5} {'dup':>4} {'spur':>4} {'decoys':>7}")
    for name in sorted(report.families):
        print(_row(name, report.families[name]))
    print(_row("TOTAL", report.total))
    t = report.total
    print(f"logs entirely right: {t.logs_ok}/{t.logs}; records with a wrong field: "
          f"{t.records_with_wrong_fields}; stated fields the store cannot show: "
          f"{t.unchecked_fields}")
    if failing:
        for f in report.failing:
            gap = f" [known gap: {f['known_gap']}]" if f["known_gap"] else ""
            print(f"\n{f['id']}{gap}")
            for p in f["problems"]:
                print(f"  {p}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true", help="print the report as JSON")
    ap.add_argument("--failing", action="store_true", help="list every failing log's problems")
    args = ap.parse_args()
    report = run(load_all())
    if args.json:
        report.families = dict(report.families)
        data = asdict(report)
        for tally in [data["total"], *data["families"].values()]:
            paired, expected = tally["paired"], tally["expected"]
            tally["recall"] = paired / expected if expected else 1.0
        print(json.dumps(data, indent=2))
    else:
        print_table(report, failing=args.failing)


if __name__ == "__main__":
    main()
