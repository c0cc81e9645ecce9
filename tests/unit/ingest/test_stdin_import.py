"""``memras import dmesg -``: stdin is pre-scanned for its clock like a file (issue 14).

The capture: uptime-only EDAC lines (the skx-era form of radiasoft/devops#134,
https://github.com/radiasoft/devops/issues/134, behind a dmesg uptime stamp), then the
two syslog lines of openstreetmap/operations#300
(https://github.com/openstreetmap/operations/issues/300) that carry both a wall clock and
an uptime — the anchor comes *after* the records it dates, so only a pre-scan finds it.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from memras.store import Store
from memras.watcher import importing
from memras.watcher.importing import run_import

ERROL = [
    "May  7 06:45:12 errol kernel: [21584690.529877] EDAC MC0: 4 CE error on "
    "CPU#0Channel#2_DIMM#0 (channel:2 slot:0 page:0x0 offset:0x0 grain:8 syndrome:0x0)",
    "May  7 06:45:13 errol kernel: [21584691.723198] EDAC MC0: 2 CE error on "
    "CPU#0Channel#2_DIMM#0 (channel:2 slot:0 page:0x0 offset:0x0 grain:8 syndrome:0x0)",
]
EDAC_UPTIME = ("[{t:>12.6f}] EDAC MC1: 1 CE memory scrubbing error on "
               "CPU_SrcID#1_Ha#0_Chan#0_DIMM#0 (channel:0 slot:0 page:{page:#x} offset:0x0 "
               "grain:32 syndrome:0x0 -  area:DRAM err_code:0008:00c2 socket:1 ha:0 "
               "channel_mask:1 rank:0)")
ROOT = Path(__file__).resolve().parents[3]


def capture(n: int = 3) -> str:
    lines = [EDAC_UPTIME.format(t=21584000.0 + i, page=0x1000 + i) for i in range(n)]
    return "\n".join([*lines, *ERROL]) + "\n"


def expected_first() -> datetime:
    boot = datetime(2019, 5, 7, 6, 45, 12).astimezone() - timedelta(seconds=21584690.529877)
    return (boot + timedelta(seconds=21584000.0)).astimezone(UTC)


def memras(tmp_path: Path, *argv: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "MEMRAS_FORBID_REAL_WRITES": "1"}
    return subprocess.run([sys.executable, "-m", "memras", "--db", str(tmp_path / "m.db"),
                           *argv], input=stdin, capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=120, check=False)


def test_stdin_dmesg_takes_its_boot_time_from_a_later_line_like_a_file(tmp_path: Path) -> None:
    done = memras(tmp_path, "import", "dmesg", "-", "--year", "2019", "--json",
                  stdin=capture())
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["inserted"] == 5
    assert any("booted at" in note for note in report["notes"])
    assert not any("carry no clock" in note for note in report["notes"])
    store = Store.open(tmp_path / "m.db")
    rows = store.errors()
    store.close()
    assert sorted(r.time_source for r in rows) == ["syslog"] * 2 + ["uptime+boot"] * 3
    first = min((r for r in rows if r.time_source == "uptime+boot"), key=lambda r: r.time)
    assert first.time == expected_first()
    # the same capture as a file: the same rows (a re-import of it adds nothing)
    path = tmp_path / "capture.log"
    path.write_text(capture())
    again = memras(tmp_path, "import", "dmesg", str(path), "--year", "2019", "--json")
    assert json.loads(again.stdout)["duplicates"] == 5


def test_large_stdin_spills_to_disk_and_imports_the_same(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch
                                                         ) -> None:
    """Beyond SPOOL_MEMORY_BYTES stdin is kept in a temporary file, not in memory."""
    text = capture(400)
    monkeypatch.setattr(importing, "SPOOL_MEMORY_BYTES", 4096)
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(text.encode())))
    rolled = []
    real = importing.tempfile.SpooledTemporaryFile

    def spy(*args: object, **kwargs: object) -> object:
        spool = real(*args, **kwargs)  # type: ignore[call-overload]
        rolled.append(spool)
        return spool

    monkeypatch.setattr(importing.tempfile, "SpooledTemporaryFile", spy)
    store = Store.open(tmp_path / "m.db")
    report = run_import(store, "dmesg", "-", year=2019)
    assert report.inserted == 402
    assert rolled and rolled[0]._rolled  # on disk once past the limit
    assert not any("carry no clock" in note for note in report.notes)
    times = sorted(r.time for r in store.errors() if r.time_source == "uptime+boot")
    assert len(times) == 400 and times[0] == expected_first()
    store.close()
