"""The slot label as the primary name (issue #16): every command's plain output names a
DIMM by the label printed on the board (``P1-DIMMB1``), the EDAC label and id beside it
where there is room, and a replacement is confirmed by typing that slot label — the
same rule as the TUI wizard (tests/tui/test_wizard.py). Through ``memras.cli.main``
in-process, on the TUI tests' demo world (errors, verdicts, alerts)."""

from __future__ import annotations

import builtins
import io
import json
from pathlib import Path

import pytest

from memras.cli import main
from memras.host import Host
from memras.topology.inventory import dimm_inventory
from tests.tui.world import World, build

SLOT, EDAC, ID = "P1-DIMMB1", "CPU_SrcID#0_MC#0_Chan#1_DIMM#0", "mc0/dimm2"
UE_SLOT, UE_EDAC, UE_ID = "P2-DIMMA1", "CPU_SrcID#1_MC#0_Chan#0_DIMM#0", "mc2/dimm0"


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> World:
    from memras import config

    # this machine's /etc/memras/memras.toml never decides a result
    monkeypatch.setattr(config, "DEFAULT_CONFIG_PATH", tmp_path / "no-such-memras.toml")
    return build(tmp_path, monkeypatch)


def run(capsys: pytest.CaptureFixture[str], world: World, *argv: str) -> tuple[int, str, str]:
    code = main(["--root", str(world.root), "--db", str(world.db), *argv])
    out, err = capsys.readouterr()
    return code, out, err


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _type(monkeypatch: pytest.MonkeyPatch, answer: str) -> list[str]:
    """stdin a terminal and ``answer`` typed at the prompt; returns the prompts asked."""
    asked: list[str] = []
    monkeypatch.setattr("sys.stdin", _Terminal())
    monkeypatch.setattr(builtins, "input", lambda prompt="": asked.append(prompt) or answer)
    return asked


def _online(world: World, dimm: str) -> bool:
    host = Host(world.root)
    (info,) = [d for d in dimm_inventory(host) if d.id == dimm]
    return all(host.memory.read(b).state == "online" for b in info.blocks)


@pytest.mark.parametrize("typed", [EDAC, ID, "P1-DIMMB", "P1-DIMMA1"])
def test_replace_confirmation_refuses_anything_but_the_slot_label(world, capsys, monkeypatch,
                                                                  typed) -> None:
    asked = _type(monkeypatch, typed)
    code, out, err = run(capsys, world, "replace", ID, "--backend", "simulated")
    assert code == 2 and asked == [f"Type the slot label {SLOT} to go on: "]
    assert f"remove {SLOT} ({EDAC}, {ID})" in out
    assert f"that is not the slot label '{SLOT}'; nothing was changed" in err
    assert _online(world, ID)


def test_replace_confirmation_takes_the_slot_label_case_folded(world, capsys,
                                                               monkeypatch) -> None:
    asked = _type(monkeypatch, " p1-dimmb1 ")
    code, out, _ = run(capsys, world, "replace", EDAC, "--backend", "simulated")
    assert code == 0 and asked == [f"Type the slot label {SLOT} to go on: "]
    assert "replacement #1: closed" in out
