"""``[store] keep``: deleting stored errors older than a retention period, in small batches.

What is deleted: ``memras_error`` rows whose event time is older than ``now - keep``,
with the rasdaemon-format mirror row each is linked to (``rasdaemon_table`` /
``rasdaemon_id``; an mc_event's ``mce_record`` companion: ``rasdaemon_mce_id``, from
schema migration 8 on — an older row's companion is not known and stays), and their
share of ``memras_error_count`` (so ``summary`` without filters still equals the rows it
groups, as ``ras-mc-ctl --summary`` over the mirror).

What is kept however old, and why:

- **every row of a DIMM whose latest verdict is not ``ok``** (``memras_health_verdict``):
  an open verdict (watch, repair, replace) stands on the DIMM's whole history — the
  classifier's fault mode (rows, banks, ranks touched), its first-seen time and the
  counts the reasons quote. Deleting part of it would change the verdict the next time
  health rebuilds it, and the errors the operator is asked to act on would be gone.
- **the rows of a replaced DIMM up to its replacement** (``memras_replacement``): a
  replacement's audit rows (``memras_audit``) record why the module was pulled — the
  verdict and its evidence; the error rows are that evidence, and an auditor reading the
  trail must be able to see them. Rows after the replacement belong to the new module
  and age out normally (unless its own verdict is open).

Gaps, skipped-input counters, cursors, verdicts, page states, alerts and the audit
trail are never deleted here: they are small, and each is history of its own.

How: candidates are read in id order outside any write lock (``id > last`` pages),
then each batch of at most ``BATCH_ROWS`` is deleted in its own short write
transaction, so a prune never holds the lock the watcher's writer needs for longer
than one small batch. The watcher runs it as a periodic task
(:class:`PeriodicPrune`: a few batches per tick, a new pass every ``every_s``);
``memras prune`` runs a whole pass by hand (``--dry-run`` counts only).

This module sits in the store layer: it reads health's and workflow's tables by name
(when they exist) and imports neither.
"""

from __future__ import annotations

import logging
import time as _time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, delete, func, inspect, select, update

from memras.store.models import ErrorCountRow, ErrorRow
from memras.store.settings import StoreSettings

if TYPE_CHECKING:
    from memras.store.store import Store

log = logging.getLogger("memras.store.retention")

BATCH_ROWS = 500  # rows deleted per write transaction
DEFAULT_EVERY_S = 3600.0  # the watcher's pass interval
BATCHES_PER_TICK = 4  # the watcher's batches per periodic tick (about a second apart)
OK_STATE = "ok"  # memras.health.verdict.VerdictState.OK (health is a layer above)
MIRROR_TABLES = ("mc_event", "mce_record", "memory_failure_event")


def keep_from_config(section: Mapping[str, Any]) -> float | None:
    """Seconds of ``[store] keep`` (None: absent, keep everything); the whole table is
    checked (memras.store.settings)."""
    return StoreSettings.from_section(section).keep_s


@dataclass
class PruneResult:
    cutoff: datetime  # rows with an event time before this (naive UTC) are old
    dry_run: bool = False
    old: int = 0  # rows older than the cutoff, examined
    deleted: int = 0  # rows deleted (with --dry-run: that would be)
    kept_open_verdict: int = 0
    kept_replacement: int = 0
    mirror_deleted: int = 0  # rasdaemon-format rows deleted with them
    batches: int = 0
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["cutoff"] = self.cutoff.replace(tzinfo=UTC).isoformat()
        out["kept"] = self.kept_open_verdict + self.kept_replacement
        return out


@dataclass
class _Protection:
    """What must stay: DIMMs with an open verdict, and replaced DIMMs up to when."""

    open_dimms: set[str] = field(default_factory=set)
    replaced_until: dict[str, datetime] = field(default_factory=dict)

    def reason(self, dimm_id: str | None, when: datetime) -> str | None:
        if dimm_id is None:
            return None  # never attributed to a DIMM: no verdict or replacement cites it
        if dimm_id in self.open_dimms:
            return "open_verdict"
        until = self.replaced_until.get(dimm_id)
        if until is not None and when <= until:
            return "replacement"
        return None


