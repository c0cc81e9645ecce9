"""Fleet: the central store's DIMMs by urgency, hosts, failure rates and replacements.

One worker reads :func:`memras.fleet.read.overview` (the four views, one connection,
SELECTs only: a read-only role is enough) when the screen is shown, on F5 and every
``REFRESH_S`` while it is; Enter on a DIMM pushes :class:`FleetDimmScreen`, whose worker
reads that DIMM's verdicts (:func:`memras.fleet.read.dimm_verdicts`). The top line says
which state the screen is in: no fleet database named (how to name one), the central
store unreachable or without the fleet schema (``central_error``'s line and its hint;
the rows read before stay, marked with their time), an empty fleet, or what was read.

Every view fits the terminal: a column has a cap (longer text is ellipsized, slot
labels in the middle: their ends tell DIMMs apart) and the narrowest terminal that shows
it; the free-text column takes what is left, or goes when less than ``FLEX_MIN`` is. All
of a row is in the pane under the table. Host strings (names, labels, serials, reasons)
are escaped (memras.text), never parsed as markup.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from memras.tui.messages import FleetFailed, FleetLoaded, FleetVerdictsLoaded
from memras.tui.widgets.chrome import ReadOnlyBanner
from memras.tui.widgets.format import safe, verdict_text, when_text
from memras.tui.widgets.settled import MeasuredTable
from rich.table import Table
from rich.text import Text
from textual import getters, on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Static

from memras.errors import MemrasError
from memras.fleet import read
from memras.text import readable_lines, readable_value, redact

if TYPE_CHECKING:
    from memras.tui.app import MemrasApp

REFRESH_S = 60.0  # re-read while shown: the overview is a few indexed SELECTs
WIDE = 120
FLEX_MIN = 12  # the free-text column is shown only with at least this many cells
CELL_PAD = 2  # a DataTable cell's padding, one each side
SCROLLBAR = 2  # the table's vertical scrollbar
QUIET_S = 600  # a host silent this long is marked (20 shipping passes of 30 s)
LOST_S = 86400  # and this long, in red


def naive_utc(when: datetime) -> datetime:
    """The central store's times are naive UTC (as every memras time); the clock's too."""
    return when.astimezone(UTC).replace(tzinfo=None) if when.tzinfo else when


def ago(when: datetime | None, now: datetime) -> Text:
    if when is None:
        return Text("-", style="dim")
    s = max(0, int((naive_utc(now) - naive_utc(when)).total_seconds()))
    words = (f"{s}s" if s < 60 else f"{s // 60}m" if s < 3600 else
             f"{s // 3600}h" if s < 86400 else
             f"{s // 86400}d {s % 86400 // 3600}h" if s < 10 * 86400 else f"{s // 86400}d")
    return Text(f"{words} ago", style="bold red" if s >= LOST_S else
                "yellow" if s >= QUIET_S else "")


def fit(text: Text, cap: int, *, middle: bool = False) -> Text:
    """``text`` in at most ``cap`` cells: ellipsized at the end, or in the middle."""
    if text.cell_len <= cap:
        return text
    if not middle:
        text = text.copy()
        text.truncate(cap, overflow="ellipsis")
        return text
    head = (cap - 1) // 2
    tail = cap - 1 - head
    return Text.assemble(text[:head], "…", text[len(text) - tail:])


@dataclass(frozen=True)
class Col:
    title: str
    cell: Callable[[Any, datetime], Text]
    cap: int  # the widest cell shown
    min_width: int = 0  # shown on a terminal at least this wide
    wide_cap: int = 0  # the cap on a terminal of WIDE columns or more (0: cap)
    flex: bool = False  # takes the width left
    middle: bool = False  # ellipsized in the middle
    right: bool = False


@dataclass(frozen=True)
class View:
    name: str  # the FleetOverview field
    title: str
    columns: tuple[Col, ...]
    key: Callable[[Any], str]
    sorts: tuple[tuple[str, Callable[[Any], Any] | None, bool], ...]  # first: as read
    empty: str

    def fitted(self, width: int) -> list[tuple[Col, int]]:
        shown = [c for c in self.columns if width >= c.min_width]
        caps = {c.title: c.wide_cap if c.wide_cap and width >= WIDE else c.cap for c in shown}
        fixed = sum(caps[c.title] + CELL_PAD for c in shown if not c.flex)
        out = []
        for c in shown:
            room = width - SCROLLBAR - fixed - CELL_PAD if c.flex else caps[c.title]
            if room >= (FLEX_MIN if c.flex else 1):
                out.append((c, min(caps[c.title], room)))
        return out


def _day(when: datetime | None, _now: datetime) -> Text:
    return Text(when.strftime("%Y-%m-%d") if when else "-")


def _minute(when: datetime | None) -> Text:
    return Text(when_text(when)[:16])


VIEWS: tuple[View, ...] = (
    View("dimms", "DIMMs", (
        Col("Host", lambda d, _: safe(d.hostname), 12),
        Col("Slot", lambda d, _: safe(d.label or d.dimm_id), 20, middle=True, wide_cap=30),
        Col("Serial", lambda d, _: safe(d.serial or "-"), 12, min_width=130),
        Col("Part", lambda d, _: safe(d.part or "-"), 18, min_width=150),
        Col("Verdict", lambda d, _: verdict_text(d.verdict), 24),
        Col("Since", lambda d, now: _day(d.since, now), 10, min_width=0),
        Col("Evidence", lambda d, _: safe(d.evidence), 200, flex=True),
    ), lambda d: f"{d.host_id}/{d.dimm_id}", (
        ("urgency", None, False), ("host", lambda d: (d.hostname, d.dimm_id), False),
        ("since", lambda d: naive_utc(d.since), False)),
        "no DIMM across the fleet has a verdict worse than ok"),
    View("hosts", "Hosts", (
        Col("Host", lambda h, _: safe(h.hostname), 24),
        Col("Last contact", lambda h, _: _minute(h.last_contact), 16),
        Col("Silent", lambda h, now: ago(h.last_contact, now), 10),  # "9d 23h ago"
        Col("Backlog", lambda h, _: Text(str(h.backlog), style="yellow" if h.backlog else ""),
            9, right=True),
        Col("Skipped", lambda h, _: Text(str(h.dropped_errors),
                                         style="bold red" if h.dropped_errors else ""),
            9, right=True),
        Col("Version", lambda h, _: safe(h.memras_version), 12, min_width=100),
        Col("Machine id", lambda h, _: Text(h.host_id, style="dim"), 32, flex=True),
    ), lambda h: h.host_id, (
        ("host", None, False), ("silent", lambda h: naive_utc(h.last_contact), False),
        ("backlog", lambda h: h.backlog, True), ("skipped", lambda h: h.dropped_errors, True)),
        "no host has shipped to this database yet"),
    View("failures", "Failures", (
        Col("Manufacturer", lambda f, _: safe(f.manufacturer or "-"), 16),
        Col("Part", lambda f, _: safe(f.part or "-"), 20),
        Col("Modules", lambda f, _: Text(str(f.modules)), 7, right=True),
        Col("Failed", lambda f, _: Text(str(f.failed), style="bold red" if f.failed else ""),
            6, right=True),
        Col("Rate", lambda f, _: Text(f"{100 * f.rate:.2f}%"), 7, right=True),
        Col("Median age", lambda f, _: Text(f.age_text()), 10, right=True),
    ), lambda f: f"{f.manufacturer}/{f.part}", (
        ("rate", None, False), ("failed", lambda f: f.failed, True),
        ("modules", lambda f: f.modules, True)),
        "no module registered by any host yet"),
    View("replacements", "Replacements", (
        Col("Host", lambda r, _: safe(r.hostname), 14),
        Col("#", lambda r, _: Text(str(r.replacement_id)), 4, right=True),
        Col("Slot", lambda r, _: safe(r.dimm_label or r.dimm_id), 14, middle=True),
        Col("State", lambda r, _: safe(r.state), 12),
        Col("Started", lambda r, _: _minute(r.created_at), 16),
        Col("Audit", lambda r, _: Text(str(r.audit_entries)), 5, right=True),
        Col("Audit head", lambda r, _: Text(r.audit_head or "-", style="dim"), 64, flex=True),
    ), lambda r: f"{r.host_id}/{r.replacement_id}", (
        ("newest", lambda r: naive_utc(r.created_at), True),
        ("host", lambda r: (r.hostname, r.replacement_id), False), ("as read", None, False)),
        "no replacement recorded across the fleet"),
)
BY_NAME = {v.name: v for v in VIEWS}


def fields_text(row: Any) -> Text:
    """Every field of a row, ``name value`` pairs (escaped), for the pane under the table."""
    text = Text()
    for n, (key, value) in enumerate(row.as_dict().items()):
        text.append("   " if n else "")
        text.append(key.replace("_", " ") + " ", style="dim")
        text.append(when_text(value) if isinstance(value, datetime)
                    else readable_value(value))  # escaped by readable_value
    return text


class FleetScreen(Screen[None]):
    if TYPE_CHECKING:  # the app's own type, for its attributes (the app imports this screen)
        app = getters.app(MemrasApp)
    CSS_PATH = "fleet.tcss"
    BINDINGS = [
        Binding("v", "next_view", "View", id="fleet.view"),
        Binding("s", "next_sort", "Sort", id="fleet.sort"),
        Binding("a", "toggle_all", "All", id="fleet.all"),
        Binding("f5", "reload", "Reload", id="fleet.reload"),
        *(Binding(str(n), f"view('{v.name}')", v.title, show=False, id=f"fleet.{v.name}")
          for n, v in enumerate(VIEWS, 1)),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.view = VIEWS[0]
        self.sort: dict[str, int] = {}  # view name -> index into its sorts
        self.overview: read.FleetOverview | None = None
        self.read_at: datetime | None = None
        self.problem: tuple[str, str] | None = None  # (error, hint) of the last read
        self.include_ok = False  # a: the DIMMs judged ok too (fleet dimms --all)
        self._fitted_for: tuple[str, int] | None = None

    def compose(self) -> ComposeResult:
        yield ReadOnlyBanner()
        yield Header()
        yield Static("", id="fleet-state")
        yield Static("", id="fleet-views")
        yield MeasuredTable(id="fleet-table", cursor_type="row")
        yield Static("", id="fleet-detail")
        yield Footer(show_command_palette=False)  # ctrl+p still works; q Quit fits 80 cols

    def on_mount(self) -> None:
        self._state()
        self._views_bar()
        self.load()
        self.set_interval(REFRESH_S, self._tick)

    def on_screen_resume(self) -> None:
        if self.overview is not None or self.problem is not None:  # not the first show
            self.load()

    def _tick(self) -> None:
        if self.is_current:
            self.load()

    @work(thread=True, exclusive=True, exit_on_error=False, group="fleet-load")
    def load(self) -> None:
        try:
            overview = read.overview(self.app.fleet_engine(), include_ok=self.include_ok)
        except MemrasError as exc:
            self.post_message(FleetFailed(exc.msg, exc.hint or ""))
            return
        self.post_message(FleetLoaded(overview, self.app.now()))

    @on(FleetLoaded)
    def loaded(self, message: FleetLoaded) -> None:
        self.overview, self.read_at, self.problem = message.overview, message.at, None
        self._state()
        self._views_bar()
        self._fill()

    @on(FleetFailed)
    def failed(self, message: FleetFailed) -> None:
        self.problem = (message.error, message.hint)
        self._state()

    def _state(self) -> None:
        fleet = self.app.fleet
        text = Text()
        if fleet is None:
            text.append_text(safe(self.app.fleet_note, "yellow"))
        elif self.problem is not None:
            error, hint = self.problem
            text.append_text(safe(error, "bold red"))
            if self.read_at is not None:
                text.append(f"\nthe rows below are as read at {when_text(self.read_at)}",
                            style="yellow")
            if hint:
                text.append("\n")
                text.append_text(safe(hint, "dim"))
        elif self.overview is None:
            text.append_text(safe(f"reading {redact(fleet.url)}…", "dim"))
        else:
            o = self.overview
            text.append_text(safe(redact(fleet.url), "bold"))
            which = "in all" if self.include_ok else "worse than ok"
            text.append(f"  {len(o.hosts)} hosts, {len(o.dimms)} DIMMs {which}, "
                        f"read {when_text(self.read_at)[11:]}")
            if not o.hosts:
                text.append("\nno host has shipped here yet: each host's memras.toml needs "
                            "this [fleet] url, and memras watch ships", style="yellow")
        self.query_one("#fleet-state", Static).update(text)

    def _views_bar(self) -> None:
        text = Text()
        for n, v in enumerate(VIEWS, 1):
            count = "" if self.overview is None else f" {len(getattr(self.overview, v.name))}"
            text.append(f" {n} {v.title}{count} ", style="reverse bold" if v is self.view
                        else "dim")
        name = self.view.sorts[self.sort.get(self.view.name, 0)][0]
        text.append(f"  sort: {name}", style="dim")
        self.query_one("#fleet-views", Static).update(text)

    def rows(self) -> list[Any]:
        """The current view's rows, in its chosen order."""
        rows = list(getattr(self.overview, self.view.name)) if self.overview else []
        _name, key, reverse = self.view.sorts[self.sort.get(self.view.name, 0)]
        return sorted(rows, key=key, reverse=reverse) if key is not None else rows

    def _fill(self) -> None:
        table = self.query_one("#fleet-table", DataTable)
        view, now = self.view, self.app.now()
        selected = None
        if table.row_count:
            selected = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        columns = view.fitted(self.size.width or 80)
        table.clear(columns=True)
        for col, _cap in columns:
            table.add_column(Text(col.title, justify="right" if col.right else "left"),
                             key=col.title)
        self._fitted_for = (view.name, len(columns))
        for row in self.rows():
            cells = []
            for col, cap in columns:
                cell = fit(col.cell(row, now), cap, middle=col.middle)
                cell.justify = "right" if col.right else "left"
                cells.append(cell)
            table.add_row(*cells, key=view.key(row))
        if selected is not None and selected in table.rows:
            table.move_cursor(row=table.get_row_index(selected))
        if not table.row_count:
            self.query_one("#fleet-detail", Static).update(
                Text(view.empty if self.overview is not None else "", style="dim"))

    def on_resize(self) -> None:
        if self.overview is not None and self._fitted_for != (
                self.view.name, len(self.view.fitted(self.size.width))):
            self._fill()

    def _row(self, key: str | None) -> Any:
        return next((r for r in self.rows() if self.view.key(r) == key), None)

    @on(DataTable.RowHighlighted, "#fleet-table")
    def show_row(self, event: DataTable.RowHighlighted) -> None:
        row = self._row(event.row_key.value)
        if row is None:
            return
        text = fields_text(row)
        if self.view.name == "dimms":
            text.append("\nEnter: its verdicts, every reason", style="dim")
        self.query_one("#fleet-detail", Static).update(text)

    @on(DataTable.RowSelected, "#fleet-table")
    def open_row(self, event: DataTable.RowSelected) -> None:
        row = self._row(event.row_key.value)
        if row is not None and self.view.name == "dimms":
            self.app.push_screen(FleetDimmScreen(row))

    def action_view(self, name: str) -> None:
        self.view = BY_NAME[name]
        self._views_bar()
        self._fill()

    def action_next_view(self) -> None:
        self.action_view(VIEWS[(VIEWS.index(self.view) + 1) % len(VIEWS)].name)

    def action_next_sort(self) -> None:
        name = self.view.name
        self.sort[name] = (self.sort.get(name, 0) + 1) % len(self.view.sorts)
        self._views_bar()
        self._fill()

    def action_reload(self) -> None:
        self.load()

    def action_toggle_all(self) -> None:
        """Show the DIMMs judged ok too, or only those worse (on the DIMMs view)."""
        self.include_ok = not self.include_ok
        self.notify("all DIMMs, ok ones too" if self.include_ok else "DIMMs worse than ok")
        self.load()


