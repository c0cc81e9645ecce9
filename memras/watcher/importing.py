"""``memras import``: files of kernel/firmware text or a rasdaemon DB → the memras store.

The parsers (``memras.ingest.parsers``) turn text into records; this module only
reads, batches (``BATCH_EVENTS`` per transaction), counts and reports progress, so
the CLI and the TUI show the same numbers. Nothing is lost silently: every line or
row ends up inserted (some flagged: stored with a value out of its domain clamped or
blanked, see :mod:`memras.store.bounds`), a duplicate, ignored (not a memory error
record), non-memory (a machine check of another kind, counted) or skipped (counted in
``memras_skipped`` with a sample, and per reason in the report).

Text is split at ``\n`` only, as the kernel ends its records: a CR or NUL inside a
line stays in that line (a CR before the newline, from a CRLF copy, is dropped),
bytes that are not UTF-8 become U+FFFD, and a line longer than any kernel record
(``MAX_LINE_CHARS``) is skipped with that reason instead of reaching the parsers.

A rasdaemon database is read read-only through the watcher's
:class:`memras.ingest.sources.RasdaemonSource` (one reader for both uses), with a
cursor per database file, so importing the same file again adds only new rows.
"""

from __future__ import annotations

import io
import os
import shutil
import sqlite3
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO

from memras.errors import StoreError, UsageError
from memras.host import Host
from memras.ingest.clock import ImportClock, following, import_clock
from memras.ingest.parsers._common import ParserStats
from memras.ingest.parsers.cxl import EVENTS as CXL_EVENTS
from memras.ingest.parsers.ftrace import parse_trace_line, split_trace_line
from memras.ingest.parsers.kernel_log import KernelLogParser
from memras.ingest.parsers.mcelog import parse_mcelog
from memras.ingest.sources import RasdaemonSource
from memras.records import CxlEvent, MemoryErrorEvent, MemoryFailureEvent, Record
from memras.store.results import AddResult, add_counts
from memras.store.store import Store

BATCH_EVENTS = 5000
KINDS = ("rasdaemon", "dmesg", "trace", "mcelog", "vmcore-dmesg", "bert", "pstore", "sel")
MAX_SAMPLE_CHARS = 500
# A kernel record is at most 8 KiB on /dev/kmsg (CONSOLE_EXT_LOG_MAX) and a trace line
# about a page; 64 KiB leaves room for prefixes and joined continuation lines. A longer
# "line" is a file without newlines or garbage, and the parsers' regexes need not see it.
MAX_LINE_CHARS = 64 * 1024
# stdin is copied once so it can be read twice like a file (the clock's pre-scan, then
# the import): up to this much in memory, the rest in a temporary file (TMPDIR).
SPOOL_MEMORY_BYTES = 8 << 20
MALFORMED = "malformed"
HOST_PATH = "host:"  # bert/pstore without a PATH: --root's own files (watcher.before_boot)
TOO_LONG = f"line longer than {MAX_LINE_CHARS} characters"

Progress = Callable[[int], None]  # called with the bytes (or rows) consumed so far
# Called with each batch's new records as stored (in bounds): e.g. the health engine,
# so that an import is judged as the watcher's batches are (the fuzz tests do this).
OnStored = Callable[[list[Record]], object]


@dataclass
class ImportReport:
    kind: str
    path: str
    inserted: int = 0
    duplicates: int = 0
    ignored: int = 0
    non_memory: int = 0
    skipped: int = 0
    skipped_samples: list[str] = field(default_factory=list)
    flagged: int = 0  # of the inserted: a value clamped or blanked (memras.store.bounds)
    skipped_reasons: dict[str, int] = field(default_factory=dict)  # reason -> count
    flag_reasons: dict[str, int] = field(default_factory=dict)  # e.g. address:too-large
    notes: list[str] = field(default_factory=list)  # how times were found (ingest.clock)

    def add(self, result: AddResult) -> None:
        """What the store did with a batch: records it could not store are skipped too."""
        self.inserted += result.inserted + result.cxl_inserted  # CXL events: their table
        self.duplicates += result.duplicates + result.cxl_duplicates
        self.flagged += result.flagged
        self.skipped += result.skipped
        self.skipped_reasons = add_counts(self.skipped_reasons, result.skip_reasons)
        self.flag_reasons = add_counts(self.flag_reasons, result.flag_reasons)

    def note_skip(self, sample: str, reason: str) -> None:
        self.skipped += 1
        self.skipped_reasons[reason] = self.skipped_reasons.get(reason, 0) + 1
        if len(self.skipped_samples) < 5:
            self.skipped_samples.append(sample)


