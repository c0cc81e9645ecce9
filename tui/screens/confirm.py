"""A yes/no question before something that cannot be taken back, or leaves memory
offline: rolling back at the physical-swap step, quitting mid-replacement.
Dismisses with True (y) or False (n, escape)."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Label, Static


class ConfirmScreen(ModalScreen[bool]):
    CSS_PATH = "prompt.tcss"
    DEFAULT_CSS = "ConfirmScreen { align: center middle; }"
    BINDINGS = [
        Binding("y", "answer(True)", "Yes", id="confirm.yes"),
        Binding("n", "answer(False)", "No", id="confirm.no"),
        Binding("escape", "answer(False)", "No", id="confirm.escape"),
    ]

    def __init__(self, question: str, detail: Text, *, yes: str, no: str) -> None:
        super().__init__()
        self.question, self.detail, self.yes, self.no = question, detail, yes, no

    def compose(self) -> ComposeResult:
        with Vertical(id="prompt"):
            yield Label(self.question, id="question", markup=False)
            yield Static(self.detail, id="confirm-detail")
            yield Label(f"y: {self.yes}   n/escape: {self.no}", classes="note", markup=False)

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)
