"""The memory map: every block as one cell, coloured by state, zone or owning DIMM.

One worker reads the inventory and :func:`memras.views.block_cells`; the grid
(tui/widgets/block_grid.py) draws only the visible lines, so the 16,384-block
``large`` profile scrolls like a small one. Blocks a CXL memdev backs (the core's
mapping, memras.topology.cxl.cxl_units) are underlined, listed in the legend by their
memdevs and named in the block's detail; ``n`` steps through the memdevs after the
DIMMs, Enter on such a block opens the memdev's detail, and the detail's "show blocks"
highlights a memdev's blocks as it does a DIMM's.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

from memras.tui.messages import LoadFailed, MapLoaded
from memras.tui.widgets.block_grid import (
    COLOUR_MODES,
    CXL_STYLE,
    BlockGrid,
    cell_colour,
    dimm_colour,
    unit_of,
)
from memras.tui.widgets.chrome import ReadOnlyBanner
from memras.tui.widgets.format import safe
from rich.style import Style
from rich.text import Text
from textual import getters, on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Footer, Header, Static

from memras import views
from memras.text import format_bytes
from memras.topology.inventory import DimmInfo, dimm_inventory
from memras.topology.naming import display_names

if TYPE_CHECKING:
    from memras.tui.app import MemrasApp


class MemoryMapScreen(Screen[None]):
    if TYPE_CHECKING:  # the app's own type, for its attributes (the app imports this screen)
        app = getters.app(MemrasApp)
    CSS_PATH = "memory_map.tcss"
    BINDINGS = [
        Binding("c", "cycle_colour", "Colour by", id="map.colour"),
        Binding("n", "next_dimm", "Next DIMM", id="map.next_dimm"),
        Binding("enter", "open_dimm", "DIMM detail", id="map.detail"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.dimms: list[DimmInfo] = []
        self.selected: views.BlockCell | None = None
        self.highlighted: str | None = None
        self._pending_highlight: str | None = None

    def compose(self) -> ComposeResult:
        yield ReadOnlyBanner()
        yield Header()
        with Horizontal():
            yield BlockGrid(id="grid")
            with Vertical(id="side"):
                yield Static("", id="legend")
                yield Static("reading blocks…", id="block-info")
        yield Footer(show_command_palette=False)  # ctrl+p still works; q Quit fits 80 cols

    def on_mount(self) -> None:
        self.load()

    @work(thread=True, exclusive=True, exit_on_error=False, group="map-load")
    def load(self) -> None:
        try:
            dimms = dimm_inventory(self.app.host)
            cells = views.block_cells(self.app.host, dimms)
        except Exception as exc:
            self.post_message(LoadFailed("memory blocks", str(exc)))
            return
        self.post_message(MapLoaded(cells, dimms))

    @on(LoadFailed)
    def show_failure(self, message: LoadFailed) -> None:
        self.query_one("#block-info", Static).update(
            Text(f"cannot read {message.what}: {message.error}", style="bold red"))

    @on(MapLoaded)
    def show_map(self, message: MapLoaded) -> None:
        self.dimms = message.dimms
        grid = self.query_one(BlockGrid)
        grid.set_cells(message.cells)
        self._legend()
        if self._pending_highlight is not None:
            self.highlight_dimm(self._pending_highlight)
        grid.focus()

    def highlight_dimm(self, dimm_id: str) -> None:
        """Mark one DIMM's blocks and move the cursor to its first block."""
        grids = self.query(BlockGrid)
        if not grids or not grids.first().cells:  # not composed or not loaded yet
            self._pending_highlight = dimm_id
            return
        grid = grids.first()
        self._pending_highlight = None
        self.highlighted = dimm_id
        grid.set_highlight(dimm_id)
        grid.post_selected()
        self._legend()

    def _legend(self) -> None:
        grid = self.query_one(BlockGrid)
        text = Text.assemble(("colour by ", "dim"), (grid.mode, "bold"), ("  (c)\n", "dim"))
        counts = Counter((c.state, c.zone) for c in grid.cells)
        if grid.mode == "dimm":
            shown = display_names(self.dimms)
            for d in self.dimms[:12]:
                text.append("█ ", style=dimm_colour(d.id))
                text.append_text(safe(shown[d.id]))
                text.append(f" ({len(d.blocks)})\n")
        else:
            seen: dict[str, tuple[str, int]] = {}
            for (state, zone), n in counts.items():
                cell = views.BlockCell(0, 0, state, zone, None, None)
                name = state if grid.mode == "state" else (zone or state)
                colour, total = seen.get(name, (cell_colour(cell, grid.mode), 0))
                seen[name] = (colour, total + n)
            for name, (colour, n) in sorted(seen.items()):
                text.append("█ ", style=colour)
                text.append(f"{name} ({n})\n")
        self._cxl_legend(text, grid)
        text.append("░ offline  ▓ selected DIMM\n", style="dim")
        if self.highlighted:
            text.append("highlight: ")
            text.append_text(safe(self.highlighted, "bold"))
            text.append("\n")
        self.query_one("#legend", Static).update(text)

    @staticmethod
    def _cxl_legend(text: Text, grid: BlockGrid) -> None:
        """One line per set of memdevs backing blocks: underlined, in their colour when
        colouring by DIMM."""
        groups = Counter(c.memdevs for c in grid.cells if c.memdevs)
        for memdevs, n in sorted(groups.items()):
            unit = "+".join(memdevs)
            colour = dimm_colour(unit) if grid.mode == "dimm" else "default"
            text.append("█", style=Style(color=colour) + CXL_STYLE)
            text.append(" CXL ")
            text.append_text(safe(unit))
            text.append(f" ({n})\n")

    @on(BlockGrid.Selected)
    def show_block(self, message: BlockGrid.Selected) -> None:
        cell = message.cell
        self.selected = cell
        owner = next((d for d in self.dimms if d.id == cell.dimm_id), None)
        text = Text.assemble(("Block ", "bold"), (f"memory{cell.index}", "bold"), "\n",
                             f"start   {cell.start:#x}\n",
                             f"state   {cell.state}\n",
                             f"zone    {cell.zone or '-'}\n",
                             f"node    {cell.node if cell.node is not None else '-'}\n",
                             "DIMM    ")
        shown = display_names(self.dimms)[owner.id] if owner else (
            "-" if cell.memdevs else "- (none or interleaved)")
        text.append_text(safe(shown))
        if owner is not None:
            if owner.label != shown:  # the EDAC label, as the kernel's error lines name it
                text.append("\n        ")
                text.append_text(safe(owner.label))
            text.append(f"\n        {owner.id}, {format_bytes(owner.size_bytes or 0)}")
        if cell.memdevs:
            text.append("\nCXL     ")
            text.append_text(safe(", ".join(cell.memdevs), "bold"))
            if len(cell.memdevs) > 1:  # each backs every block of the region
                text.append("\n        interleaved")
        self.query_one("#block-info", Static).update(text)

    def action_cycle_colour(self) -> None:
        grid = self.query_one(BlockGrid)
        grid.set_mode(COLOUR_MODES[(COLOUR_MODES.index(grid.mode) + 1) % len(COLOUR_MODES)])
        self._legend()

    def _units(self) -> list[str]:
        """What ``n`` steps through: the DIMMs, then the memdevs backing blocks."""
        memdevs = dict.fromkeys(m for c in self.query_one(BlockGrid).cells for m in c.memdevs)
        return [d.id for d in self.dimms] + list(memdevs)

    def action_next_dimm(self) -> None:
        ids = self._units()
        if not ids:
            return
        nxt = ids[(ids.index(self.highlighted) + 1) % len(ids)] if self.highlighted in ids \
            else ids[0]
        self.highlight_dimm(nxt)

    def action_open_dimm(self) -> None:
        cell = self.selected
        if cell is None or unit_of(cell) is None:
            return
        if cell.dimm_id is not None:
            self.app.open_dimm(cell.dimm_id)
        else:  # a CXL block: the highlighted memdev if it is one of them, else the first
            self.app.open_dimm(self.highlighted if self.highlighted in cell.memdevs
                               else cell.memdevs[0])
