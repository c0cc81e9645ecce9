"""The watcher's journal lines: one ``MEMRAS_EVENT=…`` line per stored error and health
change, key=value that a logfmt parser reads back, kernel text unable to split a line or
forge a key, priority prefixes when stderr is the journal."""

from __future__ import annotations

import io
import json
import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from memras.cli import main
from memras.watcher import journal

PAIR = re.compile(r'(\w+)=("(?:[^"\\]|\\.)*"|\S+)')


def parse(line: str) -> dict[str, str]:
    """A logfmt reader: quoted values are JSON strings."""
    pairs = PAIR.findall(line)
    assert " ".join(f"{k}={v}" for k, v in pairs) == line, f"not key=value: {line!r}"
    return {k: json.loads(v) if v.startswith('"') else v for k, v in pairs}


@pytest.mark.parametrize(("raw", "shown"), [
    ("skx_edac", "skx_edac"),
    ("0x2ff7df40", "0x2ff7df40"),
    (None, "-"),
    (12, "12"),
    ("memory read error", '"memory read error"'),
    ("CPU_SrcID#0_MC#0_Chan#0_DIMM#0", '"CPU_SrcID#0_MC#0_Chan#0_DIMM#0"'),
    # a label that tries to forge a key, split the line, or drive the terminal
    ("A1 verdict=ok", '"A1 verdict=ok"'),
    ("A1\nMEMRAS_EVENT=verdict", '"A1\\nMEMRAS_EVENT=verdict"'),
    ('say "hi"', '"say \\"hi\\""'),
    ("\x1b[2J", '"\\u001b[2J"'),
    ("", '""'),
])
def test_values(raw: object, shown: str) -> None:
    assert journal.value(raw) == shown
    line = journal.line("error", {"label": raw})
    assert "\n" not in line
    assert parse(line)["label"] == ("-" if raw is None else str(raw))


def test_one_line_per_stored_error_and_per_change(server: Path, tmp_path: Path, capsys) -> None:
    config = tmp_path / "memras.toml"
    config.write_text('[page]\naction = "off"\n')
    common = ["--root", str(server), "--db", str(tmp_path / "m.db"), "--config", str(config)]
    assert main(["watch", "--once", "--log-events", "--json", *common]) == 0
    lines = [parse(x) for x in capsys.readouterr().err.splitlines() if "MEMRAS_EVENT" in x]
    errors = [x for x in lines if x["MEMRAS_EVENT"] == "error"]
    # kmsg and trace both report the twelve errors: twelve rows, twelve lines
    assert len(errors) == 12
    assert len({x["address"] for x in errors}) == 12
    assert {x["type"] for x in errors} == {"Corrected"}
    assert {x["dimm"] for x in errors} == {"mc0/dimm0"}  # the key health judges it by
    verdicts = [x for x in lines if x["MEMRAS_EVENT"] == "verdict"]
    assert verdicts and verdicts[-1]["verdict"] == "repair-by-page-offlining"
    assert lines.index(verdicts[0]) > lines.index(errors[0])
    # the handler is gone after the command: a second run logs nothing unasked
    assert main(["watch", "--once", "--json", *common]) == 0
    assert "MEMRAS_EVENT" not in capsys.readouterr().err
    assert not logging.getLogger("memras").handlers


def test_no_health_names_the_reported_location(server: Path, tmp_path: Path, capsys) -> None:
    assert main(["watch", "--once", "--no-health", "--log-events", "--json", "--root",
                 str(server), "--db", str(tmp_path / "m.db")]) == 0
    errors = [parse(x) for x in capsys.readouterr().err.splitlines()]
    assert len(errors) == 12
    assert {x["dimm"] for x in errors} == {"CPU_SrcID#0_MC#0_Chan#0_DIMM#0"}


def test_stderr_is_journal_only_for_the_stream_systemd_named(tmp_path: Path) -> None:
    with open(tmp_path / "err", "w") as stream:
        st = os.fstat(stream.fileno())
        assert journal.stderr_is_journal({"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"}, stream)
        assert not journal.stderr_is_journal({"JOURNAL_STREAM": f"{st.st_dev}:1"}, stream)
        assert not journal.stderr_is_journal({}, stream)
    assert not journal.stderr_is_journal({"JOURNAL_STREAM": "1:2"}, io.StringIO())


def test_on_the_journal_events_are_on_by_default_with_priorities(server: Path,
                                                                 tmp_path: Path) -> None:
    """What systemd does: stderr is the journal stream, JOURNAL_STREAM names it."""
    err = tmp_path / "stderr"
    with open(err, "w") as stream:
        st = os.fstat(stream.fileno())
        env = {**os.environ, "JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"}
        done = subprocess.run(
            [sys.executable, "-m", "memras", "--root", str(server), "--db",
             str(tmp_path / "m.db"), "watch", "--once", "--no-health", "--json"],
            env=env, stdout=subprocess.DEVNULL, stderr=stream, timeout=300)
    assert done.returncode == 0
    lines = err.read_text().splitlines()
    assert len([x for x in lines if x.startswith("<6>MEMRAS_EVENT=error ")]) == 12
