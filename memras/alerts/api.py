"""Small read-side helpers for other front ends (``memras status``, the TUI).

Write-side callers use :class:`memras.alerts.service.AlertService`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from memras.alerts.alert import Alert, AlertState
from memras.alerts.naming import dimm_namer, named_all
from memras.alerts.service import SqlAlertStore
from memras.store.store import Store

if TYPE_CHECKING:
    from memras.host import Host


def alert_title(alert: Alert) -> str:
    """One line: ``#12 CRITICAL ue P1-DIMMA1: message`` (unescaped; escape to show): the
    DIMM by its slot label when the alert was read with a host (memras.alerts.naming)."""
    dimm = alert.dimm_shown
    number = f"#{alert.id} " if alert.id is not None else ""
    repeats = f" (x{alert.repeats + 1})" if alert.repeats else ""
    return f"{number}{alert.severity.value.upper()} {alert.kind.value} {dimm}: " \
           f"{alert.message}{repeats}"


def open_alerts(db_url: str, host: Host | None = None) -> list[dict[str, Any]]:
    """Open alerts in the database as v1 payloads plus a ``title`` line, oldest first;
    with ``host``, each DIMM named by its slot label now (``dimm.name``).

    Raises:
        StoreError: there is no database at ``db_url`` (it is not created).
    """
    with Store.open_readonly(db_url) as store:
        alerts = SqlAlertStore(store).list(AlertState.OPEN)
        if host is not None and alerts:
            alerts = named_all(alerts, dimm_namer(host, store))
    return [{**alert.to_payload(), "title": alert_title(alert)} for alert in alerts]
