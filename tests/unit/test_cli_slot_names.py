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
    assert code == 3 and asked == [f"Type the slot label {SLOT} to go on: "]  # refused
    assert f"remove {SLOT} ({EDAC}, {ID})" in out
    assert f"that is not the slot label '{SLOT}'; nothing was changed" in err
    assert _online(world, ID)


def test_replace_confirmation_takes_the_slot_label_case_folded(world, capsys,
                                                               monkeypatch) -> None:
    asked = _type(monkeypatch, " p1-dimmb1 ")
    code, out, _ = run(capsys, world, "replace", EDAC, "--backend", "simulated")
    assert code == 0 and asked == [f"Type the slot label {SLOT} to go on: "]
    assert "replacement #1: closed" in out


def _first_cells(out: str) -> dict[str, str]:
    """A table's rows by their first cell -> the whole line."""
    return {line.split()[0]: line for line in out.splitlines()[1:] if line.strip()}


def test_dimms_status_verdicts_lead_with_the_slot_label(world, capsys) -> None:
    for argv in (["dimms"], ["dimms", "--wide"]):
        code, out, _ = run(capsys, world, *argv)
        rows = _first_cells(out)
        assert code == 0 and out.startswith("DIMM ")
        assert f"{SLOT} {ID} {EDAC}" in " ".join(rows[SLOT].split())  # slot, id, EDAC label
    code, out, _ = run(capsys, world, "status")
    assert code == 0
    dimm_lines = [line.split() for line in out.splitlines() if line.startswith(("P1-", "P2-"))]
    assert [cells[:2] for cells in dimm_lines] == [[SLOT, ID], [UE_SLOT, UE_ID]]
    code, out, _ = run(capsys, world, "verdicts")
    rows = _first_cells(out)
    assert code == 0 and rows[SLOT].split()[1] == ID and rows[UE_SLOT].split()[1] == UE_ID
    assert EDAC not in out  # the stored label is not what the DIMM column shows


def test_alerts_show_the_slot_label_now_and_keep_the_stored_label(world, capsys) -> None:
    code, out, _ = run(capsys, world, "alerts", "list")
    lines = out.splitlines()
    assert code == 0 and lines[0].split()[:6] == ["ID", "TIME", "SEVERITY", "KIND", "STATE",
                                                  "DIMM"]
    shown = {line.split()[0]: line.split()[6] for line in lines[1:]}
    assert shown == {"1": "P1-DIMMD1", "2": SLOT, "3": SLOT, "4": UE_SLOT, "5": UE_SLOT}
    assert EDAC not in out
    code, out, _ = run(capsys, world, "--json", "alerts", "list")
    dimms = {a["id"]: a["dimm"] for a in json.loads(out)}
    assert code == 0 and dimms[3] == {"id": ID, "label": EDAC, "name": SLOT}
    code, out, _ = run(capsys, world, "status")
    alert_lines = [line.strip() for line in out.splitlines() if line.startswith("  #")]
    assert alert_lines[3].startswith(f"#4 CRITICAL ue {UE_SLOT}: uncorrected memory error")
    code, out, _ = run(capsys, world, "--json", "status")
    assert json.loads(out)["alerts"][2]["dimm"] == {"id": ID, "label": EDAC, "name": SLOT}


def test_alerts_by_slot_label_ack_and_resolve(world, capsys) -> None:
    code, out, _ = run(capsys, world, "--json", "alerts", "ack", "--dimm", SLOT.lower(),
                       "--by", "ada")
    changed = json.loads(out)["changed"]
    assert code == 0 and [a["id"] for a in changed] == [2, 3]
    assert {a["dimm"]["name"] for a in changed} == {SLOT}


def test_replace_dry_run_names_the_slot_then_the_edac_label_and_id(world, capsys) -> None:
    code, out, _ = run(capsys, world, "replace", SLOT, "--dry-run")
    assert code == 0 and out.splitlines()[0] == (
        f"dry run: replace {SLOT} ({EDAC}, {ID}) with backend simulated")
    code, out, _ = run(capsys, world, "--json", "replace", EDAC, "--dry-run")
    data = json.loads(out)
    assert data["dimm_name"] == SLOT and data["target"]["label"] == EDAC


def test_hooks_and_metrics_get_the_slot_label(world) -> None:
    """What the watcher's AlertService (opened with the host) raises carries dimm.name,
    and the prometheus snapshot a slot label; without a host, neither is invented."""
    from memras.alerts.alert import Alert, AlertKind, Severity
    from memras.alerts.dispatcher import snapshot_from_alerts
    from memras.alerts.naming import dimm_namer
    from memras.alerts.service import AlertService, SqlAlertStore
    from memras.store import Store

    with Store.open(world.db) as store:
        service = AlertService.open(store, host=Host(world.root))
        alert = Alert(AlertKind.THRESHOLD_CROSSED, Severity.WARNING, "12 CEs in 24h",
                      dimm_id=ID, dimm_label=EDAC, rule_ids=("x",))
        raised = service.raise_alert(alert).alert
        service.close()
        assert raised is not None and raised.to_payload()["dimm"] == {
            "id": ID, "label": EDAC, "name": SLOT}
        bare = AlertService.open(store)
        assert bare.get(raised.id or 0).dimm_name is None
        bare.close()
        named = SqlAlertStore(store, dimm_namer(Host(world.root), store))
        slots = {m.dimm_id: m.slot for m in snapshot_from_alerts(named).dimms}
    assert slots[ID] == SLOT and slots[UE_ID] == UE_SLOT
