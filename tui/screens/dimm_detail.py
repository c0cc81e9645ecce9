"""One DIMM: identity, verdict with rules and evidence, timeline, fault cells, pages.

One worker reads :func:`memras.views.dimm_detail` (inventory entry, verdict history,
the DIMM's newest events folded into rows/columns/banks, pages, replacements). A CXL
memdev's id (``memN``, a row of the dashboard too) reads :func:`memras.views.memdev_detail`
instead: its PCI function, serial, regions, DAX devices, blocks and nodes, the verdict
`memras dimms` gives it, its media errors as a DIMM's, its poison and replacements.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING

from memras.tui.messages import DetailLoaded, LoadFailed
from memras.tui.widgets.chrome import ReadOnlyBanner
from memras.tui.widgets.format import safe, size_text, sparkline, verdict_text, when_text
from rich.table import Table
from rich.text import Text
from textual import getters, on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Footer, Header, Static

from memras import views
from memras.text import format_bytes, readable_lines, readable_value
from memras.topology.inventory import resolve_dimm
from memras.topology.naming import wide_name
from memras.topology.units import block_ranges

if TYPE_CHECKING:
    from memras.tui.app import MemrasApp

HEAT_CHARS = " ░▒▓█"  # by views.HeatMap.level: none, then 1..views.HEAT_LEVELS
HEAT_STYLES = ("dim", "yellow", "yellow", "red", "bold red")
HEAT_CELL = 3  # characters a bank (two of shade, a gap): 16 banks and a row range fit 80
EVIDENCE_WIDTH = 56  # evidence text beside its key, inside 80 columns


@dataclass
class MemdevLoaded(Message):
    detail: views.MemdevDetail


class DimmDetailScreen(Screen[None]):
    if TYPE_CHECKING:  # the app's own type, for its attributes (the app imports this screen)
        app = getters.app(MemrasApp)
    CSS_PATH = "dimm_detail.tcss"
    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back", id="detail.back"),
        Binding("r", "replace", "Replace", id="detail.replace"),
        Binding("b", "show_blocks", "Blocks in map", id="detail.map"),
    ]

    def __init__(self, dimm_id: str) -> None:
        super().__init__()
        self.dimm_id = dimm_id
        self.detail: views.DimmDetail | views.MemdevDetail | None = None

    def compose(self) -> ComposeResult:
        yield ReadOnlyBanner()
        yield Header()
        with VerticalScroll(id="detail"):
            yield Static(Text(f"reading {self.dimm_id}…"), id="identity")
            yield Static("", id="verdict")
            yield Static("", id="timeline")
            yield Static("", id="cells")
            yield Static("", id="addresses")
            yield Static("", id="history")
        yield Footer(show_command_palette=False)  # ctrl+p still works; q Quit fits 80 cols

    def on_mount(self) -> None:
        self.load()

    def on_screen_resume(self) -> None:
        """Back from the wizard (a replacement just ended: new module, verdict, history)
        or from another screen: read it again, so nothing shown is stale."""
        if self.detail is not None:
            self.load()

    @work(thread=True, exclusive=True, exit_on_error=False, group="detail-load")
    def load(self) -> None:
        try:
            host = self.app.host
            store = self.app.open_store()
            memdev = views.memdev_detail(host, store, self.dimm_id,
                                         config_path=self.app.config_path)
            if memdev is not None:  # as the workflow resolves: a memdev's name first
                self.post_message(MemdevLoaded(memdev))
                return
            dimm = resolve_dimm(host, self.dimm_id)
            detail = views.dimm_detail(host, store, dimm)
        except Exception as exc:
            self.post_message(LoadFailed(self.dimm_id, str(exc)))
            return
        self.post_message(DetailLoaded(detail))

    @on(LoadFailed)
    def show_failure(self, message: LoadFailed) -> None:
        self.query_one("#identity", Static).update(
            Text(f"cannot read {message.what}: {message.error}", style="bold red"))

    @on(DetailLoaded)
    def show_detail(self, message: DetailLoaded) -> None:
        d = message.detail
        self.detail = d
        self.query_one("#identity", Static).update(_identity(d))
        self.query_one("#verdict", Static).update(_verdict(d))
        self.query_one("#timeline", Static).update(_timeline(d))
        self.query_one("#cells", Static).update(_cells(d))
        self.query_one("#addresses", Static).update(_addresses(d))
        self.query_one("#history", Static).update(_history(d))

    @on(MemdevLoaded)
    def show_memdev(self, message: MemdevLoaded) -> None:
        d = message.detail
        self.detail = d
        self.query_one("#identity", Static).update(_memdev_identity(d))
        self.query_one("#verdict", Static).update(_memdev_verdict(d))
        self.query_one("#timeline", Static).update(_timeline(d))
        self.query_one("#cells", Static).update(_cells(d))
        self.query_one("#addresses", Static).update(Text(""))
        self.query_one("#history", Static).update(_history(d))

    def action_replace(self) -> None:
        self.app.replace_dimm(self.dimm_id)

    def action_show_blocks(self) -> None:
        self.app.switch_mode("map")
        screen = self.app.screen
        if hasattr(screen, "highlight_dimm"):
            screen.highlight_dimm(self.dimm_id)


def _kv_table(title: str) -> Table:
    """A key/value table; its title is literal text (it can hold a DIMM's firmware label
    or a memdev's kernel name: a str title would be read as Rich markup, its control
    characters drawn raw)."""
    table = Table.grid(padding=(0, 2))
    table.title = safe(title, "bold")  # a Text title takes no title_style
    table.title_justify = "left"
    table.add_column(style="dim")
    table.add_column()
    return table


def _identity(d: views.DimmDetail) -> Table:
    dimm = d.dimm
    t = _kv_table(f"DIMM {wide_name(dimm)}")  # slot name, EDAC label, id
    t.add_row("label", safe(dimm.label, "bold"))
    t.add_row("location", safe(dimm.location))
    t.add_row("size", size_text(dimm.size_bytes))
    sm = dimm.smbios
    if sm is not None:
        t.add_row("locator", safe(sm.locator))
        t.add_row("bank", safe(sm.bank_locator))
        t.add_row("serial", safe(sm.serial))
        t.add_row("part", safe(sm.part_number))
        t.add_row("manufacturer", safe(sm.manufacturer))
    else:
        t.add_row("SMBIOS", Text("no type 17 entry joined", style="dim"))
    t.add_row("EDAC CE/UE", Text(f"{dimm.ce_count if dimm.ce_count is not None else '-'} / "
                                 f"{dimm.ue_count if dimm.ue_count is not None else '-'}"))
    t.add_row("ACPI device", safe(dimm.acpi_device or "-"))
    t.add_row("mapping", safe(f"{dimm.mapping} {dimm.mapping_reason}".strip()))
    if d.since is not None:
        module = d.module
        name = (module.serial or module.identity) if module is not None else "unregistered"
        t.add_row("module", Text.assemble(safe(name), (f"  in the slot since "
                                                         f"{when_text(d.since)}", "dim")))
    return t


def _memdev_identity(d: views.MemdevDetail) -> Table:
    u, m = d.unit, d.unit.memdev
    t = _kv_table(f"CXL memdev {m.name}")
    t.add_row("PCI function", safe(m.host, "bold"))
    t.add_row("serial", Text("-" if m.serial is None else f"{m.serial:#x}"))
    t.add_row("size", Text(f"{format_bytes(m.ram_size)} ram, {format_bytes(m.pmem_size)} pmem"))
    t.add_row("regions", safe(", ".join(u.regions) or "none"))
    t.add_row("DAX", safe(", ".join(u.dax) or "none"))
    t.add_row("blocks", Text(block_ranges(list(u.blocks))))
    t.add_row("nodes", Text(", ".join(map(str, u.nodes)) or "-"))
    t.add_row("stored CE/UE", Text(f"{d.ce} / {d.ue}"))
    t.add_row("poison", Text(f"{d.poison_pages} page(s) listed now, from {d.poison_records} "
                             "record(s)", style="bold red" if d.poison_pages else ""))
    return t


def _memdev_verdict(d: views.MemdevDetail) -> Table:
    """memras.health.cxl.memdev_verdicts: the device's own judgement and its media's."""
    t = _kv_table("Verdict")
    v = d.verdict
    t.add_row("now", verdict_text(str(v.state) if v is not None else None))
    for rule, reason in zip(v.rules if v else (), v.reasons if v else (), strict=False):
        t.add_row(Text(rule, style="bold"), safe(reason))
    return t


def _verdict(d: views.DimmDetail) -> Table:
    t = _kv_table("Verdict")
    v = d.verdict
    t.add_row("now", verdict_text(str(v.state) if v is not None else None))
    if v is None:
        return t
    t.add_row("since", when_text(v.since))
    for rule, reason in zip(v.rules, v.reasons, strict=False):
        t.add_row(Text(rule, style="bold"), safe(reason))
    for key, value in sorted((v.evidence or {}).items()):
        t.add_row(Text(str(key).replace("_", " ")), _evidence_text(value))
    return t


def _evidence_text(value: object) -> Text:
    """One piece of evidence as a person reads it: a word, a list joined, a table as
    ``key: value`` lines, a list of tables as ``-`` items (memras.text.readable_lines,
    which escapes every string); never raw JSON."""
    nested = isinstance(value, dict) or isinstance(value, list) and any(
        isinstance(v, dict | list) or isinstance(v, str) and len(v) > 30 for v in value)
    if nested and value:
        return Text("\n".join(readable_lines(value, width=EVIDENCE_WIDTH)))
    return Text(readable_value(value))


def _timeline(d: views.DimmDetail | views.MemdevDetail) -> Table:
    scope = "" if d.since is None else " of this module"
    t = _kv_table(f"Error timeline ({d.events_read} newest events{scope} read)")
    if not d.timeline:
        t.add_row("", Text("no stored errors", style="green"))
    days = d.timeline[-14:]
    peak = max((ce + ue for _, ce, ue in days), default=0)
    for day, ce, ue in days:
        bar = "█" * max(1, round((ce + ue) / peak * 30)) if peak else ""
        t.add_row(day, Text.assemble((bar, "red" if ue else "yellow"), f" {ce} CE  {ue} UE"))
    return t


def _cells(d: views.DimmDetail | views.MemdevDetail) -> Table:
    c = d.cells
    t = _kv_table("Fault-mode evidence")
    t.add_row("decoded", f"{c.decoded} events with bank/row/column, {c.undecoded} without")
    t.add_row("rows", f"{len(c.rows)} distinct" + _top(c.rows))
    t.add_row("columns", f"{len(c.columns)} distinct" + _top(c.columns))
    common = c.banks.most_common(3)  # rank.bank group.bank, as the verdict's evidence
    t.add_row("banks", f"{len(c.banks)} distinct" +
              ("  top: " + ", ".join(f"{k}×{n}" for k, n in common) if common else ""))
    if c.heat is not None:
        t.add_row("bank × row", _heat_map(c.heat))
    return t


def _top(counter: Counter[int]) -> str:
    common = counter.most_common(3)
    return ("  top: " + ", ".join(f"{k:#x}×{n}" for k, n in common)) if common else ""


def _heat_map(h: views.HeatMap) -> Text:
    """views.HeatMap drawn: a header of bank groups and banks (hex, HEAT_CELL cells a
    bank), a line per row range, each cell shaded by its level, then the legend with
    the scale (linear up to the busiest cell) and the rows' span. Fits 80 columns at
    views.HEAT_BANK_COLUMNS banks beside the detail's key column."""
    ranges = [f"{lo:#x}" if lo == hi else f"{lo:#x}–{hi:#x}" for lo, hi in h.row_ranges]
    label_w = max(len("row"), *(len(r) for r in ranges)) + 1
    text = Text()
    if any(h.groups):  # bank group (and rank) over its banks
        line = " " * label_w
        i = 0
        while i < len(h.columns):
            j = i
            while j < len(h.columns) and h.groups[j] == h.groups[i]:
                j += 1
            width = (j - i) * HEAT_CELL
            line += h.groups[i][:width - 1].ljust(width)
            i = j
        text.append(line.rstrip() + "\n", style="dim")
    text.append("row".ljust(label_w) + "".join(f"{b:x}".rjust(HEAT_CELL - 1) + " "
                                               for _, _, b in h.columns) + "\n", style="dim")
    for line_no, label in enumerate(ranges):
        text.append(label.ljust(label_w))
        for col in range(len(h.columns)):
            level = h.level(h.counts.get((line_no, col), 0))
            if level:
                text.append(HEAT_CHARS[level] * (HEAT_CELL - 1), style=HEAT_STYLES[level])
                text.append(" ")
            else:
                text.append("·".rjust(HEAT_CELL - 1) + " ", style="dim")
        text.append("\n")
    text.append(f"errors a cell, linear up to the busiest ({h.peak}):\n", style="dim")
    text.append("·".rjust(HEAT_CELL - 1) + " 0", style="dim")
    for level, low, high in h.legend():
        text.append("  ")
        text.append(HEAT_CHARS[level] * (HEAT_CELL - 1), style=HEAT_STYLES[level])
        text.append(f" {low}" if low == high else f" {low}–{high}")
    lo, hi = h.row_ranges[0][0], h.row_ranges[-1][1]
    span = h.row_ranges[0][1] - lo + 1
    text.append(f"\n{h.total} error(s) with a bank and a row; rows {lo:#x}–{hi:#x} seen"
                + (f", {span:#x} rows a line" if span > 1 else ", a row a line"), style="dim")
    if h.hidden_banks:
        text.append(f"\n{h.hidden_banks} quieter bank(s) with {h.hidden_errors} error(s) "
                    "not drawn", style="dim")
    return text


