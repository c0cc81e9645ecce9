"""Verdicts that are right: page actions count, verdicts say when they were reached, their
reasons quote their evidence, and a UE counts whichever source reports it."""

from __future__ import annotations

import re
from datetime import timedelta
from types import SimpleNamespace
from typing import Any

from memras.health.config import parse_config
from memras.health.engine import ChangeKind, HealthEngine
from memras.health.verdict import Verdict, VerdictState
from memras.records import MemoryFailureEvent, Source

from ._events import T0, ce

HOUR = 3600.0
DIMM_A = "mc0:0:0:-1"
CELL = {"rank": 0, "bank": 1, "row": 0x10, "column": 0x20}
PAGE = 0x7F1234000


class OffliningHost:
    """What act_on_page needs of a Host: soft offlining succeeds, pages are listed."""

    def __init__(self) -> None:
        self.offlined: list[int] = []
        self.memory = SimpleNamespace(soft_offline_page=self.offlined.append,
                                      hard_offline_page=self.offlined.append)
        self.meminfo = SimpleNamespace(read=lambda: SimpleNamespace(hardware_corrupted=0))


def engine(toml: str = "", host: Any = None) -> HealthEngine:
    # resolver given: location keys only, no inventory read from the fake host
    return HealthEngine(parse_config(toml), host=host, resolver=lambda e: None)


def cell_burst(n: int, start: float = 0.0, step: float = 5.0) -> list:
    """A stuck cell erring n times, step seconds apart (a storm, and > 24 CEs in 24 h)."""
    return [ce(start + i * step, address=PAGE + 0x40, **CELL) for i in range(n)]


def states(changes: list) -> list[str]:
    return [c.verdict for c in changes if c.kind == ChangeKind.VERDICT_CHANGED]


# ---- 2. page actions count --------------------------------------------------------

def test_cell_fault_offlined_at_once_is_repaired_never_replaced_by_rate_or_storm() -> None:
    host = OffliningHost()
    e = engine(host=host)  # default page threshold 2 / 24h, action soft
    changes = e.process(cell_burst(60))
    assert host.offlined == [PAGE]
    v = e.verdicts()[DIMM_A]
    assert v.state == VerdictState.REPAIR and not any(s.startswith("replace") for s in
                                                       states(changes))
    assert not any(r.startswith("sun-x4140") or r == "storm" for r in v.rules)
    assert v.evidence["trend"]["last_24h"] == 0  # both CEs before the offlining: repaired
    assert "memras-page-offlined" in v.rules


def test_cell_fault_offlined_late_settles_at_repair_once_silent() -> None:
    host = OffliningHost()
    e = engine("[thresholds.page]\nce = '50 / 24h'", host=host)
    changes = e.process(cell_burst(50))  # sun 24/24h and the storm fire before CE 50
    # both are counts on a contained fault: watch and repair, no longer replace
    assert not any(s.startswith("replace") for s in states(changes))
    assert host.offlined == [PAGE]
    v = e.verdicts()[DIMM_A]
    assert v.state == VerdictState.REPAIR and "sticky" not in v.rules
    assert v.evidence["trend"]["last_24h"] == 0 and not v.evidence["storm"]


def test_cell_fault_that_moves_on_after_its_page_is_offlined_escalates() -> None:
    host = OffliningHost()
    e = engine(host=host)
    e.process(cell_burst(5))
    moved = [ce(100 + i * 5.0, address=0x9000_0000 + i * 0x10000, rank=0, bank=1 + i % 8,
                row=0x2000 + i, column=0x40 + 3 * i) for i in range(40)]
    e.process(moved)
    v = e.verdicts()[DIMM_A]
    assert v.state.is_replace and v.evidence["trend"]["last_24h"] >= 24


# ---- 3. verdict times -------------------------------------------------------------

def test_reached_at_is_when_the_state_was_reached_not_the_last_event() -> None:
    e = engine("[page]\naction='off'")
    e.process([ce(0, ue=True, **CELL)])
    e.process([ce(i * HOUR + 2 * HOUR, rank=0, bank=i % 8, row=i, column=i) for i in range(3)])
    v = e.verdicts()[DIMM_A]
    assert v.state == VerdictState.REPLACE_NOW
    assert v.since == T0 and v.at == T0 + timedelta(hours=4)
    assert v.to_dict()["reached_at"] == T0.isoformat()
    assert v.reached_evidence is not None and v.reached_evidence["ue_count"] == 1


