"""Two Textual widgets that repaint what Textual 8.2 leaves stale after a late layout.

Both were found by snapshots that caught half-laid-out frames under load; both are
ordering races inside Textual, so waiting longer in a test only made them rarer.

``MeasuredTable`` (a DataTable): new rows are measured on the table's idle, but the
cells and lines it rendered *before* that are cached under ``_update_count``, which
measuring does not bump. A frame painted between ``add_row`` and the table's idle (the
screen's refresh timer won the race) stays painted with header-wide columns ("mc  - not
j") until something else changes the table. Here measuring that changed a column's width
drops those caches, and ``measured`` says the widths on screen are the final ones.

``SettledScroll`` (a VerticalScroll): ``Widget.watch_scroll_y`` moves the scrollbar's
thumb only while the scrollbar is shown. Scrolling home while the content briefly fits
(the wizard between two phases) leaves the thumb where it was; once the content grows
again the bar reappears with a stale thumb over content that is at the top. Here the
thumb follows ``scroll_y`` whether or not the bar is shown.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from textual.containers import VerticalScroll
from textual.message import Message
from textual.widgets import DataTable


class MeasuredTable(DataTable[Any]):
    """A DataTable whose cells are re-rendered when measuring changes a column's width."""

    class Measured(Message):
        """Every row added so far is measured; the next frame shows the final widths."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.measured = True  # False from add_row until the table has measured the rows

    def add_row(self, *cells: Any, **kwargs: Any) -> Any:
        self.measured = False
        return super().add_row(*cells, **kwargs)

    def _update_dimensions(self, new_rows: Iterable[Any]) -> None:
        before = [column.get_render_width(self) for column in self.columns.values()]
        super()._update_dimensions(new_rows)
        after = [column.get_render_width(self) for column in self.columns.values()]
        if after != before:
            self._clear_caches()
            self._update_count += 1  # every cache key above holds the old count
            self.refresh()
        if not self.measured and not self._new_rows:
            self.measured = True
            self.post_message(self.Measured())


class SettledScroll(VerticalScroll):
    """A VerticalScroll whose scrollbar thumb never disagrees with ``scroll_y``."""

    def watch_scroll_y(self, old_value: float, new_value: float) -> None:
        if self._vertical_scrollbar is not None and not self.show_vertical_scrollbar:
            self._vertical_scrollbar.position = new_value
        super().watch_scroll_y(old_value, new_value)
