"""chmem request parsing, block choice and exit statuses on the simulated qemu-guest.

The qemu-guest profile: block 0 spans DMA/DMA32 (valid_zones ``none``), blocks 1-7
DMA32 boot memory holding unmovable pages, blocks 32-39 two 512 MiB DIMMs online
Movable; 128 MiB blocks.
"""

from __future__ import annotations

import errno
import threading
from pathlib import Path

import pytest

from memras.capacity import chmem
from memras.errors import UsageError
from memras.host import Host
from memras.sim import actions, profiles
from memras.workflow.offline import RetryPolicy

MiB = 1 << 20
BS = 128 * MiB
FAST = RetryPolicy(block_timeout_s=5, max_attempts=2, backoff_initial_s=0.01,
                   backoff_max_s=0.01)


@pytest.fixture
def guest(tmp_path: Path) -> Host:
    return profiles.create("qemu-guest", tmp_path / "root").host()


def states(host: Host) -> dict[int, str]:
    return {b.index: b.state for b in host.memory.all()}


def run(host: Host, action: str, text: str, **kw) -> chmem.Result:
    req = chmem.parse_request(action, text, block_size=host.memory.block_size(), **kw)
    return chmem.execute(host, chmem.plan(req, host.memory.all()), retry=FAST)


@pytest.mark.parametrize(("text", "kw", "expected"), [
    ("256", {}, {"count": 2}),
    ("256m", {}, {"count": 2}),
    ("256M", {}, {"count": 2}),
    ("1g", {}, {"count": 8}),
    ("1G", {}, {"count": 8}),
    ("1GiB", {}, {"count": 8}),
    ("131072K", {}, {"count": 1}),
    ("0x100000000-0x11fffffff", {}, {"first": 32, "last": 35}),
    ("0x100000000-0x107ffffff", {}, {"first": 32, "last": 32}),
    ("10", {"blocks": True}, {"first": 10, "last": 10}),
    ("32-35", {"blocks": True}, {"first": 32, "last": 35}),
])
def test_parse_request_table(text: str, kw: dict, expected: dict) -> None:
    req = chmem.parse_request("offline", text, block_size=BS, **kw)
    for key, value in expected.items():
        assert getattr(req, key) == value


@pytest.mark.parametrize(("text", "kw", "fragment"), [
    ("100M", {}, "multiple of the memory block size"),
    ("1GB", {}, "multiple of the memory block size"),  # 10^9 bytes, as strtosize reads it
    ("0", {}, "positive multiple"),
    ("lots", {}, "not a size"),
    ("0x100000000-0x100000fff", {}, "aligned"),
    ("100000000-11fffffff", {}, "invalid address format"),
    ("0x120000000-0x11fffffff", {}, "invalid range"),
    ("1-2-3", {}, "invalid parameter"),
    ("35-32", {"blocks": True}, "invalid range"),
    ("a-b", {"blocks": True}, "not a block number"),
    ("256M", {"zone": "Hypermovable"}, "unknown memory zone"),
])
def test_parse_request_errors_are_one_line_usage_errors(text: str, kw: dict,
                                                        fragment: str) -> None:
    with pytest.raises(UsageError) as info:
        chmem.parse_request("offline", text, block_size=BS, **kw)
    assert fragment in info.value.msg
    assert "\n" not in info.value.msg


def test_zone_names_are_case_insensitive() -> None:
    assert chmem.parse_request("online", "128M", block_size=BS, zone="movable").zone == "Movable"
    assert chmem.canonical_zone("dma32") == "DMA32"


# (setup, action, request, kwargs, expected changed blocks, exit status)
TABLE = [
    ("none", "offline", "256M", {}, [39, 38], 0),  # offline walks from the top
    ("none", "offline", "1G", {}, list(range(39, 31, -1)), 0),
    ("none", "offline", "256M", {"zone": "Movable"}, [39, 38], 0),
    ("none", "offline", "0x100000000-0x11fffffff", {}, [32, 33, 34, 35], 0),
    ("none", "offline", "36-37", {"blocks": True}, [36, 37], 0),
    ("none", "offline", "1-2", {"blocks": True, "zone": "Movable"}, [], 1),  # zone mismatch
    ("none", "offline", "2-3", {"blocks": True}, [], 1),  # unmovable boot memory: EBUSY
    ("none", "offline", "7-32", {"blocks": True}, [32], 64),  # holes 8-31 are not done
    ("none", "online", "256M", {}, [], 1),  # everything online already
    ("top2", "online", "256M", {}, [38, 39], 0),  # online walks from the bottom
    ("top2", "online", "1G", {}, [38, 39], 64),  # only 256M could be onlined
    ("top2", "online", "38-39", {"blocks": True}, [38, 39], 0),
    ("top2", "online", "36-39", {"blocks": True}, [38, 39], 0),  # 36-37 count as done
    ("top2", "offline", "38-39", {"blocks": True}, [], 0),  # already offline: done
    ("top2", "offline", "256M", {}, [37, 36], 0),  # a SIZE skips already-offline blocks
    ("busy38", "offline", "256M", {}, [39, 37], 0),  # a failing block is passed over
    ("busy38", "offline", "38-39", {"blocks": True}, [39], 64),
    ("busy38", "offline", "0x130000000-0x13fffffff", {}, [39], 64),
]


