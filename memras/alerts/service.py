"""Alerts over the memras database: open, ack, resolve, list — for watcher, CLI and TUI.

:class:`SqlAlertStore` is the :class:`~memras.alerts.dispatcher.AlertStore` on the
shared store (tables in :mod:`memras.alerts.models`). :class:`AlertService` is what
front ends call::

    service = AlertService.open(store, config)        # loads the configured hooks
    service = AlertService.configured(store, path)    # the same, config read from a file
    service.raise_alert(Alert.from_change(change))    # de-dup, store, deliver
    service.ack(12, by="ana", note="replacing Friday")
    service.resolve(12)
    service.ack_many([12, 13], note="...")            # several: what changed, what did not
    service.resolve_for_dimm("mc0/dimm2", reason="resolved by replacement #4",
                             reference={"replacement_id": 4})

Acknowledging keeps what was said: the note of the acknowledgement stays as written
(its author and time are the ack's), and a note given on an already acknowledged alert
is appended on a line of its own, with who and when. An ack without a note changes
nothing of an acknowledged alert. A resolve records who resolved it and why in the
alert's ``evidence["resolution"]`` (a replacement adds its id there), so an auditor
sees that the module was replaced, not that someone closed the alert.
"""

from __future__ import annotations

import builtins
import getpass
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO, overload

from sqlalchemy import func, select

from memras.alerts.alert import Alert, AlertKind, AlertState, Severity
from memras.alerts.config import AlertsConfig
from memras.alerts.dispatcher import (
    Delivery,
    DeliverySummary,
    Dispatcher,
    HookResult,
    SubmitResult,
    summarize,
)
from memras.alerts.hooks import load_hooks
from memras.alerts.metrics import StoreMetrics
from memras.alerts.models import AlertRow, DeliveryRow
from memras.alerts.naming import Namer, dimm_namer, named
from memras.config import read_config_file
from memras.errors import UsageError

if TYPE_CHECKING:
    from memras.host import Host
    from memras.store.store import Store


@overload
def _naive(when: datetime) -> datetime: ...
@overload
def _naive(when: datetime | None) -> datetime | None: ...
def _naive(when: datetime | None) -> datetime | None:
    if when is None:
        return None
    aware = when if when.tzinfo is not None else when.replace(tzinfo=UTC)
    return aware.astimezone(UTC).replace(tzinfo=None)


@overload
def _aware(when: datetime) -> datetime: ...
@overload
def _aware(when: datetime | None) -> datetime | None: ...
def _aware(when: datetime | None) -> datetime | None:
    return None if when is None else when.replace(tzinfo=UTC)


def _to_row(alert: Alert, row: AlertRow) -> AlertRow:
    row.time = _naive(alert.time)
    row.kind, row.severity, row.state = alert.kind.value, alert.severity.value, alert.state.value
    row.dimm_id, row.dimm_label, row.message = alert.dimm_id, alert.dimm_label, alert.message
    row.verdict, row.rule_ids = alert.verdict, list(alert.rule_ids)
    row.evidence = alert.to_payload()["evidence"]
    row.dedup_key, row.repeats = alert.key, alert.repeats
    row.last_notified_at = _naive(alert.last_notified_at)
    row.acked_by, row.ack_note = alert.acked_by, alert.ack_note
    row.acked_at = _naive(alert.acked_at)
    row.resolved_at = _naive(alert.resolved_at)
    return row


def _from_row(row: AlertRow) -> Alert:
    return Alert(
        kind=AlertKind(row.kind), severity=Severity(row.severity), message=row.message,
        time=_aware(row.time), dimm_id=row.dimm_id, dimm_label=row.dimm_label,
        evidence=dict(row.evidence or {}), verdict=row.verdict,
        rule_ids=tuple(row.rule_ids or ()), state=AlertState(row.state), id=row.id,
        acked_by=row.acked_by, acked_at=_aware(row.acked_at), ack_note=row.ack_note,
        resolved_at=_aware(row.resolved_at), last_notified_at=_aware(row.last_notified_at),
        repeats=row.repeats, key=row.dedup_key,
    )


