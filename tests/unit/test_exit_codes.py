"""Exit codes as documented (issue 16): every command run for success on a simulated
server, for bad input and, where it has one, for a refusal; the table in
docs/user-guide.md ("Options and exit codes") equal to memras.errors.EXIT_CODES; renamed
options still work under their old, hidden name for one release."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest

from memras.cli import COMMANDS, main
from memras.errors import EXIT_CODES
from memras.sim import profiles

GUIDE = Path(__file__).parents[2] / "docs" / "user-guide.md"
EVALUATE = Path(__file__).parents[1] / "data" / "evaluate"
R = ["--root", "{root}", "--db", "{db}"]

# (command, what the case is, argv, the documented exit code). {root} is a fresh demo
# server (memras sim create demo) whose P1-DIMMC1 reported 40 corrected errors, {db} its
# database after `watch --once` stored them, {tmp} a scratch directory.
CASES: list[tuple[str, str, list[str], int]] = [
    ("acquit", "ok", ["acquit", "P1-DIMMC1", "--reason", "a test", "--dry-run", *R], 0),
    ("acquit", "bad input", ["acquit", "P9-NOPE", "--reason", "a test", *R], 2),
    ("repaired", "ok", ["repaired", "P1-DIMMC1", "--reason", "reseated", "--dry-run", *R], 0),
    ("repaired", "bad input", ["repaired", "P9-NOPE", "--reason", "reseated", *R], 2),
    ("alerts", "ok", ["alerts", *R], 0),
    ("alerts", "bad input", ["alerts", "ack", "99999", *R], 2),
    ("audit", "ok", ["audit", "list", *R], 0),
    ("audit", "bad input", ["audit", "export", "--format", "xml", *R], 2),
    ("blocks", "ok", ["blocks", *R], 0),
    ("blocks", "bad input", ["blocks", "--root", "{tmp}/no-such-dir"], 2),
    ("capacity", "ok", ["capacity", "offline", "128M", "--dry-run", *R], 0),
    ("capacity", "bad input", ["capacity", "offline", "12Q", *R], 2),
    ("capacity", "refused", ["capacity", "offline", "128M", *R], 3),  # no terminal, no --yes
    ("capacity", "refused", ["capacity", "offline", "1G", "--yes", "--reserve", "1T", *R], 3),
    ("completion", "ok", ["completion", "bash"], 0),
    ("completion", "bad input", ["completion", "fish2"], 2),
    ("config", "ok", ["config", "check", "--config", "{tmp}/good.toml"], 0),
    ("config", "bad input", ["config", "check", "--config", "{tmp}/bad.toml"], 2),
    ("demo", "ok", ["demo", "--script", "--speed", "1000", "--seed", "1"], 0),
    ("demo", "bad input", ["demo", "--speed", "0"], 2),
    ("dimms", "ok", ["dimms", *R], 0),
    ("dimms", "bad input", ["dimms", "--root", "{tmp}/no-such-dir"], 2),
    ("doctor", "ok", ["doctor", *R], 0),
    ("doctor", "bad input", ["doctor", "--rasdaemon-db", *R], 2),  # its value missing
    ("errors", "ok", ["errors", *R], 0),
    ("errors", "bad input", ["errors", "--since", "yesterdayish", *R], 2),
    ("evaluate", "ok", ["evaluate", "--csv", str(EVALUATE / "errors.csv"),
                        "--tickets", str(EVALUATE / "tickets.csv")], 0),
    ("evaluate", "bad input", ["evaluate", "--csv", "{tmp}/no.csv",
                               "--tickets", str(EVALUATE / "tickets.csv")], 2),
    ("fleet", "ok", ["fleet", "--url", "sqlite:///{tmp}/fleet.db", "init"], 0),
    ("fleet", "bad input", ["fleet", "--config", "{tmp}/good.toml", "hosts"], 2),  # no url
    ("hotplug-test", "ok", ["hotplug-test", "--dry-run", *R], 0),
    ("hotplug-test", "bad input", ["hotplug-test", "--cycles", "0", *R], 2),
    ("import", "ok", ["import", "dmesg", "{tmp}/dmesg.txt", *R], 0),
    ("import", "bad input", ["import", "dmesg", "{tmp}/no-such.log", *R], 2),
    ("lab", "ok", ["lab", "run", "--list"], 0),
    ("lab", "bad input", ["lab", "run", "no-such-scenario"], 2),
    ("labels", "ok", ["labels", *R], 0),
    ("labels", "bad input", ["labels", "--mainboard", "nocolon", *R], 2),
    ("led", "bad input", ["led", "on", "--config", "{tmp}/good.toml"], 2),  # no [bmc]
    ("locate", "ok", ["locate", "0x1000", *R], 0),
    ("locate", "bad input", ["locate", "zzz", *R], 2),
    ("partition", "bad input", ["partition", "move", "1G", "--from", "a", "--to", "a"], 2),
    ("prune", "ok", ["prune", "--keep", "400d", *R], 0),
    ("prune", "bad input", ["prune", "--keep", "forever", *R], 2),
    ("replace", "ok", ["replace", "P1-DIMMB1", "--dry-run", "--backend", "simulated", *R], 0),
    ("replace", "bad input", ["replace", "P9-NOPE", "--dry-run", *R], 2),
    ("replace", "refused", ["replace", "P1-DIMMB1", "--backend", "simulated", *R], 3),
    # boot memory in kernel zones: the preflight refuses, the dry run says so the same way
    ("replace", "refused", ["replace", "P1-DIMMA1", "--yes", "--backend", "simulated", *R], 3),
    ("replace", "refused", ["replace", "P1-DIMMA1", "--dry-run", "--backend", "simulated",
                            *R], 3),
    ("sim", "ok", ["sim", "inject", "P1-DIMMA1", "--count", "3", *R], 0),
    ("sim", "bad input", ["sim", "inject", "P9-NOPE", *R], 2),
    ("sim", "refused", ["sim", "inject", "P1-DIMMA1", "--root", "{tmp}"], 3),
    ("status", "ok", ["status", *R], 0),
    ("status", "bad input", ["status", "--root", "{tmp}/no-such-dir"], 2),
    ("summary", "ok", ["summary", *R], 0),
    ("summary", "bad input", ["summary", "--type", "bogus", *R], 2),
    ("tui", "bad input", ["tui", *R], 2),  # no terminal: one line, exit 2
    ("verdicts", "ok", ["verdicts", *R], 0),
    ("verdicts", "bad input", ["verdicts", "--at", "soonish", *R], 2),
    ("vm", "bad input", ["vm", "frob", "--qmp", "{tmp}/qmp.sock"], 2),
    ("vm", "failed", ["vm", "list", "--qmp", "{tmp}/no-qmp.sock"], 1),  # no QEMU there
    ("watch", "ok", ["watch", "--once", *R], 0),
    ("watch", "bad input", ["watch", "--once", "--sources", "nosuch", *R], 2),
]

# Commands whose success needs what a unit test does not have, and where it is tested.
NO_OK_CASE = {
    "tui": "needs a terminal: tests/unit/tui (Pilot)",
    "vm": "needs a running QEMU: tests/unit/capacity/test_vm_partition.py",
    "partition": "needs two running QEMU guests: tests/unit/capacity/test_two_guests.py",
    "led": "needs a BMC: tests/unit/test_bmc_ipmi.py (ipmi_sim), test_bmc_redfish.py",
}


@pytest.fixture
def place(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, str]:
    root = tmp_path / "server" / "root"
    profiles.create("demo", root)
    (tmp_path / "good.toml").write_text('[store]\nkeep = "400d"\n')
    (tmp_path / "bad.toml").write_text('[store]\nkepp = "400d"\n')
    (tmp_path / "dmesg.txt").write_text("[    0.000000] Linux version 6.1.0\n")
    where = ["--root", str(root), "--db", str(tmp_path / "memras.db")]
    assert main(["sim", "inject", "P1-DIMMC1", "--count", "40", *where]) == 0
    assert main(["watch", "--once", *where]) == 0
    capsys.readouterr()
    return {"root": str(root), "db": str(tmp_path / "memras.db"), "tmp": str(tmp_path)}


def _run(argv: list[str], place: dict[str, str], capsys: pytest.CaptureFixture[str],
         monkeypatch: pytest.MonkeyPatch) -> tuple[int, str, str]:
    monkeypatch.setattr("sys.stdin", io.StringIO(""))  # no terminal: nobody to ask
    monkeypatch.setenv("COLUMNS", "80")
    try:
        code = main([a.format(**place) for a in argv])
    except SystemExit as exc:  # argparse's own exit, as the console script would end
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def test_every_command_has_a_success_and_a_bad_input_case() -> None:
    kinds: dict[str, set[str]] = {}
    for command, kind, _argv, _code in CASES:
        kinds.setdefault(command, set()).add(kind)
    for command in COMMANDS:
        assert "bad input" in kinds.get(command, set()), command
        assert "ok" in kinds[command] or command in NO_OK_CASE, command
    assert {code for *_, code in CASES} <= set(EXIT_CODES)


@pytest.mark.parametrize(("command", "kind", "argv", "code"), CASES,
                         ids=[f"{c}-{k}-{i}" for i, (c, k, _a, _x) in enumerate(CASES)])
def test_the_documented_exit_code(command: str, kind: str, argv: list[str], code: int,
                                  place: dict[str, str], capsys: pytest.CaptureFixture[str],
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    got, out, err = _run(argv, place, capsys, monkeypatch)
    assert got == code, err
    assert "Traceback" not in err
    if err or code == 2:  # an error that stops a command: one line
        assert len(err.strip().splitlines()) == 1 and err.startswith("memras: "), err
    if code == 3:  # said on stderr, or in the outcome the command prints (replace)
        assert "refus" in err + out and "nothing was changed" in err + out, out + err


@pytest.mark.parametrize(("typed", "code"), [("yes", 3), ("64M", 3), ("128m", 0)])
def test_capacity_offline_asks_for_the_size_it_takes(
        typed: str, code: int, place: dict[str, str], capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The one rule: type the name of what goes (here the size), not 'yes'."""
    asked: list[str] = []
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    monkeypatch.setattr("sys.stdin.isatty", lambda: True)
    monkeypatch.setattr("builtins.input", lambda prompt: asked.append(prompt) or typed)
    got = main(["capacity", "offline", "128M", "--root", place["root"], "--db", place["db"]])
    err = capsys.readouterr().err
    assert asked == ["Type the size 128M to go on: "]
    assert got == code, err
    if code == 3:
        assert "that is not the size '128M'; nothing was changed" in err