def _setup(host: Host, name: str) -> None:
    if name in ("top2",):
        for block in (38, 39):
            host.memory.set_state(block, "offline")
    if name == "busy38":
        actions.set_unmovable(host.root, 38)


@pytest.mark.parametrize(("setup", "action", "text", "kw", "changed", "status"), TABLE)
def test_request_table(guest: Host, setup: str, action: str, text: str, kw: dict,
                       changed: list[int], status: int) -> None:
    _setup(guest, setup)
    before = states(guest)
    result = run(guest, action, text, **kw)
    after = states(guest)
    assert result.changed == changed
    assert result.exit_status == status
    moved = sorted(b for b in after if after[b] != before[b])
    assert moved == sorted(changed)
    target = "offline" if action == "offline" else "online"
    assert all(after[b] == target for b in changed)


def test_online_without_zone_is_movable_and_never_kernel(guest: Host) -> None:
    for block in (38, 39):
        guest.memory.set_state(block, "offline")
    result = run(guest, "online", "256M")
    assert {o.write for o in result.outcomes} == {"online_movable"}
    assert {guest.memory.read(b).zone for b in (38, 39)} == {"Movable"}


def test_online_refuses_kernel_zone_unless_asked(guest: Host, tmp_path: Path) -> None:
    # A block whose valid_zones lacks Movable: chmem would write "online" (kernel zone).
    guest.memory.set_state(39, "offline")
    zones = guest.root / "sys/devices/system/memory/memory39/valid_zones"
    zones.write_text("Normal\n")
    refused = run(guest, "online", "128M")
    assert refused.exit_status == chmem.EXIT_FAILURE
    assert "pass --zone" in refused.plan.skipped[0].reason
    assert guest.memory.read(39).state == "offline"


def test_ebusy_midway_is_partial_64_and_message(guest: Host) -> None:
    actions.set_unmovable(guest.root, 34)
    result = run(guest, "offline", "0x100000000-0x11fffffff")  # blocks 32-35
    assert result.exit_status == chmem.EXIT_PARTIAL
    assert result.changed == [32, 33, 35]
    failed = [o for o in result.outcomes if not o.ok]
    assert [o.block for o in failed] == [34]
    assert chmem.errno_of(failed[0].error) == errno.EBUSY
    assert failed[0].attempts == FAST.max_attempts  # retried before giving up
    assert result.summary() == "Could only disable 384M of memory"


def test_transient_ebusy_is_retried_to_success(guest: Host) -> None:
    actions.set_busy(guest.root, 39, 1)
    result = run(guest, "offline", "128M")
    assert result.exit_status == 0
    assert result.outcomes[0].attempts == 2


def test_dry_run_plan_changes_nothing(guest: Host) -> None:
    before = states(guest)
    meminfo = (guest.root / "proc/meminfo").read_text()
    req = chmem.parse_request("offline", "512M", block_size=BS)
    p = chmem.plan(req, guest.memory.all())
    assert p.expected() == [39, 38, 37, 36]
    assert states(guest) == before
    assert (guest.root / "proc/meminfo").read_text() == meminfo


def test_rollback_restores_the_former_states(guest: Host) -> None:
    actions.set_unmovable(guest.root, 34)
    result = run(guest, "offline", "32-35", blocks=True)
    chmem.rollback(guest, result, retry=FAST)
    assert result.rolled_back == [35, 33, 32]
    assert all(guest.memory.read(b).zone == "Movable" for b in range(32, 36))
    assert result.exit_status == chmem.EXIT_FAILURE  # nothing is left done


def test_cancel_stops_before_the_next_block(guest: Host) -> None:
    cancel = threading.Event()
    req = chmem.parse_request("offline", "512M", block_size=BS)
    seen: list[int] = []

    def after(outcome: chmem.Outcome) -> None:
        seen.append(outcome.block)
        cancel.set()

    result = chmem.execute(guest, chmem.plan(req, guest.memory.all()), retry=FAST,
                           cancel=cancel, on_outcome=after)
    assert seen == [39] and result.cancelled
    assert result.exit_status == chmem.EXIT_PARTIAL
    assert guest.memory.read(38).state == "online"


def test_progress_reports_each_block(guest: Host) -> None:
    seen = []
    req = chmem.parse_request("offline", "256M", block_size=BS)
    chmem.execute(guest, chmem.plan(req, guest.memory.all()), retry=FAST,
                  progress=seen.append)
    assert [p.message for p in seen] == ["memory39", "memory38", "done"]
    assert seen[-1].done_bytes == 256 * MiB


def test_preflight_reserve_refuses_offlining_needed_memory(guest: Host) -> None:
    req = chmem.parse_request("offline", "1G", block_size=BS)
    p = chmem.plan(req, guest.memory.all())
    available = guest.meminfo.read().available
    ok = {c.name: c.ok for c in chmem.preflight(guest, p, available - 1024 * MiB)}
    refused = {c.name: c.ok for c in chmem.preflight(guest, p, available - 1023 * MiB)}
    assert ok["memory reserve"] and not refused["memory reserve"]
