"""The dashboard: host summary, DIMMs with verdicts, open alerts, live event feed.

Two workers: ``load`` calls :func:`memras.views.dashboard` once (and again, at most
every ``RELOAD_AFTER_EVENTS_S``, after new events); ``follow_events`` polls
:func:`memras.views.events_after` every ``app.poll_interval_s`` on the primary key
and posts the newest ``FEED_ROWS`` rows. A burst of 1k events/s costs one bounded
query and one repaint per poll, and queued feed messages replace each other.

Ready (``self.ready``, then ``DashboardReady``) means the first complete frame is on
screen: the load and the first feed message have been rendered, both tables have
measured their rows (``MeasuredTable.Measured``), and one refresh has happened since.
Tests and bench/tui_first_paint.py wait for exactly that instead of sleeping.

The DIMM table lists the CXL memdevs after the DIMMs (views.memdev_rows): ``r`` on one
opens the same wizard with ``memN``, Enter its detail (DimmDetailScreen copes). Their
verdicts and counts read every record of a memdev; the screen's ``memdev_cache``
(views.MemdevCache) keeps them until the store changes, so an idle reload is cheap.

Layout: the DIMM table is as tall as its rows (at most ``46vh``); the open alerts and
the live feed below take the rest, so a taller terminal shows more of both.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING

from memras.tui.messages import DashboardLoaded, DashboardReady, EventsArrived, LoadFailed
from memras.tui.widgets.chrome import ReadOnlyBanner
from memras.tui.widgets.format import (
    count_text,
    safe,
    severity_text,
    size_text,
    sparkline,
    verdict_text,
)
from memras.tui.widgets.settled import MeasuredTable
from rich.text import Text
from textual import getters, on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Static
from textual.worker import get_current_worker

from memras import views
from memras.errors import MemrasError
from memras.records import TimeSource
from memras.text import format_bytes
from memras.workflow.pending import Pending, in_progress

if TYPE_CHECKING:
    from memras.tui.app import MemrasApp

    from memras.alerts.alert import Alert

FEED_ROWS = 50
NO_CLOCK = {t.value for t in TimeSource if not t.is_real}
ALERTS_SHOWN = 20  # newest open alerts in the dashboard's pane; all of them: a (Alerts)
RELOAD_AFTER_EVENTS_S = 2.0
# Verdicts, alerts and blocks also change without new events: a replacement finished in
# the wizard or in another terminal, an alert acked elsewhere. Re-read at this pace.
RELOAD_EVERY_S = 10.0


@dataclass
class ReplacementPending(Message):
    """The replacement in progress (memras.workflow.pending), or why it cannot be read."""

    pending: Pending | None
    unknown: str


def pending_text(p: Pending) -> Text:
    """The banner: which replacement, its step, the blocks offline, how to go on."""
    out = Text(f" REPLACEMENT #{p.id} IN PROGRESS ", style="bold black on yellow")
    out.append(" ")
    out.append_text(safe(p.dimm, "bold"))
    out.append(f" at {p.at}: ")
    out.append_text(safe(p.where))
    out.append("\n")
    if p.driven:
        out.append("a memras process is driving it now", style="italic")
        return out
    out.append("continue: ")
    out.append("r", style="bold reverse")
    out.append(f" (wizard) or `{p.resume}`  ·  roll back: `{p.abort}`")
    return out


class DashboardScreen(Screen[None]):
    if TYPE_CHECKING:  # the app's own type, for its attributes (the app imports this screen)
        app = getters.app(MemrasApp)
    CSS_PATH = "dashboard.tcss"
    BINDINGS = [
        Binding("enter", "open_dimm", "Detail", id="dashboard.detail"),
        Binding("r", "replace_dimm", "Replace", id="dashboard.replace"),
        Binding("f5", "reload", "Reload", id="dashboard.reload"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.loaded = False
        self.feed_seen = False
        self.ready = False
        self._ready_pending = False
        self.feed_count = 0
        self.feed_last_id = 0  # the newest event id the feed has shown
        self.feed_rows: list[views.FeedRow] = []
        self.dimm_names: dict[str, str] = {}  # DIMM id -> slot label, from the last load
        self._shown_dimms: list[views.DimmRow] | None = None  # what the tables show now
        self._shown_alerts: list[Alert] | None = None
        self._reload_timer: object | None = None
        self.pending: Pending | None = None  # the replacement in progress, from the last load
        self.memdev_cache = views.MemdevCache()  # used by the load worker only (exclusive)

    def compose(self) -> ComposeResult:
        yield ReadOnlyBanner()
        yield Header()
        yield Static("", id="replacement-banner")
        yield Static("reading the host…", id="summary")
        table = MeasuredTable(id="dimms", cursor_type="row", zebra_stripes=True)
        # verdict first after the id, so it stays on screen at 80 columns
        table.add_columns("DIMM", "Verdict", "CE", "UE", "24 h errors", "Size", "Label", "Location")
        yield table
        with Horizontal(id="lower"):
            with Vertical(id="alerts-box"):
                yield Static("Open alerts", classes="section-title")
                with VerticalScroll(id="open-alerts-scroll"):
                    yield Static("-", id="open-alerts")
            with Vertical(id="feed-box"):
                yield Static("Live events", classes="section-title", id="feed-title")
                feed = MeasuredTable(id="feed", cursor_type="none")
                feed.add_columns("Time", "Type", "DIMM", "Address")
                yield feed
        yield Footer(show_command_palette=False)  # ctrl+p still works; q Quit fits 80 cols

    def on_mount(self) -> None:
        self.query_one("#replacement-banner").display = False
        self.load()
        self.follow_events()
        self.set_interval(RELOAD_EVERY_S, self.load)

    def on_screen_resume(self) -> None:
        """Back from the wizard, detail or another screen: show what changed meanwhile."""
        if self.loaded:
            self.load()

    # --- workers: one core call, one message ------------------------------------
    @work(thread=True, exclusive=True, exit_on_error=False, group="dashboard-load")
    def load(self) -> None:
        try:
            store = self.app.open_store()
            data = views.dashboard(self.app.host, store, self.app.now(),
                                   config_path=self.app.config_path,
                                   memdev_cache=self.memdev_cache)
        except Exception as exc:  # shown on screen; the app stays up
            self.post_message(LoadFailed("dashboard", str(exc)))
            return
        try:  # before the load's message, so the first complete frame has the banner
            pending = None if store is None else in_progress(store, self.app.host)
            self.post_message(ReplacementPending(pending, ""))
        except MemrasError as exc:
            self.post_message(ReplacementPending(None, exc.msg))
        self.post_message(DashboardLoaded(data.summary, data.recent, data.dimms, data.alerts,
                                          store_note=self.app.store_note))

    @work(thread=True, exclusive=True, exit_on_error=False, group="dashboard-feed")
    def follow_events(self) -> None:
        worker = get_current_worker()
        newest: deque[views.FeedRow] = deque(maxlen=FEED_ROWS)
        last_id: int | None = None
        while not worker.is_cancelled:
            store = self.app.open_store()
            if store is not None:
                rows = views.events_after(store, last_id, FEED_ROWS)
                if rows or last_id is None:
                    newest.extendleft(reversed(rows))
                    last_id = rows[0].id if rows else (last_id or 0)
                    self.post_message(EventsArrived(list(newest), last_id, len(rows)))
            worker.cancelled_event.wait(self.app.poll_interval_s)

    # --- rendering --------------------------------------------------------------
    @on(DashboardLoaded)
    def show_loaded(self, message: DashboardLoaded) -> None:
        s = message.summary
        recent = message.recent
        errors = f"{recent.ce} CE, {recent.ue} UE" if recent else "no database"
        summary = Text.assemble(
            ("Host ", "bold"), safe(s.hostname), "   ",
            f"total {format_bytes(s.total_bytes)}  online {format_bytes(s.online_bytes)}  "
            f"offline {format_bytes(s.offline_bytes)}  ",
            ("HardwareCorrupted ", ""),
            (format_bytes(s.hardware_corrupted_bytes),
             "bold red" if s.hardware_corrupted_bytes else ""),
            "\nErrors in the last 24 h: ", (errors, "bold red" if recent and recent.ue else ""),
            f"   {s.block_count} blocks of {format_bytes(s.block_size) if s.block_size else '-'}")
        if message.store_note:
            summary.append(f"  database: {message.store_note}", style="yellow")
        self.query_one("#summary", Static).update(summary)
        # an idle reload (every RELOAD_EVERY_S) that found nothing new leaves the tables
        # alone: refilling them would redraw, re-measure and move nothing for the user
        if message.dimms != self._shown_dimms:
            self._shown_dimms = list(message.dimms)
            self._fill_dimms(message.dimms)
        if message.alerts != self._shown_alerts:
            self._shown_alerts = list(message.alerts)
            self._fill_alerts(message.alerts)
        names = {r.id: r.name for r in message.dimms if r.name}
        if names != self.dimm_names:  # the feed's DIMMs by slot label from now on
            self.dimm_names = names
            self._fill_feed()
        self.loaded = True
        self._check_ready()

    @on(ReplacementPending)
    def show_pending(self, message: ReplacementPending) -> None:
        """The replacement in progress, above everything: it holds memory offline."""
        banner = self.query_one("#replacement-banner", Static)
        self.pending = message.pending
        banner.display = bool(message.pending or message.unknown)
        if message.pending is not None:
            banner.update(pending_text(message.pending))
        elif message.unknown:
            banner.update(Text(f"replacement in progress: cannot tell ({message.unknown})",
                               style="bold"))

    @on(MeasuredTable.Measured)
    def _check_ready(self) -> None:
        """Post ``DashboardReady`` once, after the first complete frame (module docstring)."""
        if self.ready or self._ready_pending or not (self.loaded and self.feed_seen):
            return
        if not all(t.measured for t in self.query(MeasuredTable)):
            return  # a table still has rows to measure; its Measured message comes back here
        self._ready_pending = True
        self.call_after_refresh(self._mark_ready)

    def _mark_ready(self) -> None:
        self.ready = True
        self.post_message(DashboardReady())

    def _fill_dimms(self, rows: list[views.DimmRow]) -> None:
        table = self.query_one("#dimms", DataTable)
        selected = table.cursor_row
        table.clear()
        for r in rows:
            table.add_row(
                safe(r.name or r.id), verdict_text(r.verdict), count_text(r.ce),
                count_text(r.ue, bad=True), sparkline(r.rate), size_text(r.size_bytes),
                safe(r.label), safe(r.location), key=r.id)
        if rows:
            table.move_cursor(row=min(selected, len(rows) - 1))

    def _fill_alerts(self, alerts: list[Alert]) -> None:
        """Each alert's DIMM by its slot label (views.dashboard names them)."""
        text = Text(no_wrap=True, overflow="ellipsis")
        if not alerts:
            text.append("none open", style="green")
        for alert in reversed(alerts[-ALERTS_SHOWN:]):  # newest first; the box scrolls
            text.append_text(severity_text(alert.severity.value))
            text.append(f" #{alert.id} ")
            text.append_text(safe(alert.dimm_shown, "bold"))
            text.append(" ")
            text.append_text(safe(alert.message))
            text.append("\n")
        text.rstrip()
        if len(alerts) > ALERTS_SHOWN:
            text.append(f"\n…and {len(alerts) - ALERTS_SHOWN} more (a: Alerts)", style="dim")
        self.query_one("#open-alerts", Static).update(text)

    @on(EventsArrived)
    def show_events(self, message: EventsArrived) -> None:
        self.feed_rows = message.rows
        self._fill_feed()
        first = self.feed_count == 0
        self.feed_count += message.new
        self.feed_last_id = message.last_id
        self.query_one("#feed-title", Static).update(
            Text.assemble(("Live events", "bold"), f"  (last id {message.last_id})"))
        if not self.feed_seen:
            self.feed_seen = True
            self._check_ready()
        if message.new and not first and self._reload_timer is None:
            self._reload_timer = self.set_timer(RELOAD_AFTER_EVENTS_S, self._reload_now)

    def _fill_feed(self) -> None:
        """The feed's rows, each DIMM by its slot label when the row is attributed to a
        DIMM the table lists, else by the label the error printed."""
        feed = self.query_one("#feed", DataTable)
        feed.clear()
        for row in self.feed_rows:
            style = "bold red" if row.type in views.UNCORRECTED_TYPES else ""
            # a row without its own clock says so: its time is when it was imported
            clock = f" ({row.time_source})" if row.time_source in NO_CLOCK else ""
            feed.add_row(row.time.strftime("%H:%M:%S") + clock, Text(row.type, style=style),
                         safe(self.dimm_names.get(row.dimm_id or "") or row.label),
                         f"{row.address:#x}" if row.address is not None else "-")

    def _reload_now(self) -> None:
        self._reload_timer = None
        self.load()

    @on(LoadFailed)
    def show_failure(self, message: LoadFailed) -> None:
        self.query_one("#summary", Static).update(
            Text(f"cannot read {message.what}: {message.error}", style="bold red"))

    # --- actions ----------------------------------------------------------------
    def _selected_dimm(self) -> str | None:
        table = self.query_one("#dimms", DataTable)
        if not table.row_count:
            return None
        return str(table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value)

    @on(DataTable.RowSelected, "#dimms")
    def _row_selected(self, event: DataTable.RowSelected) -> None:
        self.app.open_dimm(str(event.row_key.value))

    def action_open_dimm(self) -> None:
        if (dimm := self._selected_dimm()) is not None:
            self.app.open_dimm(dimm)

    def action_replace_dimm(self) -> None:
        if (dimm := self._selected_dimm()) is not None:
            self.app.replace_dimm(dimm)

    def action_reload(self) -> None:
        self.load()