def test_cli_since_shows_reached_at(tmp_path) -> None:
    from memras.cli import main

    db = tmp_path / "m.db"
    from memras.store import Store

    with Store.open(f"sqlite:///{db}") as store:
        store.add_events([ce(0, ue=True, **CELL), ce(5 * HOUR, rank=0, bank=3, row=9, column=9)])
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        main(["--db", f"sqlite:///{db}", "verdicts"])
    assert "2024-03-01 00:00:00" in out.getvalue()
    assert "2024-03-01 05:00:00" not in out.getvalue()


# ---- 1. evidence and reasons agree ---------------------------------------------------

def _numbers(text: str) -> set[int]:
    return {int(n) for n in re.findall(r"(?<![\w.x/-])(\d+)(?= (?:CE|uncorrected|CEs))", text)}


def _evidence_numbers(evidence: dict[str, Any]) -> set[int]:
    out: set[int] = set()
    stack: list[Any] = [evidence]
    while stack:
        x = stack.pop()
        if isinstance(x, dict):
            stack += list(x.values())
        elif isinstance(x, list):
            stack += x
        elif isinstance(x, int) and not isinstance(x, bool):
            out.add(x)
    return out


def _check_agrees(v: Verdict) -> None:
    quoted = set().union(*(_numbers(r) for r in v.reasons))
    assert quoted <= _evidence_numbers(v.evidence), (v.reasons, v.evidence)
    named = {m.group(1) for r in v.reasons for m in re.finditer(r"\((srds22-[a-z-]+)\)", r)}
    assert named <= set(v.rules)
    modes = {m.group(1) for r in v.reasons if not r.startswith("judged")
             for m in re.finditer(r"\b(cell|row|column|bank|random) (?:fault|pattern)", r)}
    assert modes <= {v.evidence["fault_mode"]}


def test_evidence_counts_are_the_counts_the_reasons_quote() -> None:
    e = engine("[page]\naction='off'")
    history = [ce(i * 60.0, rank=0, bank=2, row=r, column=0x40) for i, r in enumerate(range(14))]
    history += [ce(2000 + i * 30.0, rank=0, bank=i % 8, row=0x100 + i, column=0x200 + i)
                for i in range(500)]
    for chunk in range(0, len(history), 37):  # batches, as the watcher sees them
        e.process(history[chunk:chunk + 37])
        for v in e.verdicts().values():
            _check_agrees(v)


def test_a_sticky_verdict_reasons_with_its_current_evidence() -> None:
    e = engine("[page]\naction='off'")
    column = [ce(i * 60.0, rank=0, bank=2, row=r, column=0x40) for i, r in enumerate(range(14))]
    e.process([*column, ce(900, ue=True, rank=0, bank=2, row=1, column=0x40)])
    later = 40 * 24 * HOUR  # the column has left the window; a row fault now
    e.process([ce(later + i * HOUR, rank=0, bank=5, row=0x77, column=c) for i, c in
               enumerate([1, 9, 30])])
    v = e.verdicts()[DIMM_A]
    assert v.state == VerdictState.REPLACE_NOW and v.rules[0] == "sticky"
    assert v.evidence["fault_mode"] == "row"
    assert v.reached_evidence is not None and v.reached_evidence["fault_mode"] == "column"
    _check_agrees(v)


def test_the_14_row_column_fault_with_a_stray_is_judged_a_column_to_repair() -> None:
    e = engine("[page]\naction='off'")
    events = [ce(i * 600.0, rank=0, bank=2, row=r, column=0x40) for i, r in enumerate(range(14))]
    events.append(ce(14 * 600.0, rank=0, bank=2, row=7, column=0x41))
    e.process(events)
    v = e.verdicts()[DIMM_A]
    assert v.evidence["fault_mode"] == "column" and "srds22-column" in v.rules
    # a stable column (no growth) past the DIMM threshold: repair, was replace
    assert v.state == VerdictState.REPAIR and not v.evidence["growing"]


# ---- 5. a UE counts whatever reports it ----------------------------------------------

def _failure(at_s: float, pfn: int) -> MemoryFailureEvent:
    return MemoryFailureEvent(pfn=pfn, page_type="dirty LRU page", action_result="Recovered",
                              source=Source.TRACE, timestamp=T0 + timedelta(seconds=at_s))


def test_memory_failure_maps_to_its_dimm_and_makes_it_replace_now() -> None:
    pfn = 0x7F1234
    resolver = {PAGE: DIMM_A}
    e = HealthEngine(parse_config("[page]\naction='off'"),
                     resolver=lambda ev: resolver.get(ev.page_address or -1))
    e.process([ce(0, **CELL)])
    changes = e.process([_failure(HOUR, pfn)])
    assert [c.kind for c in changes if c.kind == ChangeKind.UE] == [ChangeKind.UE]
    v = e.verdicts()[DIMM_A]
    assert v.state == VerdictState.REPLACE_NOW and "ue" in v.rules
    assert v.since == T0 + timedelta(hours=1)


