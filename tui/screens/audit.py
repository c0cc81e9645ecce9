"""Audit browser: past replacement steps, one entry in full, export and verify.

Workers call :class:`memras.audit.service.AuditTrail` ``list``, ``export`` and
``verify``; verify marks each failing row in the table and lists why.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from memras.tui.messages import AuditExported, AuditLoaded, AuditVerified, LoadFailed
from memras.tui.screens.prompt import PromptScreen
from memras.tui.widgets.chrome import ReadOnlyBanner
from memras.tui.widgets.format import safe
from memras.tui.widgets.settled import MeasuredTable
from rich.text import Text
from textual import getters, on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Static

from memras import views
from memras.audit.service import AuditEntry, AuditTrail

if TYPE_CHECKING:
    from memras.tui.app import MemrasApp



class AuditScreen(Screen[None]):
    if TYPE_CHECKING:  # the app's own type, for its attributes (the app imports this screen)
        app = getters.app(MemrasApp)
    CSS_PATH = "audit.tcss"
    BINDINGS = [
        Binding("v", "verify", "Verify", id="audit.verify"),
        Binding("e", "export('json')", "Export JSON", id="audit.export_json"),
        Binding("E", "export('csv')", "Export CSV", id="audit.export_csv"),
        Binding("f5", "reload", "Reload", id="audit.reload"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.entries: list[AuditEntry] = []
        self.failing: dict[int | None, list[str]] = {}  # None: a problem of no one row

    def compose(self) -> ComposeResult:
        yield ReadOnlyBanner()
        yield Header()
        yield Static("", id="verify-result")
        table = MeasuredTable(id="audit-table", cursor_type="row")
        table.add_columns("Seq", "Time", "Repl", "Action", "Who", "Detail", "Chain")
        yield table
        yield Static("", id="audit-detail")
        yield Footer(show_command_palette=False)  # ctrl+p still works; q Quit fits 80 cols

    def on_mount(self) -> None:
        self.load()

    def on_screen_resume(self) -> None:
        """Shown again (after a replacement in the wizard, say): its new rows, no F5."""
        self.load()

    def _trail(self) -> AuditTrail:
        store = self.app.open_store()
        if store is None:
            raise RuntimeError(self.app.store_note or "no database")
        return AuditTrail(store)

    @work(thread=True, exclusive=True, exit_on_error=False, group="audit-load")
    def load(self) -> None:
        try:
            entries = self._trail().list()
        except Exception as exc:
            self.post_message(LoadFailed("audit trail", str(exc)))
            return
        self.post_message(AuditLoaded(entries))

    @work(thread=True, exclusive=True, exit_on_error=False, group="audit-verify")
    def verify(self) -> None:
        try:
            report = self._trail().verify()
        except Exception as exc:
            self.post_message(LoadFailed("audit verify", str(exc)))
            return
        self.post_message(AuditVerified(report))

    @work(thread=True, exclusive=True, exit_on_error=False, group="audit-export")
    def export(self, fmt: str, path: str) -> None:
        try:
            text = self._trail().export(fmt)
            Path(path).expanduser().write_text(text)
        except Exception as exc:
            self.post_message(LoadFailed("audit export", str(exc)))
            return
        self.post_message(AuditExported(path, len(self.entries)))

    @on(AuditLoaded)
    def show_entries(self, message: AuditLoaded) -> None:
        self.entries = message.entries
        self._fill()

    def _fill(self) -> None:
        table = self.query_one("#audit-table", DataTable)
        table.clear()
        for e in self.entries:
            problems = self.failing.get(e.seq)
            chain = Text("✖ FAILS", style="bold white on red") if problems else \
                Text("✓ ok" if self.failing is not None and self._verified else "", style="green")
            table.add_row(str(e.seq), e.time[:19], str(e.replacement_id or "-"), e.action,
                          safe(e.actor.get("operator") or e.actor.get("user") or "-"),
                          safe(views.audit_summary(e)[:60]), chain, key=str(e.seq))
        if not self.entries:
            self.query_one("#audit-detail", Static).update(
                Text("no replacements recorded yet", style="dim"))

    _verified = False

    @on(AuditVerified)
    def show_verified(self, message: AuditVerified) -> None:
        report = message.report
        self._verified = True
        self.failing = {}
        for p in report.problems:
            self.failing.setdefault(p.seq, []).append(f"{p.kind}: {p.detail}")
        if report.ok:
            text = Text(f"✓ INTACT: {report.rows} rows, head {report.last_hash[:16]}…",
                        style="bold green")
        else:
            text = Text(f"✖ TAMPERED: {len(report.problems)} problem(s) in {report.rows} rows\n",
                        style="bold white on red")
            for p in report.problems[:5]:
                text.append_text(safe(str(p)))
                text.append("\n")
        self.query_one("#verify-result", Static).update(text)
        self._fill()

    @on(AuditExported)
    def exported(self, message: AuditExported) -> None:
        self.notify(f"wrote {message.rows} entries to {message.path}", title="Exported")

    @on(LoadFailed)
    def failed(self, message: LoadFailed) -> None:
        self.notify(f"{message.what}: {message.error}", title="Failed", severity="error")

    @on(DataTable.RowHighlighted, "#audit-table")
    def show_entry(self, event: DataTable.RowHighlighted) -> None:
        entry = next((e for e in self.entries if str(e.seq) == event.row_key.value), None)
        if entry is None:
            return
        text = Text.assemble((f"#{entry.seq} {entry.action}", "bold"), f"  {entry.time}\n")
        text.append_text(safe(json.dumps(entry.actor, sort_keys=True)))
        text.append("\n")
        text.append_text(safe(json.dumps(entry.data, sort_keys=True, default=str)[:400]))
        for problem in self.failing.get(entry.seq, []):
            text.append("\n")
            text.append_text(safe(problem, "bold red"))
        self.query_one("#audit-detail", Static).update(text)

    def action_verify(self) -> None:
        self.verify()

    def action_reload(self) -> None:
        self.load()

    def action_export(self, fmt: str) -> None:
        def done(path: str | None) -> None:
            if path:
                self.export(fmt, path)

        self.app.push_screen(PromptScreen(f"Export the audit trail as {fmt.upper()} to:",
                                          value=f"memras-audit.{fmt}"), done)
