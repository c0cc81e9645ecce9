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
    heat = {(3, 5): 14, (0, 0): 1, (7, 15): 3}
    cells = views.FaultCells(Counter({0x1A2F: 14, 0x20: 1, 0xFFFF: 3}), Counter(),
                             Counter({3: 14, 0: 1, 7: 3}), heat, 18, 0)
    lines = _plain(_heat_map(cells))
    assert [line.split()[0] for line in lines[:8]] == [f"b{b}" for b in range(8)]
    b3 = lines[3][4:]
    assert b3.index("█") == 5 * HEAT_CELL and b3.count("█") == HEAT_CELL  # busiest cell
    assert set(lines[1][4:]) == {"·"}  # a quiet bank is drawn, empty
    assert lines[7][4:].endswith("░" * HEAT_CELL)  # 3 of 14: the lightest shade, last range
    assert lines[8].split() == ["row", "0", "0xffff"]
    assert "≤14" in lines[9] and "none" in lines[9]
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
