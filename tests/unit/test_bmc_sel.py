"""The SEL parser (memras.bmc.sel) on real ipmitool output, and `memras import sel`.

Lines and where they were published: tests/data/sel/public-elist.txt (each line's URL is
in the comment above it); ipmi_sim-*.txt were captured from ipmitool against OpenIPMI's
ipmi_sim on this project's machine (their header says how).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from memras.bmc.sel import SelStats, parse_sel, parse_sel_line, to_record
from memras.cli import main
from memras.records import ErrorType, Source, TimeSource
from memras.store import Store

DATA = Path(__file__).resolve().parents[1] / "data" / "sel"
CET = timezone(timedelta(hours=1))

# (id, line, expected (error type, slot label, record id, time) or None for "no record")
CORPUS = [
    ("quanta-ce-slot",  # github.com/ipmitool/ipmitool/issues/385
     "  3a | 12/14/22 | 23:09:44 CET | Memory #0x88 | Correctable ECC (CPU0_G1) | Asserted",
     (ErrorType.CORRECTED, "CPU0_G1", 0x3A, datetime(2022, 12, 14, 23, 9, 44, tzinfo=CET))),
    ("quanta-ce-no-slot",  # same issue: "()" = the firmware gave no slot
     "   e | 06/10/22 | 19:31:43 CEST | Memory #0x87 | Correctable ECC () | Asserted",
     (ErrorType.CORRECTED, None, 0xE, datetime(2022, 6, 10, 19, 31, 43, tzinfo=CET))),
    ("sun-device-disabled",  # Sun Fire X4140 diagnostics guide (URL in the data file)
     "300 | 08/26/2005 | 11:36:12 | Memory | Memory Device Disabled | CPU 0 DIMM 0",
     (ErrorType.UNCORRECTED, "CPU 0 DIMM 0", 0x300,
      datetime(2005, 8, 26, 11, 36, 12, tzinfo=CET))),
    ("sim-ue-pre-init",  # ipmi_sim, clock never set: no wall time
     "   2 |  Pre-Init  |0000022492| Memory #0x02 | Uncorrectable ECC | Asserted",
     (ErrorType.UNCORRECTED, None, 2, None)),
    # decoys: SEL records, but no memory error
    ("processor-mce",  # github.com/facebook/openbmc/issues/273
     "   2 | 05/14/2026 | 20:42:44 | Processor #0x40 | Uncorrectable machine check exception"
     " | Asserted", None),
    ("log-cleared",  # github.com/RackHD/RackHD/issues/55
     "    1 | 11/02/2014 | 21:53:48 | Event Logging Disabled #0xf6 | Log area reset/cleared"
     " | Asserted", None),
    ("ce-limit-deasserted",  # ipmi_sim capture: a counter's end, not an error
     "   4 |  Pre-Init  |0000022493| Memory #0x02 | Correctable ECC logging limit reached"
     " | Deasserted", None),
    ("sun-no-usable-memory",
     "200 | 08/26/2005 | 11:36:12 | System Firmware Error | No usable system memory", None),
]


@pytest.mark.parametrize(("line", "expected"), [c[1:] for c in CORPUS],
                         ids=[c[0] for c in CORPUS])
def test_corpus(line: str, expected: tuple | None) -> None:
    entry = parse_sel_line(line, tz=CET)
    assert entry is not None, "every corpus line is a SEL record"
    record = to_record(entry)
    if expected is None:
        assert record is None
        return
    error_type, slot, record_id, when = expected
    assert record is not None
    assert (record.error_type, record.location.label, entry.record_id) == \
        (error_type, slot, record_id)
    assert record.timestamp == when
    assert record.source is Source.BMC and record.raw == line
    assert record.time_source is (TimeSource.BMC if when else None)


def test_utc_is_read_as_utc_whatever_the_default_zone() -> None:
    entry = parse_sel_line("  1 | 12/06/26 | 23:00:05 UTC | Memory #0x02 | "
                           "Uncorrectable ECC | Asserted", tz=CET)
    assert entry is not None and entry.when == datetime(2026, 12, 6, 23, 0, 5, tzinfo=UTC)


@pytest.mark.parametrize("line", ["ID | nope", "zz | 1/1/2020 | 00:00:00 | Memory | x | y",
                                  " 5 | 13/45/2020 | 00:00:00 | Memory | Correctable ECC | "
                                  "Asserted", ""])
def test_not_a_record(line: str) -> None:
    assert parse_sel_line(line) is None


def test_public_file_counts_every_line() -> None:
    stats = SelStats()
    lines = (DATA / "public-elist.txt").read_text().splitlines()
    records = list(parse_sel(lines, tz=CET, stats=stats))
    assert [r.error_type for r in records] == [ErrorType.CORRECTED, ErrorType.CORRECTED,
                                               ErrorType.UNCORRECTED]
    comments = sum(1 for x in lines if x.startswith("#"))
    assert (stats.records, stats.ignored - comments, stats.malformed) == (3, 5, 0)


def test_verbose_and_elist_captures_of_one_sel_agree() -> None:
    """The same four ipmi_sim records as `sel elist` and as `sel list -v`."""
    elist, verbose = SelStats(), SelStats()
    a = list(parse_sel((DATA / "ipmi_sim-elist.txt").read_text().splitlines(), stats=elist))
    b = list(parse_sel((DATA / "ipmi_sim-list-v.txt").read_text().splitlines(),
                       stats=verbose))
    assert [(r.error_type, r.message) for r in a] == [(r.error_type, r.message) for r in b]
    assert [r.error_type for r in b] == [ErrorType.CORRECTED, ErrorType.UNCORRECTED,
                                         ErrorType.UNCORRECTED]
    assert b[2].message == "memory device disabled (SEL)"
    assert (verbose.records, verbose.ignored, verbose.malformed) == (3, 1, 0)
    assert (elist.records, elist.malformed) == (3, 0)


def test_garbage_is_counted_not_raised() -> None:
    stats = SelStats()
    lines = ["\x00\xff | | |", "1 | 99/99/99 | 99:99:99 | Memory | Correctable ECC | Asserted",
             "x" * 10000]
    assert list(parse_sel(lines, stats=stats)) == []
    assert stats.malformed == 2 and stats.ignored == 1


def test_import_sel_twice_stores_each_record_once(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "m.db"
    path = DATA / "public-elist.txt"
    assert main(["--db", str(db), "import", "sel", str(path), "--json"]) == 0
    first = json.loads(capsys.readouterr().out)
    assert (first["inserted"], first["duplicates"], first["skipped"]) == (3, 0, 0)
    assert main(["--db", str(db), "import", "sel", str(path), "--json"]) == 0
    second = json.loads(capsys.readouterr().out)
    assert (second["inserted"], second["duplicates"]) == (0, 3)
    with Store.open(db) as store:
        rows = store.errors()
    assert sorted(str(r.source) for r in rows) == ["bmc"] * 3
    assert {r.location.label for r in rows} == {"CPU0_G1", None, "CPU 0 DIMM 0"}


# ---- the verdict after the reboot ----------------------------------------------------------

def test_a_sel_ue_gives_its_slot_a_replace_verdict() -> None:
    """Sun's POST record (multi-bit ECC logged as Memory Device Disabled) names its slot:
    the health engine judges that slot as it would an EDAC-labelled UE."""
    from memras.health.config import Config
    from memras.health.engine import ChangeKind, HealthEngine

    line = "300 | 08/26/2005 | 11:36:12 | Memory | Memory Device Disabled | CPU 0 DIMM 0"
    records = list(parse_sel([line]))
    engine = HealthEngine(Config(), None, None, record=False)
    changes = engine.process(records)
    assert any(c.kind == ChangeKind.UE for c in changes)
    verdicts = {k: v.state.value for k, v in engine.verdicts().items()}
    assert [v for k, v in verdicts.items() if "CPU 0 DIMM 0" in k] == ["replace-now"]


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, object]:
    code = main(list(argv))
    out = capsys.readouterr().out
    return code, json.loads(out) if out.strip().startswith(("{", "[")) else out


def test_import_sel_on_a_server_moves_its_dimms_verdict(tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]
                                                        ) -> None:
    """The SEL from before the reboot, imported on the server: the UE lands on the DIMM
    the slot names. The line is ipmitool#385's Quanta record with the UE's event and this
    simulated server's slot name in place of CPU0_G1 (the join is what is tested)."""
    code, made = run_cli(capsys, "sim", "create", "skylake-2s", str(tmp_path / "srv"),
                         "--json")
    assert code == 0 and isinstance(made, dict)
    root, db = made["root"], made["db"]
    sel = tmp_path / "sel.txt"
    sel.write_text("  3a | 12/14/22 | 23:09:44 UTC | Memory #0x88 | "
                   "Uncorrectable ECC (P1-DIMMA1) | Asserted\n")
    code, report = run_cli(capsys, "--root", root, "--db", db, "--json", "import", "sel",
                           str(sel))
    assert code == 0 and isinstance(report, dict) and report["inserted"] == 1
    code, verdicts = run_cli(capsys, "--root", root, "--db", db, "--json", "verdicts")
    rows = verdicts["verdicts"] if isinstance(verdicts, dict) else verdicts
    assert isinstance(rows, list)
    mine = [v for v in rows if "P1-DIMMA1" in json.dumps(v)]
    assert mine and mine[0]["verdict"] == "replace-now", mine
