"""``memras import|errors|summary`` end to end through ``memras.cli.main``."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from memras.cli import main

MC_LINE = ("rasdaemon-1234 [00{cpu}] ..... {ts:.6f}: mc_event: {n} Corrected error{s}: memory "
           "read error on {label} (mc:0 location:0:{top}:-1 address:0x{addr:08x} grain:32 "
           "syndrome:0x00000000 area:DRAM socket:0 rank:0)")


def _trace(path: Path, labels: list[str]) -> Path:
    lines = [MC_LINE.format(cpu=i % 4, ts=100.0 + 10 * i, n=1 + i % 2, s="s" if i % 2 else "",
                            label=label, top=i % 2, addr=0x1000_0000 + 0x10000 * i)
             for i, label in enumerate(labels)]
    lines.insert(1, "kworker-1 [000] ..... 101.000000: sched_switch: prev_comm=a")
    lines.insert(2, "rasdaemon-1234 [000] ..... 102.000000: mc_event: garbage here")
    path.write_text("\n".join(lines) + "\n")
    return path


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def db(tmp_path: Path) -> str:
    return str(tmp_path / "m.db")


def test_import_trace_then_errors_and_summary(tmp_path: Path, db: str, capsys) -> None:
    trace = _trace(tmp_path / "trace.txt", ["DIMM_A1", "DIMM_A1", "DIMM\x1b[31mB2"])
    code, out, _ = _run(capsys, "import", "trace", str(trace), "--db", db, "--json")
    report = json.loads(out)
    assert code == 0
    assert (report["inserted"], report["duplicates"], report["skipped"]) == (3, 0, 1)
    assert report["ignored"] == 1
    code, out, _ = _run(capsys, "import", "trace", str(trace), "--db", db)
    assert out.startswith("0 inserted, 3 duplicates, 1 skipped")

    code, out, _ = _run(capsys, "errors", "--db", db)
    assert code == 0 and "DIMM_A1" in out
    assert "\x1b" not in out and "DIMM\\x1b[31mB2" in out  # firmware text escaped
    errors = json.loads(_run(capsys, "errors", "--db", db, "--json", "--dimm", "DIMM_A1")[1])
    assert [e["count"] for e in errors] == [1, 2]

    summary = json.loads(_run(capsys, "summary", "--db", db, "--json")[1])
    groups = {(g["label"], g["events"], g["errors"]) for g in summary["groups"]}
    assert groups == {("DIMM_A1", 1, 1), ("DIMM_A1", 1, 2), ("DIMM\x1b[31mB2", 1, 1)}
    assert summary["totals"] == [{"type": "Corrected", "events": 3, "errors": 4}]
    code, out, _ = _run(capsys, "summary", "--db", db)
    assert "Corrected" in out and "\x1b" not in out


def test_import_from_stdin(tmp_path: Path, db: str, capsys, monkeypatch) -> None:
    text = _trace(tmp_path / "t.txt", ["X"]).read_text()
    monkeypatch.setattr("sys.stdin", io.StringIO(text))
    code, out, _ = _run(capsys, "import", "trace", "-", "--db", db, "--json")
    assert code == 0 and json.loads(out)["inserted"] == 1


@pytest.mark.parametrize("argv, message", [
    (["import", "trace", "/nonexistent/file"], "no such file"),
    (["import", "rasdaemon", "NOTADB"], "not a rasdaemon database"),
    (["import", "rasdaemon", "GARBAGE"], "cannot read"),
    (["errors", "--since", "yesterday-ish"], "cannot read the time"),
    (["errors", "--type", "bogus"], "unknown error type"),
])
def test_clear_one_line_errors(tmp_path: Path, db: str, capsys, argv: list[str],
                               message: str) -> None:
    import sqlite3

    sqlite3.connect(tmp_path / "NOTADB").execute("CREATE TABLE x (a)").connection.commit()
    (tmp_path / "GARBAGE").write_bytes(b"\x00garbage" * 200)
    argv = [a if not a.isupper() else str(tmp_path / a) for a in argv]
    _run(capsys, "import", "trace", str(_trace(tmp_path / "t", ["A"])), "--db", db)
    code, out, err = _run(capsys, *argv, "--db", db)
    assert code != 0
    assert message in err and len(err.strip().splitlines()) == 1
    assert "Traceback" not in err


def test_relative_and_absolute_times(tmp_path: Path, db: str, capsys) -> None:
    _run(capsys, "import", "trace", str(_trace(tmp_path / "t", ["A", "B"])), "--db", db,
         "--boot-time", "2024-01-01T00:00:00+00:00")
    since = json.loads(_run(capsys, "errors", "--db", db, "--json",
                            "--since", "2024-01-01T00:01:50+00:00")[1])
    assert [e["location"]["label"] for e in since] == ["B"]
    assert json.loads(_run(capsys, "errors", "--db", db, "--json", "--since", "24h")[1]) == []
    assert len(json.loads(_run(capsys, "errors", "--db", db, "--json", "--since",
                               "2023-12-31")[1])) == 2


# A memory_failure line of a 64 KiB-page kernel (arm64 +64k, POWER): the PFN is in 64 KiB
# pages, so its page starts at pfn << 16; without the size the address would be 16x low.
MF_LINE = "[  100.000000] Memory failure: 0x1234: recovery action for clean LRU page: Recovered\n"


@pytest.mark.parametrize(("argv", "address"), [
    ((), 0x1234 << 12),  # nothing in the log says: x86's 4 KiB
    (("--page-size", "65536"), 0x1234 << 16),
    (("--page-size", "0x4000"), 0x1234 << 14),
])
def test_import_page_size_places_the_pfn(tmp_path: Path, db: str, capsys, argv, address) -> None:
    log = tmp_path / "dmesg.txt"
    log.write_text(MF_LINE)
    assert _run(capsys, "--db", db, "import", "dmesg", str(log), *argv)[0] == 0
    code, out, _ = _run(capsys, "--db", db, "--json", "errors")
    assert code == 0 and [e["address"] for e in json.loads(out)] == [address]


def test_import_page_size_rejects_what_no_kernel_uses(tmp_path: Path, db: str, capsys) -> None:
    log = tmp_path / "dmesg.txt"
    log.write_text(MF_LINE)
    with pytest.raises(SystemExit) as exited:
        main(["--db", db, "import", "dmesg", str(log), "--page-size", "5000"])
    assert exited.value.code == 2
    assert "5000 is not a power of two" in capsys.readouterr().err
