"""Human output that fits the terminal: tables through Rich, text wrapped at its width.

One place decides the width (``output_width``: ``$COLUMNS``, else the terminal's, else
80 when the output is no terminal) and how a table that is too wide gives way
(``fit_columns``): first the free-text column (the last one unless the caller names
another) is ellipsized down to a floor, then the columns the caller marked optional are
dropped, least important first, then Rich ellipsizes what is left. ``wide`` turns all of
that off. Plain output stays a whitespace-separated layout, one row per line, no colour
or box characters, so scripts that cut columns keep working (``--json`` is the machine
interface). Cells are escaped (memras.text.escape) and handed to Rich as Text, never as
markup, so a firmware string cannot style or break the table.
"""

from __future__ import annotations

import io
import os
import textwrap
from collections.abc import Sequence
from typing import Any, TextIO

from rich.cells import cell_len
from rich.console import Console
from rich.table import Table
from rich.text import Text

from memras.text import escape

DEFAULT_WIDTH = 80
FLEX_FLOOR = 20  # a free-text column keeps at least this many cells before columns go


def output_width(out: TextIO) -> int:
    """``$COLUMNS`` when set, else the terminal's width, else 80 (a pipe or a file)."""
    env = os.environ.get("COLUMNS", "")
    if env.isdigit() and int(env) > 0:
        return int(env)
    try:
        if out.isatty():
            return os.get_terminal_size(out.fileno()).columns or DEFAULT_WIDTH
    except (AttributeError, OSError, ValueError):
        pass
    return DEFAULT_WIDTH


def cells(rows: Sequence[Sequence[Any]]) -> list[list[str]]:
    """Every cell as escaped text; None is '-'."""
    return [[escape(str(c)) if c is not None else "-" for c in row] for row in rows]


def fit_columns(headers: Sequence[str], body: Sequence[Sequence[str]], width: int, *,
                optional: Sequence[str] | None = None,
                flex: str | None = None) -> tuple[list[int], dict[int, int]]:
    """Which columns to show and the width of the free-text one.

    Returns the indexes kept (in order) and {index: max width} for the column that is
    ellipsized. ``optional``: the headers that may be dropped, least important first
    (default: every column but the first, the last one first); ``flex``: the free-text
    column ellipsized before anything is dropped (default: the last one).
    """
    n = len(headers)
    natural = [max([cell_len(headers[i])] + [cell_len(r[i]) for r in body]) for i in range(n)]
    flex_i = headers.index(flex) if flex in headers else n - 1
    floor = min(natural[flex_i], max(cell_len(headers[flex_i]), FLEX_FLOOR))
    drop = ([headers.index(h) for h in optional if h in headers] if optional is not None
            else list(range(n - 1, 0, -1)))
    keep = list(range(n))

    def rest(cols: list[int]) -> int:  # every kept column but the flex one, with gaps
        return sum(natural[i] for i in cols if i != flex_i) + len(cols) - 1

    for i in drop:
        if rest(keep) + (floor if flex_i in keep else 0) <= width:
            break
        keep.remove(i)
    limits = {}
    if flex_i in keep:  # below its floor only when nothing is left to drop
        least = cell_len(headers[flex_i])
        limits[flex_i] = max(least, min(natural[flex_i], width - rest(keep)))
    return keep, limits


def render_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], *,
                 width: int, wide: bool = False, right: Sequence[str] = (),
                 optional: Sequence[str] | None = None, flex: str | None = None,
                 wrap: str | None = None, show_header: bool = True,
                 styled: bool = False) -> list[str]:
    """The table's lines: fitted to ``width`` unless ``wide``; no trailing blanks.

    ``wrap``: a column whose text is wrapped under itself (continuation lines indented
    to it) instead of ellipsized, when every word of it matters (what to do about a
    failed check); nothing is dropped then. ``show_header``: False for a list whose
    rows say what they are (``memras doctor``).
    """
    body = cells(rows)
    limits: dict[int, int] = {}
    if wide or wrap in headers:
        keep = list(range(len(headers)))
    else:
        keep, limits = fit_columns(headers, body, width, optional=optional, flex=flex)
    table = Table(box=None, show_edge=False, pad_edge=False, padding=(0, 1, 0, 0),
                  header_style="bold" if styled else "", expand=False,
                  show_header=show_header)
    for i in keep:
        wraps = headers[i] == wrap and not wide
        table.add_column(Text(headers[i]), justify="right" if headers[i] in right else "left",
                         no_wrap=not wraps, overflow="fold" if wraps else "ellipsis",
                         max_width=limits.get(i))
    for row in body:
        table.add_row(*(Text(row[i]) for i in keep))
    buf = io.StringIO()
    total = sum(max([cell_len(headers[i])] + [cell_len(r[i]) for r in body]) + 1
                for i in keep)
    console = Console(file=buf, width=max(total, 1) if wide else width,
                      force_terminal=styled, color_system="standard" if styled else None,
                      highlight=False, markup=False, emoji=False, legacy_windows=False)
    console.print(table)
    return [line.rstrip() for line in buf.getvalue().splitlines()]


def wrap(text: str, width: int, *, indent: str = "", hang: str = "") -> list[str]:
    """``text`` wrapped at ``width`` (words kept whole unless longer than a line)."""
    return textwrap.wrap(text, width=max(width, 20), initial_indent=indent,
                         subsequent_indent=hang or indent, break_on_hyphens=False) or [indent]


def key_values(pairs: Sequence[tuple[str, str]], width: int, *, indent: str = "") -> list[str]:
    """``key: value`` lines, values aligned and wrapped under themselves."""
    key_w = max((cell_len(k) for k, _ in pairs), default=0) + 2
    out: list[str] = []
    for key, value in pairs:
        head = f"{indent}{key + ':':<{key_w}}"
        out += wrap(f"{head}{value}", width, hang=" " * cell_len(head))
    return out
