"""Messages the thin workers post: one dataclass per core call, nothing else.

A worker calls one core function (``memras.views``, the alert service, the audit
trail) and posts one of these; the screen renders it on the UI thread. The live
feed's message carries the newest rows *as of its cursor*, so ``can_replace`` may
drop an older one from the queue without losing anything the feed would show.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from textual.message import Message


@dataclass
class LoadFailed(Message):
    """A worker's core call raised; ``what`` names the view, ``error`` says why."""

    what: str
    error: str


@dataclass
class DashboardLoaded(Message):
    summary: Any  # memras.views.HostSummary
    recent: Any  # memras.views.RecentErrors | None
    dimms: list[Any]  # memras.views.DimmRow
    alerts: list[Any]  # memras.alerts.alert.Alert (open)
    store_note: str = ""  # why the database part is empty, if it is


@dataclass
class DashboardReady(Message):
    """The dashboard has painted its first complete frame (bench/tui_first_paint.py)."""


@dataclass
class EventsArrived(Message):
    rows: list[Any]  # memras.views.FeedRow, newest first, at most the feed's length
    last_id: int
    new: int  # events seen since the previous message was *produced*

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, EventsArrived)


@dataclass
class DetailLoaded(Message):
    detail: Any  # memras.views.DimmDetail


@dataclass
class MapLoaded(Message):
    cells: list[Any]  # memras.views.BlockCell
    dimms: list[Any]  # memras.topology.inventory.DimmInfo


@dataclass
class AlertsLoaded(Message):
    alerts: list[Any]


@dataclass
class AlertChanged(Message):
    """An alert was acked or resolved through the alert service (hooks told)."""

    action: str  # "ack" | "resolve"
    alert: Any  # memras.alerts.alert.Alert, after the change
    warnings: str = ""  # hooks that did not load, as the CLI prints them on stderr


@dataclass
class AuditLoaded(Message):
    entries: list[Any]


@dataclass
class AuditVerified(Message):
    report: Any  # memras.audit.chain.ChainReport


@dataclass
class AuditExported(Message):
    path: str
    rows: int


@dataclass
class InventoryLoaded(Message):
    dimms: list[Any] = field(default_factory=list)
