"""A virtualised grid of memory blocks: one character per block, only visible lines drawn.

16,384 blocks (the ``large`` profile) at 64 per line are 256 lines; ``render_line``
draws the one or two dozen on screen, so scrolling costs the same at any size.

A block a CXL memdev backs (``BlockCell.memdevs``) is underlined in every colour mode
(``CXL_STYLE``); colouring by DIMM gives it its memdevs' colour.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass

from rich.segment import Segment
from rich.style import Style
from textual.binding import Binding
from textual.events import Click, Resize
from textual.geometry import Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

from memras.views import BlockCell

LABEL_WIDTH = 7
STATE_CHARS = {"online": "█", "offline": "░", "going-offline": "▒"}
ZONE_COLOURS = {"Movable": "dodger_blue2", "Normal": "green3", "DMA32": "yellow3",
                "DMA": "yellow3", None: "grey50"}
DIMM_PALETTE = ("dodger_blue2", "green3", "orange3", "orchid", "cyan3", "gold3", "salmon1",
                "medium_purple2", "spring_green2", "light_slate_blue")
COLOUR_MODES = ("state", "zone", "dimm")
CXL_STYLE = Style(underline=True)  # added to a CXL block's colour, whatever the mode


def dimm_colour(dimm_id: str | None) -> str:
    if dimm_id is None:
        return "grey35"
    return DIMM_PALETTE[zlib.crc32(dimm_id.encode()) % len(DIMM_PALETTE)]


def unit_of(cell: BlockCell) -> str | None:
    """What backs the block, as the legend names it: its DIMM's id, else its memdevs
    (``mem0+mem1`` for an interleaved region), else None."""
    return cell.dimm_id or ("+".join(cell.memdevs) or None)


def cell_colour(cell: BlockCell, mode: str) -> str:
    if mode == "zone":
        return ZONE_COLOURS.get(cell.zone, "grey50") if cell.state == "online" else "red3"
    if mode == "dimm":
        return dimm_colour(unit_of(cell))
    return "green3" if cell.state == "online" else ("red3" if cell.state == "offline"
                                                     else "yellow3")


class BlockGrid(ScrollView, can_focus=True):
    BINDINGS = [
        Binding("left", "move(-1)", "←", show=False, id="map.left"),
        Binding("right", "move(1)", "→", show=False, id="map.right"),
        Binding("up", "move_line(-1)", "↑", show=False, id="map.up"),
        Binding("down", "move_line(1)", "↓", show=False, id="map.down"),
        Binding("pageup", "move_line(-10)", "PgUp", show=False, id="map.pageup"),
        Binding("pagedown", "move_line(10)", "PgDn", show=False, id="map.pagedown"),
    ]

    cursor: reactive[int] = reactive(0)

    @dataclass
    class Selected(Message):
        cell: BlockCell

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.cells: list[BlockCell] = []
        self.mode = "state"
        self.highlight: str | None = None
        self._styles: dict[tuple[str, bool, bool, bool], Style] = {}

    @property
    def per_line(self) -> int:
        width = self.scrollable_content_region.width or 80
        usable = max(8, width - LABEL_WIDTH)
        return 64 if usable >= 64 else (32 if usable >= 32 else 16)

    def set_cells(self, cells: Sequence[BlockCell]) -> None:
        self.cells = list(cells)
        self.cursor = min(self.cursor, max(0, len(self.cells) - 1))
        self._resize_virtual()
        self.post_selected()

    def set_mode(self, mode: str) -> None:
        self.mode = mode
        self.refresh()

    def set_highlight(self, dimm_id: str | None) -> None:
        """Mark the blocks of a DIMM (its id) or of a CXL memdev (its name)."""
        self.highlight = dimm_id
        first = next((i for i, c in enumerate(self.cells)
                      if dimm_id is not None and c.belongs_to(dimm_id)), None)
        if first is not None:
            self.cursor = first
        self.refresh()

    def _resize_virtual(self) -> None:
        lines = (len(self.cells) + self.per_line - 1) // self.per_line
        self.virtual_size = Size(LABEL_WIDTH + self.per_line, lines)
        self.refresh()

    def on_resize(self, _event: Resize) -> None:
        self._resize_virtual()

    def _style(self, colour: str, highlighted: bool, cursor: bool, cxl: bool) -> Style:
        key = (colour, highlighted, cursor, cxl)
        if key not in self._styles:
            style = Style(color=colour)
            if cxl:
                style += CXL_STYLE
            if highlighted:
                style += Style(bgcolor="grey23", bold=True)
            if cursor:
                style += Style(reverse=True, blink=False)
            self._styles[key] = style
        return self._styles[key]

    def render_line(self, y: int) -> Strip:
        line = y + int(self.scroll_offset.y)
        per = self.per_line
        first = line * per
        if first >= len(self.cells):
            return Strip.blank(self.size.width)
        segments = [Segment(f"{self.cells[first].index:>{LABEL_WIDTH - 1}} ", Style(dim=True))]
        for i in range(first, min(first + per, len(self.cells))):
            cell = self.cells[i]
            char = STATE_CHARS.get(cell.state, "?")
            highlighted = self.highlight is not None and cell.belongs_to(self.highlight)
            if highlighted:
                char = "▓" if cell.state == "online" else "▚"
            segments.append(Segment(char, self._style(
                cell_colour(cell, self.mode), highlighted, i == self.cursor,
                bool(cell.memdevs))))
        return Strip(segments).crop(int(self.scroll_offset.x),
                                    int(self.scroll_offset.x) + self.size.width)

    # --- moving and selecting ---------------------------------------------------
    def watch_cursor(self, old: int, new: int) -> None:
        line = new // self.per_line
        self.scroll_to_region_line(line)
        self.refresh()

    def scroll_to_region_line(self, line: int) -> None:
        top = int(self.scroll_offset.y)
        height = max(1, self.size.height)
        if line < top:
            self.scroll_to(y=line, animate=False)
        elif line >= top + height:
            self.scroll_to(y=line - height + 1, animate=False)

    def action_move(self, delta: int) -> None:
        if self.cells:
            self.cursor = max(0, min(len(self.cells) - 1, self.cursor + delta))
            self.post_selected()

    def action_move_line(self, lines: int) -> None:
        self.action_move(lines * self.per_line)

    def post_selected(self) -> None:
        if self.cells:
            self.post_message(self.Selected(self.cells[self.cursor]))

    def on_click(self, event: Click) -> None:
        offset = event.get_content_offset(self)
        if offset is None:  # on the border
            return
        y = offset.y + int(self.scroll_offset.y)
        column = offset.x + int(self.scroll_offset.x) - LABEL_WIDTH
        if 0 <= column < self.per_line:
            index = y * self.per_line + column
            if index < len(self.cells):
                self.cursor = index
                self.post_selected()
