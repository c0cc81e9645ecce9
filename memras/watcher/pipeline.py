"""What happens after the watcher stores a batch: health verdicts, then alerts.

The watcher's writer thread calls :meth:`Pipeline.after_store` with the events
that were *new* (duplicates from a second source are never judged twice). The
health engine runs right there: it is local, in-process and writes its own small
tables, so verdicts exist as soon as the events do. Alert delivery is different:
a webhook can hang for its whole timeout and retries sleep, so alerts go through
a bounded queue to one alert thread and a slow hook never delays ingestion.
Gaps the sources prove (lost kmsg records, counts no event explains) become
alerts too: an operator must know when the record is incomplete.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from memras.alerts.alert import Alert
from memras.alerts.service import AlertService, load_alerts_config
from memras.errors import MemrasError
from memras.health.api import HealthEngine
from memras.health.config import load_config
from memras.health.cxl_poison import CxlPoisonWatch
from memras.health.dimm_names import attribute_errors
from memras.records import CxlEvent, Record
from memras.workflow.closing import record_swaps

if TYPE_CHECKING:
    from memras.host import Host
    from memras.store.store import Store

log = logging.getLogger("memras.watcher.pipeline")

ALERT_QUEUE_MAX = 10_000  # alerts waiting for delivery; beyond it they are counted, not queued


class Pipeline:
    def __init__(self, store: Store, host: Host, *, config_path: str | None = None) -> None:
        self.engine = HealthEngine(load_config(config_path), store, host)
        self.store = store
        # CXL poison: its pages out of service by [page] action (memras.health.cxl_poison),
        # in the engine's page book, so the memory_failure it causes is known as memras's
        self.poison = CxlPoisonWatch(store, host, self.engine.page_book,
                                     action=self.engine.config.page_action,
                                     config=self.engine.config)
        # memras_error rows up to this id have a DIMM, or none could be found; 0 at
        # start, so rows stored before memras attributed them are done once per start
        self.attributed_to = 0
        self.alerts = AlertService.open(store, load_alerts_config(config_path), host=host)
        try:  # modules swapped while memras was not looking: audited, their alerts resolved
            record_swaps(store, config_path=config_path, host=host, alerts=self.alerts)
        except MemrasError as exc:
            log.warning("recording a module swap failed: %s", exc.msg)
        self.changes = 0
        self.on_change: Callable[[Any], object] | None = None  # e.g. the journal's EventLog
        self.alerts_dropped = 0
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=ALERT_QUEUE_MAX)
        self._thread = threading.Thread(target=self._deliver, name="memras-alerts", daemon=True)
        self._thread.start()

    def after_store(self, records: list[Record]) -> None:
        # each stored row gets the DIMM id the engine judges it under (memras_error.dimm_id)
        self.attributed_to = attribute_errors(self.store, self.engine.resolver,
                                              self.attributed_to)
        for change in self.engine.process(records):
            self.changes += 1
            if self.on_change is not None:
                self.on_change(change)
            self._enqueue(("change", change))

    def after_cxl(self, events: list[CxlEvent]) -> None:
        """The CXL records of a stored batch: poison acted on, memdev verdicts updated."""
        for change in self.poison.process(events):
            self.changes += 1
            if self.on_change is not None:
                self.on_change(change)
            self._enqueue(("change", change))

    def on_gap(self, gap: Any) -> None:
        self._enqueue(("gap", gap))

    def _enqueue(self, item: tuple[str, Any]) -> None:
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            self.alerts_dropped += 1  # they are in the store; the TUI and `alerts list` show them

    def _deliver(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            kind, payload = item
            try:
                if kind == "change":
                    self.alerts.raise_change(payload)
                else:
                    self.alerts.raise_alert(Alert.from_gap(
                        payload.message, dimm_id=None, source=payload.source,
                        evidence={"subject": payload.subject, "count": payload.count,
                                  "error_type": payload.error_type}))
            except Exception as exc:  # delivery problems are counted by the dispatcher
                log.error("alert delivery failed: %s: %s", type(exc).__name__, exc)

    def close(self, timeout_s: float = 30.0) -> None:
        """Deliver what is queued (bounded by ``timeout_s``), then stop the alert thread."""
        self._queue.put(None)
        self._thread.join(timeout=timeout_s)
        self.alerts.close()


def after_store_hook(ctx: Any, store: Store) -> Pipeline:
    """The pipeline for ``memras watch`` (page actions need a host allowed to write)."""
    return Pipeline(store, ctx.writable_host(), config_path=ctx.config)


def make_hook(pipeline: Pipeline) -> Callable[[list[Record]], None]:
    return pipeline.after_store