class _Batcher:
    """Collects records and stores them BATCH_EVENTS at a time; counts malformed input."""

    def __init__(self, store: Store, report: ImportReport, source: str,
                 boot_time: datetime | None, on_stored: OnStored | None = None) -> None:
        self.store, self.report, self.source, self.boot_time = store, report, source, boot_time
        self.on_stored = on_stored
        self.pending: list[Record | CxlEvent] = []
        # reason -> (inputs not yet counted in memras_skipped, the latest sample)
        self.unsaved: dict[str, tuple[int, str]] = {}

    clock: ImportClock | None = None  # dates dmesg/trace records (memras.ingest.clock)

    def classify(self, result: object, raw: str, *, malformed: bool = False) -> None:
        if isinstance(result, MemoryErrorEvent | MemoryFailureEvent | CxlEvent):
            # a CxlEvent (CXL, not a memory error) is dated by the store from boot_time
            self.pending.append(result if self.clock is None or isinstance(result, CxlEvent)
                                else self.clock.date(result))
            if len(self.pending) >= BATCH_EVENTS:
                self.flush()
        elif result is not None:
            self.report.non_memory += 1  # parsers' NonMemoryMce
        elif malformed:
            self.skip(raw)
        else:
            self.report.ignored += 1

    def skip(self, raw: str, reason: str = MALFORMED) -> None:
        sample = raw.rstrip("\n")[:MAX_SAMPLE_CHARS]
        self.report.note_skip(sample, reason)
        n, _ = self.unsaved.get(reason, (0, ""))
        self.unsaved[reason] = (n + 1, sample)

    def flush(self) -> None:
        if self.pending:
            result = self.store.add_events(self.pending, boot_time=self.boot_time)
            self.report.add(result)
            if self.on_stored is not None and result.new_events:
                self.on_stored(result.new_events)
        self.pending = []
        for reason, (n, sample) in self.unsaved.items():  # one write per batch and reason
            self.store.count_skipped(f"import:{self.source}", sample, reason=reason, n=n)
        self.unsaved = {}


# ---- reading text ---------------------------------------------------------------------

@contextmanager
def open_text(path: str, *, rereadable: bool = False) -> Iterator[tuple[IO[str], int | None]]:
    """``-`` is stdin; a file is read as UTF-8, bad bytes replaced (never a crash), lines
    ended by ``\n`` alone (see the module docstring). ``rereadable``: stdin is spooled
    (:func:`spooled_stdin`) so the handle can be rewound like a file's."""
    if path == "-":
        if rereadable:
            with spooled_stdin() as handle:
                yield handle, None
            return
        binary = getattr(sys.stdin, "buffer", None)
        if binary is None:  # already text (a test's StringIO)
            yield sys.stdin, None
        else:
            yield io.TextIOWrapper(binary, encoding="utf-8", errors="replace",
                                   newline="\n"), None
        return
    p = Path(path)
    try:
        handle = p.open(encoding="utf-8", errors="replace", newline="\n")
        size = p.stat().st_size
    except FileNotFoundError as exc:
        raise UsageError(f"no such file: {path}", hint="check the path") from exc
    except IsADirectoryError as exc:
        raise UsageError(f"{path} is a directory", hint="give a file, or - for stdin") from exc
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}",
                         hint="check permissions") from exc
    with handle:
        yield handle, size


@contextmanager
def spooled_stdin() -> Iterator[IO[str]]:
    """All of stdin, as a seekable text handle: kept in memory up to SPOOL_MEMORY_BYTES,
    beyond that in a temporary file that is removed afterwards (bounded memory however
    large the capture). Read to EOF first: a live stream belongs to ``memras watch``."""
    with tempfile.SpooledTemporaryFile(max_size=SPOOL_MEMORY_BYTES) as spool:
        binary = getattr(sys.stdin, "buffer", None)
        if binary is not None:
            shutil.copyfileobj(binary, spool, 1 << 20)
        else:  # already text (a test's StringIO)
            for chunk in iter(lambda: sys.stdin.read(1 << 20), ""):
                spool.write(chunk.encode("utf-8", "replace"))
        spool.seek(0)
        text = io.TextIOWrapper(spool, encoding="utf-8", errors="replace", newline="\n")
        try:
            yield text
        finally:
            text.detach()  # the spool's own context closes (and removes) it


