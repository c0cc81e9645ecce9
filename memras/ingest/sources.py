"""Live error sources for ``memras watch``: each turns one kernel interface into batches.

A source is polled by its own thread in the watcher and returns a
:class:`SourceBatch`: parsed records, the cursor value that is durable once those
records are stored, lines it could not parse, and gaps it can prove. The store
commits a batch's records and its cursor in one transaction, so a crash at any
point either keeps both or neither: nothing is lost and nothing is stored twice.

    source      kernel interface            cursor              loss it can prove
    kmsg        /dev/kmsg                   boot id:last seq    seq jumps (ring overwritten),
                                                                a new boot's ring that starts
                                                                past its first record
    trace       tracefs instances/memras    boot id:offset (sim) ring buffer overrun: the
                                            boot id:lost (pipe) per-CPU stats counters, or
                                                                the pipe's LOST markers
    edac        EDAC mc/dimm counters       last counters JSON  counts no event explains
    rasdaemon   rasdaemon's SQLite DB       last row id/table   -

A kmsg sequence number or a trace offset means something only within the boot it was
read in (the sequence restarts at 0 on every boot), so those cursors carry the boot id
(/proc/sys/kernel/random/boot_id). On a new boot — or a cursor that does not say its
boot — the reader starts at the ring's first record and the store drops what it has
already (a record's identity is its source and raw text, sequence number included):
nothing of the new boot is skipped for being "at or below" the old boot's cursor.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from types import ModuleType
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from memras.host import Host
from memras.host.edac import EdacDimm
from memras.host.kmsg import KmsgReader, record_seq
from memras.host.tracefs import TracePipeReader, TraceSetup, parse_lost_marker
from memras.ingest.edac_ledger import DEFAULT_GAP_GRACE_S, Ledger, is_own_reset, own_resets
from memras.records import CxlEvent, MemoryErrorEvent, MemoryFailureEvent, Record, TimeSource

if TYPE_CHECKING:
    from memras.ingest.parsers.kernel_log import KernelLogParser

# what a source hands the store: records, and CXL events that are not memory errors
Batched = Record | CxlEvent
_R = TypeVar("_R", bound=Batched)


MCE_POOL_FULL = "MCE records pool full!"  # arch/x86/kernel/cpu/mce/genpool.c
LOST_STATS_INTERVAL_S = 2.0  # how often the trace source reads its buffer's lost counters


@dataclass(frozen=True, slots=True)
class Gap:
    """Errors the kernel counted (or dropped) that no event reported."""

    source: str
    subject: str  # DIMM key (mc:top:mid:low / label) or "kmsg"
    count: int
    error_type: str  # "Corrected" | "Uncorrected" | "records"
    message: str


@dataclass
class SourceBatch:
    source: str
    records: list[Batched] = field(default_factory=list)  # CxlEvents: memras.store.cxl
    cursor: str | None = None  # durable position after this batch is stored
    skipped: list[str] = field(default_factory=list)  # raw text that did not parse
    gaps: list[Gap] = field(default_factory=list)
    ignored: int = 0  # recognised non-records (decoys, context lines)
    read: int = 0  # raw lines the poll read, records or not: 0 means the source is drained

    def __bool__(self) -> bool:
        return bool(self.records or self.skipped or self.gaps or self.cursor is not None)


class LiveSource(Protocol):
    name: str

    def start(self, cursor: str | None) -> None: ...

    def poll(self, timeout_s: float) -> SourceBatch: ...

    def stop(self) -> None: ...


def with_wall_time(records: list[_R], boot: datetime | None) -> list[_R]:
    """Give records that only know kernel uptime a timestamp (boot time + uptime).

    Health judges events at their own times; an event dated by uptime alone would
    sit in 1970 beside events from a rasdaemon DB that carry wall time.
    """
    if boot is None:
        return records
    out: list[_R] = []
    for r in records:
        if r.timestamp is None and r.uptime_s is not None:
            # an uptime no clock reaches, or NaN, is left undated (the store's bounds do
            # the same) instead of killing the source
            with contextlib.suppress(OverflowError, ValueError):
                when = boot + timedelta(seconds=r.uptime_s)
                # a source the parser set stays (a BERT record at boot start: inferred)
                r = (dataclasses.replace(r, timestamp=when) if isinstance(r, CxlEvent) else
                     dataclasses.replace(r, timestamp=when,
                                         time_source=r.time_source or TimeSource.UPTIME_BOOT))
        out.append(r)
    return out


def boot_cursor(boot_id: str | None, position: int) -> str:
    """A cursor that says which boot its position belongs to: ``boot id:position``."""
    return str(position) if boot_id is None else f"{boot_id}:{position}"


def resume_position(cursor: str | None, boot_id: str | None) -> tuple[int | None, bool]:
    """(position to resume after, whether a previous boot's cursor was found).

    The position is kept only when the cursor is of this boot (both unknown counts as
    the same: a tree without a boot id). A bare number (an older memras) does not say
    its boot, so it is not trusted: reading starts again and the store drops re-reads.
    """
    if not cursor:
        return None, False
    saved_boot, sep, text = cursor.rpartition(":")
    if not text.isdigit():
        return None, False
    if not sep:
        return (int(text), False) if boot_id is None else (None, True)
    if saved_boot == boot_id:
        return int(text), False
    return None, True


def _parsers() -> ModuleType:
    # lazy: the parsers package is large and only reading a live source needs it
    from memras.ingest import parsers

    return parsers


class KmsgSource:
    """/dev/kmsg with resume by sequence number."""

    name = "kmsg"

    def __init__(self, host: Host) -> None:
        self.host = host
        self._reader: KmsgReader | None = None
        self._boot: datetime | None = None
        self._boot_id: str | None = None
        self._last_seq: int | None = None
        self._durable_seq: int | None = None
        self._parser: KernelLogParser | None = None
        self._new_boot = False  # a previous boot's cursor: check the ring's first record

    def start(self, cursor: str | None) -> None:
        self._boot_id = self.host.boot_id()
        self._last_seq, self._new_boot = resume_position(cursor, self._boot_id)
        self._durable_seq = self._last_seq
        self._reader = self.host.kmsg.open()
        self._parser = _parsers().KernelLogParser()
        self._boot = self.host.boot_time()

    def poll(self, timeout_s: float) -> SourceBatch:
        assert self._reader is not None and self._parser is not None
        got = self._reader.read(timeout_s)
        batch = SourceBatch(source=self.name, read=len(got.records))
        if not got.records and self._parser.pending:
            # The source went idle with a fault's lines held: that group is complete.
            batch.records.extend(self._parser.flush())
            self._durable_seq = self._last_seq
        for raw in got.records:
            seq = record_seq(raw)
            if seq is not None and self._new_boot:
                self._new_boot = False
                if seq > 0:  # the ring had wrapped before this boot's first read
                    batch.gaps.append(Gap(self.name, "kmsg", seq, "records",
                                          f"{seq} kernel log records of this boot were "
                                          "overwritten before memras read them"))
            if seq is not None and self._last_seq is not None:
                if seq <= self._last_seq:
                    continue  # already stored before a restart
                if seq > self._last_seq + 1:
                    lost = seq - self._last_seq - 1
                    batch.gaps.append(Gap(self.name, "kmsg", lost, "records",
                                          f"{lost} kernel log records were overwritten "
                                          "before memras read them"))
            self._feed(raw, batch)
            if seq is not None:
                self._last_seq = seq
                if not self._parser.pending:
                    self._durable_seq = seq
        if self._durable_seq is not None:
            batch.cursor = boot_cursor(self._boot_id, self._durable_seq)
        batch.records = with_wall_time(batch.records, self._boot)
        return batch

    def _feed(self, raw: str, batch: SourceBatch) -> None:
        if MCE_POOL_FULL in raw:
            # mce/genpool.c drops machine checks it has no room for before anything logs
            # them: a loss the kernel announces, so a gap of unknown size, never silence.
            batch.gaps.append(Gap(self.name, "mce", 0, "records",
                                  "the kernel's MCE record pool was full: it dropped machine "
                                  "checks before logging them (count unknown)"))
        try:
            # only poll() calls this, after asserting the parser is set (no check per line)
            batch.records.extend(self._parser.feed(raw))  # type: ignore[union-attr]
        except Exception:  # a parser bug must never kill the watcher; keep the line
            batch.skipped.append(raw)

    def drain_pending(self) -> SourceBatch:
        """Records held back for a multi-line block that will not be completed."""
        batch = SourceBatch(source=self.name)
        if self._parser is not None:
            flushed = with_wall_time(self._parser.flush(), self._boot)
            batch.records.extend(flushed)
            if self._last_seq is not None:
                batch.cursor = boot_cursor(self._boot_id, self._last_seq)
        return batch

    def stop(self) -> None:
        if self._reader is not None:
            self._reader.close()


class TraceSource:
    """RAS tracepoints through memras's own tracefs instance."""

    name = "trace"

    def __init__(self, host: Host, *, stats_interval_s: float = LOST_STATS_INTERVAL_S,
                 clock: Callable[[], float] = time.monotonic,
                 buffer_kb: int | None = None) -> None:
        self.host = host
        self.buffer_kb = buffer_kb  # the instance's buffer per CPU ([watch] trace_buffer_kb)
        self._setup: TraceSetup | None = None
        self._reader: TracePipeReader | None = None
        self._boot: datetime | None = None
        self._boot_id: str | None = None
        self._offset = 0
        self.stats_interval_s = stats_interval_s
        self._clock = clock
        self._next_stats = 0.0
        # events the buffer had lost (per-CPU stats) up to what is recorded; None: the
        # stats are not readable and the pipe's LOST markers are the record
        self._lost: int | None = None
        self._lost_cursor: int | None = None  # the lost count the stored cursor holds

    def start(self, cursor: str | None) -> None:
        self._setup = self.host.tracefs.setup(buffer_kb=self.buffer_kb)
        self._reader = self.host.tracefs.open_pipe(self._setup)
        self._boot = self.host.boot_time()
        self._boot_id = self.host.boot_id()
        offset, other_boot = resume_position(cursor, self._boot_id)
        if not self._reader.is_pipe and offset is not None:
            # A tailed file (simulator, capture) of this boot: continue where the last
            # run stopped. Another boot's offset is not this file's: read it from 0.
            import os

            self._offset = offset
            os.lseek(self._reader._fd, self._offset, os.SEEK_SET)
        if self._reader.is_pipe:
            # The pipe's cursor is the buffer's lost count already recorded (written at the
            # first poll and on every change): a loss while the watcher was down is a gap
            # at the next start. No cursor: count from now; another boot's cursor: this
            # boot's buffer is new, every loss in it is unrecorded.
            lost = self._read_lost()
            self._lost_cursor = offset
            if lost is not None:
                self._lost = (lost if offset is None and not other_boot
                              else 0 if offset is None or offset > lost else offset)

    def poll(self, timeout_s: float) -> SourceBatch:
        assert self._reader is not None
        batch = SourceBatch(source=self.name)
        parse = _parsers().parse_trace_line
        boot = self._boot
        lines = self._reader.read_lines(timeout_s)
        batch.read = len(lines)
        # bytes as read (not re-encoded text): exact even for blank or non-UTF-8 lines
        self._offset += self._reader.last_bytes
        for line in lines:
            if line.startswith("#"):
                continue
            if "[LOST " in line and (marker := parse_lost_marker(line)) is not None:
                if self._lost is None:  # the counters, when readable, count these too
                    count = marker.count
                    batch.gaps.append(Gap(
                        self.name, f"cpu{marker.cpu}", count or 0, "records",
                        f"the trace buffer lost {count if count is not None else 'some'} "
                        f"events of CPU {marker.cpu} before memras read them (ring "
                        "buffer overrun; a larger [watch] trace_buffer_kb helps)"))
                else:
                    batch.ignored += 1
                continue
            try:
                record = parse(line, boot_time=boot)  # mc_events come dated: no copy
            except Exception:
                record = None
            if record is not None and not isinstance(
                    record, MemoryErrorEvent | MemoryFailureEvent | CxlEvent):
                batch.ignored += 1  # a machine check that is not a memory error
                continue
            if record is None:
                if " mc_event: " in line or " mce_record: " in line:
                    batch.skipped.append(line)  # ours, but malformed
                else:
                    batch.ignored += 1
                continue
            batch.records.append(record)
        if not self._reader.is_pipe:
            batch.cursor = boot_cursor(self._boot_id, self._offset)
        elif self._lost is not None:
            self._check_lost(batch)
        batch.records = with_wall_time(batch.records, self._boot)
        return batch

    def _read_lost(self) -> int | None:
        assert self._setup is not None
        try:
            return self.host.tracefs.lost_events(self._setup)
        except Exception:  # an unreadable stats file must not stop the source
            return None

    def _check_lost(self, batch: SourceBatch) -> None:
        """Every ``stats_interval_s``: the buffer's lost count grew -> a gap; a count the
        stored cursor does not hold -> the new cursor (stored with the gap). Counters
        that went down belong to a recreated instance: what they count is all lost."""
        now = self._clock()
        if now < self._next_stats:
            return
        self._next_stats = now + self.stats_interval_s
        lost = self._read_lost()
        if lost is None or self._lost is None:
            return
        grew = lost - self._lost if lost >= self._lost else lost
        if grew > 0:
            batch.gaps.append(Gap(
                self.name, "trace", grew, "records",
                f"the trace buffer lost {grew} events before memras read them (ring buffer "
                "overrun; a larger [watch] trace_buffer_kb helps)"))
        self._lost = lost
        if lost != self._lost_cursor:
            self._lost_cursor = lost
            batch.cursor = boot_cursor(self._boot_id, lost)

    @property
    def enabled_events(self) -> list[str]:
        return list(self._setup.enabled) if self._setup else []

    def stop(self) -> None:
        if self._reader is not None:
            self._reader.close()


def dimm_matches(dimm: EdacDimm, event: MemoryErrorEvent) -> bool:
    """Whether an event names this EDAC DIMM (by mc + layers, or by its label)."""
    loc = event.location
    if loc.mc == dimm.mc and loc.top_layer is not None:
        layers = [loc.top_layer, loc.middle_layer, loc.lower_layer]
        wanted = list(dimm.layers)
        if layers[: len(wanted)] == wanted:
            return True
    return bool(loc.label) and loc.label == dimm.label


class EdacCounterSource:
    """Polls EDAC counters and turns counts no event reported into gap records.

    The kernel counts every error it decodes in ``dimm_ce_count``; events can still
    go missing (trace buffer overrun, a watcher that was down while the kmsg ring
    wrapped, a driver that logs nothing). Each poll adds the counter increase per DIMM
    to a :class:`~memras.ingest.edac_ledger.Ledger`, which the events the watcher
    stores for that DIMM pay off, oldest first; a count still unexplained after
    ``grace_s`` (and two polls) is a gap: late events are not gaps. A controller whose
    ``seconds_since_reset`` went backwards was reset (reboot, driver reload,
    reset_counters): its DIMMs count again from zero, and the reset is reported unless
    memras made it itself (:func:`~memras.ingest.edac_ledger.is_own_reset`, read
    through ``own_resets``, which returns the store's mark text). A DIMM counter that
    went down alone is taken as its new baseline.
    """

    name = "edac"

    def __init__(self, host: Host, *, interval_s: float = 5.0,
                 grace_s: float = DEFAULT_GAP_GRACE_S,
                 own_resets: Callable[[], str | None] | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 wall_clock: Callable[[], float] = time.time) -> None:
        self.host = host
        self.interval_s = interval_s
        self.grace_s = grace_s
        self._own_resets = own_resets
        self._clock = clock
        self._wall_clock = wall_clock
        self._next_poll = 0.0
        self._last: dict[str, tuple[int, int]] = {}  # key -> (ce, ue) at the last reading
        self._ledgers: dict[tuple[str, int], Ledger] = {}  # (key, 0 CE | 1 UE) -> ledger
        self._lock = threading.Lock()  # observe() runs in the writer thread, poll() not
        self._reset_marks: dict[int, int] = {}  # mc -> seconds_since_reset
        self._read_at: float | None = None  # wall time of the last reading

    def start(self, cursor: str | None) -> None:
        saved = json.loads(cursor) if cursor else {}
        # the baseline is the counters up to which every count was explained or called
        self._last = {k: (int(v[0]), int(v[1])) for k, v in saved.get("baseline", {}).items()}
        self._reset_marks = {int(k): v for k, v in saved.get("since_reset", {}).items()}
        self._read_at = saved.get("read_at")

    def observe(self, events: list[Record]) -> None:
        """Called by the watcher with every stored batch, to credit events to DIMMs."""
        dimms = self._dimms_cache
        now = self._clock()
        with self._lock:
            for event in events:
                if not isinstance(event, MemoryErrorEvent):
                    continue
                dimm = next((d for d in dimms if dimm_matches(d, event)), None)
                if dimm is not None:
                    self._ledger(dimm.key, event.error_type.is_uncorrected).event(
                        now, event.count)

    @property
    def _dimms_cache(self) -> list[EdacDimm]:
        if not hasattr(self, "_dimms"):
            self._dimms = self.host.edac.dimms()
        return self._dimms

    def _ledger(self, key: str, uncorrected: bool) -> Ledger:
        return self._ledgers.setdefault((key, int(uncorrected)), Ledger())

    def poll(self, timeout_s: float) -> SourceBatch:
        batch = SourceBatch(source=self.name)
        now = self._clock()
        if now < self._next_poll:
            time.sleep(min(timeout_s, self._next_poll - now))
            return batch
        self._next_poll = now + self.interval_s
        read_at = self._wall_clock()
        controllers = self.host.edac.controllers()
        self._dimms = [d for c in controllers for d in c.dimms]
        with self._lock:
            for mc in controllers:
                if self._was_reset(mc.index, mc.seconds_since_reset):
                    self._last.update({d.key: (0, 0) for d in mc.dimms})  # zeroed then
                    if not self._is_own_reset(mc.index, read_at):
                        batch.gaps.append(Gap(
                            self.name, f"mc{mc.index}", 0, "reset",
                            f"EDAC counters of mc{mc.index} ({mc.mc_name}) were reset"))
                for dimm in mc.dimms:
                    self._check_dimm(dimm, now, batch)
            self._read_at = read_at
            batch.cursor = json.dumps({"baseline": self._baseline(),
                                       "since_reset": self._reset_marks,
                                       "read_at": read_at}, sort_keys=True)
        return batch

    def _was_reset(self, mc: int, seconds_since_reset: int) -> bool:
        previous = self._reset_marks.get(mc)
        self._reset_marks[mc] = seconds_since_reset
        return previous is not None and seconds_since_reset < previous

    def _is_own_reset(self, mc: int, now: float) -> bool:
        marks = own_resets(self._own_resets()) if self._own_resets is not None else {}
        return is_own_reset(marks, mc, self._read_at, now)

    def _check_dimm(self, dimm: EdacDimm, now: float, batch: SourceBatch) -> None:
        key = dimm.key
        current = (dimm.ce_count, dimm.ue_count)
        last = self._last.get(key)
        self._last[key] = current
        if last is None:
            return  # first sight: count from here
        for kind, (was, count) in enumerate(zip(last, current, strict=True)):
            ledger = self._ledger(key, bool(kind))
            if count >= was:  # a counter that went down alone: a new baseline
                ledger.count(now, count - was)
            due = ledger.overdue(now, self.grace_s)
            if due > 0:
                name = "Uncorrected" if kind else "Corrected"
                batch.gaps.append(Gap(
                    self.name, key, due, name,
                    f"kernel counted {due} {name.lower()} errors on DIMM "
                    f"{dimm.label or key} that no event reported within "
                    f"{self.grace_s:g} s"))

    def _baseline(self) -> dict[str, list[int]]:
        """Per DIMM, the counters minus the counts still waiting for their events: a
        restart waits for those again instead of forgetting them."""
        def settled(key: str, kind: int, value: int) -> int:
            ledger = self._ledgers.get((key, kind))
            return max(0, value - ledger.unexplained) if ledger else value

        return {key: [settled(key, 0, ce), settled(key, 1, ue)]
                for key, (ce, ue) in self._last.items()}

    def stop(self) -> None:
        pass


# rasdaemon tables memras reads, with the parser function name for their rows.
RASDAEMON_TABLES = {
    "mc_event": "from_mc_event_row",
    "mce_record": "from_mce_record_row",
    "memory_failure_event": "from_memory_failure_row",
    "extlog_event": "from_extlog_row",
    # CXL media errors (rasdaemon >= 0.8.1; memras.ingest.parsers.cxl)
    "cxl_general_media_event": "from_cxl_general_media_row",
    "cxl_dram_event": "from_cxl_dram_row",
}


class RasdaemonSource:
    """Tails a running rasdaemon's database by row id, read-only.

    rasdaemon sets no busy timeout and drops a row when its INSERT finds the
    database locked, so every read here is one short statement on a read-only
    connection; memras never holds a transaction open on rasdaemon's file.
    """

    name = "rasdaemon"

    def __init__(self, path: str, *, batch_rows: int = 5000) -> None:
        self.path = path
        self.batch_rows = batch_rows
        self._last_ids: dict[str, int] = {}

    def start(self, cursor: str | None) -> None:
        self._last_ids = json.loads(cursor) if cursor else {}

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=0.5)
        conn.row_factory = sqlite3.Row
        # a text column with bytes that are not UTF-8 would fail the whole read, every
        # poll, and the cursor would never pass the row: such bytes become U+FFFD
        conn.text_factory = lambda data: data.decode("utf-8", "replace")
        return conn

    def poll(self, timeout_s: float) -> SourceBatch:
        batch = SourceBatch(source=self.name)
        parsers = _parsers()
        try:
            conn = self._connect()
        except sqlite3.Error as exc:
            batch.skipped.append(f"cannot open rasdaemon DB {self.path}: {exc}")
            time.sleep(timeout_s)
            return batch
        try:
            query = "SELECT name FROM sqlite_master WHERE type='table'"
            tables = {r[0] for r in conn.execute(query)}
            for table, fn_name in RASDAEMON_TABLES.items():
                if table in tables:
                    self._read_table(conn, table, getattr(parsers, fn_name), batch)
            # rasdaemon's CXL records that are not memory errors: CxlEvents (the store
            # keeps them in memras_cxl_event)
            for table, read in parsers.cxl.CXL_EVENT_ROW_READERS.items():
                if table in tables:
                    self._read_table(conn, table, read, batch)
        finally:
            conn.close()
        batch.cursor = json.dumps(self._last_ids, sort_keys=True)
        if not batch.records:
            time.sleep(timeout_s)
        return batch

    def _read_table(self, conn: sqlite3.Connection, table: str,
                    convert: Callable[[Any], Batched | None], batch: SourceBatch) -> None:
        last = self._last_ids.get(table, 0)
        rows = conn.execute(f"SELECT * FROM {table} WHERE id > ? ORDER BY id LIMIT ?",
                            (last, self.batch_rows)).fetchall()
        for row in rows:
            try:
                record = convert(dict(row))
            except Exception:
                record = None
            if record is None:
                batch.skipped.append(f"{table} row {row['id']}: {dict(row)!r}"[:500])
            else:
                batch.records.append(record)
            self._last_ids[table] = row["id"]

    def stop(self) -> None:
        pass