def _naive(value: object) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value.replace(tzinfo=None) if isinstance(value, datetime) else None
    return datetime.fromisoformat(str(value)).replace(tzinfo=None)


def protection(conn: Connection) -> _Protection:
    """Read the open verdicts and the replacements (tables by name; absent: none)."""
    tables = set(inspect(conn).get_table_names())
    out = _Protection()
    if "memras_health_verdict" in tables:
        latest: dict[str, str] = {}
        for dimm_id, state in conn.exec_driver_sql(
                "SELECT dimm_id, state FROM memras_health_verdict ORDER BY time, id"):
            latest[dimm_id] = state
        out.open_dimms = {d for d, state in latest.items() if state != OK_STATE}
    if "memras_replacement" in tables:
        for dimm_id, finished, updated, created in conn.exec_driver_sql(
                "SELECT dimm_id, finished_at, updated_at, created_at FROM memras_replacement"):
            until = _naive(finished) or _naive(updated) or _naive(created)
            if until is None:
                continue
            if dimm_id not in out.replaced_until or out.replaced_until[dimm_id] < until:
                out.replaced_until[dimm_id] = until
    return out


_COLUMNS = ("id", "time", "dimm_id", "rasdaemon_table", "rasdaemon_id", "rasdaemon_mce_id",
            "type", "label", "mc", "top_layer", "middle_layer", "lower_layer", "count")


def new_result(keep_s: float, *, now: datetime | None = None,
               dry_run: bool = False) -> PruneResult:
    """The counts of a pass to come, with its cutoff: ``now - keep``."""
    now = now or datetime.now(UTC)
    return PruneResult(cutoff=(now.astimezone(UTC) - timedelta(seconds=keep_s))
                       .replace(tzinfo=None), dry_run=dry_run)


def passes(store: Store, result: PruneResult, *, batch_rows: int = BATCH_ROWS
           ) -> Iterator[PruneResult]:
    """One pruning pass, a batch at a time: counts into ``result`` and yields it after
    each batch (so a caller can pause between batches); ends when no old row is left."""
    cutoff, dry_run = result.cutoff, result.dry_run
    started = _time.perf_counter()
    t = ErrorRow.__table__
    with store.engine.connect() as conn:
        guard = protection(conn)
        conn.rollback()
    last = 0
    while True:
        with store.engine.connect() as conn:  # a read: no write lock taken
            rows = conn.execute(
                select(*(t.c[n] for n in _COLUMNS))
                # coalesce(): no index on it, so SQLite walks the primary key from
                # `last` (each batch reads on from where the last stopped: a pass reads
                # the table once) instead of the time index plus a sort of every old row
                # per batch, which ANALYZE statistics could make it pick
                .where(t.c.id > last, func.coalesce(t.c.time, cutoff) < cutoff)
                .order_by(t.c.id).limit(batch_rows)).mappings().all()
            conn.rollback()
        if not rows:
            break
        last = rows[-1]["id"]
        doomed = []
        for row in rows:
            why = guard.reason(row["dimm_id"], _naive(row["time"]) or cutoff)
            if why == "open_verdict":
                result.kept_open_verdict += 1
            elif why == "replacement":
                result.kept_replacement += 1
            else:
                doomed.append(row)
        result.old += len(rows)
        result.batches += 1
        if doomed and not dry_run:
            result.mirror_deleted += _delete(store, doomed)
        result.deleted += len(doomed)
        result.seconds = _time.perf_counter() - started
        yield result
        if len(rows) < batch_rows:
            break
    result.seconds = _time.perf_counter() - started


def prune(store: Store, keep_s: float, *, now: datetime | None = None, dry_run: bool = False,
          batch_rows: int = BATCH_ROWS) -> PruneResult:
    """A whole pass (see :func:`passes`); the counts of what was (or would be) deleted."""
    result = new_result(keep_s, now=now, dry_run=dry_run)
    for _ in passes(store, result, batch_rows=batch_rows):
        pass
    return result