def test_memory_failure_without_a_dimm_is_still_recorded_against_the_page() -> None:
    e = engine("[page]\naction='off'")
    changes = e.process([_failure(0, 0x1234)])
    (ue,) = [c for c in changes if c.kind == ChangeKind.UE]
    assert ue.dimm_id is None and "0x1234000" in ue.message
    assert ue.severity == "critical"


def test_one_ue_reported_by_mce_and_memory_failure_counts_once() -> None:
    e = engine("[page]\naction='off'")
    e.process([ce(0, ue=True, address=PAGE + 8, **CELL), _failure(0.02, PAGE >> 12)])
    assert e.skipped_duplicate_ue == 1
    assert e.verdicts()[DIMM_A].evidence["ue_count"] == 1


def test_memory_failure_of_memras_own_hard_offline_is_not_a_ue() -> None:
    host = OffliningHost()
    e = engine("[page]\naction='hard'", host=host)
    e.process(cell_burst(2))
    assert host.offlined == [PAGE]
    changes = e.process([_failure(20, PAGE >> 12)])
    assert not [c for c in changes if c.kind == ChangeKind.UE]


# ---- stored: reached_at survives the database, memory_failure rows are replayed as UEs --

def test_recorded_verdicts_keep_reached_at_and_an_old_database_gains_it(tmp_path) -> None:
    import sqlite3

    from memras.health.api import current_verdicts
    from memras.store import Store

    path = tmp_path / "old.db"
    Store.open(path).close()
    db = sqlite3.connect(path)  # as memras left it before migration 4
    db.execute("DROP TABLE memras_health_verdict")
    db.execute("CREATE TABLE memras_health_verdict (id INTEGER PRIMARY KEY, dimm_id VARCHAR,"
               " time DATETIME, state VARCHAR, previous_state VARCHAR, rules TEXT,"
               " reasons TEXT, evidence TEXT)")
    db.execute("INSERT INTO memras_health_verdict VALUES (1, 'old', '2024-03-01 10:00:00.000000',"
               " 'watch', NULL, '[\"ce-seen\"]', '[\"1 CE(s) in the window\"]', '{}')")
    db.execute("DELETE FROM memras_schema WHERE version = 4")
    db.commit()
    db.close()
    with Store.open(path) as store:
        assert current_verdicts(store)["old"].since.hour == 10  # NULL: reached at its time
        e = HealthEngine(parse_config("[page]\naction='off'"), store)
        e.process([ce(0, ue=True, **CELL)])
        e.process([ce(3 * HOUR, rank=0, bank=5, row=3, column=3)])
        v = current_verdicts(store)[DIMM_A]
    assert v.state == VerdictState.REPLACE_NOW and v.since == T0


def test_a_stored_memory_failure_moves_the_replayed_verdict(tmp_path) -> None:
    from memras.health.api import replay_verdicts
    from memras.store import Store

    with Store.open(tmp_path / "m.db") as store:
        store.add_events([ce(0, address=PAGE, **CELL), _failure(HOUR, PAGE >> 12)])
        verdicts, changes = replay_verdicts(store)
        assert [c.dimm_id for c in changes if c.kind == ChangeKind.UE] == [None]
        # with the locator's answer (here a resolver) the UE lands on its DIMM
        pages = {PAGE: DIMM_A}
        verdicts, _ = replay_verdicts(store, resolver=lambda ev: pages.get(ev.page_address))
    assert verdicts[DIMM_A].state == VerdictState.REPLACE_NOW
    assert verdicts[DIMM_A].since == T0 + timedelta(hours=1)


def test_a_ce_collector_soft_offline_is_a_page_action_not_a_ue() -> None:
    pages = {PAGE: DIMM_A}
    e = HealthEngine(parse_config("[page]\naction='off'\n[thresholds.page]\nce='50/24h'"),
                     resolver=lambda ev: pages.get(ev.page_address or -1) or "mc0:0:0:-1")
    e.process(cell_burst(30))
    soft = MemoryFailureEvent(pfn=PAGE >> 12, page_type="soft offline (CE collector)",
                              action_result="Recovered", source=Source.KMSG,
                              timestamp=T0 + timedelta(seconds=200))
    changes = e.process([soft])
    assert not [c for c in changes if c.kind == ChangeKind.UE]
    e.process([ce(400, rank=0, bank=6, row=0x300, column=0x30)])
    v = e.verdicts()[DIMM_A]
    assert "ue" not in v.rules and v.evidence["trend"]["last_24h"] == 1
