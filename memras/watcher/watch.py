"""The watcher: live sources → store → health → alerts, with no silent loss.

Structure: one thread per source polls its kernel interface and puts
:class:`~memras.ingest.sources.SourceBatch` objects on a bounded queue; the
calling thread is the only writer. It takes the first batch, waits at most
``flush_interval_s`` (200 ms) for more, and stores everything it has in short
transactions, each batch together with its source's cursor; while batches are
sparse (fewer than ``SPARSE_BATCHES`` in the last second) it stops waiting as soon as
none came for ``QUIET_S`` (20 ms). So a lone error is on disk within about 20 ms of
being read (a fixed 200 ms wait was most of a single CE's latency in the lab), a
stream within 200 ms, a burst of a thousand events costs a few transactions instead
of a thousand, and a crash loses nothing that a restart will not read again (kmsg by
sequence number, rasdaemon by row id, the trace instance keeps unread events in the
kernel).

Back-pressure instead of dropping: when the writer falls behind, the queue fills
and the source threads block; the kernel keeps buffering (kmsg ring, trace
buffer), and whatever it had to overwrite shows up as a counted gap.

Nothing here is fatal: a malformed line is counted with a sample kept; a parser
or hook exception is caught and counted; a record the store cannot take (a value no
row can hold) never fails its batch: the store clamps or blanks it and flags the row,
or skips that record and counts it, and the cursor moves past it either way, so a
restart does not die on the same line again; SIGTERM sets the stop event, the
sources finish their current poll, the queue is drained and the last batch is
stored before :meth:`Watcher.run` returns.

Under systemd (:mod:`memras.watcher.notify`) the writer loop says READY=1 once every
source has started and WATCHDOG=1 every half watchdog interval, so a writer stuck
in the store or a hook is restarted; a reload (SIGHUP: :meth:`Watcher.request_reload`)
runs ``on_reload`` between two batches on the writer thread, the only one that touches
the pipeline, and a reload that fails keeps the running configuration.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from memras.ingest.sources import EdacCounterSource, KmsgSource, LiveSource, SourceBatch
from memras.records import CxlEvent, Record
from memras.watcher.journal import EventLog
from memras.watcher.notify import SdNotify

if TYPE_CHECKING:
    from memras.store.store import Store

log = logging.getLogger("memras.watcher.watch")

FLUSH_INTERVAL_S = 0.2  # an event is stored at most this long after it was read
# While batches are sparse, the writer stores what it holds once no batch came for QUIET_S:
# a lone event does not wait out the whole flush interval. A stream (SPARSE_BATCHES or
# more in the last second) keeps the whole window, so its transactions stay few (one per
# batch would multiply the writer's fixed cost per transaction, which in the TCG lab guest
# is ~20-30x its native time). Sparse, that is at most ~16 small transactions a second.
QUIET_S = 0.02
SPARSE_BATCHES = 16
POLL_TIMEOUT_S = 0.1  # how long a source waits for data before checking the stop flag
# Bound on batches in flight between sources and the writer. A trace batch is at most
# ~200 lines (tracefs.MAX_READ_BYTES), so a storm holds about 1k parsed records in
# the queue while the writer catches up; the sources then block and the kernel
# buffers. (256 let a 1M-line storm sit in memory as parsed records.)
QUEUE_BATCHES = 4
# Records per store transaction when the writer merges a source's batches: enough to
# amortise the commit, few enough that their row copies stay a few MiB.
MERGE_RECORDS = 500
# The writer stops collecting (and stores) once it holds this many records, even inside
# the flush interval. The queue bounds batches *waiting*; without this bound, a storm
# refilled the queue for the whole 200 ms while the writer collected, and it took
# ~10-20k parsed records at once (most of a storm's RSS growth).
COLLECT_RECORDS = MERGE_RECORDS

OnStored = Callable[[list[Record]], None]
# Called with the CXL records (not memory errors: memras_cxl_event) of each stored batch,
# duplicates included: the poison action (memras.health.cxl_poison) is idempotent.
OnCxl = Callable[[list[CxlEvent]], object]
OnGap = Callable[[object], None]
# A periodic task (e.g. CapacityPolicy.tick bound to a host): called with time.monotonic()
# from the writer thread about once a second; its exceptions are counted, never fatal.
Periodic = Callable[[float], object]


@dataclass
class SourceStats:
    read: int = 0
    inserted: int = 0
    duplicates: int = 0
    flagged: int = 0  # inserted with a value clamped or blanked (memras.store.bounds)
    skipped: int = 0
    ignored: int = 0
    gaps: int = 0
    errors: int = 0
    last_error: str = ""


@dataclass
class WatchStats:
    sources: dict[str, SourceStats] = field(default_factory=dict)
    batches_stored: int = 0
    hook_errors: int = 0

    def for_source(self, name: str) -> SourceStats:
        return self.sources.setdefault(name, SourceStats())

    def as_dict(self) -> dict[str, object]:
        return {
            "batches_stored": self.batches_stored,
            "hook_errors": self.hook_errors,
            "sources": {k: vars(v) for k, v in self.sources.items()},
        }


class Watcher:
    def __init__(
        self,
        store: Store,
        sources: Sequence[LiveSource],
        *,
        on_stored: OnStored | None = None,
        on_gap: OnGap | None = None,
        flush_interval_s: float = FLUSH_INTERVAL_S,
        periodic: Sequence[Periodic] = (),
        notify: SdNotify | None = None,
        on_reload: Callable[[], object] | None = None,
        event_log: EventLog | None = None,
        on_cxl: OnCxl | None = None,
    ) -> None:
        self.store = store
        self.sources = list(sources)
        self.on_stored = on_stored
        self.on_cxl = on_cxl
        self.on_gap = on_gap
        self.flush_interval_s = flush_interval_s
        self.periodic = list(periodic)
        self.stats = WatchStats()
        self._queue: queue.Queue[SourceBatch | None] = queue.Queue(maxsize=QUEUE_BATCHES)
        # when the writer took its last SPARSE_BATCHES batches (is the input sparse?)
        self._taken: deque[float] = deque(maxlen=SPARSE_BATCHES)
        self._edac = [s for s in self.sources if isinstance(s, EdacCounterSource)]
        self.notify = notify or SdNotify(None)
        self.on_reload = on_reload
        self.event_log = event_log
        self.reloads = 0
        # set from a signal handler: a plain attribute (an Event's lock could be held by
        # the very thread the handler interrupts)
        self._reload_requested = False
        self._started = {s.name: threading.Event() for s in self.sources}
        self._ready = False

    def request_reload(self) -> None:
        """Run ``on_reload`` at the writer's next turn (safe to call from a signal handler)."""
        self._reload_requested = True

    # --- source side ---------------------------------------------------------------
    def _pump(self, source: LiveSource, stop: threading.Event, once: bool) -> None:
        stats = self.stats.for_source(source.name)
        try:
            source.start(self.store.get_cursor(source.name))
            self._started[source.name].set()
            while not stop.is_set():
                batch = source.poll(0.0 if once else POLL_TIMEOUT_S)
                if batch:
                    self._put(batch, stop)
                # drained when a poll read nothing (kmsg, trace) or, for sources that do
                # not count lines, stored nothing: a slice of context lines or decoys
                # parses to no record but is not the end of the file
                if once and not batch.read and not batch.records and not batch.skipped:
                    break
            if isinstance(source, KmsgSource):
                self._put(source.drain_pending(), stop)
        except Exception as exc:  # a broken source must not take the others down
            stats.errors += 1
            stats.last_error = f"{type(exc).__name__}: {exc}"
            log.error("source %s stopped: %s", source.name, stats.last_error)
        finally:
            self._started[source.name].set()  # started or failed: not waited for any more
            source.stop()
            self._queue.put(None)  # "this source is done"

    def _put(self, batch: SourceBatch, stop: threading.Event) -> None:
        while True:
            try:
                self._queue.put(batch, timeout=0.5)
                return
            except queue.Full:
                if stop.is_set():
                    self._queue.put(batch)  # final drain: block, the writer is emptying
                    return

    # --- writer side -----------------------------------------------------------------
    def run(self, stop: threading.Event | None = None, *, once: bool = False) -> WatchStats:
        """Run until ``stop`` is set (or, with ``once``, until every source is drained).

        First the database's ``PRAGMA quick_check``: a damaged file stops the watcher
        with one line saying what to do (StoreError, exit 1), before anything is added."""
        self.store.check_sound()
        stop = stop or threading.Event()
        threads = [
            threading.Thread(target=self._pump, args=(s, stop, once),
                             name=f"memras-src-{s.name}", daemon=True)
            for s in self.sources
        ]
        for t in threads:
            t.start()
        running = len(threads)
        while running:
            pending, finished = self._collect()
            running -= finished
            if pending:
                self._store(pending)
            self._run_periodic()
            self._service(stop)
        self.notify.stopping()
        for t in threads:
            t.join(timeout=5)
        return self.stats

    def _service(self, stop: threading.Event) -> None:
        """The service manager's side: readiness, the watchdog keep-alive, a reload."""
        if not self._ready and all(e.is_set() for e in self._started.values()):
            self._ready = True
            self.notify.ready(f"reading {', '.join(s.name for s in self.sources)}")
        self.notify.watchdog()
        if self._reload_requested and not stop.is_set():
            self._reload_requested = False
            self._reload()

    def _reload(self) -> None:
        self.notify.reloading()
        try:
            if self.on_reload is not None:
                self.on_reload()
            self.reloads += 1
            log.info("configuration reloaded")
        except Exception as exc:  # a bad new config must not stop the running watcher
            self.stats.hook_errors += 1
            log.error("reload failed, the running configuration stays: %s: %s",
                      type(exc).__name__, exc)
        self.notify.ready(f"reloaded ({self.reloads} times)")

    def _run_periodic(self) -> None:
        for task in self.periodic:
            try:
                task(time.monotonic())
            except Exception as exc:  # a policy failure must not stop event storage
                self.stats.hook_errors += 1
                log.error("periodic task failed: %s: %s", type(exc).__name__, exc)

    def _collect(self) -> tuple[list[SourceBatch], int]:
        """The first batch (waiting), then whatever arrives within the flush interval
        (while batches are sparse, each within QUIET_S of the last), up to
        COLLECT_RECORDS records."""
        batches: list[SourceBatch] = []
        finished = 0
        held = 0
        try:
            first = self._queue.get(timeout=1.0)
        except queue.Empty:
            return batches, finished
        now = time.monotonic()
        deadline = now + self.flush_interval_s
        taken = self._taken
        sparse = len(taken) < SPARSE_BATCHES or now - taken[0] > 1.0
        item: SourceBatch | None = first
        while True:
            if item is None:
                finished += 1
            else:
                taken.append(time.monotonic())
                batches.append(item)
                held += len(item.records)
                if held >= COLLECT_RECORDS:
                    break  # store now: the sources wait on the bounded queue meanwhile
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                item = self._queue.get(timeout=min(remaining, QUIET_S) if sparse
                                       else remaining)
            except queue.Empty:
                break
        return batches, finished

    def _store(self, batches: list[SourceBatch]) -> None:
        stored: list[Record] = []
        cxl: list[CxlEvent] = []
        for batch in _merged(batches):
            cxl += [r for r in batch.records if isinstance(r, CxlEvent)]
            stats = self.stats.for_source(batch.source)
            stats.read += len(batch.records)
            stats.ignored += batch.ignored
            result = self.store.add_events(
                batch.records,
                cursor=(batch.source, batch.cursor) if batch.cursor is not None else None,
            )
            stats.inserted += result.inserted + result.cxl_inserted  # CXL: memras.store.cxl
            stats.duplicates += result.duplicates + result.cxl_duplicates
            stats.flagged += result.flagged
            for sample in batch.skipped:
                self.store.count_skipped(batch.source, sample, reason="not parsable")
            stats.skipped += len(batch.skipped) + result.skipped
            for gap in batch.gaps:
                self.store.add_gap(source=gap.source, subject=gap.subject, count=gap.count,
                                   error_type=gap.error_type, message=gap.message)
                if self.on_gap is not None:
                    self.on_gap(gap)
            stats.gaps += len(batch.gaps)
            stored.extend(result.new_events)
        self.stats.batches_stored += len(batches)
        # The batch and its cursor are stored: what follows only reads the records, and
        # its failure is counted, never fatal (the writer must not die on one record).
        try:
            for edac in self._edac:
                edac.observe(stored)
            if self.event_log is not None:
                self.event_log.records(stored)
            if stored and self.on_stored is not None:
                self.on_stored(stored)
            if cxl and self.on_cxl is not None:
                self.on_cxl(cxl)
        except Exception as exc:  # health/alert failures are counted, never fatal
            self.stats.hook_errors += 1
            log.error("after-store hook failed: %s: %s", type(exc).__name__, exc)


def _merged(batches: list[SourceBatch]) -> list[SourceBatch]:
    """Consecutive batches of one source as one (records in order, the last cursor).

    Sources read in small slices to keep memory bounded; merging them here keeps the
    transactions few. Storing the merged records with the last cursor is as atomic as
    storing each slice with its own: all or nothing, and the cursor only moves past
    what is stored. Gaps are kept apart so each is recorded after the records before it.
    """
    out: list[SourceBatch] = []
    for batch in batches:
        last = out[-1] if out else None
        if (last is not None and last.source == batch.source and not last.gaps
                and len(last.records) < MERGE_RECORDS):
            last.records.extend(batch.records)
            last.skipped.extend(batch.skipped)
            last.gaps.extend(batch.gaps)
            last.ignored += batch.ignored
            if batch.cursor is not None:
                last.cursor = batch.cursor
        else:
            out.append(SourceBatch(source=batch.source, records=list(batch.records),
                                   cursor=batch.cursor, skipped=list(batch.skipped),
                                   gaps=list(batch.gaps), ignored=batch.ignored))
    return out