class SqlAlertStore:
    """Alerts and delivery records in the memras database (``Store.session()``)."""

    def __init__(self, store: Store, names: Namer | None = None) -> None:
        self.store = store
        self.names = names  # each alert read gets its DIMM's slot label (alerts.naming)

    def _read(self, row: AlertRow) -> Alert:
        return named(_from_row(row), self.names)

    def add(self, alert: Alert) -> Alert:
        with self.store.session() as session:
            row = _to_row(alert, AlertRow())
            session.add(row)
            session.flush()
            return named(alert.replace(id=row.id), self.names)

    def update(self, alert: Alert) -> None:
        with self.store.session() as session:
            row = session.get(AlertRow, alert.id)
            if row is None:
                raise UsageError(f"no alert with id {alert.id}")
            _to_row(alert, row)

    def get(self, alert_id: int) -> Alert | None:
        with self.store.session(write=False) as session:
            row = session.get(AlertRow, alert_id)
            return None if row is None else self._read(row)

    def find_unresolved(self, key: str) -> Alert | None:
        query = (select(AlertRow).where(AlertRow.dedup_key == key,
                                        AlertRow.state != AlertState.RESOLVED.value)
                 .order_by(AlertRow.id.desc()).limit(1))
        with self.store.session(write=False) as session:
            row = session.scalars(query).first()
            return None if row is None else self._read(row)

    def list(self, state: AlertState | None = None) -> list[Alert]:
        query = select(AlertRow).order_by(AlertRow.id)
        if state is not None:
            query = query.where(AlertRow.state == state.value)
        with self.store.session(write=False) as session:
            return [self._read(row) for row in session.scalars(query)]

    def record_delivery(self, delivery: Delivery) -> None:
        with self.store.session() as session:
            session.add(DeliveryRow(alert_id=delivery.alert_id, hook=delivery.hook,
                                    attempt=delivery.attempt, status=delivery.status,
                                    error=delivery.error, time=_naive(delivery.time)))

    def deliveries(self, alert_id: int) -> builtins.list[Delivery]:
        query = select(DeliveryRow).where(DeliveryRow.alert_id == alert_id).order_by(DeliveryRow.id)
        with self.store.session(write=False) as session:
            return [Delivery(r.alert_id, r.hook, r.attempt, r.status, r.error,
                             _aware(r.time)) for r in session.scalars(query)]

    def delivery_summaries(self, alert_ids: Iterable[int]) -> dict[int, DeliverySummary]:
        """Per alert, how its deliveries went (``memras alerts list``)."""
        ids = sorted(set(alert_ids))
        rows: builtins.list[Delivery] = []
        with self.store.session(write=False) as session:
            for start in range(0, len(ids), 500):  # SQLite's bound-parameter limit
                query = (select(DeliveryRow.alert_id, DeliveryRow.hook, DeliveryRow.attempt,
                                DeliveryRow.status, DeliveryRow.error, DeliveryRow.time)
                         .where(DeliveryRow.alert_id.in_(ids[start:start + 500]))
                         .order_by(DeliveryRow.id))
                rows += [Delivery(r.alert_id, r.hook, r.attempt, r.status, r.error or "",
                                  _aware(r.time)) for r in session.execute(query)]
        return summarize(rows)

    def delivery_counts(self) -> dict[str, dict[str, int]]:
        """Attempts per hook and status, over every alert and run (for metrics)."""
        query = (select(DeliveryRow.hook, DeliveryRow.status, func.count())
                 .group_by(DeliveryRow.hook, DeliveryRow.status))
        out: dict[str, dict[str, int]] = {}
        with self.store.session(write=False) as session:
            for hook, status, count in session.execute(query):
                out.setdefault(hook, {})[status] = int(count)
        return out


def load_alerts_config(path: str | Path | None) -> AlertsConfig:
    """The ``[alerts]`` table of the memras config (no path: the default config file)."""
    return AlertsConfig.from_dict(read_config_file(path).section("alerts"))


def current_user() -> str:
    return os.environ.get("SUDO_USER") or getpass.getuser()


