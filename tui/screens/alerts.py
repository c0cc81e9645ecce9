"""Alerts: list with a state filter, detail of the selected alert, ack and resolve.

Workers call :class:`memras.alerts.service.SqlAlertStore` ``list``, and ``ack`` /
``resolve`` on :meth:`~memras.alerts.service.AlertService.configured` with the app's
``--config``: the same call ``memras alerts ack|resolve`` makes, so the same hooks hear
about the change (a hook that does not load is shown, as the CLI warns on stderr).
"""

from __future__ import annotations

import io
import json
from typing import TYPE_CHECKING

from memras.tui.messages import AlertChanged, AlertsLoaded, LoadFailed
from memras.tui.screens.prompt import PromptScreen
from memras.tui.widgets.chrome import ReadOnlyBanner
from memras.tui.widgets.format import safe, severity_text, when_text
from memras.tui.widgets.settled import MeasuredTable
from rich.text import Text
from textual import getters, on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Static

from memras.alerts.alert import Alert, AlertState
from memras.alerts.naming import dimm_namer
from memras.alerts.service import AlertService, SqlAlertStore
from memras.topology.naming import wide_text

if TYPE_CHECKING:
    from memras.tui.app import MemrasApp

FILTERS = ("open", "acked", "resolved", "all")


class RowTable(MeasuredTable):
    """A table of rows: Home and End go to the first and last row. DataTable's own
    Home/End scroll sideways in a row-cursor table, and the header scrolled away."""

    BINDINGS = [
        Binding("home", "scroll_top", "First", show=False),
        Binding("end", "scroll_bottom", "Last", show=False),
    ]


class AlertsScreen(Screen[None]):
    if TYPE_CHECKING:  # the app's own type, for its attributes (the app imports this screen)
        app = getters.app(MemrasApp)
    CSS_PATH = "alerts.tcss"
    BINDINGS = [
        Binding("f", "cycle_filter", "Filter", id="alerts.filter"),
        Binding("k", "ack", "Ack…", id="alerts.ack"),
        Binding("r", "resolve", "Resolve", id="alerts.resolve"),
        Binding("f5", "reload", "Reload", id="alerts.reload"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.filter = "open"
        self.alerts: list[Alert] = []

    def compose(self) -> ComposeResult:
        yield ReadOnlyBanner()
        yield Header()
        yield Static("", id="filter-bar")
        table = RowTable(id="alert-table", cursor_type="row")
        table.add_columns("#", "Severity", "State", "Kind", "DIMM", "Time", "Message")
        yield table
        yield Static("", id="alert-detail")
        yield Footer(show_command_palette=False)  # ctrl+p still works; q Quit fits 80 cols

    def on_mount(self) -> None:
        self._filter_bar()
        self.load()

    def on_screen_resume(self) -> None:
        """Shown again: a replacement may have resolved alerts meanwhile (no F5 needed)."""
        self.load()

    @work(thread=True, exclusive=True, exit_on_error=False, group="alerts-load")
    def load(self) -> None:
        try:
            store = self.app.open_store()
            state = None if self.filter == "all" else AlertState(self.filter)
            alerts = [] if store is None else SqlAlertStore(  # DIMMs by slot label, now
                store, dimm_namer(self.app.host, store)).list(state)
        except Exception as exc:
            self.post_message(LoadFailed("alerts", str(exc)))
            return
        self.post_message(AlertsLoaded(alerts))

    @work(thread=True, exclusive=False, exit_on_error=False, group="alerts-change")
    def change(self, action: str, alert_id: int, note: str = "") -> None:
        """``action`` is ack or resolve: one AlertService call, as ``memras alerts`` makes."""
        warnings = io.StringIO()
        try:
            if (store := self.app.open_store(write=True)) is None:
                raise RuntimeError(self.app.store_note or "no database")
            service = AlertService.configured(store, self.app.config_path, warn=warnings,
                                              host=self.app.host)  # hooks get slot labels
            try:
                if action == "ack":
                    alert = service.ack(alert_id, note=note or None)
                else:
                    alert = service.resolve(alert_id)
            finally:
                service.close()
        except Exception as exc:
            self.post_message(LoadFailed(f"{action} of alert {alert_id}", str(exc)))
            return
        self.post_message(AlertChanged(action, alert, warnings.getvalue().strip()))

    def _filter_bar(self) -> None:
        text = Text("Show: ")
        for name in FILTERS:
            text.append(f" {name} ", style="reverse bold" if name == self.filter else "dim")
        text.append("   (f to change)", style="dim")
        self.query_one("#filter-bar", Static).update(text)

    @on(AlertsLoaded)
    def show_alerts(self, message: AlertsLoaded) -> None:
        # newest first, as the dashboard's pane shows them
        self.alerts = sorted(message.alerts, key=lambda a: (a.time, a.id or 0), reverse=True)
        table = self.query_one("#alert-table", DataTable)
        table.clear()
        for a in self.alerts:
            table.add_row(str(a.id), severity_text(a.severity.value),
                          Text(a.state.value, style="bold" if a.state is AlertState.OPEN else ""),
                          a.kind.value, safe(a.dimm_shown),
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
        if alert.dimm_id is not None:  # the slot label, then the stored label and id
            text.append("DIMM ")
            text.append_text(safe(wide_text(alert.dimm_shown, [alert.dimm_label or "",
                                                               alert.dimm_id]), "bold"))
            text.append("\n")
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

    @on(AlertChanged)
    def changed(self, message: AlertChanged) -> None:
        done = "acknowledged" if message.action == "ack" else "resolved"
        self.notify(f"alert #{message.alert.id} {done}", title=done.capitalize())
        if message.warnings:  # a configured hook did not load; the others were told
            self.notify(message.warnings, title="Alert hooks", severity="warning")
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

    def _selected(self, verb: str) -> int | None:
        """The highlighted alert's id, when the app may write and one is highlighted."""
        if self.app.read_only:
            self.notify(self.app.read_only_reason, title=f"Cannot {verb}", severity="error")
            return None
        table = self.query_one("#alert-table", DataTable)
        if not table.row_count:
            return None
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        return int(key) if key is not None else None  # rows are added with their id as key

    def action_ack(self) -> None:
        if (alert_id := self._selected("ack")) is None:
            return

        def done(note: str | None) -> None:
            if note is not None:
                self.change("ack", alert_id, note)

        self.app.push_screen(PromptScreen(f"Acknowledge alert #{alert_id}: note",
                                          placeholder="what you are doing about it"), done)

    def action_resolve(self) -> None:
        """Close the alert (``memras alerts resolve ID``); a new one may fire again."""
        if (alert_id := self._selected("resolve")) is not None:
            self.change("resolve", alert_id)
