"""Turning core values into Rich ``Text``: verdicts in colour AND words, safe labels.

Kernel and firmware strings (labels, locators, log lines) are escaped with
:func:`memras.text.escape` and wrapped in ``Text`` so Rich never parses them as
markup: a label ``[bold]red[/]`` shows those characters, ``\\x1b[2J`` shows as
``\\x1b[2J``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from rich.text import Text

from memras.text import escape, format_bytes

SPARK_CHARS = " ▁▂▃▄▅▆▇█"

# verdict state -> (words shown, style). Words carry the meaning; colour repeats it.
VERDICT_LOOK: dict[str | None, tuple[str, str]] = {
    None: ("- not judged", "dim"),
    "ok": ("✓ OK", "green"),
    "watch": ("! WATCH", "yellow"),
    "repair-by-page-offlining": ("~ REPAIR: offline pages", "cyan"),
    "replace-at-next-maintenance": ("▲ REPLACE at maintenance", "bold dark_orange"),
    "replace-now": ("✖ REPLACE NOW", "bold white on red"),
}

SEVERITY_LOOK = {"info": "blue", "warning": "yellow", "critical": "bold white on red"}


def safe(text: str | None, style: str = "") -> Text:
    """Firmware/kernel text as literal, escaped ``Text`` (never markup)."""
    return Text(escape(text), style=style)


def verdict_text(state: str | None) -> Text:
    words, style = VERDICT_LOOK.get(state, (f"? {escape(state)}", "magenta"))
    return Text(words, style=style)


def severity_text(severity: str) -> Text:
    return Text(severity.upper(), style=SEVERITY_LOOK.get(severity, ""))


def sparkline(values: Sequence[int]) -> Text:
    """One character per value, scaled to the largest; all zero stays blank-ish."""
    peak = max(values, default=0)
    if peak <= 0:
        return Text("·" * len(values), style="dim")
    top = len(SPARK_CHARS) - 1
    chars = [SPARK_CHARS[0 if v <= 0 else max(1, round(v / peak * top))] for v in values]
    return Text("".join(chars), style="red" if peak >= 10 else "yellow")


def size_text(n: int | None) -> str:
    return format_bytes(n) if n else "-"


def count_text(n: int | None, *, bad: bool = False) -> Text:
    if n is None:
        return Text("-", style="dim")
    return Text(str(n), style="bold red" if bad and n else ("yellow" if n else ""))


def when_text(when: datetime | None) -> str:
    return when.strftime("%Y-%m-%d %H:%M:%S") if when else "-"
