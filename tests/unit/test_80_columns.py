"""Every command's plain output fits 80 columns on the demo server (issue 16).

The demo server after its scripted story (memras.sim.demo.run_scripted): errors on
several DIMMs, alerts, a verdict of replace-now and a replacement done, so every table
has rows and its long columns are full. Each command runs with COLUMNS=80 and every
line of its stdout and stderr is measured in terminal cells (rich.cells.cell_len,
wcwidth's rules); ``--wide`` must still give the full table.
"""

from __future__ import annotations

import io
import json

import pytest
from rich.cells import cell_len

from memras.cli import main
from memras.cli.render import fit_columns, render_table
from memras.sim.demo import run_scripted

# every command that prints a table or text on a server (the ones that change the
# machine or need a guest, like replace or vm, print through the same Context.table)
COMMANDS = [
    ["status"], ["dimms"], ["verdicts"], ["verdicts", "--dimm", "P1-DIMMC1"], ["errors"],
    ["summary"], ["alerts"], ["alerts", "list", "--state", "all"], ["audit", "list"],
    ["audit", "show", "1"], ["audit", "show", "2"], ["audit", "report", "1"],
    ["audit", "report", "1", "--format", "markdown"], ["audit", "verify"],
    ["locate", "0x100000000"], ["labels"], ["sim", "profiles"], ["config", "show"],
    ["config", "check"], ["blocks"], ["blocks", "--all"], ["doctor"],
]


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    directory = tmp_path_factory.mktemp("demo") / "kept"
    summary = run_scripted(io.StringIO(), directory=directory, speed=60)
    assert summary["replacement"]["state"] == "closed"
    return ["--root", str(directory / "root"), "--db", str(directory / "memras.db")]


def _run(capsys: pytest.CaptureFixture[str], argv: list[str]) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("argv", COMMANDS, ids=" ".join)
def test_plain_output_fits_80_columns(demo, capsys, monkeypatch, argv) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    code, out, err = _run(capsys, [*demo, *argv])
    assert out.strip() or err.strip(), f"{argv} printed nothing"
    long = [(cell_len(line), line) for line in (out + err).splitlines() if cell_len(line) > 80]
    assert not long, f"memras {' '.join(argv)} (exit {code}) runs past 80 columns: {long}"
    assert "\x1b" not in out + err  # not a terminal: no colour, no box drawing
    assert not set("─│┃━┏┓┗┛") & set(out)


def test_blocks_at_80_pads_range_less_and_wide_is_lsmem_byte_for_byte(demo, capsys,
                                                                         monkeypatch) -> None:
    """lsmem pads RANGE to 16 hex digits (81 columns); at 80 the addresses are padded to
    the digits the highest one needs: same rows, columns and values, ``--wide`` as lsmem."""
    monkeypatch.setenv("COLUMNS", "80")
    code, out, _ = _run(capsys, [*demo, "blocks"])
    _, wide, _ = _run(capsys, [*demo, "blocks", "--wide"])
    assert code == 0 and _table_width(wide) == 81 and _table_width(out) <= 80
    assert wide.splitlines()[0].startswith("RANGE" + " " * 34 + "SIZE")
    assert out.splitlines()[1].startswith("0x000000000-0x007ffffff ")  # 36 GiB: 9 digits

    def values(text: str) -> list[list[object]]:
        return [[tuple(int(a, 16) for a in f.split("-")) if f.startswith("0x") else f
                 for f in line.split()] for line in text.splitlines()]

    assert values(out) == values(wide) and len(out.splitlines()) == len(wide.splitlines())
    monkeypatch.setenv("COLUMNS", "120")  # lsmem's own layout when it fits
    assert _run(capsys, [*demo, "blocks"])[1] == wide