def _guide_table(heading: str) -> list[list[str]]:
    text = GUIDE.read_text()
    start = text.index(heading)
    rows = []
    for line in text[start:].splitlines()[1:]:
        if line.startswith("#"):
            break
        if line.startswith("|") and not set(line) <= set("|-: "):
            rows.append([cell.strip() for cell in line.strip("|").split("|")])
    return rows


def test_the_guide_table_is_the_code_table() -> None:
    rows = [r for r in _guide_table("### Exit codes") if r[0] != "Code"]
    assert {int(r[0]): r[1] for r in rows} == EXIT_CODES


@pytest.mark.parametrize(("old", "argv", "new"), [
    ("--by", ["alerts", "ack"], "--operator"),
    ("--by", ["alerts", "resolve"], "--operator"),
    ("--rollback", ["capacity"], "--on-failure"),
    ("--rasdaemon", ["evaluate"], "--rasdaemon-db"),
])
def test_a_renamed_option_is_hidden_from_help_and_documented(
        old: str, argv: list[str], new: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main([*argv, "--help"])
    shown = re.findall(r"--[a-z-]+", capsys.readouterr().out)
    assert old not in shown and new in shown
    documented = "\n".join(" | ".join(r) for r in _guide_table("### Option names"))
    assert f"`{old}`" in documented and f"`{new}" in documented


def test_a_renamed_option_says_its_new_name_and_keeps_its_meaning(
        place: dict[str, str], capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    from memras.cli import build_parser

    args = build_parser(["alerts"]).parse_args(["alerts", "ack", "1", "--by", "ada"])
    assert args.operator == "ada"
    assert "--by is now --operator" in capsys.readouterr().err
    args = build_parser(["capacity"]).parse_args(["capacity", "offline", "1G", "--rollback"])
    assert args.on_failure == "rollback"
    args = build_parser(["capacity"]).parse_args(["capacity", "offline", "1G"])
    assert args.on_failure == "leave"  # as chmem: a partial run stays as it is
