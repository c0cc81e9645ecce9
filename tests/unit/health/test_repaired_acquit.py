"""The operator's repair record (issue 18, deliverable 6): `memras repaired` / `acquit`
close a DIMM's verdict with an audit row, resolve its alerts and count only new errors;
a module swapped while memras was not looking is recorded the same way at the next start.

The simulated server is the demo profile with twelve corrected errors on one row of
P1-DIMMA1 (tests/unit/conftest.py `server`); the engine cases use plain events.
"""

from __future__ import annotations

import dataclasses
import json
from datetime import timedelta
from pathlib import Path

import pytest

from memras.cli import main
from memras.health.api import replay_verdicts
from memras.health.closing import ACQUITTED, REPAIRED, close_verdict, read_closings
from memras.health.config import parse_config
from memras.health.engine import HealthEngine
from memras.health.verdict import VerdictState
from memras.sim import tree
from memras.sim.state import read_state, write_state
from memras.store import Store

from ._events import T0, ce

SLOT = "mc0:0:0:-1"  # the location key the plain events resolve to (no inventory)
NO_PAGES = parse_config("[page]\naction='off'")
HOUR = 3600.0


# ---- the engine: a closing is a cut, the module kept -----------------------------------

@pytest.fixture
def store(tmp_path: Path):
    s = Store.open(tmp_path / "memras.db")
    yield s
    s.close()


def _row_fault(start: float) -> list:
    return [ce(start + i * 60, row=7, bank=1, column=i, address=0x1000 * (i + 1))
            for i in range(12)]


def test_closing_cuts_the_evidence_before_it_and_later_errors_start_fresh(store) -> None:
    engine = HealthEngine(NO_PAGES, store)
    engine.process(_row_fault(0))
    assert engine.verdicts()[SLOT].state != VerdictState.OK
    closing = close_verdict(store, dimm_id=SLOT, kind=REPAIRED, reason="reseated",
                            operator="ana", at=T0 + timedelta(hours=2))
    assert closing.previous_state == engine.verdicts()[SLOT].state.value
    # replayed from the stored-by-engine verdict rows' evidence: nothing counts before
    verdicts, _ = replay_verdicts(store, NO_PAGES)
    assert SLOT not in verdicts or verdicts[SLOT].state == VerdictState.OK
    # the watcher notices the closing at its next batch: one CE after it is a watch,
    # and a late error from before it is not judged at all
    changes = engine.process([ce(3 * HOUR), ce(HOUR + 30, row=7, bank=1)])
    v = engine.verdicts()[SLOT]
    assert v.state == VerdictState.WATCH, v
    assert engine.skipped_removed_module == 1
    assert [c.evidence["previous"] for c in changes if c.verdict] == ["ok"]


def test_replay_gives_the_closing_rule_and_judges_before_it_as_it_was(store) -> None:
    events = _row_fault(0)
    store.add_events(events)
    before, _ = replay_verdicts(store, NO_PAGES)
    assert before[SLOT].state == VerdictState.REPAIR
    close_verdict(store, dimm_id=SLOT, kind=ACQUITTED, reason="bad DIMM map",
                  operator=None, at=T0 + timedelta(hours=1))
    after, _ = replay_verdicts(store, NO_PAGES)
    assert (after[SLOT].state, after[SLOT].rules) == (VerdictState.OK, ("acquitted",))
    assert "bad DIMM map" in after[SLOT].reasons[0]
    as_of, _ = replay_verdicts(store, NO_PAGES, at=T0 + timedelta(minutes=30))
    assert as_of[SLOT].state == VerdictState.REPAIR  # judged as of then: not closed yet
    assert [c.kind for c in read_closings(store)] == [ACQUITTED]


def test_unknown_kind_is_refused(store) -> None:
    with pytest.raises(ValueError, match="not a closing kind"):
        close_verdict(store, dimm_id=SLOT, kind="forgiven", reason="x", operator=None)


# ---- the commands on a simulated server -----------------------------------------------