def test_doctor_is_a_check_a_row_and_a_long_detail_wraps_under_itself(demo, capsys,
                                                                      monkeypatch) -> None:
    """`memras doctor` is one row per check (scripts grep the status word); a detail
    too long for 80 columns wraps under the detail column, never cut: every word of a
    FAIL's "what to do" is kept. --wide keeps a check to one line."""
    monkeypatch.setenv("COLUMNS", "80")
    code, out, _ = _run(capsys, [*demo, "doctor"])
    _, wide, _ = _run(capsys, [*demo, "doctor", "--wide"])
    _, raw, _ = _run(capsys, [*demo, "doctor", "--json"])
    checks = json.loads(raw)["checks"]
    lines = out.splitlines()
    assert code == 0 and lines[-1] == "all ok" and "…" not in out
    firsts = [line for line in lines[:-1] if not line.startswith(" ")]
    assert [line.split()[0] for line in firsts] == [c["status"] for c in checks]
    assert len(lines) > len(firsts) + 1  # the demo's long paths did wrap
    short = next(c for c in checks if c["name"] == "quick_check")["detail"]
    indent = next(line.index(short) for line in firsts if short in line)
    assert all(len(line) - len(line.lstrip()) == indent for line in lines[:-1]
               if line.startswith(" "))
    squeezed = "".join(out.split())  # a path longer than the column folds mid-word
    assert all("".join(c["detail"].split()) in squeezed for c in checks)
    assert len(wide.splitlines()) == len(checks) + 1 and _table_width(wide) > 80


def _table_width(out: str) -> int:
    return max(cell_len(line) for line in out.splitlines())


@pytest.mark.parametrize("argv", [["errors"], ["dimms"], ["verdicts"], ["audit", "list"]],
                         ids=" ".join)
def test_wide_gives_every_column_in_full(demo, capsys, monkeypatch, argv) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    _, narrow, _ = _run(capsys, [*demo, *argv])
    code, wide, _ = _run(capsys, [*demo, "--wide", *argv])
    assert code == 0 and _table_width(wide) > 80 >= _table_width(narrow)
    assert "…" not in wide  # nothing cut short
    more_columns = len(wide.splitlines()[0].split()) > len(narrow.splitlines()[0].split())
    assert more_columns or "…" in narrow
    _, after, _ = _run(capsys, [*demo, *argv, "--wide"])  # after the command as well
    assert after == wide


def test_errors_at_80_keep_the_slot_label_and_drop_the_optional_columns(demo, capsys,
                                                                         monkeypatch) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    _, out, _ = _run(capsys, [*demo, "errors"])
    header = out.splitlines()[0].split()
    assert header[:2] == ["ID", "TIME"] and "DIMM" in header and "MESSAGE" in header
    assert "LABEL" not in header and "CLOCK" not in header  # the first to go
    assert all(line.split()[0].isdigit() for line in out.splitlines()[1:])  # a row a line
    monkeypatch.setenv("COLUMNS", "200")
    _, out, _ = _run(capsys, [*demo, "errors"])
    assert "LABEL" in out.splitlines()[0].split()  # a wide terminal shows it all


def test_fit_columns_ellipsizes_the_free_text_then_drops_the_least_important() -> None:
    headers = ["NAME", "KIND", "NOTE", "WHY"]
    body = [["a" * 10, "b" * 30, "c" * 30, "d" * 60]]
    keep, limits = fit_columns(headers, body, 80, optional=["NOTE", "KIND"])
    assert keep == [0, 1, 3] and limits == {3: 80 - 10 - 30 - 2}
    keep, limits = fit_columns(headers, body, 200, optional=["NOTE", "KIND"])
    assert keep == [0, 1, 2, 3] and limits == {3: 60}
    keep, _ = fit_columns(headers, body, 40, optional=["NOTE", "KIND"])
    assert keep == [0, 3]  # default order would have gone from the last column back


def test_render_table_escapes_cells_and_ignores_markup() -> None:
    lines = render_table(["LABEL", "N"], [["[bold]x\x1b[2J", 1], [None, 22]], width=80,
                         right=["N"])
    assert lines == ["LABEL           N", "[bold]x\\x1b[2J  1", "-              22"]
