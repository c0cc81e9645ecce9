"""Alerts: list with a state filter, detail of the selected alert, ack with a note.

Workers call :class:`memras.alerts.service.SqlAlertStore` ``list`` and
:class:`~memras.alerts.service.AlertService` ``ack`` (which tells the hooks).
"""

from __future__ import annotations

import json

from memras.tui.messages import AlertAcked, AlertsLoaded, LoadFailed
from memras.tui.screens.prompt import PromptScreen
from memras.tui.widgets.chrome import ReadOnlyBanner
from memras.tui.widgets.format import safe, severity_text, when_text
from memras.tui.widgets.settled import MeasuredTable
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Static

from memras.alerts.model import AlertState

FILTERS = ("open", "acked", "resolved", "all")


class AlertsScreen(Screen[None]):
    CSS_PATH = "alerts.tcss"
    BINDINGS = [
        Binding("f", "cycle_filter", "Filter", id="alerts.filter"),
        Binding("k", "ack", "Ack…", id="alerts.ack"),
        Binding("f5", "reload", "Reload", id="alerts.reload"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.filter = "open"
        self.alerts: list[object] = []

    def compose(self) -> ComposeResult:
        yield ReadOnlyBanner()
        yield Header()
        yield Static("", id="filter-bar")
        table = MeasuredTable(id="alert-table", cursor_type="row")
        table.add_columns("#", "Severity", "State", "Kind", "DIMM", "Time", "Message")
        yield table
        yield Static("", id="alert-detail")
        yield Footer()

    def on_mount(self) -> None:
        self._filter_bar()
        self.load()

    @work(thread=True, exclusive=True, exit_on_error=False, group="alerts-load")
    def load(self) -> None:
        from memras.alerts.service import SqlAlertStore

        try:
            store = self.app.open_store()
            state = None if self.filter == "all" else AlertState(self.filter)
            alerts = SqlAlertStore(store).list(state) if store is not None else []
        except Exception as exc:
            self.post_message(LoadFailed("alerts", str(exc)))
            return
        self.post_message(AlertsLoaded(alerts))

    @work(thread=True, exclusive=True, exit_on_error=False, group="alerts-ack")
    def ack(self, alert_id: int, note: str) -> None:
        from memras.alerts.service import AlertService

        try:
            alert = AlertService.open(self.app.open_store()).ack(alert_id, note=note or None)
        except Exception as exc:
            self.post_message(LoadFailed(f"ack of alert {alert_id}", str(exc)))
            return
        self.post_message(AlertAcked(alert))

    def _filter_bar(self) -> None:
        text = Text("Show: ")
        for name in FILTERS:
            text.append(f" {name} ", style="reverse bold" if name == self.filter else "dim")
        text.append("   (f to change)", style="dim")
        self.query_one("#filter-bar", Static).update(text)

    @on(AlertsLoaded)
    def show_alerts(self, message: AlertsLoaded) -> None:
        self.alerts = message.alerts
        table = self.query_one("#alert-table", DataTable)
        table.clear()
        for a in message.alerts:
            table.add_row(str(a.id), severity_text(a.severity.value),
                          Text(a.state.value, style="bold" if a.state is AlertState.OPEN else ""),
                          a.kind.value, safe(a.dimm_label or a.dimm_id or "-"),
                          when_text(a.time), safe(a.message), key=str(a.id))
        if not message.alerts:
            self.query_one("#alert-detail", Static).update(
                Text(f"no {self.filter} alerts", style="green"))

    @on(DataTable.RowHighlighted, "#alert-table")
    def show_detail(self, event: DataTable.RowHighlighted) -> None:
        alert = next((a for a in self.alerts if str(a.id) == event.row_key.value), None)
        if alert is None:
            return
        text = Text.assemble((f"Alert #{alert.id}  ", "bold"), severity_text(alert.severity.value),
                             f"  {alert.state.value}  {alert.kind.value}\n")
        text.append_text(safe(alert.message))
        if alert.verdict:
            text.append(f"\nverdict {alert.verdict}  rules {', '.join(alert.rule_ids)}")
        if alert.acked_by:
            text.append("\nacked by ")
            text.append_text(safe(f"{alert.acked_by}: {alert.ack_note or ''}"))
        if alert.evidence:
            text.append("\nevidence ", style="dim")
            text.append_text(safe(json.dumps(dict(alert.evidence), default=str)[:300]))
        self.query_one("#alert-detail", Static).update(text)

    @on(AlertAcked)
    def acked(self, message: AlertAcked) -> None:
        self.notify(f"alert #{message.alert.id} acknowledged", title="Acked")
        self.load()

    @on(LoadFailed)
    def failed(self, message: LoadFailed) -> None:
        self.notify(f"{message.what}: {message.error}", title="Failed", severity="error")

    def action_cycle_filter(self) -> None:
        self.filter = FILTERS[(FILTERS.index(self.filter) + 1) % len(FILTERS)]
        self._filter_bar()
        self.load()

    def action_reload(self) -> None:
        self.load()

    def action_ack(self) -> None:
        if self.app.read_only:
            self.notify(self.app.read_only_reason, title="Cannot ack", severity="error")
            return
        table = self.query_one("#alert-table", DataTable)
        if not table.row_count:
            return
        alert_id = int(table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value)

        def done(note: str | None) -> None:
            if note is not None:
                self.ack(alert_id, note)

        self.app.push_screen(PromptScreen(f"Acknowledge alert #{alert_id}: note",
                                          placeholder="what you are doing about it"), done)