def _run(capsys, *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    try:
        rc = main(list(args))
    except SystemExit as exc:  # argparse's own refusals (a missing --reason)
        rc = int(exc.code or 0)
    out = capsys.readouterr()
    return rc, out.out, out.err


@pytest.fixture
def watched(server: Path, tmp_path: Path, capsys) -> list[str]:
    """The demo server watched once: P1-DIMMA1 has a repair verdict and open alerts.

    Booted two hours ago (the profile boots one hour before creation, and the stream
    is an hour into uptime: its errors would be seconds ahead of this clock), so the
    errors lie before anything the test does next, as on a real server."""
    stat = server / "proc/stat"
    btime = int(stat.read_text().split()[1])
    stat.write_text(f"btime {btime - 3600}\n")
    config = tmp_path / "memras.toml"
    config.write_text(f'[page]\naction = "off"\n[audit]\nanchor_file = "{tmp_path}/anchor"\n')
    common = ["--root", str(server), "--db", str(tmp_path / "memras.db"),
              "--config", str(config)]
    assert _run(capsys, "watch", "--once", *common)[0] == 0
    return common


def _json(capsys, *args: str):
    rc, out, err = _run(capsys, *args, "--json")
    assert rc == 0, err
    return json.loads(out)


def _open_alerts(capsys, common: list[str], dimm: str = "mc0/dimm0") -> list[dict]:
    return [a for a in _json(capsys, "alerts", "list", "--state", "all", *common)
            if a["dimm"]["id"] == dimm and a["state"] != "resolved"]


def test_repaired_closes_verdict_alerts_and_writes_an_audit_row(watched, capsys) -> None:
    common = watched
    before = _open_alerts(capsys, common)
    assert before
    plan = _json(capsys, "repaired", "P1-DIMMA1", "--reason", "reseated", "--dry-run",
                 *common)
    assert plan["dry_run"] and plan["verdict"]["state"] == "repair-by-page-offlining"
    assert plan["alerts"] == [a["id"] for a in before] and plan["errors_closed"] == 12
    assert _open_alerts(capsys, common) == before  # the dry run changed nothing
    assert _json(capsys, "audit", "list", *common) == []

    rc, out, err = _run(capsys, "repaired", "P1-DIMMA1", "--reason", "reseated, cleaned",
                        "--operator", "ana", *common)
    assert rc == 0, err
    assert "closed verdict repair-by-page-offlining" in out and "reseated, cleaned" in out
    assert "12 stored error(s) no longer count" in out
    assert _open_alerts(capsys, common) == []
    resolved = [a for a in _json(capsys, "alerts", "list", "--state", "all", *common)
                if a["id"] in {b["id"] for b in before}]
    resolution = resolved[0]["evidence"]["resolution"]
    assert resolution["closing"] == "repaired" and resolution["closing_id"] == 1
    assert "reseated, cleaned" in resolution["reason"]

    (row,) = _json(capsys, "audit", "list", *common)
    assert row["action"] == "verdict_repaired" and row["actor"]["operator"] == "ana"
    assert row["data"]["previous_verdict"] == "repair-by-page-offlining"
    assert row["data"]["alerts_resolved"] == [a["id"] for a in before]
    assert _run(capsys, "audit", "verify", *common)[0] == 0

    verdicts = _json(capsys, "verdicts", *common)
    assert [(v["verdict"], v["rules"]) for v in verdicts] == [("ok", ["repaired"])]
    history = _json(capsys, "verdicts", "--history", "P1-DIMMA1", *common)
    assert history[-1]["rules"] == ["repaired"] and history[-1]["evidence"]["operator"] == "ana"
    # the errors stay stored, visible as history
    assert len(_json(capsys, "errors", "--dimm", "P1-DIMMA1", *common)) == 12
    # nothing left to close: a second one is refused, naming why
    rc, _, err = _run(capsys, "repaired", "P1-DIMMA1", "--reason", "again", *common)
    assert rc == 2 and "nothing to close" in err and err.count("\n") == 1


def test_acquit_plain_output_and_a_second_watch_keeps_it_closed(watched, capsys) -> None:
    common = watched
    rc, out, err = _run(capsys, "acquit", "mc0/dimm0", "--reason", "EDAC map was wrong",
                        *common)
    assert rc == 0, err
    assert out.startswith("P1-DIMMA1 (mc0/dimm0): closed verdict repair-by-page-offlining")
    assert "acquitted (a false alarm): EDAC map was wrong" in out and "audit row 1" in out
    # the same stream read again judges nothing new: the verdict stays closed
    assert _run(capsys, "watch", "--once", *common)[0] == 0
    assert [v["verdict"] for v in _json(capsys, "verdicts", *common)] == ["ok"]
    assert _open_alerts(capsys, common) == []


@pytest.mark.parametrize(("args", "needle"), [
    (["repaired", "P9-DIMMZ9", "--reason", "x"], "no DIMM called 'P9-DIMMZ9'"),
    (["acquit", "P1-DIMMA1"], "--reason"),
    (["repaired", "P1-DIMMA1", "--reason", "  "], "--reason is empty"),
])
def test_bad_input_is_one_line_and_exit_2(watched, capsys, args, needle) -> None:
    rc, _, err = _run(capsys, *args, *watched)
    assert rc == 2 and needle in err and err.count("\n") == 1, err


# ---- a swap made while memras was not looking ------------------------------------------

def _swap_serial(root: Path, name: str, serial: str) -> str:
    """Power off, swap ``name`` for a module with ``serial``, boot: new SMBIOS tables."""
    state = read_state(root)
    old = next(d for d in state.spec.dimms if d.name == name)
    state.spec.dimms[state.spec.dimms.index(old)] = dataclasses.replace(old, serial=serial)
    tree.write_dmi(root, state.spec)
    write_state(root, state)
    return old.serial


def test_a_serial_changed_in_the_slot_is_recorded_as_replaced_outside(
        server, watched, capsys) -> None:
    common = watched
    before = _open_alerts(capsys, common)
    assert before
    old = _swap_serial(server, "P1-DIMMA1", "NEW0042")
    assert _run(capsys, "watch", "--once", *common)[0] == 0

    (row,) = _json(capsys, "audit", "list", *common)
    assert row["action"] == "module_replaced_outside"
    assert row["data"]["message"] == \
        f"mc0/dimm0: replaced outside memras (serial {old} → NEW0042)"
    assert row["data"]["alerts_resolved"] == [a["id"] for a in before]
    assert _open_alerts(capsys, common) == []
    history = _json(capsys, "verdicts", "--history", "P1-DIMMA1", *common)
    assert (history[-1]["verdict"], history[-1]["rules"]) == ("ok", ["replaced"])
    assert history[-1]["module"]["serial"] == "NEW0042"
    assert [v["verdict"] for v in _json(capsys, "verdicts", *common)] == ["ok"]
    # recorded once: the next start finds nothing new to record
    assert _run(capsys, "watch", "--once", *common)[0] == 0
    assert len(_json(capsys, "audit", "list", *common)) == 1


def test_the_dimm_detail_shows_the_closing(server, watched, tmp_path, capsys) -> None:
    from memras.tui.screens.dimm_detail import _history, _verdict
    from rich.console import Console

    from memras import views
    from memras.host import Host
    from memras.topology.inventory import dimm_inventory

    assert _run(capsys, "repaired", "P1-DIMMA1", "--reason", "reseated", "--operator",
                "ana", *watched)[0] == 0
    host = Host(server)
    dimm = next(d for d in dimm_inventory(host) if d.id == "mc0/dimm0")
    with Store.open(tmp_path / "memras.db") as store:
        detail = views.dimm_detail(host, store, dimm)
    assert [(c.kind, c.operator, c.reason) for c in detail.closings] == \
        [(REPAIRED, "ana", "reseated")]
    console = Console(width=160, record=True)
    console.print(_history(detail))
    console.print(_verdict(detail))
    text = console.export_text()
    assert "verdict closed: repaired by ana: reseated" in text
    assert "repaired by the operator" in text and "none recorded" not in text