def _delete(store: Store, rows: list[Any]) -> int:
    """One short write transaction: the rows, their mirror rows, their counts."""
    t = ErrorRow.__table__
    c = ErrorCountRow.__table__
    mirror: dict[str, list[int]] = {}
    counts: dict[tuple[Any, ...], list[int]] = {}
    for row in rows:
        table = row["rasdaemon_table"]
        if table in MIRROR_TABLES and row["rasdaemon_id"] is not None:
            mirror.setdefault(table, []).append(row["rasdaemon_id"])
        if row["rasdaemon_mce_id"] is not None:  # an mc_event's mce_record companion
            mirror.setdefault("mce_record", []).append(row["rasdaemon_mce_id"])
        key = (row["type"], row["label"] or "", *(-1 if row[n] is None else row[n] for n in
                                                  ("mc", "top_layer", "middle_layer",
                                                   "lower_layer")))
        acc = counts.setdefault(key, [0, 0])
        acc[0] += 1
        acc[1] += row["count"] or 0
    mirrored = 0
    with store._write_translated("prune old errors") as conn:  # noqa: SLF001 - same layer
        ids = [row["id"] for row in rows]
        conn.execute(delete(t).where(t.c.id.in_(ids)))
        # mirror rows, also those written before a `rasdaemon_mirror = false`
        if store.engine.dialect.name == "sqlite":
            for table, rids in mirror.items():  # names from MIRROR_TABLES only
                marks = ", ".join("?" * len(rids))
                done = conn.exec_driver_sql(f"DELETE FROM {table} WHERE id IN ({marks})",
                                            tuple(rids))
                mirrored += max(done.rowcount, 0)
        for (type_, label, mc, top, mid, low), (events, errors) in counts.items():
            match = (c.c.type == type_, c.c.label == label, c.c.mc == mc,
                     c.c.top_layer == top, c.c.middle_layer == mid, c.c.lower_layer == low)
            conn.execute(update(c).where(*match).values(events=c.c.events - events,
                                                        errors=c.c.errors - errors))
            conn.execute(delete(c).where(*match, c.c.events <= 0))
    return mirrored


class PeriodicPrune:
    """The watcher's periodic task: a pass every ``every_s`` seconds, a few batches per
    tick (the writer stores events between ticks), counts logged when a pass ends."""

    def __init__(self, store: Store, keep_s: float, *, every_s: float = DEFAULT_EVERY_S,
                 batches_per_tick: int = BATCHES_PER_TICK,
                 batch_rows: int = BATCH_ROWS,
                 wall: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.store = store
        self.wall = wall  # the wall clock the cutoff is taken from
        self.keep_s = keep_s
        self.every_s = every_s
        self.batches_per_tick = batches_per_tick
        self.batch_rows = batch_rows
        self.next_at: float | None = None  # monotonic; None: start at the first tick
        self.last: PruneResult | None = None
        self._pass: Iterator[PruneResult] | None = None

    def __call__(self, now: float) -> PruneResult | None:
        if self._pass is None:
            if self.next_at is not None and now < self.next_at:
                return None
            self.last = new_result(self.keep_s, now=self.wall())
            self._pass = passes(self.store, self.last, batch_rows=self.batch_rows)
        for _ in range(self.batches_per_tick):
            try:
                next(self._pass)
            except StopIteration:
                self._finish(now)
                return self.last
        return self.last

    def _finish(self, now: float) -> None:
        self._pass = None
        self.next_at = now + self.every_s
        r = self.last
        if r is not None and r.old:
            log.info("pruned %d stored errors older than %s (%d kept: %d open verdict, "
                     "%d replacement; %d rasdaemon rows)", r.deleted,
                     r.cutoff.isoformat(" ", "seconds"), r.kept_open_verdict +
                     r.kept_replacement, r.kept_open_verdict, r.kept_replacement,
                     r.mirror_deleted)



def watcher_tasks(store: Store, settings: StoreSettings) -> list[PeriodicPrune]:
    """The watcher's pruning task for ``[store]`` (none when ``keep`` is not set)."""
    return [] if settings.keep_s is None else [PeriodicPrune(store, settings.keep_s)]
