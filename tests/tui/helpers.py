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
    """The dashboard's own readiness: loaded, feed shown, tables measured, frame drawn."""
    return bool(getattr(app.screen, "ready", False))
