"""Accepting a preflight override in the wizard: what it does and risks, then the module's
name typed (and, for the reserve, the size to keep).

The wizard's own confirmation rule (memras.topology.naming.Confirmation): the engineer
types the name of the module at stake, never a y, so lifting a refusal is as deliberate
as starting the replacement. Nothing on the machine changes here or on the retry it
leads to: preflight runs again and the usual confirmation still comes before any block
goes offline. Dismisses with the option's value (True, or the reserve in bytes), or None.
"""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label, Static

from memras.errors import UsageError
from memras.text import escape, parse_bytes
from memras.topology.naming import Confirmation
from memras.workflow.driver import Override


class OverrideScreen(ModalScreen[Any]):
    CSS_PATH = "prompt.tcss"
    DEFAULT_CSS = "OverrideScreen { align: center middle; } #override-error { color: $error; }"
    BINDINGS = [Binding("escape", "cancel", "Cancel", id="override.cancel")]

    def __init__(self, override: Override, asked: Confirmation, module: str) -> None:
        super().__init__()
        self.override, self.asked, self.module = override, asked, module

    def compose(self) -> ComposeResult:
        o = self.override
        with Vertical(id="prompt"):
            yield Label(f"Preflight again with {o.flag}?", id="question", markup=False)
            detail = Text(f"{escape(self.module)}: {o.does}.\n")
            detail.append("Risk: ", style="bold")
            detail.append(f"{o.risk}.\n")
            if o.size:
                detail.append("Enter the MemAvailable to keep (e.g. 512M, 4G), then ")
            detail.append(f"type the {self.asked.what} ")
            detail.append(escape(self.asked.name), style="bold reverse")
            detail.append(" to accept the risk.")
            yield Static(detail, id="override-detail")
            if o.size:
                yield Input(placeholder="reserve, e.g. 4G", id="override-size")
            yield Input(placeholder=f"type the {self.asked.what} here", id="override-name")
            yield Static("", id="override-error")
            yield Label("enter: preflight again (nothing changes yet)   escape: cancel",
                        classes="note", markup=False)

    @on(Input.Submitted)
    def submitted(self, event: Input.Submitted) -> None:
        size = self._reserve_typed()
        if self.override.size and size is None:
            return
        name = self.query_one("#override-name", Input)
        if event.input.id == "override-size" and not name.value:
            name.focus()
            return
        if not self.asked.accepts(name.value):
            self._say_error(f"That is not the {self.asked.what} {escape(self.asked.name)}; "
                        "nothing was changed.", name)
            return
        self.dismiss(size if self.override.size else True)

    def _reserve_typed(self) -> int | None:
        """The reserve typed, or None after saying what is wrong with it."""
        if not self.override.size:
            return None
        field = self.query_one("#override-size", Input)
        try:
            return parse_bytes(field.value)
        except UsageError as exc:
            self._say_error(f"{exc.msg} ({exc.hint})", field)
            return None

    def _say_error(self, text: str, field: Input) -> None:
        self.query_one("#override-error", Static).update(Text(text))
        field.value = ""
        field.focus()

    def action_cancel(self) -> None:
        self.dismiss(None)
