"""Hostile input for the whole pipeline: the real corpus's lines, mutated, through
parser -> store -> health (tests/unit/ingest/test_fuzz_pipeline.py, bench/fuzz_pipeline.py).

Why mutate real lines instead of generating text: a random string almost never gets past
a parser's first regex, so the store and the health engine would only ever see what the
parsers' unit tables already hold. A real line (tests/corpus/real, each log cited there)
with one number swapped for a value no row can hold (2^64, 2^63, a negative, 40 digits),
a byte no kernel line carries (NUL, CR, invalid UTF-8, an escape) or a line grown past
any kernel record still parses, and so reaches the store's bounds and the health engine.

What every example must hold (:class:`Pipeline`): nothing raises; the report accounts for
the store's changes (rows added = inserted, flagged rows = flagged, memras_skipped grows
by the skipped count); every new row's values are within their domains and read back;
the health engine judges the stored records without an error; and the live watcher, fed
the same lines on a simulated root, stores what it reads and moves its kmsg cursor to the
last line.
"""

from __future__ import annotations

import re
import sqlite3
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

from tests.corpus.loader import load_all

# ---- seeds: the real corpus's lines per importer kind ---------------------------------


def seed_lines() -> dict[str, list[str]]:
    """kind -> the corpus's non-empty lines (dmesg, trace, mcelog, ras-mc-ctl)."""
    out: dict[str, list[str]] = {}
    for log in load_all():
        out.setdefault(log.kind, []).extend(line for line in log.lines if line.strip())
    return out


SEEDS = seed_lines()

# ---- mutations ----------------------------------------------------------------------------

_NUMBER = re.compile(r"0x[0-9a-fA-F]+|\b\d+\b")
HOSTILE_INTS = [0, 1, (1 << 31) - 1, 1 << 31, 1 << 32, 1 << 52, (1 << 63) - 1, 1 << 63,
                (1 << 64) - 1, 1 << 64, 1 << 100, 10 ** 40]