def _lines(handle: IO[str], progress: Progress | None) -> Iterator[str]:
    """Each line without its ``\n`` or ``\r\n``."""
    consumed = 0
    for n, line in enumerate(handle, 1):
        consumed += len(line)
        if progress is not None and n % 4096 == 0:
            progress(consumed)
        line = line[:-1] if line.endswith("\n") else line
        yield line[:-1] if line.endswith("\r") else line
    if progress is not None:
        progress(consumed)


def _kernel_lines(batcher: _Batcher, lines: Iterable[str]) -> Iterator[str]:
    """Lines short enough to be kernel output; longer ones skipped with the reason."""
    for line in lines:
        if len(line) > MAX_LINE_CHARS:
            batcher.skip(line, TOO_LONG)
        else:
            yield line


# ---- one importer per kind ----------------------------------------------------------------

def import_trace(batcher: _Batcher, lines: Iterable[str]) -> None:
    memory_events = {"mc_event", "mce_record", "memory_failure_event", "extlog_mem_event",
                     *CXL_EVENTS}
    for line in _kernel_lines(batcher, lines):
        if not line.strip():
            continue
        result = parse_trace_line(line)
        malformed = False
        if result is None:  # a memory tracepoint the parser could not read is malformed
            parts = split_trace_line(line.rstrip("\n"))
            malformed = parts is not None and parts[0] in memory_events
        batcher.classify(result, line, malformed=malformed)


def import_dmesg(batcher: _Batcher, lines: Iterable[str], page_shift: int | None = None) -> None:
    parser = KernelLogParser(page_shift=page_shift)  # None: inferred from the log, else 4 KiB
    for line in _kernel_lines(batcher, lines):
        for record in parser.feed(line) or ():
            batcher.classify(record, line)
    for record in parser.flush() or ():
        batcher.classify(record, "")
    _count_parser_stats(batcher, getattr(parser, "stats", None))


def import_mcelog(batcher: _Batcher, lines: Iterable[str]) -> None:
    stats = ParserStats()
    text = "\n".join(_kernel_lines(batcher, lines))
    for record in parse_mcelog(text, stats=stats):
        batcher.classify(record, "")
    _count_parser_stats(batcher, stats)


def import_sel(batcher: _Batcher, lines: Iterable[str]) -> None:
    """``ipmitool sel elist``/``sel list``/``sel list -v`` text (memras.bmc.sel)."""
    from memras.bmc.sel import SelStats, parse_sel

    stats = SelStats()
    for record in parse_sel(_kernel_lines(batcher, lines), stats=stats):
        batcher.classify(record, record.raw)
    _count_parser_stats(batcher, stats)


def _count_parser_stats(batcher: _Batcher, stats: object) -> None:
    """Carry a parser's own counts (ParserStats) into the report and memras_skipped."""
    if stats is None:
        return
    batcher.report.ignored += getattr(stats, "ignored", 0)
    batcher.report.non_memory += getattr(stats, "non_memory_mce", 0)
    samples = list(getattr(stats, "malformed_samples", []))
    malformed = getattr(stats, "malformed", 0) - getattr(stats, "salvaged", 0)
    for i in range(max(malformed, 0)):
        batcher.skip(samples[i] if i < len(samples) else samples[-1] if samples else "")


def check_rasdaemon_db(path: str) -> Path:
    """A clear error unless ``path`` is a readable SQLite file with rasdaemon's mc_event."""
    p = Path(path)
    if not p.is_file():
        raise UsageError(f"no such file: {path}", hint="give rasdaemon's ras-mc_event.db")
    try:
        conn = sqlite3.connect(f"{p.absolute().as_uri()}?mode=ro", uri=True, timeout=5)
        try:
            tables = {r[0] for r in conn.execute(
                "SELECT name FROM sqlite_master WHERE type='table'")}
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        raise StoreError(f"cannot read {path} as a rasdaemon database: {exc}",
                         hint="is it an SQLite file readable by this user?") from exc
    if "mc_event" not in tables:
        raise StoreError(f"{path} is not a rasdaemon database (no mc_event table)",
                         hint="rasdaemon keeps it at /var/lib/rasdaemon/ras-mc_event.db")
    return p


