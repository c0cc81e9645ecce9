"""What other areas call: verdicts now or as of a past moment, history, the engine.

    current_verdicts(store, at=None) -> {dimm_id: Verdict}   recorded verdicts
    verdict_history(store, dimm_id) -> [Verdict]             oldest first
    replay_verdicts(store, config, at=None) -> {dimm_id: Verdict}
        recomputed from the stored events up to ``at`` (nothing written, no page
        action): what the rules say, with full evidence as of that moment; a slot
        whose module was replaced is judged from the replacement on, one whose verdict
        was closed (memras.health.closing) from the closing on
    register_modules / record_replacement / current_modules / module_history
        the module registry (memras.health.module_registry): a replaced module is a new DIMM
    HealthEngine(config, store, host=None).process(events) -> [HealthChange]
    event_from_stored(StoredError) -> MemoryErrorEvent
    record_from_stored(StoredError) -> Record   (memory_failure rows: MemoryFailureEvent)
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from memras.health.closing import read_closings
from memras.health.config import Config
from memras.health.engine import ChangeKind, HealthChange, HealthEngine
from memras.health.keys import DimmResolver
from memras.health.module_registry import module_boundaries
from memras.health.page_action import MemoryPageBook, PageAction, PageOutcome, StorePageBook
from memras.health.verdict import Verdict
from memras.health.verdict_rows import current_verdicts, verdict_history
from memras.records import (
    ErrorType,
    MemoryErrorEvent,
    MemoryFailureEvent,
    Record,
    Source,
    TimeSource,
)
from memras.store.results import MEMORY_FAILURE_TYPE, StoredError

if TYPE_CHECKING:
    from memras.host import Host
    from memras.store.store import Store

__all__ = ["ChangeKind", "HealthChange", "HealthEngine", "current_verdicts",
           "event_from_stored", "record_from_stored", "replay_verdicts", "verdict_history"]


def event_from_stored(stored: StoredError) -> MemoryErrorEvent:
    """A StoredError (memras.store) back into the record health judges."""
    try:
        error_type = ErrorType(stored.type)
    except ValueError:
        error_type = ErrorType.INFO
    try:
        source = Source(stored.source)
    except ValueError:
        source = Source.TRACE
    return MemoryErrorEvent(
        error_type=error_type, source=source, count=stored.count or 1, timestamp=stored.time,
        uptime_s=stored.uptime, address=stored.address,
        normalized_address=stored.normalized_address, message=stored.message or "",
        driver=stored.driver or "", driver_detail=stored.driver_detail or "",
        location=stored.location, raw=stored.raw or "",
        time_source=_time_source(getattr(stored, "time_source", None)))


def _time_source(value: str | None) -> TimeSource | None:
    """A stored row's time source; None (rows from before it was kept) judges as real."""
    try:
        return None if value is None else TimeSource(value)
    except ValueError:
        return None


def record_from_stored(stored: StoredError) -> Record:
    """A StoredError back into its record: a memory_failure row (the kernel poisoned a
    page: a UE the engine counts) or a memory error."""
    if stored.type != MEMORY_FAILURE_TYPE and stored.rasdaemon_table != "memory_failure_event":
        return event_from_stored(stored)  # (no rasdaemon link with [store] rasdaemon_mirror off)
    page_type, _, result = (stored.message or "").rpartition(": ")
    try:
        source = Source(stored.source)
    except ValueError:
        source = Source.TRACE
    return MemoryFailureEvent(
        pfn=(stored.address or 0) % (1 << 64) >> 12, page_type=page_type, action_result=result,
        source=source, timestamp=stored.time, uptime_s=stored.uptime, raw=stored.raw or "")


class _ReplayPageBook(MemoryPageBook):
    """A replay's page book: its own outcomes in RAM, and the pages the watcher really
    offlined (read from the store, never written), so their CEs count as contained."""

    def __init__(self, store: Store) -> None:
        super().__init__()

        self._stored = StorePageBook(store)

    def get(self, page: int) -> PageOutcome | None:
        mine = super().get(page)
        if mine is not None:
            return mine
        stored = self._stored.get(page)
        return stored if stored is not None and stored.done else None


def replay_verdicts(store: Store, config: Config | None = None, at: datetime | None = None,
                    host: Host | None = None, *, resolver: DimmResolver | None = None
                    ) -> tuple[dict[str, Verdict], list[HealthChange]]:
    """Recompute verdicts from stored events up to ``at``; nothing is written.

    ``resolver`` maps an event to its DIMM instead of the host's inventory (a page of a
    memory_failure record is only a DIMM's through the memory map)."""
    memory_types = [t.value for t in ErrorType if t != ErrorType.INFO] + [MEMORY_FAILURE_TYPE]
    events = [record_from_stored(s) for s in store.errors(until=at, type=memory_types)]

    engine = HealthEngine(config, None, host, resolver=resolver,
                          page_book=_ReplayPageBook(store), record=False,
                          boundaries=module_boundaries(store),
                          closings=read_closings(store))
    engine.config = _without_page_writes(engine.config)
    changes = engine.process(events)
    engine.cut_modules(at)  # a module replaced after its last error is judged new, too
    return engine.verdicts(), changes


def _without_page_writes(config: Config) -> Config:
    from dataclasses import replace

    return replace(config, page_action=PageAction.ACCOUNT)
