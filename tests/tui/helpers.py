"""Reading what a screen shows, as a person would see it."""

from __future__ import annotations

import io
from typing import Any

from rich.console import Console
from rich.text import Text
from textual.widgets import DataTable, Static


def plain(content: Any, width: int = 200) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, Text):
        return content.plain
    console = Console(width=width, record=True, color_system=None, file=io.StringIO())
    console.print(content)
    return console.export_text()


def static_text(screen: Any, selector: str) -> str:
    return plain(screen.query_one(selector, Static).content)


def table_rows(screen: Any, selector: str) -> list[list[str]]:
    table = screen.query_one(selector, DataTable)
    return [[plain(c) for c in table.get_row_at(i)] for i in range(table.row_count)]


def dashboard_ready(app: Any) -> bool:
    """Loaded, feed filled, and the DIMM table has measured its columns (drawn, not pending)."""
    screen = app.screen
    if not getattr(screen, "loaded", False) or not screen.query("#feed"):
        return False
    table = screen.query_one("#dimms", DataTable)
    id_column = next(iter(table.columns.values()), None)
    return (screen.query_one("#feed", DataTable).row_count > 0 and id_column is not None
            and id_column.content_width >= len("mc0/dimm0"))
