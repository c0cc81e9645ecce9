"""Label files (the supermicro excerpt), registering on a simulated root, and the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from memras.cli import main
from memras.errors import ParseError
from memras.health.labels import (
    Board,
    Flavour,
    LabelEntry,
    matching_boards,
    parse_label_file,
    plan_labels,
    register_labels,
)
from memras.sim.profiles import create
from memras.store import Store

from ._events import ce
from .test_config import MCELOG_CONF

SUPERMICRO = """\
Vendor: Supermicro
  Model: X10SRA-F
    DIMMA1: 0.0.0;
    DIMMA2: 0.0.1;
    DIMMB1: 0.1.0;
"""


def test_supermicro_excerpt() -> None:
    (board,) = parse_label_file(SUPERMICRO, "supermicro", Flavour.RASDAEMON)
    assert board.vendor == "Supermicro" and board.models == ("X10SRA-F",)
    assert board.entries == (LabelEntry("DIMMA1", (0, 0, 0)), LabelEntry("DIMMA2", (0, 0, 1)),
                             LabelEntry("DIMMB1", (0, 1, 0)))
    assert matching_boards([board], Board("SUPERMICRO", "x10sra-f")) == [board]
    assert matching_boards([board], Board("Supermicro", "X11DPi-N")) == []


def test_edac_utils_grammar_with_several_targets() -> None:
    text = "# comment\nVendor: Supermicro\n Model: P4DPR, X5DP8\n" \
           "    DIMM#1A: 0.0.0, 0.1.0; DIMM#1B: 0.0.1, 0.1.1;\n"
    (board,) = parse_label_file(text, "labels.db", Flavour.EDAC_UTILS)
    assert board.models == ("P4DPR", "X5DP8")
    assert [(e.label, e.target) for e in board.entries] == [
        ("DIMM#1A", (0, 0, 0)), ("DIMM#1A", (0, 1, 0)),
        ("DIMM#1B", (0, 0, 1)), ("DIMM#1B", (0, 1, 1))]


def test_colon_targets_and_product() -> None:
    text = "vendor: Dell Inc.\nproduct: PowerEdge R7525\nA1: 0:0:0; A2: 0:1:0\n"
    (board,) = parse_label_file(text, "dell", Flavour.RASDAEMON)
    assert board.products == ("PowerEdge R7525",)
    assert board.entries[1] == LabelEntry("A2", (0, 1, 0))


@pytest.mark.parametrize(("text", "message"), [
    ("DIMMA1: 0.0.0\n", "f:1: 'DIMMA1: 0.0.0' before any 'Vendor:' line"),
    ("Vendor: X\nModel: Y\nDIMMA1: zero\n", "f:3: 'zero' is not a location like 0.1.0"),
])
def test_bad_label_files(text: str, message: str) -> None:
    with pytest.raises(ParseError) as info:
        parse_label_file(text, "f", Flavour.RASDAEMON)
    assert info.value.msg == message


def test_register_on_simulated_board(tmp_path: Path) -> None:
    server = create("skylake-2s", tmp_path / "root")
    host = server.host()
    dimm = host.edac.dimms()[0]
    target = ".".join(str(n) for n in (dimm.mc, *dimm.layers))
    text = f"Vendor: Supermicro\nModel: X11DPi-N\nCPU1_DIMM_Z9: {target}; GHOST: 9.9.9\n"
    boards = parse_label_file(text, "f", Flavour.RASDAEMON)
    plan = plan_labels(host, matching_boards(boards, Board("Supermicro", "X11DPi-N")))
    assert [(p.label, p.status) for p in plan] == [("CPU1_DIMM_Z9", "change"),
                                                  ("GHOST", "missing")]
    results = register_labels(host, plan)
    assert [r for _, r in results] == ["written", "missing"]
    assert host.edac.dimms()[0].label == "CPU1_DIMM_Z9"


def test_cli_labels_show_json(tmp_path: Path, capsys) -> None:
    server = create("skylake-2s", tmp_path / "root")
    dimm = server.host().edac.dimms()[0]
    db = tmp_path / "labels.db"
    db.write_text("Vendor: Supermicro\nModel: X11DPi-N\n"
                  f"NEW_LABEL: {dimm.mc}.{'.'.join(map(str, dimm.layers))}\n")
    assert main(["labels", "show", "--root", str(server.root), "--labeldb", str(db),
                 "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["board"]["model"] == "X11DPi-N"
    assert out["labels"][0]["status"] == "change"


def test_cli_config_import_check_and_bad(tmp_path: Path, capsys) -> None:
    mcelog = tmp_path / "mcelog.conf"
    mcelog.write_text(MCELOG_CONF)
    toml = tmp_path / "memras.toml"
    assert main(["config", "import", "--mcelog", str(mcelog), "--output", str(toml)]) == 0
    assert main(["config", "check", "--config", str(toml)]) == 0
    assert "memras.toml: ok" in capsys.readouterr().out
    toml.write_text('[thresholds.dimm]\nce = "10 / 24s"\n')
    assert main(["config", "check", "--config", str(toml)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == ("memras: memras.toml: [thresholds.dimm] ce = '10 / 24s': unit 's' is not "
                   "allowed (use m, h or d, or none for seconds)")


def test_cli_verdicts_at(tmp_path: Path, capsys) -> None:
    db = tmp_path / "m.db"
    with Store.open(db) as store:
        store.add_events([ce(0.0, rank=0, bank=1, row=1, column=1),
                          ce(7200.0, ue=True, address=0x3000)])
    assert main(["verdicts", "--db", str(db), "--json", "--at", "2024-03-01T01:00:00"]) == 0
    (early,) = json.loads(capsys.readouterr().out)
    assert early["verdict"] == "watch"
    assert main(["verdicts", "--db", str(db), "--json"]) == 0
    (late,) = json.loads(capsys.readouterr().out)
    assert late["verdict"] == "replace-now" and late["rules"][0] == "ue"
    assert main(["verdicts", "--db", str(db), "--at", "yesterday"]) == 2
