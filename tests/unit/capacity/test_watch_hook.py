"""The capacity policy runs as the watcher's periodic task on a simulated guest."""

from __future__ import annotations

from pathlib import Path

from memras.capacity.policy import CapacityPolicy, Move, load_policy_config
from memras.ingest.sources import KmsgSource
from memras.sim import profiles
from memras.store import Store
from memras.watcher.watch import Watcher
from memras.workflow.offline import RetryPolicy


def test_watcher_ticks_the_policy_and_survives_its_errors(tmp_path: Path) -> None:
    host = profiles.create("qemu-guest", tmp_path / "root").host()
    config = load_policy_config({"standby_blocks": "38-39", "on_available_below": "256M",
                                 "off_available_above": "512M", "hold_s": 10,
                                 "min_dwell_s": 5})
    policy = CapacityPolicy(config, retry=RetryPolicy(max_attempts=1))
    seen: list[float] = []

    def tick(now: float) -> None:
        seen.append(now)
        policy.tick(host, now)

    def broken(now: float) -> None:
        raise RuntimeError("policy bug")

    with Store.open(tmp_path / "m.db") as store:
        watcher = Watcher(store, [KmsgSource(host)], periodic=[broken, tick])
        stats = watcher.run(once=True)
    assert seen, "the periodic task never ran"
    assert stats.hook_errors >= 1
    # First tick: pressure is low (no PSI file, MemAvailable 1.6G), so the hold starts.
    assert policy.last_action is not None and policy.last_action.move == Move.NONE
    assert policy.state is not None and policy.state.low_since == seen[0]
