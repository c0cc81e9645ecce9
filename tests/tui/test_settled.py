"""The two Textual races behind the half-laid-out snapshots, forced deterministically.

Under load the screen's refresh sometimes ran before a DataTable measured its new rows,
and the wizard scrolled home while its scrollbar was hidden. Here both orders are forced
on purpose, so the fixes in memras.tui.widgets.settled are proven without any load.
"""

from __future__ import annotations

from memras.tui.widgets.settled import MeasuredTable, SettledScroll
from textual.app import App, ComposeResult
from textual.widgets import Static

from tests.tui.conftest import wait_until

LONG_ID = "mc0/dimm0-with-a-long-name"


class TableApp(App[None]):
    CSS = "MeasuredTable { height: 6; }"  # fixed, as the dashboard's was: no resize repaints

    def compose(self) -> ComposeResult:
        table = MeasuredTable(id="t")
        table.add_columns("ID", "Verdict")
        yield table


async def test_a_frame_painted_before_measuring_is_repainted_with_the_measured_widths() -> None:
    app = TableApp()
    async with app.run_test(size=(80, 10)) as pilot:
        table = app.query_one(MeasuredTable)
        await pilot.pause()
        table.add_row(LONG_ID, "REPLACE NOW")
        assert not table.measured
        # Paint now, before the table's idle measures the row (the race the screen's
        # refresh timer sometimes won): the cells are cut to the header's width.
        assert LONG_ID not in table.render_line(1).text
        await wait_until(pilot, lambda: table.measured)
        assert LONG_ID in table.render_line(1).text
        assert "REPLACE NOW" in table.render_line(1).text


async def test_measured_is_posted_once_the_rows_are_measured() -> None:
    seen: list[object] = []
    app = TableApp()
    async with app.run_test(size=(80, 10), message_hook=seen.append) as pilot:
        table = app.query_one(MeasuredTable)
        assert table.measured  # no rows: nothing to measure
        table.add_row(LONG_ID, "ok")
        await wait_until(pilot, lambda: any(isinstance(m, MeasuredTable.Measured) for m in seen))
        assert table.measured


class ScrollApp(App[None]):
    CSS = "SettledScroll { height: 5; } #tall { height: 20; }"

    def compose(self) -> ComposeResult:
        with SettledScroll():
            yield Static("top", id="tall")


async def test_the_scrollbar_thumb_follows_a_scroll_made_while_the_bar_was_hidden() -> None:
    app = ScrollApp()
    async with app.run_test(size=(40, 10)) as pilot:
        body = app.query_one(SettledScroll)
        tall = app.query_one("#tall")
        await pilot.pause()
        body.scroll_end(animate=False)
        await pilot.pause()
        assert body.scroll_y > 0 and body.vertical_scrollbar.position > 0
        tall.styles.height = 2  # the content fits: the scrollbar hides
        await pilot.pause()
        assert not body.show_vertical_scrollbar
        body.scroll_home(animate=False)
        tall.styles.height = 20  # the content grows again: the bar is back
        await pilot.pause()
        assert body.show_vertical_scrollbar
        assert body.scroll_y == 0
        assert body.vertical_scrollbar.position == 0  # a plain VerticalScroll keeps 15
