"""After a replacement the slot holds a new DIMM: registry, verdicts, a running engine,
the simulator's SMBIOS and ``memras dimms`` (demo profile, simulated backend)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from memras.audit.service import AuditTrail
from memras.cli import main
from memras.health.api import current_verdicts, verdict_history
from memras.health.config import parse_config
from memras.health.engine import HealthEngine
from memras.health.module_registry import current_modules, module_history
from memras.health.verdict import REPLACED_RULE, VerdictState
from memras.host import Host
from memras.records import DimmLocation, ErrorType, MemoryErrorEvent, Source
from memras.sim import profiles
from memras.sim.kernel import SimulatedKernel
from memras.store import Store
from memras.topology.inventory import dimm_inventory, resolve_dimm
from memras.workflow.runner import Replacement, ReplaceOptions
from memras.workflow.states import State

FAST = {"backoff_initial_s": 0.01, "backoff_max_s": 0.02, "max_attempts": 4}
SLOT, OLD_SERIAL = "mc0/dimm2", "D3A5F1DD3"  # P1-DIMMB1 of the demo profile


def error(at: datetime, *, ue: bool = False) -> MemoryErrorEvent:
    """An EDAC error on P1-DIMMB1 (skx layers channel 1, slot 0 of mc0)."""
    return MemoryErrorEvent(
        error_type=ErrorType.UNCORRECTED if ue else ErrorType.CORRECTED, source=Source.TRACE,
        count=1, timestamp=at, location=DimmLocation(mc=0, top_layer=1, middle_layer=0,
                                                     rank=0, bank=2, row=0x40))


@pytest.fixture
def replaced(tmp_path):
    """A demo server whose P1-DIMMB1 reached replace-now, then was replaced; the engine
    that judged it (as a running watcher would hold it) and the replacement."""
    srv = profiles.create("demo", tmp_path / "root")
    store = Store.open(tmp_path / "memras.db")
    engine = HealthEngine(parse_config("[page]\naction='off'"), store, srv.host())
    before = datetime.now(UTC) - timedelta(hours=1)
    engine.process([error(before), error(before + timedelta(minutes=1), ue=True)])
    assert engine.verdicts()[SLOT].state == VerdictState.REPLACE_NOW
    rep = Replacement.start(srv.host(), store, "P1-DIMMB1",
                            ReplaceOptions(operator="Ada", policy=FAST))
    rep.run()
    assert rep.state is State.CLOSED
    yield srv, store, engine, rep
    store.close()


def test_the_slot_is_ok_with_rule_replaced_and_keeps_the_old_history(replaced) -> None:
    _, store, _, rep = replaced
    verdict = current_verdicts(store)[SLOT]
    assert (verdict.state, verdict.rules) == (VerdictState.OK, (REPLACED_RULE,))
    assert verdict.evidence["replacement_id"] == rep.id
    assert verdict.evidence["old_serial"] == OLD_SERIAL
    assert verdict.evidence["new_serial"] == f"NEW-{OLD_SERIAL}"
    history = verdict_history(store, SLOT)
    assert [v.state.value for v in history] == ["watch", "replace-now", "ok"]
    just_before = verdict.at - timedelta(seconds=1)
    assert current_verdicts(store, at=just_before)[SLOT].state == VerdictState.REPLACE_NOW


def test_the_audit_records_the_verdict_the_replacement_was_decided_on(replaced) -> None:
    _, store, _, rep = replaced
    select = next(e for e in AuditTrail(store).list(replacement_id=rep.id)
                  if e.action == "select")
    verdict = select.data["verdict"]
    assert (verdict["dimm_id"], verdict["state"]) == (SLOT, "replace-now")
    assert verdict["rules"] and isinstance(verdict["at"], str)  # JSON-safe: ISO time


def test_registry_rows_close_the_old_module_and_open_the_new(replaced) -> None:
    _, store, _, rep = replaced
    old, new = module_history(store, SLOT)
    assert (old.serial, old.source, old.replaced_by) == (OLD_SERIAL, "inventory", new.id)
    assert old.removed_at == new.installed_at == current_verdicts(store)[SLOT].at
    assert (new.serial, new.source, new.replacement_id, new.removed_at) == \
        (f"NEW-{OLD_SERIAL}", "replacement", rep.id, None)
    assert (new.part, new.manufacturer) == ("M393A1K43BB1-CTD", "Samsung")
    others = current_modules(store)
    assert len(others) == 10 and all(m.source == "inventory" for k, m in others.items()
                                     if k != SLOT)  # registered when the watcher started


def test_a_running_engine_judges_only_the_new_module(replaced) -> None:
    _, store, engine, _ = replaced
    after = datetime.now(UTC) + timedelta(minutes=1)
    engine.process([error(after)])  # one CE on the new module
    assert engine.verdicts()[SLOT].state == VerdictState.WATCH
    assert verdict_history(store, SLOT)[-1].state == VerdictState.WATCH
    engine.process([error(after - timedelta(hours=2), ue=True)])  # late, old module's
    assert engine.skipped_removed_module == 1
    assert current_verdicts(store)[SLOT].state == VerdictState.WATCH


def test_the_simulated_firmware_and_verify_see_the_new_serial(replaced) -> None:
    srv, store, _, rep = replaced
    fresh = Host(srv.root)  # SMBIOS is read once per Host; a new reader sees the refresh
    assert resolve_dimm(fresh, SLOT).smbios.serial == f"NEW-{OLD_SERIAL}"
    verify = next(e for e in AuditTrail(store).list(replacement_id=rep.id)
                  if e.action == "verify")
    assert verify.data["identity"]["serial"] == f"NEW-{OLD_SERIAL}"
    assert verify.data["identity"]["serial_source"] == "smbios"
    assert {d.id for d in dimm_inventory(fresh)} == {d.id for d in dimm_inventory(srv.host())}


def test_eject_empties_the_slots_smbios_entry(tmp_path) -> None:
    srv = profiles.create("demo", tmp_path / "root")
    SimulatedKernel(srv.root).write("/sys/bus/acpi/devices/PNP0C80:00/eject", "1")
    slot = [d for d in Host(srv.root).smbios.memory_devices() if d.locator == "P1-DIMMB1"]
    assert len(slot) == 1 and not slot[0].populated and slot[0].serial == "NO DIMM"
    assert SLOT in {d.id for d in dimm_inventory(Host(srv.root))}  # EDAC still lists it


def test_memras_dimms_shows_the_new_module(replaced, tmp_path, capsys) -> None:
    srv, _, _, _ = replaced
    argv = ["--root", str(srv.root), "--db", str(tmp_path / "memras.db")]
    assert main([*argv, "--wide", "dimms"]) == 0  # every column, MODULE too
    out = capsys.readouterr().out
    line = next(x for x in out.splitlines() if SLOT in x.split())  # DIMM name, then ID
    assert "MODULE" in out and f"NEW-{OLD_SERIAL}" in line and " ok " in f" {line} "
    assert main([*argv, "--json", "dimms"]) == 0
    row = next(r for r in json.loads(capsys.readouterr().out)["dimms"] if r["id"] == SLOT)
    assert (row["verdict"], row["module"]["serial"], row["module"]["source"]) == \
        ("ok", f"NEW-{OLD_SERIAL}", "replacement")
