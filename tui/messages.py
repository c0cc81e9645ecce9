"""Messages the thin workers post: one dataclass per core call, nothing else.

A worker calls one core function (``memras.views``, the alert service, the audit
trail) and posts one of these; the screen renders it on the UI thread. The live
feed's message carries the newest rows *as of its cursor*, so ``can_replace`` may
drop an older one from the queue without losing anything the feed would show.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from textual.message import Message

if TYPE_CHECKING:  # the core's result types; the screens' workers import what they call
    from memras.alerts.alert import Alert
    from memras.audit.chain import ChainReport
    from memras.audit.service import AuditEntry
    from memras.fleet.read import FleetDimm, FleetOverview, FleetVerdict
    from memras.topology.inventory import DimmInfo
    from memras.views import BlockCell, DimmDetail, DimmRow, FeedRow, HostSummary, RecentErrors


@dataclass
class LoadFailed(Message):
    """A worker's core call raised; ``what`` names the view, ``error`` says why."""

    what: str
    error: str


@dataclass
class DashboardLoaded(Message):
    summary: HostSummary
    recent: RecentErrors | None
    dimms: list[DimmRow]
    alerts: list[Alert]  # the open ones
    store_note: str = ""  # why the database part is empty, if it is


@dataclass
class DashboardReady(Message):
    """The dashboard has painted its first complete frame (bench/tui_first_paint.py)."""


@dataclass
class EventsArrived(Message):
    rows: list[FeedRow]  # newest first, at most the feed's length
    last_id: int
    new: int  # events seen since the previous message was *produced*

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, EventsArrived)


@dataclass
class DetailLoaded(Message):
    detail: DimmDetail


@dataclass
class MapLoaded(Message):
    cells: list[BlockCell]
    dimms: list[DimmInfo]


@dataclass
class AlertsLoaded(Message):
    alerts: list[Alert]


@dataclass
class AlertChanged(Message):
    """An alert was acked or resolved through the alert service (hooks told)."""

    action: str  # "ack" | "resolve"
    alert: Alert  # after the change
    warnings: str = ""  # hooks that did not load, as the CLI prints them on stderr


@dataclass
class AuditLoaded(Message):
    entries: list[AuditEntry]


@dataclass
class AuditVerified(Message):
    report: ChainReport


@dataclass
class AuditExported(Message):
    path: str
    rows: int


@dataclass
class InventoryLoaded(Message):
    dimms: list[DimmInfo] = field(default_factory=list)


@dataclass
class FleetLoaded(Message):
    """The central store's four views (memras.fleet.read.overview), as of ``at``."""

    overview: FleetOverview
    at: datetime


@dataclass
class FleetFailed(Message):
    """The central store could not be read: no URL, unreachable, no schema; the
    one-line error and what to do (MemrasError's msg and hint)."""

    error: str
    hint: str = ""


@dataclass
class FleetVerdictsLoaded(Message):
    dimm: FleetDimm
    verdicts: list[FleetVerdict]