@dataclass(frozen=True, slots=True)
class Changes:
    """What a bulk ack or resolve did: alerts changed, and alerts already so."""

    changed: list[Alert] = field(default_factory=list)
    unchanged: list[Alert] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"changed": [a.to_payload() for a in self.changed],
                "unchanged": [a.to_payload() for a in self.unchanged]}


def with_note(alert: Alert, note: str | None, by: str, at: datetime) -> Alert:
    """``alert`` acknowledged by ``by`` at ``at``, earlier notes kept.

    The first acknowledgement's note is stored as written (``acked_by``/``acked_at``
    say whose it is); any later note is a new line that names its author and time.
    """
    if alert.state is AlertState.OPEN:
        alert = alert.replace(state=AlertState.ACKED, acked_by=by, acked_at=at)
        if not alert.ack_note:
            return alert.replace(ack_note=note or None)
    if not note:
        return alert
    line = f"{at.astimezone(UTC):%Y-%m-%d %H:%M} UTC {by}: {note}"
    return alert.replace(ack_note=f"{alert.ack_note}\n{line}" if alert.ack_note else line)


def resolved(alert: Alert, by: str, at: datetime, reason: str | None = None,
             reference: Mapping[str, Any] | None = None) -> Alert:
    """``alert`` resolved, with who, when, why and a reference (e.g. a replacement id)
    in ``evidence["resolution"]``."""
    resolution = {"by": by, "at": at.isoformat(), "reason": reason, **dict(reference or {})}
    return alert.replace(state=AlertState.RESOLVED, resolved_at=at,
                         evidence={**alert.evidence, "resolution": resolution})


