"""The DIMM detail's evidence as readable text and its bank × row heat map (issue 16)."""

from __future__ import annotations

import io
from collections import Counter

from memras.tui.screens.dimm_detail import HEAT_CELL, _evidence_text, _heat_map
from rich.console import Console

from memras import views


def _plain(renderable: object, width: int = 80) -> list[str]:
    console = Console(width=width, color_system=None, record=True, file=io.StringIO())
    console.print(renderable)
    return console.export_text().splitlines()


def test_heat_map_draws_every_bank_the_row_axis_and_a_legend() -> None:
    """Banks as columns (0 to the highest, quiet ones too), the rows seen as lines, the
    busiest cell in the darkest shade, the scale and the rows' span stated."""
    cells: Counter[tuple[views.BankKey, int]] = Counter(
        {((None, None, 3), 0x1A2F): 14, ((None, None, 0), 0x20): 1,
         ((None, None, 7), 0xFFFF): 3})
    heat = views.heat_map(cells)
    assert heat is not None
    lines = _plain(_heat_map(heat))
    assert lines[0].split() == ["row", *"01234567"]
    assert [line.split()[0] for line in lines[1:9]] == [
        f"{lo:#x}–{hi:#x}" for lo, hi in heat.row_ranges]  # 0x20..0xffff in 8 ranges
    assert heat.row_of(0x1A2F) == heat.row_of(0x20) == 0  # 0x20–0x201b: one line
    shade = ["░" * (HEAT_CELL - 1), "█" * (HEAT_CELL - 1)]
    assert lines[1].split()[1:] == [shade[0], "·", "·", shade[1], "·", "·", "·", "·"]
    assert lines[8].split()[-1] == "░" * (HEAT_CELL - 1)  # 3 of 14, last range, bank 7
    assert lines[9] == "errors a cell, linear up to the busiest (14):"
    assert "11–14" in lines[10] and "· 0" in lines[10]
    assert "18 error(s) with a bank and a row; rows 0x20–0xffff seen" in lines[11]
    assert max(len(line) for line in lines) <= 80


def test_evidence_is_key_value_text_not_json() -> None:
    crossings = [{"scope": "dimm", "rule": "mcelog-dimm-ue-1/24h", "total_in_window": 1}]
    text = _evidence_text(crossings).plain
    assert "{" not in text and '"' not in text
    assert text.splitlines()[0] == "- scope:           dimm"
    assert "total in window: 1" in text
    assert _evidence_text([64, 65, 66, 70]).plain == "64-66, 70 (4)"
    assert _evidence_text(False).plain == "no" and _evidence_text([]).plain == "-"
    assert _evidence_text("bad\x1b[2J").plain == "bad\\x1b[2J"  # firmware text escaped
