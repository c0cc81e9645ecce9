"""What every screen shows around its content: the read-only banner."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static


class ReadOnlyBanner(Static):
    """Says, when the app is read-only, what needs root; hidden otherwise."""

    DEFAULT_CSS = """
    ReadOnlyBanner { dock: top; height: auto; background: $warning 30%; color: $text;
                     padding: 0 1; text-style: bold; }
    """

    def on_mount(self) -> None:
        reason = getattr(self.app, "read_only_reason", "")
        self.display = bool(reason)
        self.update(Text(f"READ-ONLY  {reason}"))
