"""Capacity-on-demand policy: decision tables, anti-flapping, config, and the runner."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from memras.capacity.policy import (
    Action,
    CapacityPolicy,
    Mode,
    Move,
    PolicyConfig,
    PolicyState,
    Sample,
    decide,
    load_policy_config,
    parse_psi_some_avg10,
)
from memras.capacity.record import Recorder
from memras.errors import UsageError
from memras.host import Host
from memras.sim import actions, profiles
from memras.workflow.offline import RetryPolicy

M = 1 << 20
CFG = PolicyConfig(on_available_below_bytes=1000 * M, off_available_above_bytes=2000 * M,
                   psi_on_above_pct=10.0, psi_off_below_pct=2.0, hold_s=60, min_dwell_s=30,
                   reserve_bytes=1000 * M)
STANDBY_ONLINE = 512 * M


def s(now: float, avail_m: int, psi: float | None = 0.0, online: int = STANDBY_ONLINE
      ) -> Sample:
    return Sample(now, avail_m * M, psi, online)


# (state, sample, expected move)
TABLE = [
    (PolicyState(Mode.STANDBY, -100), s(0, 900), Move.ONLINE),  # MemAvailable below
    (PolicyState(Mode.STANDBY, -100), s(0, 1500, psi=25.0), Move.ONLINE),  # PSI above
    (PolicyState(Mode.STANDBY, -100), s(0, 1500, psi=5.0), Move.NONE),  # in the band
    (PolicyState(Mode.STANDBY, -100), s(0, 1000), Move.NONE),  # at, not below
    (PolicyState(Mode.STANDBY, -10), s(0, 500), Move.NONE),  # within the dwell
    (PolicyState(Mode.STANDBY, -100), s(0, 500, psi=None), Move.ONLINE),  # no PSI kernel
    (PolicyState(Mode.ACTIVE, -100, low_since=-60), s(0, 3000), Move.OFFLINE),
    (PolicyState(Mode.ACTIVE, -100, low_since=-59), s(0, 3000), Move.NONE),  # hold
    (PolicyState(Mode.ACTIVE, -100, low_since=None), s(0, 3000), Move.NONE),  # first low
    (PolicyState(Mode.ACTIVE, -100, low_since=-600), s(0, 3000, psi=3.0), Move.NONE),
    (PolicyState(Mode.ACTIVE, -100, low_since=-600), s(0, 1900), Move.NONE),  # band
    (PolicyState(Mode.ACTIVE, -20, low_since=-600), s(0, 3000), Move.NONE),  # dwell
    (PolicyState(Mode.ACTIVE, -100, low_since=-600), s(0, 3000, online=2500 * M), Move.NONE),
    (PolicyState(Mode.ACTIVE, -100, low_since=-600), s(0, 300), Move.NONE),  # high
]


@pytest.mark.parametrize(("state", "sample", "move"), TABLE)
def test_decision_table(state: PolicyState, sample: Sample, move: Move) -> None:
    assert decide(state, sample, CFG).move == move


def test_reserve_refusal_says_why() -> None:
    action = decide(PolicyState(Mode.ACTIVE, -100, -600), s(0, 3000, online=2500 * M), CFG)
    assert "below the reserve" in action.reason


def test_a_middle_sample_restarts_the_hold() -> None:
    state = PolicyState(Mode.ACTIVE, -1000)
    for now, avail in ((0, 3000), (50, 1500), (100, 3000), (150, 3000)):
        action = decide(state, s(now, avail), CFG)
        state = action.state
    assert action.move == Move.NONE and state.low_since == 100
    assert decide(state, s(160, 3000), CFG).move == Move.OFFLINE


def run_sequence(samples: list[Sample]) -> list[tuple[float, Action]]:
    state = PolicyState(Mode.STANDBY, -1000)
    moves = []
    for sample in samples:
        action = decide(state, sample, CFG)
        state = action.state
        if action.move != Move.NONE:
            moves.append((sample.now, action))
    return moves


def test_flapping_input_moves_at_most_once_per_dwell() -> None:
    # MemAvailable jumping across both thresholds every 5 s for 10 minutes.
    samples = [s(t, 900 if (t // 5) % 2 == 0 else 2500) for t in range(0, 600, 5)]
    moves = run_sequence(samples)
    assert moves[0][1].move == Move.ONLINE
    # It never goes back offline: LOW never lasts the 60 s hold.
    assert len(moves) == 1


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(100, 4000), st.one_of(st.none(), st.floats(0, 100))),
                min_size=1, max_size=200))
def test_any_input_respects_the_dwell_and_alternates(values: list) -> None:
    samples = [s(i * 3.0, avail, psi) for i, (avail, psi) in enumerate(values)]
    moves = run_sequence(samples)
    times = [t for t, _ in moves]
    assert all(b - a >= CFG.min_dwell_s for a, b in zip(times, times[1:], strict=False))
    kinds = [a.move for _, a in moves]
    assert all(a != b for a, b in zip(kinds, kinds[1:], strict=False))  # on, off, on…


@pytest.mark.parametrize(("text", "value"), [
    ("some avg10=12.50 avg60=3.00 avg300=0.10 total=123\n"
     "full avg10=1.00 avg60=0.00 avg300=0.00 total=5", 12.5),
    ("full avg10=1.00 avg60=0.00 avg300=0.00 total=5", None),
    ("", None),
    ("some avg10=x avg60=0", None),
])
def test_psi_parse(text: str, value: float | None) -> None:
    assert parse_psi_some_avg10(text) == value


def test_config_defaults_and_sizes() -> None:
    c = load_policy_config({"standby": "1G", "on_available_below": "512M",
                            "off_available_above": "1G", "hold_s": 600})
    assert c.standby_bytes == 1 << 30 and c.hold_s == 600
    assert c.reserve_bytes == 512 * M  # defaults to the on threshold
    assert load_policy_config({"standby_blocks": "36-39"}).standby_blocks == (36, 37, 38, 39)


@pytest.mark.parametrize(("raw", "fragment"), [
    ({}, "exactly one of standby"),
    ({"standby": "1G", "standby_blocks": "1-2"}, "exactly one of standby"),
    ({"standby": "1G", "hold_s": 1}, "out of range"),
    ({"standby": "1G", "on_available_below": "2G", "off_available_above": "1G"},
     "must be above"),
    ({"standby": "1G", "psi_on_above_pct": 5, "psi_off_below_pct": 6}, "must be below"),
    ({"standby": "1G", "reserve": "100M"}, "at least on_available_below"),
    ({"standby": "1G", "reserve": "1M"}, "out of range"),
    ({"standby": "lots"}, "not valid"),
    ({"standby_blocks": "x-2"}, "use N-M"),
    ({"standby": "1G", "treshold": 3}, "unknown keys"),
])
def test_config_errors(raw: dict, fragment: str) -> None:
    with pytest.raises(UsageError) as info:
        load_policy_config(raw)
    assert fragment in info.value.msg


# --- the runner on a simulated guest -----------------------------------------------------

def set_psi(host: Host, avg10: float) -> None:
    path = host.root / "proc/pressure/memory"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"some avg10={avg10:.2f} avg60=0.00 avg300=0.00 total=0\n"
                    "full avg10=0.00 avg60=0.00 avg300=0.00 total=0\n")


def test_runner_gives_back_and_takes_standby_memory(tmp_path: Path) -> None:
    host = profiles.create("qemu-guest", tmp_path / "root").host()
    config = load_policy_config({"standby_blocks": "36-39", "on_available_below": "256M",
                                 "off_available_above": "512M", "hold_s": 10,
                                 "min_dwell_s": 5, "interval_s": 1})
    recorder = Recorder()
    policy = CapacityPolicy(config, recorder, retry=RetryPolicy(max_attempts=1))
    set_psi(host, 0.0)
    assert policy.tick(host, 0).move == Move.NONE  # low, hold starts
    assert policy.tick(host, 10).move == Move.OFFLINE
    assert {host.memory.read(b).state for b in range(36, 40)} == {"offline"}
    assert {host.memory.read(b).state for b in range(32, 36)} == {"online"}
    set_psi(host, 50.0)
    assert policy.tick(host, 12).move == Move.NONE  # dwell
    assert policy.tick(host, 15).move == Move.ONLINE
    assert {host.memory.read(b).zone for b in range(36, 40)} == {"Movable"}
    assert recorder.actions() == ["capacity.policy.offline", "alert:capacity-policy-offline",
                                  "capacity.policy.online", "alert:capacity-policy-online"]


def test_runner_failed_offline_keeps_memory_and_backs_off(tmp_path: Path) -> None:
    host = profiles.create("qemu-guest", tmp_path / "root").host()
    actions.set_unmovable(host.root, 39)
    config = load_policy_config({"standby_blocks": "38-39", "on_available_below": "256M",
                                 "off_available_above": "512M", "hold_s": 10,
                                 "min_dwell_s": 30, "interval_s": 1})
    recorder = Recorder()
    policy = CapacityPolicy(config, recorder, retry=RetryPolicy(max_attempts=1))
    set_psi(host, 0.0)
    policy.tick(host, 0)
    assert policy.tick(host, 10).move == Move.OFFLINE
    assert policy.state is not None and policy.state.mode == Mode.ACTIVE  # partial: still active
    assert recorder.entries[1][1]["exit_status"] == 64
    assert policy.tick(host, 25).move == Move.NONE  # dwell after the failed attempt


def test_runner_samples_once_per_interval(tmp_path: Path) -> None:
    """The watcher ticks about once a second; the policy samples every interval_s only."""
    host = profiles.create("qemu-guest", tmp_path / "root").host()
    config = load_policy_config({"standby_blocks": "38-39", "on_available_below": "256M",
                                 "off_available_above": "512M", "hold_s": 10,
                                 "min_dwell_s": 5, "interval_s": 5})
    policy = CapacityPolicy(config, Recorder(), retry=RetryPolicy(max_attempts=1))
    set_psi(host, 0.0)
    policy.tick(host, 0)
    assert policy.tick(host, 4).reason == "not sampled: within interval_s"
    assert policy.tick(host, 5).move == Move.NONE  # sampled: low for 5 s of 10
    assert policy.tick(host, 9).reason == "not sampled: within interval_s"
    assert policy.tick(host, 10).move == Move.OFFLINE
