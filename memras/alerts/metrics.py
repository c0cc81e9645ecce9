"""Every DIMM's numbers for the metric hooks (prometheus): counts, verdict, last event, labels.

:class:`StoreMetrics` is the snapshot function the alert :class:`~memras.alerts.dispatcher.
Dispatcher` publishes with (:meth:`AlertService.open` installs it), so a metrics hook sees
every DIMM from the first publish, errors or not:

* the DIMMs are the host's inventory, then any DIMM the database holds errors or a verdict
  for that the inventory does not list (a module since removed, a copied database);
* the corrected and uncorrected counts are the errors (``sum(count)``: one EDAC record may
  report several) attributed to the DIMM (``memras_error.dimm_id``); uncorrected includes
  deferred and fatal (:attr:`memras.records.ErrorType.is_uncorrected`);
* the last event time is the newest of those rows' event times (None: no error);
* the verdict is health's latest recorded one, ``ok`` for a DIMM never judged;
* the labels that join with node_exporter's EDAC collector: ``controller`` (the EDAC
  ``mcN`` number) and, for drivers with the csrow layout (``csrowN/chM_ce_count``),
  ``csrow`` and ``channel`` as node_exporter's ``node_edac_channel_*`` series name them;
  with the slot label, the EDAC label, serial and part number beside them.

Why counted incrementally: the whole ``memras_error`` table is grouped once (the first
snapshot), then each snapshot reads only the rows stored since (an id range: the primary
key), so a watcher refreshing its metrics every few seconds costs a few small reads,
however large the database. A running total also never goes down when retention prunes
old rows, which a Prometheus counter must not (a drop reads as a reset). ``settled`` is
the watcher's "rows up to here are attributed" mark (:attr:`memras.watcher.pipeline.
Pipeline.attributed_to`): rows past it may still get their DIMM, so they wait.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError

from memras.alerts.alert import AlertState
from memras.alerts.hooks import DimmMetrics, MetricsSnapshot
from memras.errors import MemrasError
from memras.health.dimm_names import DimmNames
from memras.health.module_registry import current_modules
from memras.health.verdict import VerdictState
from memras.health.verdict_rows import current_verdicts
from memras.records import ErrorType
from memras.store.models import ErrorRow

if TYPE_CHECKING:
    from memras.alerts.dispatcher import AlertStore
    from memras.host import Host
    from memras.store.store import Store
    from memras.topology.naming import NamedDimm

log = logging.getLogger("memras.alerts.metrics")

VERDICT_STATES = tuple(state.value for state in VerdictState)
_UNCORRECTED = tuple(t.value for t in ErrorType if t.is_uncorrected)
_KEY_MC = re.compile(r"mc(\d+)[:/]")  # health keys mc1:0:1:-1, inventory ids mc0/dimm2


@dataclass(slots=True)
class _Totals:
    corrected: int = 0
    uncorrected: int = 0
    last: datetime | None = None

    def add(self, type_: str, errors: int, last: datetime | None) -> None:
        if type_ == ErrorType.CORRECTED.value:
            self.corrected += errors
        elif type_ in _UNCORRECTED:
            self.uncorrected += errors
        else:
            return
        if last is not None and (self.last is None or last > self.last):
            self.last = last


class StoreMetrics:
    """A :data:`~memras.alerts.dispatcher.SnapshotFn` over the store and the host."""

    def __init__(self, store: Store, host: Host | None = None, *,
                 settled: Callable[[], int] | None = None) -> None:
        self.store = store
        self.host = host
        self.settled = settled  # rows up to this id have their DIMM (None: all rows)
        self._totals: dict[str, _Totals] = {}
        self._counted_to: int | None = None  # None: nothing counted yet
        self._last: MetricsSnapshot | None = None
        self._lock = threading.Lock()

    def __call__(self, alerts: AlertStore) -> MetricsSnapshot:
        """The snapshot now; when the database cannot be read, the last one with
        ``up`` False (the DIMM series stay, so a rule over them does not go quiet)."""
        with self._lock:
            try:
                snapshot = self._snapshot(alerts)
            except (MemrasError, SQLAlchemyError, OSError) as exc:
                log.warning("memras: metrics: cannot read the database: %s", exc)
                return replace(self._last or MetricsSnapshot(), up=False)
            self._last = snapshot
            return snapshot

    def _snapshot(self, alerts: AlertStore) -> MetricsSnapshot:
        self._count()
        names = DimmNames.of(self.host, self.store)
        inventory = {d.id: d for d in names.inventory}
        ids = list(inventory)
        ids += sorted((set(self._totals) | set(current_verdicts(self.store))) - set(ids))
        verdicts = current_verdicts(self.store, ids)
        modules = current_modules(self.store, ids)
        dimms = []
        for dimm_id in ids:
            named = inventory.get(dimm_id) or names.find(dimm_id)
            totals = self._totals.get(dimm_id, _Totals())
            verdict = verdicts.get(dimm_id)
            module = modules.get(dimm_id)
            labels = _labels(dimm_id, named)
            if module is not None:
                labels["serial"] = labels["serial"] or module.serial
                labels["part"] = labels["part"] or module.part
            dimms.append(DimmMetrics(
                dimm_id, labels.pop("dimm_label") or None, totals.corrected,
                totals.uncorrected,
                str(verdict.state) if verdict is not None else VerdictState.OK.value,
                last_event=totals.last.replace(tzinfo=UTC).timestamp() if totals.last else None,
                **labels))
        open_count = len(alerts.list(AlertState.OPEN))
        return MetricsSnapshot(dimms=tuple(dimms), alerts_open=open_count)

    def _count(self) -> None:
        """Add the rows stored since the last snapshot (all of them the first time)."""
        c = ErrorRow.__table__.c
        with self.store._read() as conn:
            newest = conn.scalar(select(func.max(c.id))) or 0
        upto = newest if self.settled is None else min(newest, self.settled())
        start = self._counted_to or 0
        if self._counted_to is not None and upto <= start:
            return
        query = (select(c.dimm_id, c.type, func.sum(c.count), func.max(c.time))
                 .where(c.dimm_id.is_not(None), c.id > start, c.id <= upto)
                 .group_by(c.dimm_id, c.type))
        with self.store._read() as conn:
            rows: list[Any] = list(conn.execute(query).all())
        for dimm_id, type_, errors, last in rows:
            self._totals.setdefault(dimm_id, _Totals()).add(type_, int(errors or 0), last)
        self._counted_to = upto


def _labels(dimm_id: str, named: NamedDimm | None) -> dict[str, str]:
    """The series labels of one DIMM (every one present, '' when unknown)."""
    info = named.info if named is not None else None
    edac = info.edac if info is not None else None
    smbios = info.smbios if info is not None else None
    slot = named.display if named is not None and named.display != dimm_id else ""
    controller = str(edac.mc) if edac is not None else ""
    if not controller and (found := _KEY_MC.match(dimm_id)):
        controller = found.group(1)
    csrow = channel = ""
    if edac is not None and "csrow" in edac.location:  # node_exporter's csrow layout
        csrow = str(edac.location["csrow"])
        channel = str(edac.location.get("channel", ""))
    label = edac.label if edac is not None else ""
    if not label and named is not None and len(named.names) > 1 and info is None:
        label = named.names[1]  # a stored DIMM: the label its errors printed
    return {"slot": slot, "dimm_label": label, "controller": controller, "csrow": csrow,
            "channel": channel,
            "serial": smbios.serial.strip() if smbios is not None else "",
            "part": smbios.part_number.strip() if smbios is not None else ""}


METRICS_INTERVAL_S = 15.0  # the watcher's metric refresh (Prometheus scrapes every 15-60 s)


class MetricsTick:
    """A watcher periodic task: publish the metrics at the first tick, then every
    ``interval_s``, without waiting for a delivery in progress (the writer thread runs
    it: a slow webhook must not stall ingestion; the delivery publishes when it ends)."""

    def __init__(self, publish: Callable[..., bool], interval_s: float = METRICS_INTERVAL_S
                 ) -> None:
        self.publish = publish
        self.interval_s = interval_s
        self._due: float | None = None

    def __call__(self, now: float) -> None:
        if self._due is not None and now < self._due:
            return
        if self.publish(wait=False):
            self._due = now + self.interval_s
