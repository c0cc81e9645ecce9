"""Alerts over the memras database: open, ack, resolve, list — for watcher, CLI and TUI.

:class:`SqlAlertStore` is the :class:`~memras.alerts.dispatcher.AlertStore` on the
shared store (tables in :mod:`memras.alerts.models`). :class:`AlertService` is what
front ends call::

    service = AlertService.open(store, config)        # loads the configured hooks
    service = AlertService.configured(store, path)    # the same, config read from a file
    service.raise_alert(Alert.from_change(change))    # de-dup, store, deliver
    service.ack(12, by="ana", note="replacing Friday")
    service.resolve(12)
"""

from __future__ import annotations

import builtins
import getpass
import os
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO, overload

from sqlalchemy import select

from memras.alerts.alert import Alert, AlertKind, AlertState, Severity
from memras.alerts.config import AlertsConfig
from memras.alerts.dispatcher import Delivery, Dispatcher, HookResult, SubmitResult
from memras.alerts.hooks import load_hooks
from memras.alerts.models import AlertRow, DeliveryRow
from memras.config import read_config_file
from memras.errors import UsageError


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

    def __init__(self, store: Any) -> None:
        self.store = store

    def add(self, alert: Alert) -> Alert:
        with self.store.session() as session:
            row = _to_row(alert, AlertRow())
            session.add(row)
            session.flush()
            return alert.replace(id=row.id)

    def update(self, alert: Alert) -> None:
        with self.store.session() as session:
            row = session.get(AlertRow, alert.id)
            if row is None:
                raise UsageError(f"no alert with id {alert.id}")
            _to_row(alert, row)

    def get(self, alert_id: int) -> Alert | None:
        with self.store.session(write=False) as session:
            row = session.get(AlertRow, alert_id)
            return None if row is None else _from_row(row)

    def find_unresolved(self, key: str) -> Alert | None:
        query = (select(AlertRow).where(AlertRow.dedup_key == key,
                                        AlertRow.state != AlertState.RESOLVED.value)
                 .order_by(AlertRow.id.desc()).limit(1))
        with self.store.session(write=False) as session:
            row = session.scalars(query).first()
            return None if row is None else _from_row(row)

    def list(self, state: AlertState | None = None) -> list[Alert]:
        query = select(AlertRow).order_by(AlertRow.id)
        if state is not None:
            query = query.where(AlertRow.state == state.value)
        with self.store.session(write=False) as session:
            return [_from_row(row) for row in session.scalars(query)]

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


def load_alerts_config(path: str | Path | None) -> AlertsConfig:
    """The ``[alerts]`` table of the memras config (no path: the default config file)."""
    return AlertsConfig.from_dict(read_config_file(path).section("alerts"))


def current_user() -> str:
    return os.environ.get("SUDO_USER") or getpass.getuser()


class AlertService:
    """Raise, acknowledge, resolve and list alerts; hooks hear about each change."""

    def __init__(self, dispatcher: Dispatcher, load_failures: Mapping[str, str] | None = None,
                 ) -> None:
        self.dispatcher = dispatcher
        self.alerts = dispatcher.store
        self.load_failures = dict(load_failures or {})  # hook name -> why it did not load

    @classmethod
    def open(cls, store: Any, config: AlertsConfig | None = None, *,
             only: list[str] | None = None, warn: TextIO | None = None) -> AlertService:
        """Over the memras ``Store``, with the hooks ``config`` enables."""
        config = config or AlertsConfig()
        report = load_hooks(config, only=only, warn=warn)
        return cls(Dispatcher(SqlAlertStore(store), report.hooks, config), report.failures)

    @classmethod
    def configured(cls, store: Any, config_path: str | Path | None, *,
                   warn: TextIO | None = None) -> AlertService:
        """What every front end acting on alerts opens: the hooks of ``--config``.

        ``memras alerts ack|resolve`` and the TUI's ack and resolve both come here, so
        the same hooks hear about the same change (webhook and prometheus get acked and
        resolved alerts; exec triggers, like rasdaemon's, run only for new alerts).
        ``config_path`` None means the default config file, as for every command.
        """
        return cls.open(store, load_alerts_config(config_path), warn=warn)

    def raise_alert(self, alert: Alert) -> SubmitResult:
        return self.dispatcher.submit(alert)

    def raise_change(self, change: Any) -> SubmitResult:
        """From a health HealthChange."""
        return self.dispatcher.submit(Alert.from_change(change))

    def get(self, alert_id: int) -> Alert:
        alert = self.alerts.get(alert_id)
        if alert is None:
            raise UsageError(f"no alert with id {alert_id}",
                             hint="see `memras alerts list --state all`")
        return alert

    def list(self, state: AlertState | None = None) -> list[Alert]:
        return self.alerts.list(state)

    def ack(self, alert_id: int, *, by: str | None = None, note: str | None = None) -> Alert:
        alert = self.get(alert_id)
        if alert.state is AlertState.RESOLVED:
            raise UsageError(f"alert {alert_id} is already resolved")
        acked = alert.replace(state=AlertState.ACKED, acked_by=by or current_user(),
                              acked_at=datetime.now(UTC), ack_note=note)
        return self._change_state(acked)

    def resolve(self, alert_id: int) -> Alert:
        alert = self.get(alert_id)
        if alert.state is AlertState.RESOLVED:
            return alert
        return self._change_state(alert.replace(state=AlertState.RESOLVED,
                                                resolved_at=datetime.now(UTC)))

    def send_test(self) -> builtins.list[HookResult]:
        return self.dispatcher.send_test()

    def deliveries(self, alert_id: int) -> builtins.list[Delivery]:
        return self.alerts.deliveries(alert_id)

    def close(self) -> None:
        self.dispatcher.close()

    def _change_state(self, alert: Alert) -> Alert:
        self.alerts.update(alert)
        self.dispatcher.notify_state(alert)
        return alert
