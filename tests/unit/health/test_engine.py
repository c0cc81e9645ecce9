"""The engine at the events' own times: crossings, verdict reasons, history and --at."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from memras.health.api import current_verdicts, replay_verdicts, verdict_history
from memras.health.config import parse_config
from memras.health.engine import ChangeKind, HealthEngine
from memras.health.verdict import VerdictState
from memras.store import Store

from ._events import T0, ce

HOUR = 3600.0
DIMM_A = "mc0:0:0:-1"
DIMM_B = "mc0:0:1:-1"


def random_ces(n: int, start: float = 0.0, step: float = 600.0, **loc: object) -> list:
    """n CEs on distinct cells (a random pattern), ``step`` seconds apart."""
    return [ce(start + i * step, rank=0, bank=i % 16, row=1000 + 37 * i, column=5 + 11 * i,
               **loc) for i in range(n)]


def kinds(changes) -> list[str]:
    return [c.kind.value for c in changes]


def test_tenth_ce_crosses_the_mcelog_dimm_threshold_at_its_own_time() -> None:
    changes = HealthEngine(parse_config("[page]\naction='off'")).process(random_ces(10))
    crossed = [c for c in changes if c.kind == ChangeKind.THRESHOLD_CROSSED
               and c.evidence["scope"] == "dimm"]
    assert len(crossed) == 1
    assert crossed[0].rule_ids == ("mcelog-dimm-ce-10/24h",)
    assert crossed[0].time == T0 + timedelta(seconds=9 * 600)
    assert crossed[0].dimm_id == DIMM_A


def test_first_ce_means_watch_and_the_verdict_says_why() -> None:
    engine = HealthEngine()
    changes = engine.process(random_ces(1))
    (change,) = [c for c in changes if c.kind == ChangeKind.VERDICT_CHANGED]
    # the pattern's rule is listed beside ce-seen, since the reasons name the pattern
    assert change.verdict == "watch" and change.rule_ids == ("ce-seen", "srds22-random")
    verdict = engine.verdicts()[DIMM_A]
    assert verdict.evidence["trend"] == {"last_6m": 1, "last_3h": 1, "last_24h": 1,
                                         "last_120h": 1}


def test_ue_means_replace_now_and_a_critical_change() -> None:
    engine = HealthEngine()
    changes = engine.process([*random_ces(2), ce(3 * HOUR, ue=True, address=0x1000)])
    assert "ue" in kinds(changes)
    verdict = engine.verdicts()[DIMM_A]
    assert verdict.state == VerdictState.REPLACE_NOW and verdict.rules[0] == "ue"
    last = [c for c in changes if c.kind == ChangeKind.VERDICT_CHANGED][-1]
    assert last.severity == "critical"


def test_row_fault_means_repair_by_page_offlining() -> None:
    engine = HealthEngine()
    engine.process([ce(0, rank=0, bank=1, row=0x1A2F, column=8),
                    ce(HOUR, rank=0, bank=1, row=0x1A2F, column=64)])
    verdict = engine.verdicts()[DIMM_A]
    assert verdict.state == VerdictState.REPAIR
    assert "srds22-row" in verdict.rules
    assert verdict.evidence["rows"] == ["0x1a2f"]


def test_threshold_plus_stable_column_fault_means_repair_not_replace() -> None:
    # policy (verdict-truth issue): a DIMM threshold is a count, and a stable column
    # fault is not a UE on its way; it was replace-at-next-maintenance before
    events = [ce(i * 600.0, rank=0, bank=2, row=100 + i, column=0x40) for i in range(10)]
    engine = HealthEngine()
    engine.process(events)
    verdict = engine.verdicts()[DIMM_A]
    assert verdict.state == VerdictState.REPAIR
    assert set(verdict.rules) >= {"mcelog-dimm-ce-10/24h", "srds22-column"}
    reason = verdict.reasons[verdict.rules.index("mcelog-dimm-ce-10/24h")]
    assert "-> repair-by-page-offlining" in reason and "Meza" in reason


def test_sun_rule_needs_the_dimm_to_be_alone() -> None:
    alone = HealthEngine()
    alone.process(random_ces(25, step=60.5))
    v = alone.verdicts()[DIMM_A]
    # a count-only rule: it fires and says so, at watch (replace before the policy change)
    assert v.state == VerdictState.WATCH and "sun-x4140-24/24h" in v.rules
    assert "Meza" in v.reasons[v.rules.index("sun-x4140-24/24h")]
    # another DIMM (another channel) erring the same day: the Sun rule does not fire
    crowd = HealthEngine()
    crowd.process([ce(1.0, middle_layer=1, channel=1, rank=0, bank=0, row=1, column=1),
                   *random_ces(25, step=60.5)])
    assert "sun-x4140-24/24h" not in crowd.verdicts()[DIMM_A].rules


def test_several_dimms_on_one_channel_blame_the_channel() -> None:
    peer = [ce(i * 30.0, middle_layer=1, rank=0, bank=i, row=i, column=i) for i in range(12)]
    engine = HealthEngine(parse_config("[page]\naction='off'"))
    engine.process([*peer, ce(HOUR, rank=0, bank=1, row=0x10, column=1),
                    ce(2 * HOUR, rank=0, bank=5, row=0x7100, column=0x300)])
    v = engine.verdicts()[DIMM_A]
    assert v.evidence["fault_mode"] == "channel"
    assert "sun-x4140-several-dimms" in v.rules


def test_a_local_fault_is_this_dimms_own_whatever_its_neighbours_do() -> None:
    peer = [ce(i * 30.0, middle_layer=1, rank=0, bank=i, row=i, column=i) for i in range(12)]
    engine = HealthEngine(parse_config("[page]\naction='off'"))
    engine.process([*peer, ce(HOUR, rank=0, bank=1, row=0x10, column=1),
                    ce(2 * HOUR, rank=0, bank=1, row=0x10, column=2)])
    assert engine.verdicts()[DIMM_A].evidence["fault_mode"] == "row"


def test_replace_verdict_is_sticky_after_the_window_passes() -> None:
    engine = HealthEngine()
    engine.process([*random_ces(2), ce(HOUR, ue=True)])
    engine.process(random_ces(1, start=90 * 24 * HOUR))  # 90 days later, window long gone
    v = engine.verdicts()[DIMM_A]
    assert v.state == VerdictState.REPLACE_NOW and "sticky" in v.rules


def test_untimed_events_are_counted_not_judged() -> None:
    from dataclasses import replace

    engine = HealthEngine()
    engine.process([replace(random_ces(1)[0], timestamp=None)])
    assert engine.skipped_untimed == 1 and engine.verdicts() == {}


@pytest.fixture
def store(tmp_path: Path):
    s = Store.open(tmp_path / "memras.db")
    yield s
    s.close()


def test_history_and_verdicts_as_of_a_past_moment(store) -> None:
    engine = HealthEngine(parse_config("[page]\naction='off'"), store)
    engine.process(random_ces(3))  # watch from t=0
    engine.process([ce(10 * HOUR, ue=True)])  # replace-now at 10 h
    history = verdict_history(store, DIMM_A)
    assert [v.state.value for v in history] == ["watch", "replace-now"]
    assert history[1].at == T0 + timedelta(hours=10)
    assert current_verdicts(store, at=T0 + timedelta(hours=9))[DIMM_A].state == \
        VerdictState.WATCH
    assert current_verdicts(store, at=T0 + timedelta(hours=10))[DIMM_A].state == \
        VerdictState.REPLACE_NOW
    assert current_verdicts(store, at=T0 - timedelta(seconds=1)) == {}
    assert str(current_verdicts(str(store.engine.url.database), [DIMM_A])[DIMM_A]) == \
        "replace-now"
    # a restarted engine knows the last verdict and does not announce it again
    again = HealthEngine(parse_config("[page]\naction='off'"), store)
    assert not [c for c in again.process(random_ces(1, start=11 * HOUR))
                if c.kind == ChangeKind.VERDICT_CHANGED]


def test_replay_from_stored_events(store) -> None:
    store.add_events([*random_ces(10), ce(30 * HOUR, ue=True, address=0x2000)])
    before, _ = replay_verdicts(store, at=T0 + timedelta(hours=2))
    assert before[DIMM_A].state == VerdictState.WATCH
    assert "mcelog-dimm-ce-10/24h" in before[DIMM_A].evidence["thresholds_crossed"]
    after, changes = replay_verdicts(store)
    assert after[DIMM_A].state == VerdictState.REPLACE_NOW
    assert "ue" in kinds(changes)
