"""Wall-clock times for imported captures that do not print one on every line.

What it decides
    For each record of a dmesg or trace file, the wall-clock time and where it came
    from (:class:`memras.records.TimeSource`), never inventing one:

    1. the record's own stamp (ISO, ``dmesg -T``, an MCE's ``TIME``): kept;
    2. a year-less syslog stamp (``Feb 23 03:28:16 host kernel:``, which the parsers
       leave undated): its year from ``--year``, else the file's modification time
       (a stamp later than that by more than a day is the previous year's: a log that
       spans New Year), with a printed note — ``syslog``;
    3. kernel uptime plus a boot time the capture states: ``--boot-time``, or one the
       capture itself pins down — a line that carries both a wall clock and an uptime
       (``Feb 23 03:28:16 host kernel: [ 12.3] …``, an mce_record's ``TIME`` beside
       its trace stamp), or the same message printed once with ``dmesg -T`` and once
       with uptime — ``uptime+boot``;
    4. a trace file only: this machine's boot time when the file's uptimes fit in this
       boot — a guess (the file may come from elsewhere), ``inferred``;
    5. nothing: the record stays undated, the store keeps it at import time
       (``import``) and says so.

    ``inferred`` and ``import`` rows are kept out of rate thresholds by the health
    engine: their spacing is not the errors'.

Structure
    A capture can span boots (uptime restarts), so times are found per *segment*:
    a new one starts where uptime falls back by more than ``REBOOT_BACKSTEP_S``. A
    regular file is scanned once before the import (:meth:`ImportClock.scan`), so an
    anchor late in the file dates the records before it; stdin is spooled by the
    importer (memory, then a temporary file) and scanned the same way. The same
    segmentation runs on both passes.

Cost
    One extra read of a file and a regex or two per line; a few bytes per segment.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from memras.ingest.parsers._common import walltime_to_datetime
from memras.ingest.parsers.prefixes import strip_prefixes
from memras.records import MemoryErrorEvent, MemoryFailureEvent, Record, TimeSource

# A line whose uptime is this much below the previous one starts a new boot. Lines of
# one boot are printed in order; a few out of order (a console logger's interleaving,
# a GHES block's late line) step back by far less.
REBOOT_BACKSTEP_S = 60.0
# A time this far ahead of now is another machine's or boot's clock: not used.
FUTURE_SLACK = timedelta(minutes=5)
MESSAGES_KEPT = 20_000  # messages remembered to pair -T lines with uptime lines
# The printk and trace clocks are u64 nanoseconds: a larger "uptime" (a corrupt or
# hostile line) is no clock at all, and must not be turned into a date.
UPTIME_MAX_S = (1 << 64) / 1e9

_MONTHS = {m: i for i, m in enumerate(
    ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), 1)}
# syslog / journalctl short(-precise): "Feb 23 03:28:16 host kernel:" (host optional)
_SYSLOG = re.compile(r"^(?:<\d+>)?([A-Za-z]{3}) +(\d{1,2}) (\d\d):(\d\d):(\d\d)(?:\.(\d{1,6}))?"
                     r"(?: \S+)? +kernel:")
_FTRACE_STAMP = re.compile(r"\s(\d+\.\d+): [a-z_]+: ")
_MCE_TIME = re.compile(r"\bTIME: (\d+)\b")


def syslog_time(line: str, year: int) -> datetime | None:
    """The naive local time of a year-less syslog stamp that opens ``line``."""
    m = _SYSLOG.match(line)
    month = _MONTHS.get(m[1].lower()) if m else None
    if m is None or month is None:
        return None
    try:
        return datetime(year, month, int(m[2]), int(m[3]), int(m[4]), int(m[5]),
                        int((m[6] or "0").ljust(6, "0")))
    except ValueError:  # Feb 29 of a year without one, or a mangled stamp
        return None


def _uptime(value: float | None) -> float | None:
    return value if value is not None and 0.0 <= value <= UPTIME_MAX_S else None


def _shifted(when: datetime, seconds: float) -> datetime | None:
    """``when`` moved by ``seconds``; None past the calendar's ends (year 1 or 9999)."""
    try:
        return when + timedelta(seconds=seconds)
    except OverflowError:
        return None


def _aware(when: datetime) -> datetime:
    """A naive stamp is the capturing machine's local time (syslog, dmesg -T)."""
    return when if when.tzinfo is not None else when.astimezone()


@dataclass
class _Segment:
    boot: datetime | None = None
    how: str = ""  # what stated the boot time, for the note
    max_uptime_s: float = 0.0


