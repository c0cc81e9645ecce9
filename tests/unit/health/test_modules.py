"""The module registry and the engine's cut at a module boundary (no simulator here)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest

from memras.cli import main
from memras.health.api import current_verdicts, replay_verdicts, verdict_history
from memras.health.buckets import Scope
from memras.health.config import parse_config
from memras.health.engine import HealthEngine
from memras.health.module_registry import (
    ModuleIdentity,
    current_modules,
    module_boundaries,
    module_history,
    real_serial,
    record_replacement,
    register_modules,
)
from memras.health.verdict import REPLACED_RULE, VerdictState
from memras.store import Store

from ._events import T0, ce

HOUR = 3600.0
SLOT = "mc0:0:0:-1"  # the location key the test events resolve to (no inventory)
NO_PAGES = parse_config("[page]\naction='off'")


@dataclass(frozen=True)
class _Dev:  # the fields of memras.host.smbios.MemoryDevice the registry reads
    serial: str
    part_number: str = "M393A1K43BB1"
    manufacturer: str = "Samsung"


@dataclass(frozen=True)
class _Dimm:  # the fields of memras.topology.inventory.DimmInfo the registry reads
    id: str
    smbios: _Dev | None


@pytest.fixture
def store(tmp_path: Path):
    s = Store.open(tmp_path / "memras.db")
    yield s
    s.close()


@pytest.mark.parametrize(("text", "expected"), [
    ("D3A5F1DD3", "D3A5F1DD3"), (" 1A2B ", "1A2B"), ("Not Specified", ""), ("NO DIMM", ""),
    ("00000000", ""), ("FFFFFFFF", ""), ("", ""), (None, ""), ("SerNum0", "")])
def test_placeholder_serials_are_no_identity(text: str | None, expected: str) -> None:
    assert real_serial(text) == expected


def test_register_is_idempotent_and_a_new_serial_is_a_new_module(store) -> None:
    assert register_modules(store, [_Dimm("mc0/dimm0", _Dev("A1")),
                                    _Dimm("PNP0C80:00", None)], T0) == []
    assert register_modules(store, [_Dimm("mc0/dimm0", _Dev("A1"))], T0 + timedelta(1)) == []
    assert len(module_history(store, "mc0/dimm0")) == 1
    assert current_modules(store)["PNP0C80:00"].identity == "location:PNP0C80:00"
    swapped_at = T0 + timedelta(days=2)
    assert register_modules(store, [_Dimm("mc0/dimm0", _Dev("B2"))], swapped_at) == \
        ["mc0/dimm0"]
    old, new = module_history(store, "mc0/dimm0")
    assert (old.serial, old.removed_at, old.replaced_by) == ("A1", swapped_at, new.id)
    assert (new.serial, new.removed_at, new.source) == ("B2", None, "inventory")
    verdict = current_verdicts(store)["mc0/dimm0"]
    assert (verdict.state, verdict.rules) == (VerdictState.OK, (REPLACED_RULE,))
    assert verdict.evidence["old_serial"] == "A1" and verdict.evidence["new_serial"] == "B2"


def test_weaker_evidence_is_never_a_swap(store) -> None:
    register_modules(store, [_Dimm("s", None), _Dimm("t", _Dev("T1"))], T0)
    # location-only module now shows a serial: the same module, identified
    assert register_modules(store, [_Dimm("s", _Dev("S1"))], T0 + timedelta(1)) == []
    # the serial disappears (the EDAC/SMBIOS join failed this time): nothing changes
    assert register_modules(store, [_Dimm("t", None)], T0 + timedelta(2)) == []
    mods = current_modules(store)
    assert (mods["s"].identity, mods["s"].installed_at) == ("serial:S1", T0)
    assert mods["t"].identity == "serial:T1"
    assert len(module_history(store, "s")) == len(module_history(store, "t")) == 1
    assert current_verdicts(store) == {}


def test_replacement_is_authoritative_and_stale_firmware_is_no_swap_back(store) -> None:
    register_modules(store, [_Dimm("mc0/dimm0", _Dev("OLD"))], T0)
    at = T0 + timedelta(hours=5)
    assert record_replacement(store, slot_id="mc0/dimm0", replacement_id=7,
                              old=ModuleIdentity.of("OLD"), new=ModuleIdentity.of("NEW"),
                              at=at)
    assert not record_replacement(store, slot_id="mc0/dimm0", replacement_id=7,
                                  old=ModuleIdentity.of("OLD"), new=ModuleIdentity.of("NEW"),
                                  at=at + timedelta(1))  # the close step re-ran
    # SMBIOS still says OLD (built at boot): stale, not the old module back
    assert register_modules(store, [_Dimm("mc0/dimm0", _Dev("OLD"))], at + timedelta(1)) == []
    old, new = module_history(store, "mc0/dimm0")
    assert (new.serial, new.source, new.replacement_id) == ("NEW", "replacement", 7)
    assert old.replaced_by == new.id and module_boundaries(store) == {"mc0/dimm0": [at]}
    assert [v.rules for v in verdict_history(store, "mc0/dimm0")] == [(REPLACED_RULE,)]


def test_replacement_without_any_serial_still_opens_a_new_module(store) -> None:
    record_replacement(store, slot_id="PNP0C80:00", replacement_id=1, old=ModuleIdentity(),
                       new=ModuleIdentity(), at=T0)
    old, new = module_history(store, "PNP0C80:00")
    assert old.identity == new.identity == "location:PNP0C80:00"
    assert old.removed_at == T0 and new.source == "replacement"
    assert register_modules(store, [_Dimm("PNP0C80:00", None)], T0 + timedelta(1)) == []


def test_live_engine_judges_only_the_new_module_after_a_replacement(store) -> None:
    engine = HealthEngine(NO_PAGES, store)
    engine.process([ce(0, rank=0, bank=1, row=7), ce(HOUR, ue=True, rank=0, bank=1, row=7)])
    assert engine.verdicts()[SLOT].state == VerdictState.REPLACE_NOW
    assert any(k[2].startswith(SLOT) for k in engine.buckets.buckets)
    record_replacement(store, slot_id=SLOT, replacement_id=1, old=ModuleIdentity.of("A"),
                       new=ModuleIdentity.of("B"), at=T0 + timedelta(hours=2))
    engine.process([ce(3 * HOUR, rank=0, bank=1, row=7)])  # one CE on the new module
    verdict = engine.verdicts()[SLOT]
    assert verdict.state == VerdictState.WATCH  # not the sticky replace-now
    assert "sticky" not in verdict.rules
    owned = [k for k in engine.buckets.buckets
             if k[0] in (Scope.DIMM, Scope.RANK, Scope.BANK, Scope.ROW)]
    assert owned and all(engine.buckets.buckets[k].count <= 1 for k in owned)
    engine.process([ce(HOUR + 60, rank=0)])  # a late record of the removed module
    assert engine.skipped_removed_module == 1
    assert [v.state.value for v in verdict_history(store, SLOT)] == \
        ["watch", "replace-now", "ok", "watch"]
    # a restarted engine carries on with the new module's verdict
    again = HealthEngine(NO_PAGES, store)
    assert again.verdicts()[SLOT].state == VerdictState.WATCH
    again.process([ce(2 * HOUR - 60, ue=True)])
    assert again.skipped_removed_module == 1 and again.verdicts()[SLOT].state == \
        VerdictState.WATCH


def test_replay_cuts_at_the_boundary_in_event_time(store) -> None:
    store.add_events([ce(0, ue=True), ce(5 * HOUR, rank=0)])
    record_replacement(store, slot_id=SLOT, replacement_id=1, old=ModuleIdentity.of("A"),
                       new=ModuleIdentity.of("B"), at=T0 + timedelta(hours=2))
    before, _ = replay_verdicts(store, at=T0 + timedelta(hours=1))
    assert before[SLOT].state == VerdictState.REPLACE_NOW
    just_after, _ = replay_verdicts(store, at=T0 + timedelta(hours=3))
    assert (just_after[SLOT].state, just_after[SLOT].rules) == (VerdictState.OK,
                                                                (REPLACED_RULE,))
    now, _ = replay_verdicts(store)
    assert now[SLOT].state == VerdictState.WATCH


def test_verdicts_history_cli_shows_the_module_boundary(store, tmp_path, capsys) -> None:
    register_modules(store, [_Dimm(SLOT, _Dev("OLD-1"))], T0 - timedelta(days=1))
    HealthEngine(NO_PAGES, store).process([ce(0, ue=True)])
    record_replacement(store, slot_id=SLOT, replacement_id=3, old=ModuleIdentity.of("OLD-1"),
                       new=ModuleIdentity.of("NEW-1"), at=T0 + timedelta(hours=2))
    db = str(tmp_path / "memras.db")
    assert main(["--db", db, "verdicts", "--history", SLOT]) == 0
    out = capsys.readouterr().out
    lines = [x for x in out.splitlines() if SLOT in x]
    assert "OLD-1" in lines[0] and "replace-now" in lines[0]
    assert "NEW-1" in lines[1] and "replaced" in lines[1]
    assert "module OLD-1 removed 2024-03-01 02:00:00" in out
    assert main(["--db", db, "--json", "verdicts", "--history", SLOT]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [d["module"]["serial"] for d in data] == ["OLD-1", "NEW-1"]