class AlertService:
    """Raise, acknowledge, resolve and list alerts; hooks hear about each change."""

    def __init__(self, dispatcher: Dispatcher, load_failures: Mapping[str, str] | None = None,
                 ) -> None:
        self.dispatcher = dispatcher
        self.alerts = dispatcher.store
        self.load_failures = dict(load_failures or {})  # hook name -> why it did not load
        self.metrics: StoreMetrics | None = None  # set by open(): the snapshot it publishes

    @classmethod
    def open(cls, store: Store, config: AlertsConfig | None = None, *,
             only: list[str] | None = None, warn: TextIO | None = None,
             host: Host | None = None) -> AlertService:
        """Over the memras ``Store``, with the hooks ``config`` enables; with ``host``,
        every alert raised or read names its DIMM by the slot label (``dimm.name``)."""
        config = config or AlertsConfig()
        report = load_hooks(config, only=only, warn=warn)
        names = dimm_namer(host, store) if host is not None else None
        metrics = StoreMetrics(store, host)  # every DIMM, for metric hooks (prometheus)
        service = cls(Dispatcher(SqlAlertStore(store, names), report.hooks, config,
                                 snapshot=metrics), report.failures)
        service.metrics = metrics
        return service

    @classmethod
    def configured(cls, store: Store, config_path: str | Path | None, *,
                   warn: TextIO | None = None, host: Host | None = None) -> AlertService:
        """What every front end acting on alerts opens: the hooks of ``--config``.

        ``memras alerts ack|resolve`` and the TUI's ack and resolve both come here, so
        the same hooks hear about the same change (webhook and prometheus get acked and
        resolved alerts; exec triggers, like rasdaemon's, run only for new alerts).
        ``config_path`` None means the default config file, as for every command.
        """
        return cls.open(store, load_alerts_config(config_path), warn=warn, host=host)

    def raise_alert(self, alert: Alert) -> SubmitResult:
        return self.dispatcher.submit(named(alert, getattr(self.alerts, "names", None)))

    def raise_change(self, change: Any) -> SubmitResult:
        """From a health HealthChange."""
        return self.raise_alert(Alert.from_change(change))

    def get(self, alert_id: int) -> Alert:
        alert = self.alerts.get(alert_id)
        if alert is None:
            raise UsageError(f"no alert with id {alert_id}",
                             hint="see `memras alerts list --state all`")
        return alert

    def list(self, state: AlertState | None = None) -> list[Alert]:
        return self.alerts.list(state)

    def unresolved_for_dimm(self, dimm_id: str, label: str | None = None) -> builtins.list[Alert]:
        """Open and acknowledged alerts of the DIMM ``dimm_id`` (or, stored before the
        DIMM had an id, labelled ``label``), oldest first."""
        alerts = self.alerts.list(AlertState.OPEN) + self.alerts.list(AlertState.ACKED)
        return sorted((a for a in alerts if a.dimm_id == dimm_id
                       or (label is not None and a.dimm_label == label)),
                      key=lambda a: a.id or 0)

    def ack(self, alert_id: int, *, by: str | None = None, note: str | None = None) -> Alert:
        changes = self.ack_alerts([self.get(alert_id)], by=by, note=note)
        return (changes.changed or changes.unchanged)[0]

    def ack_many(self, alert_ids: Iterable[int], *, by: str | None = None,
                 note: str | None = None) -> Changes:
        """Acknowledge each alert (all are checked before any is changed)."""
        return self.ack_alerts(self._all(alert_ids), by=by, note=note)

    def ack_alerts(self, alerts: builtins.list[Alert], *, by: str | None = None,
                   note: str | None = None) -> Changes:
        closed = [a.id for a in alerts if a.state is AlertState.RESOLVED]
        if closed:
            raise UsageError(f"alert {', '.join(map(str, closed))} "
                             f"{'is' if len(closed) == 1 else 'are'} already resolved",
                             hint="nothing was acknowledged")
        by, now = by or current_user(), datetime.now(UTC)
        return self._apply(alerts, lambda a: with_note(a, note, by, now))

    def resolve(self, alert_id: int, *, reason: str | None = None,
                reference: Mapping[str, Any] | None = None) -> Alert:
        changes = self.resolve_alerts([self.get(alert_id)], reason=reason, reference=reference)
        return (changes.changed or changes.unchanged)[0]

    def resolve_many(self, alert_ids: Iterable[int], *, reason: str | None = None,
                     by: str | None = None) -> Changes:
        """Resolve each alert (all are checked before any is changed)."""
        return self.resolve_alerts(self._all(alert_ids), reason=reason, by=by)

    def resolve_for_dimm(self, dimm_id: str, *, reason: str,
                         reference: Mapping[str, Any] | None = None,
                         by: str | None = None) -> Changes:
        """Resolve every unresolved alert of a DIMM, e.g. once its module is replaced."""
        return self.resolve_alerts(self.unresolved_for_dimm(dimm_id), reason=reason,
                                   reference=reference, by=by)

    def resolve_alerts(self, alerts: builtins.list[Alert], *, reason: str | None = None,
                       reference: Mapping[str, Any] | None = None,
                       by: str | None = None) -> Changes:
        by, now = by or current_user(), datetime.now(UTC)
        return self._apply(alerts, lambda a: a if a.state is AlertState.RESOLVED
                           else resolved(a, by, now, reason, reference))

    def send_test(self) -> builtins.list[HookResult]:
        return self.dispatcher.send_test()

    def deliveries(self, alert_id: int) -> builtins.list[Delivery]:
        return self.alerts.deliveries(alert_id)

    def delivery_summaries(self, alerts: Iterable[Alert]) -> dict[int, DeliverySummary]:
        """How each alert's deliveries went: failed attempts, last error, undelivered hooks."""
        return self.alerts.delivery_summaries(a.id for a in alerts if a.id is not None)

    def close(self) -> None:
        self.dispatcher.close()

    def _all(self, alert_ids: Iterable[int]) -> builtins.list[Alert]:
        """The alerts of ``alert_ids`` (each once, in order); an unknown id fails all."""
        return [self.get(i) for i in dict.fromkeys(alert_ids)]

    def _apply(self, alerts: builtins.list[Alert], change: Callable[[Alert], Alert]) -> Changes:
        """Store and announce each alert ``change`` alters; report the rest unchanged."""
        out = Changes()
        for alert in alerts:
            after = change(alert)
            if after == alert:
                out.unchanged.append(alert)
                continue
            self.alerts.update(after)
            self.dispatcher.notify_state(after)
            out.changed.append(after)
        return out