@dataclass
class ImportClock:
    """Dates one import's records (see the module docstring). ``kind`` is ``dmesg`` or
    ``trace``; ``mtime`` the file's modification time (None for stdin: today)."""

    kind: str
    boot_time: datetime | None = None  # --boot-time
    year: int | None = None  # --year
    mtime: datetime | None = None
    this_boot: datetime | None = None  # this machine's, offered for trace files only
    now: datetime = field(default_factory=lambda: datetime.now(UTC))
    counts: dict[TimeSource, int] = field(default_factory=dict)
    _segments: list[_Segment] = field(default_factory=list)
    _index: int = -1  # the segment the current line is in
    _last_uptime: float | None = None
    _scanned: bool = False
    _year_guessed: int | None = None
    _future: int = 0
    # message -> (segment, uptime) of uptime-only lines, and -T lines waiting for one
    _uptime_of: dict[str, tuple[int, float]] = field(default_factory=dict)
    _wall_of: dict[str, datetime] = field(default_factory=dict)

    # ---- passes over the lines --------------------------------------------------------
    def scan(self, lines: Iterable[str]) -> None:
        """The pre-pass of a regular file: every segment's boot time, if it says."""
        for line in lines:
            self._follow(line)
        self._pair_messages()
        self._scanned = True
        self._index, self._last_uptime = -1, None

    def observe(self, line: str) -> None:
        """The import's pass: which segment this line is in (and, for stdin, anchors)."""
        if self._scanned:
            self._step(self._uptime_of_line(line))
        else:
            self._follow(line)

    def _follow(self, line: str) -> None:
        uptime, wall, message = self._line_clock(line)
        segment = self._step(uptime)
        if uptime is not None:
            segment.max_uptime_s = max(segment.max_uptime_s, uptime)
            if wall is not None and segment.boot is None:
                segment.boot = _shifted(_aware(wall), -uptime)
                segment.how = "a line stamped with both a wall clock and an uptime"
            elif message and len(self._uptime_of) < MESSAGES_KEPT:
                self._uptime_of.setdefault(message, (self._index, uptime))
        elif wall is not None and message and len(self._wall_of) < MESSAGES_KEPT:
            self._wall_of.setdefault(message, wall)

    def _pair_messages(self) -> None:
        """A message printed with ``dmesg -T`` and again with uptime: its boot time."""
        for message, wall in self._wall_of.items():
            found = self._uptime_of.get(message)
            if found is not None and self._segments[found[0]].boot is None:
                segment = self._segments[found[0]]
                segment.boot = _shifted(_aware(wall), -found[1])
                segment.how = "a message printed both with dmesg -T and with its uptime"

    def _step(self, uptime: float | None) -> _Segment:
        if not self._segments or (uptime is not None and self._last_uptime is not None
                                  and uptime < self._last_uptime - REBOOT_BACKSTEP_S):
            self._index += 1
            if self._index == len(self._segments):
                self._segments.append(_Segment())
        elif self._index < 0:
            self._index = 0
        if uptime is not None:
            self._last_uptime = uptime
        return self._segments[self._index]

    def _uptime_of_line(self, line: str) -> float | None:
        if self.kind == "trace":
            m = _FTRACE_STAMP.search(line)
            return _uptime(float(m[1])) if m else None
        p = strip_prefixes(line)
        return None if p is None else _uptime(p.uptime_s)

    def _line_clock(self, line: str) -> tuple[float | None, datetime | None, str]:
        """(uptime, wall clock, bare message) a line states."""
        if self.kind == "trace":
            m = _FTRACE_STAMP.search(line)
            t = _MCE_TIME.search(line) if m else None
            wall = walltime_to_datetime(int(t[1])) if t else None
            return (_uptime(float(m[1])) if m else None), wall, ""
        p = strip_prefixes(line)
        if p is None:
            return None, None, ""
        wall = p.timestamp or self._syslog(line.lstrip(" \t"))
        return _uptime(p.uptime_s), wall, p.message.strip()

    # ---- dating -----------------------------------------------------------------------
    def date(self, record: Record) -> Record:
        """The record with its wall-clock time and its source, where one is known."""
        if not isinstance(record, MemoryErrorEvent | MemoryFailureEvent):
            return record
        if record.timestamp is not None:  # its own: an MCE's TIME, or a printed stamp
            own = TimeSource.KERNEL if self.kind == "trace" else TimeSource.SYSLOG
            return self._counted(record, record.time_source or own)
        first = record.raw.split("\n", 1)[0].lstrip(" \t")
        stamp = self._syslog(first) if first else None
        if stamp is not None:
            return self._counted(record, TimeSource.SYSLOG, stamp)
        uptime = _uptime(record.uptime_s)
        if uptime is not None:
            boot, source = self._boot()
            when = None if boot is None else _shifted(boot, uptime)
            if when is not None:
                if when - self.now <= FUTURE_SLACK:
                    return self._counted(record, source, when)
                self._future += 1
        self.counts[TimeSource.IMPORT] = self.counts.get(TimeSource.IMPORT, 0) + 1
        return record

    def _counted(self, record: Record, source: TimeSource,
                 when: datetime | None = None) -> Record:
        self.counts[source] = self.counts.get(source, 0) + 1
        if when is None and record.time_source is source:
            return record
        # a source the parser set stays: a BERT record placed at its boot's start is a
        # guess (inferred) whatever clock dates that boot
        return dataclasses.replace(record, timestamp=when or record.timestamp,
                                   time_source=record.time_source or source)

    def _boot(self) -> tuple[datetime | None, TimeSource]:
        if self.boot_time is not None:
            return self.boot_time, TimeSource.UPTIME_BOOT
        segment = self._segments[self._index] if 0 <= self._index < len(self._segments) \
            else None
        if segment is not None and segment.boot is not None:
            return segment.boot, TimeSource.UPTIME_BOOT
        if self.kind == "trace" and self.this_boot is not None:
            latest = segment.max_uptime_s if segment is not None else 0.0
            if self.this_boot + timedelta(seconds=latest) - self.now <= FUTURE_SLACK:
                return self.this_boot, TimeSource.INFERRED
            self._future += 1  # uptimes past this boot's: the file is not of this boot
        return None, TimeSource.IMPORT

    def _syslog(self, line: str) -> datetime | None:
        if not _SYSLOG.match(line):
            return None
        if self.year is not None:
            return syslog_time(line, self.year)
        anchor = (self.mtime or self.now).astimezone()
        when = syslog_time(line, anchor.year)
        if when is not None and when > anchor.replace(tzinfo=None) + timedelta(days=1):
            when = syslog_time(line, anchor.year - 1)  # before New Year of the mtime's
        if when is not None:
            self._year_guessed = self._year_guessed or when.year
        return when

    # ---- what the user is told ----------------------------------------------------------
    def notes(self) -> list[str]:
        """One line for each way a time was found or not found that the user must know."""
        out: list[str] = []
        if self._year_guessed is not None:
            since = "the file's modification time" if self.mtime else "today's date"
            out.append(f"year-less syslog stamps dated in {self._year_guessed} (from "
                       f"{since}); pass --year to set it")
        if self.boot_time is None:
            for n, segment in enumerate(self._segments):
                if segment.boot is not None:
                    out.append(f"boot {n + 1} of the capture: booted at "
                               f"{segment.boot.isoformat(timespec='seconds')} ({segment.how})")
        inferred = self.counts.get(TimeSource.INFERRED, 0)
        if inferred:
            out.append(f"{inferred} records dated by this machine's boot time (time_source="
                       "inferred: the file does not say its own); kept out of rate "
                       "thresholds; pass --boot-time if you know it")
        if self._future:
            out.append(f"{self._future} records would land in the future with the boot "
                       "time at hand: the file is from another boot or machine")
        undated = self.counts.get(TimeSource.IMPORT, 0)
        if undated:
            out.append(f"{undated} records carry no clock (uptime only, no boot time in "
                       "the capture): stored at import time (time_source=import) and kept "
                       "out of rate thresholds; pass --boot-time to date them")
        return out


def import_clock(kind: str, path: str, *, boot_time: datetime | None = None,
                 year: int | None = None, this_boot: datetime | None = None
                 ) -> ImportClock | None:
    """The clock of one dmesg or trace import (None for other kinds: rasdaemon rows and
    mcelog records carry their own times). A regular file is scanned first; stdin
    (``-``) is left to the caller, which spools it and calls :meth:`ImportClock.scan`."""
    if kind not in ("dmesg", "trace"):
        return None
    clock = ImportClock(kind, boot_time=boot_time, year=year, this_boot=this_boot)
    if path == "-":
        return clock
    try:
        clock.mtime = datetime.fromtimestamp(os.stat(path).st_mtime, UTC)
        with open(path, encoding="utf-8", errors="replace", newline="\n") as handle:
            clock.scan(handle)
    except OSError:
        pass  # the import itself reports an unreadable file
    return clock


def following(clock: ImportClock | None, lines: Iterable[str]) -> Iterator[str]:
    """``lines``, each observed by ``clock`` before it is parsed (its boot segment)."""
    if clock is None:
        yield from lines
        return
    for line in lines:
        clock.observe(line)
        yield line