def _addresses(d: views.DimmDetail) -> Table:
    t = _kv_table("Addresses → blocks, offlined pages")
    for page, block, n in d.addresses[:10]:
        t.add_row(f"{page:#014x}", f"block {block if block is not None else '-'}  {n} error(s)")
    if len(d.addresses) > 10:
        t.add_row("", Text(f"…{len(d.addresses) - 10} more pages", style="dim"))
    if not d.addresses:
        t.add_row("", Text("no addresses reported", style="dim"))
    for p in d.pages:
        t.add_row(Text(f"page {p['page'] & 0xFFFFFFFFFFFFFFFF:#x}"),
                  safe(f"{p['action']} -> {p['outcome']} ({p['attempts']} attempt(s))"))
    rate = [n for _, _, n in d.addresses][-24:]
    if rate:
        t.add_row("per page", sparkline(rate))
    if d.earlier_events or d.earlier_pages:
        t.add_row("removed", Text(
            f"{d.earlier_events} event(s) and {len(d.earlier_pages)} page action(s) of the "
            "module(s) replaced before, not counted above", style="dim"))
    return t


def _history(d: views.DimmDetail | views.MemdevDetail) -> Table:
    t = _kv_table("Replacements in this slot")
    if not d.replacements and not d.closings:
        t.add_row("", Text("none recorded", style="dim"))
    for r in d.replacements:
        t.add_row(when_text(r.get("created_at")),
                  safe(f"#{r['id']} {r['state']} by {r.get('operator') or r.get('user')} "
                       f"via {r['backend']}"))
    for c in d.closings:  # memras repaired/acquit, a swap seen: earlier errors stop counting
        t.add_row(when_text(c.at), safe(f"verdict closed: {c.kind}"
                                         f"{f' by {c.operator}' if c.operator else ''}: "
                                         f"{c.reason}"))
    if d.history:
        t.add_row("verdicts", Text(" → ".join(str(v.state) for v in d.history[-6:])))
    return t