class FleetDimmScreen(Screen[None]):
    """One DIMM of the fleet: every field, the latest verdict's reasons, rules and
    evidence, and the verdicts its host recorded before (newest first)."""

    if TYPE_CHECKING:
        app = getters.app(MemrasApp)
    CSS_PATH = "fleet.tcss"
    BINDINGS = [Binding("escape", "app.pop_screen", "Back", id="fleet_dimm.back")]

    def __init__(self, dimm: read.FleetDimm) -> None:
        super().__init__()
        self.dimm = dimm
        self.verdicts: list[read.FleetVerdict] | None = None

    def compose(self) -> ComposeResult:
        yield ReadOnlyBanner()
        yield Header()
        with VerticalScroll(id="fleet-dimm"):
            yield Static(identity(self.dimm), id="fleet-dimm-identity")
            yield Static(Text("reading its verdicts…", style="dim"), id="fleet-dimm-verdicts")
        yield Footer(show_command_palette=False)

    def on_mount(self) -> None:
        self.load()

    @work(thread=True, exclusive=True, exit_on_error=False, group="fleet-dimm")
    def load(self) -> None:
        d = self.dimm
        try:
            verdicts = read.dimm_verdicts(self.app.fleet_engine(), d.host_id, d.dimm_id)
        except MemrasError as exc:
            self.post_message(FleetFailed(exc.msg, exc.hint or ""))
            return
        self.post_message(FleetVerdictsLoaded(d, verdicts))

    @on(FleetVerdictsLoaded)
    def loaded(self, message: FleetVerdictsLoaded) -> None:
        self.verdicts = message.verdicts
        self.query_one("#fleet-dimm-verdicts", Static).update(verdicts_table(message.verdicts))

    @on(FleetFailed)
    def failed(self, message: FleetFailed) -> None:
        text = safe(message.error, "bold red")
        if message.hint:
            text.append("\n")
            text.append_text(safe(message.hint, "dim"))
        self.query_one("#fleet-dimm-verdicts", Static).update(text)