def import_rasdaemon(store: Store, path: str, report: ImportReport,
                     progress: Progress | None = None,
                     on_stored: OnStored | None = None) -> None:
    p = check_rasdaemon_db(path)
    cursor_name = f"import:rasdaemon:{os.path.realpath(p)}"
    source = RasdaemonSource(str(p))
    source.start(store.get_cursor(cursor_name))
    rows = 0
    while True:
        batch = source.poll(0)
        if batch.skipped and batch.skipped[0].startswith("cannot open rasdaemon DB"):
            raise StoreError(f"cannot read {path}: {batch.skipped[0]}",
                             hint="check the file and its permissions")
        for sample in batch.skipped:
            report.note_skip(sample[:MAX_SAMPLE_CHARS], "unreadable row")
            store.count_skipped("import:rasdaemon", sample[:MAX_SAMPLE_CHARS],
                                reason="unreadable row")
        if not batch.records and not batch.skipped:
            return
        result = store.add_events(batch.records, cursor=(cursor_name, batch.cursor or "{}"))
        report.add(result)
        if on_stored is not None and result.new_events:
            on_stored(result.new_events)
        rows += len(batch.records) + len(batch.skipped)
        if progress is not None:
            progress(rows)


def run_import(store: Store, kind: str, path: str, *, boot_time: datetime | None = None,
               progress: Progress | None = None, year: int | None = None,
               this_boot: datetime | None = None, page_shift: int | None = None,
               on_stored: OnStored | None = None, host: Host | None = None) -> ImportReport:
    """Import one file (``-`` = stdin) of ``kind``; see the module docstring. A dmesg or
    trace file's times: :mod:`memras.ingest.clock` (``boot_time`` = --boot-time,
    ``year`` = --year, ``this_boot`` = this machine's boot, offered to trace files).
    ``page_shift``: log2 of the logging machine's page size (--page-size) for the PFNs
    a dmesg prints; None lets the parser infer it (64K/16K arm64 and ppc64 builds)."""
    if kind not in KINDS:
        raise UsageError(f"unknown import kind {kind!r}", hint=f"use one of {', '.join(KINDS)}")
    report = ImportReport(kind=kind, path=path)
    if kind in ("bert", "pstore"):  # memras.ingest.before_boot: a file, a tree or --root's
        from memras.watcher.before_boot import import_before_boot

        import_before_boot(store, kind, path, report, host=host, boot_time=boot_time,
                           on_stored=on_stored)
        return report
    if kind == "vmcore-dmesg":  # the crashed kernel's log: dmesg, with kdump's clock
        from memras.watcher.before_boot import kdump_boot_time

        boot_time = boot_time or kdump_boot_time(path, report)
        kind = "dmesg"
    if kind == "rasdaemon":
        if path == "-":
            raise UsageError("a rasdaemon database cannot be read from stdin",
                             hint="give the path of ras-mc_event.db")
        import_rasdaemon(store, path, report, progress, on_stored)
        return report
    batcher = _Batcher(store, report, kind, boot_time, on_stored)
    batcher.clock = import_clock(kind, path, boot_time=boot_time, year=year,
                                 this_boot=this_boot)
    # stdin is spooled so that, like a file, it is scanned for its clock first: a `-T`
    # stamp or syslog line late in the capture dates the uptime-only records before it
    with open_text(path, rereadable=batcher.clock is not None) as (handle, _size):
        if path == "-" and batcher.clock is not None:
            batcher.clock.scan(handle)
            handle.seek(0)
        if kind == "trace":
            import_trace(batcher, following(batcher.clock, _lines(handle, progress)))
        elif kind == "dmesg":
            import_dmesg(batcher, following(batcher.clock, _lines(handle, progress)), page_shift)
        elif kind == "sel":
            import_sel(batcher, _lines(handle, progress))
        else:
            import_mcelog(batcher, _lines(handle, progress))
    batcher.flush()
    if batcher.clock is not None:
        report.notes += batcher.clock.notes()  # after vmcore-dmesg's kdump note
    return report


def input_size(path: str) -> int | None:
    """Bytes to read, for a progress bar; None for stdin or an unreadable path."""
    if path == "-":
        return None
    try:
        return Path(path).stat().st_size
    except OSError:
        return None
