"""Help, generated from the bindings (app and the screen underneath), so it cannot drift."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.actions import parse as parse_action
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.dom import DOMNode
from textual.screen import ModalScreen, Screen
from textual.widgets import Static


def binding_rows(bindings: list[BindingType], owner: DOMNode) -> list[tuple[str, str, str]]:
    """(key, description, id) for every binding with a description that ``owner``'s
    ``check_action`` does not turn off: of two bindings of one key that fit different
    states (the app's two ``f``), only the one the key runs now is listed."""
    rows = []
    for b in bindings:
        if not isinstance(b, Binding):
            b = Binding(b[0], b[1], b[2] if len(b) == 3 else "")  # (key, action[, text])
        if b.description and _enabled(owner, b.action):
            rows.append((b.key_display or b.key, b.description, b.id or ""))
    return rows


def _enabled(owner: DOMNode, action: str) -> bool:
    _, name, parameters = parse_action(action)
    return owner.check_action(name, parameters) is not False  # None: shown, disabled


class HelpScreen(ModalScreen[None]):
    CSS_PATH = "help.tcss"
    BINDINGS = [Binding("escape,question_mark,q", "dismiss", "Close", id="help.close")]

    def __init__(self, under: Screen[object]) -> None:
        super().__init__()
        self.under = under

    def compose(self) -> ComposeResult:
        table = Table(title="memras keys", title_style="bold", expand=True)
        table.add_column("Key", style="bold cyan", no_wrap=True)
        table.add_column("Does")
        table.add_column("Binding id", style="dim")
        sections = [(type(self.under).__name__.removesuffix("Screen"),
                     binding_rows(list(type(self.under).BINDINGS), self.under)),
                    ("Everywhere", binding_rows(list(type(self.app).BINDINGS), self.app))]
        for title, rows in sections:
            table.add_row(Text(title, style="bold underline"), "", "")
            for key, desc, ident in rows:
                table.add_row(key, desc, ident)
        with VerticalScroll(id="help"):
            yield Static(table)
            yield Static("escape closes this help; the footer shows the keys of each screen",
                         classes="note")