def _kv(title: str) -> Table:
    table = Table.grid(padding=(0, 2))
    table.title, table.title_justify, table.title_style = title, "left", "bold"
    table.add_column(style="dim", no_wrap=True)
    table.add_column()
    return table


def identity(d: read.FleetDimm) -> Table:
    t = _kv("DIMM")
    t.add_row("host", Text.assemble(safe(d.hostname, "bold"), "  ", (d.host_id, "dim")))
    t.add_row("slot", Text.assemble(safe(d.label or "-", "bold"), "  ", safe(d.dimm_id, "dim")))
    t.add_row("module", Text(" ").join(safe(v or "-") for v in (d.manufacturer, d.part)))
    t.add_row("serial", safe(d.serial or "-"))
    t.add_row("verdict", Text.assemble(verdict_text(d.verdict),
                                       f"  since {when_text(d.since)}"))
    return t


def verdicts_table(verdicts: Sequence[read.FleetVerdict]) -> Table:
    t = _kv(f"Verdicts ({len(verdicts)}, newest first)")
    for n, v in enumerate(verdicts):
        head = Text.assemble(verdict_text(v.state), (f"  from {v.previous_state or '-'}",
                                                     "dim"))
        t.add_row(when_text(v.time), head)
        for rule, reason in zip(v.rules, v.reasons, strict=False):
            t.add_row("", Text.assemble(safe(str(rule), "bold"), "  ", safe(str(reason))))
        for reason in v.reasons[len(v.rules):]:
            t.add_row("", safe(str(reason)))
        if n == 0 and v.evidence:  # the evidence of the verdict that stands
            t.add_row("evidence", Text("\n".join(readable_lines(v.evidence, width=56))))
    if not verdicts:
        t.add_row("", Text("no verdict row for this DIMM (shipped later?)", style="dim"))
    return t