HOSTILE_BYTES = [b"\x00", b"\r", b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\x1b[31m", b"\t",
                 b"\xc2\x85", b"\xe2\x80\xa8", b"\r\n", b"\x0b", b"\x1c"]


def _number(value: int, hex_form: bool, negative: bool) -> str:
    text = f"{value:#x}" if hex_form else str(value)
    return "-" + text if negative else text


@st.composite
def hostile_line(draw: st.DrawFn, kind: str) -> bytes:
    """One real line of ``kind`` with up to three mutations."""
    line = draw(st.sampled_from(SEEDS[kind]))
    for _ in range(draw(st.integers(0, 3))):
        what = draw(st.sampled_from(["number", "number", "number", "bytes", "bytes", "cut",
                                     "grow"]))
        numbers = list(_NUMBER.finditer(line))
        if what == "number" and numbers:
            m = draw(st.sampled_from(numbers))
            value = draw(st.one_of(st.sampled_from(HOSTILE_INTS),
                                   st.integers(0, 1 << 130)))
            new = _number(value, m[0].startswith("0x"), draw(st.booleans()) and value < 99)
            line = line[:m.start()] + new + line[m.end():]
        elif what == "cut":
            line = line[:draw(st.integers(0, len(line)))]
        elif what == "grow":
            line += " x" * draw(st.sampled_from([10, 10, 5000, 40_000]))
        else:
            at = draw(st.integers(0, len(line)))
            raw = draw(st.sampled_from(HOSTILE_BYTES)).decode("utf-8", "surrogateescape")
            line = line[:at] + raw + line[at:]
    return line.encode("utf-8", "surrogateescape")


def hostile_text(kind: str, max_lines: int = 8) -> st.SearchStrategy[bytes]:
    """A capture of up to ``max_lines`` mutated real lines (blocks stay possible: the
    lines are drawn in any order, repeats allowed)."""
    return st.lists(hostile_line(kind), min_size=1, max_size=max_lines).map(
        lambda lines: b"\n".join(lines) + b"\n")


_RAS_VALUE = st.one_of(
    st.none(), st.integers(-(1 << 63), (1 << 63) - 1), st.sampled_from([-1, 0, 1, (1 << 63) - 1]),
    st.floats(allow_nan=True), st.text(max_size=20), st.binary(max_size=8),
    st.just("2024-12-19 03:52:38 +0000"), st.just(b"A\xff1"))
_RAS_COLUMNS = ("timestamp", "err_count", "err_type", "err_msg", "label", "mc", "top_layer",
                "middle_layer", "lower_layer", "address", "grain", "syndrome", "driver_detail")
_RAS_TYPES = st.sampled_from(["Corrected", "Uncorrected", "Deferred", "Fatal", "Info"])


@st.composite
def rasdaemon_rows(draw: st.DrawFn) -> list[dict[str, Any]]:
    """mc_event rows of any SQLite value type in any column (rasdaemon's schema does not
    constrain them), most of them close to a real row."""
    rows = []
    for _ in range(draw(st.integers(1, 6))):
        row: dict[str, Any] = {"timestamp": "2024-12-19 03:52:38 +0000", "err_count": 1,
                               "err_type": draw(_RAS_TYPES), "err_msg": "memory read error",
                               "label": "DIMM_A1", "mc": 0, "top_layer": 0,
                               "middle_layer": 0, "lower_layer": -1,
                               "address": draw(st.integers(0, 1 << 40)), "grain": 6,
                               "syndrome": 0, "driver_detail": ""}
        for column in draw(st.lists(st.sampled_from(_RAS_COLUMNS), max_size=4)):
            row[column] = draw(_RAS_VALUE)
        rows.append(row)
    return rows


# ---- the pipeline and what it must hold ----------------------------------------------------

@dataclass
class Totals:
    """What the examples did, for the bench's report."""

    examples: int = 0
    inserted: int = 0
    flagged: int = 0
    skipped: int = 0
    duplicates: int = 0
    health_changes: int = 0
    watch_lines: int = 0
    flag_reasons: dict[str, int] = field(default_factory=dict)
    skip_reasons: dict[str, int] = field(default_factory=dict)


class Pipeline:
    """One store and one health engine, kept across examples (a fresh database per
    example would cost more than the example); each example checks the deltas."""

    def __init__(self, workdir: Path | None = None, *, read_back_every: int = 1) -> None:
        from memras.health.api import HealthEngine
        from memras.store import Store

        self._tmp = tempfile.TemporaryDirectory() if workdir is None else None
        self.dir = Path(self._tmp.name if self._tmp else workdir)  # type: ignore[arg-type]
        self.db = self.dir / "memras.db"
        self.store = Store.open(self.db)
        self.engine = HealthEngine(None, self.store)
        self.totals = Totals()
        self._n = 0
        self._root: Path | None = None
        self._seq = 1000
        self._ras: Path | None = None
        self.read_back_every = read_back_every  # Store.errors() every n-th check
        self._checks = 0

    def close(self) -> None:
        self.store.close()
        if self._tmp is not None:
            self._tmp.cleanup()

    # -- import ---------------------------------------------------------------------------
    def import_bytes(self, kind: str, data: bytes) -> None:
        from memras.watcher.importing import run_import

        self._n += 1
        path = self.dir / f"input-{self._n}.{kind}"
        path.write_bytes(data)
        before = self._state()
        report = run_import(self.store, kind, str(path), on_stored=self._judge)
        self._check(before, report.inserted, report.flagged, report.skipped)
        self._tally(report.inserted, report.flagged, report.skipped, report.duplicates,
                    report.flag_reasons, report.skipped_reasons)
        path.unlink()

    def import_ras_mc_ctl(self, data: bytes) -> None:
        """ras-mc-ctl text has no import kind: its lines through the parser and the store,
        as bench/real_log_recall.py does."""
        from memras.ingest.parsers import parse_ras_mc_ctl_error

        text = data.decode("utf-8", "replace")
        records = [r for line in text.split("\n") if (r := parse_ras_mc_ctl_error(line))]
        before = self._state()
        result = self.store.add_events(records)
        self._judge(result.new_events)
        self._check(before, result.inserted, result.flagged, result.skipped)
        self._tally(result.inserted, result.flagged, result.skipped, result.duplicates,
                    result.flag_reasons, result.skip_reasons)

    def import_rasdaemon_rows(self, rows: list[dict[str, Any]]) -> None:
        from memras.store import rasdaemon_schema as rs
        from memras.watcher.importing import run_import

        # One database, rows appended per example: the import's cursor reads only the
        # new ones (as a running rasdaemon's file grows), so the cursor is checked too
        path = self._ras = self._ras or self.dir / "ras-mc_event.db"
        with sqlite3.connect(path) as db:
            db.execute(rs.create_table_sql("mc_event"))
            names = ", ".join(_RAS_COLUMNS)
            db.executemany(f"INSERT INTO mc_event ({names}) VALUES "
                           f"({', '.join('?' * len(_RAS_COLUMNS))})",
                           [tuple(row[c] for c in _RAS_COLUMNS) for row in rows])
        db.close()
        before = self._state()
        report = run_import(self.store, "rasdaemon", str(path), on_stored=self._judge)
        assert report.inserted + report.duplicates + report.skipped == len(rows), report
        self._check(before, report.inserted, report.flagged, report.skipped)
        self._tally(report.inserted, report.flagged, report.skipped, report.duplicates,
                    report.flag_reasons, report.skipped_reasons)

    # -- watch ----------------------------------------------------------------------------
    def watch_lines(self, lines: list[bytes]) -> None:
        """The lines as /dev/kmsg records of a simulated root, through the real
        KmsgSource and Watcher; the cursor must reach the last one."""
        from memras.ingest.sources import KmsgSource
        from memras.sim import profiles
        from memras.watcher.watch import Watcher

        if self._root is None:
            self._root = self.dir / "root"
            self._host = profiles.create("demo", self._root).host()
            (self._root / ".memras-sim" / "kmsg").write_bytes(b"")
        # Each example's records replace the last's (their sequence numbers go on): with
        # --once the source stops at its first poll that reads nothing new, which a file
        # of earlier examples' records (read in 256 KiB slices) would be
        with open(self._root / ".memras-sim" / "kmsg", "wb") as f:
            for line in lines:
                self._seq += 1
                # /dev/kmsg escapes a newline inside a record; keep one record per line
                body = line.replace(b"\n", b"\\x0a")
                f.write(b"4,%d,%d,-;" % (self._seq, 1_000_000 + self._seq) + body + b"\n")
        before = self._state()
        watcher = Watcher(self.store, [KmsgSource(self._host)], flush_interval_s=0.0,
                          on_stored=self._judge)
        stats = watcher.run(once=True)
        kmsg = stats.sources["kmsg"]
        assert kmsg.errors == 0 and stats.hook_errors == 0, (kmsg.last_error, stats)
        assert self.store.get_cursor("kmsg") == str(self._seq), stats
        self._check(before, kmsg.inserted, kmsg.flagged, None)
        self.totals.watch_lines += len(lines)
        self._tally(kmsg.inserted, kmsg.flagged, kmsg.skipped, kmsg.duplicates, {}, {})

    # -- invariants -------------------------------------------------------------------------
    def _judge(self, records: list[Any]) -> None:
        self.totals.health_changes += len(self.engine.process(records))

    def _state(self) -> tuple[int, int, int]:
        with sqlite3.connect(self.db) as db:
            last = db.execute("SELECT coalesce(max(id), 0) FROM memras_error").fetchone()[0]
            flagged = db.execute("SELECT count(*) FROM memras_error WHERE flags IS NOT NULL"
                                 ).fetchone()[0]
            skipped = db.execute("SELECT coalesce(sum(count), 0) FROM memras_skipped"
                                 ).fetchone()[0]
        db.close()
        return last, flagged, skipped

    def _check(self, before: tuple[int, int, int], inserted: int, flagged: int,
               skipped: int | None) -> None:
        from memras.store.bounds import COUNT_MAX, GRAIN_BITS_MAX, U64_MAX

        last, flagged_before, skipped_before = before
        with sqlite3.connect(self.db) as db:
            rows = db.execute("SELECT count, address, page, grain_bits, syndrome, flags, mc, "
                              "top_layer, raw FROM memras_error WHERE id > ?",
                              (last,)).fetchall()
            flagged_now = db.execute("SELECT count(*) FROM memras_error "
                                     "WHERE flags IS NOT NULL").fetchone()[0]
            skipped_now = db.execute("SELECT coalesce(sum(count), 0) FROM memras_skipped"
                                     ).fetchone()[0]
        db.close()
        assert len(rows) == inserted, (len(rows), inserted)
        assert flagged_now - flagged_before == flagged
        if skipped is not None:
            assert skipped_now - skipped_before == skipped
        for count, address, page, grain, syndrome, _flags, mc, top, _raw in rows:
            assert 0 <= count <= COUNT_MAX
            assert grain is None or 0 <= grain <= GRAIN_BITS_MAX
            for value in (address, syndrome):  # int64 holding a u64 (rasdaemon's form)
                assert value is None or -(1 << 63) <= value <= U64_MAX
            assert page is None or page >= 0
            assert all(v is None or v >= 0 for v in (mc, top))
        self._checks += 1
        if self._checks % self.read_back_every == 0:
            self.store.errors(limit=20)  # the newest rows read back through the store

    def _tally(self, inserted: int, flagged: int, skipped: int, duplicates: int,
               flag_reasons: dict[str, int], skip_reasons: dict[str, int]) -> None:
        t = self.totals
        t.examples += 1
        t.inserted += inserted
        t.flagged += flagged
        t.skipped += skipped
        t.duplicates += duplicates
        for mine, theirs in ((t.flag_reasons, flag_reasons), (t.skip_reasons, skip_reasons)):
            for reason, n in theirs.items():
                mine[reason] = mine.get(reason, 0) + n


Run = Callable[[Pipeline], None]
