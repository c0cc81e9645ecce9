"""Small read-side helpers for other front ends (``memras status``, the TUI).

Write-side callers use :class:`memras.alerts.service.AlertService`.
"""

from __future__ import annotations

from typing import Any

from memras.alerts.alert import Alert, AlertState
from memras.alerts.service import SqlAlertStore
from memras.store.store import Store


def alert_title(alert: Alert) -> str:
    """One line: ``#12 CRITICAL ue CPU0_DIMM_A1: message`` (unescaped; escape to show)."""
    dimm = alert.dimm_label or alert.dimm_id or "-"
    number = f"#{alert.id} " if alert.id is not None else ""
    repeats = f" (x{alert.repeats + 1})" if alert.repeats else ""
    return f"{number}{alert.severity.value.upper()} {alert.kind.value} {dimm}: " \
           f"{alert.message}{repeats}"


def open_alerts(db_url: str) -> list[dict[str, Any]]:
    """Open alerts in the database as v1 payloads plus a ``title`` line, oldest first.

    Raises:
        StoreError: there is no database at ``db_url`` (it is not created).
    """
    with Store.open_readonly(db_url) as store:
        alerts = SqlAlertStore(store).list(AlertState.OPEN)
    return [{**alert.to_payload(), "title": alert_title(alert)} for alert in alerts]
