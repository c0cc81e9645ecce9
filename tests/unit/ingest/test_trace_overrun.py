"""Trace buffer overrun recorded as a gap (issue 14), on synthetic trees under tmp roots.

Formats from the kernel (kernel/trace/trace.c,
https://github.com/torvalds/linux/blob/master/kernel/trace/trace.c): print_trace_line
prints ``CPU:%d [LOST %lu EVENTS]`` (or ``CPU:%d [LOST EVENTS]``) before the first event
a consuming read returns after a loss; tracing_stats_read writes per_cpu/cpuN/stats.
The mc_event line is the one in tests/corpus/real/trace-mc_event-amd64-dram-address-
naik-2025.toml (https://lore.kernel.org/all/a285c8f8-3276-4628-88b1-a0bc18da5049@amd.com/).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from memras.host import Host
from memras.host.tracefs import LostMarker, parse_lost_marker, parse_lost_stats
from memras.ingest.sources import TraceSource
from memras.store import Store
from memras.watcher.watch import Watcher

MC_EVENT = ("     kworker/4:1-3950    [004] ..... 84373.064068: mc_event: 1 Corrected error: "
            "on mc#0csrow#0channel#9 (mc:0 location:0:9:-1 address:0x9ffff000 grain:64 "
            "syndrome:0x00000001 Cs: 0x0 Bank Grp: 0x0 Bank Addr: 0x1f Row: 0x27f "
            "Column: 0x7e0 RankMul: 0x0 SubChannel: 0x0)")
INSTANCE = "sys/kernel/tracing/instances/memras"


def stats(overrun: int, commit_overrun: int = 0, dropped: int = 0) -> str:
    """A per_cpu/cpuN/stats file as tracing_stats_read writes it."""
    return (f"entries: 3\noverrun: {overrun}\ncommit overrun: {commit_overrun}\n"
            "bytes: 312\noldest event ts: 84373.064068\nnow ts: 84380.000001\n"
            f"dropped events: {dropped}\nread events: 12\n")


def test_lost_markers_parse_and_nothing_else_does() -> None:
    assert parse_lost_marker("CPU:3 [LOST 120 EVENTS]") == LostMarker(3, 120)
    assert parse_lost_marker("CPU:0 [LOST EVENTS]\n") == LostMarker(0, None)
    assert parse_lost_marker(f"CPU:1 [LOST {1 << 70} EVENTS]") == LostMarker(1, (1 << 63) - 1)
    for other in (MC_EVENT, "CPU:3 [LOST -1 EVENTS]", "CPU:x [LOST 1 EVENTS]",
                  MC_EVENT + " CPU:3 [LOST 120 EVENTS]", "# CPU:3 [LOST 1 EVENTS] later", ""):
        assert parse_lost_marker(other) is None, other


def test_lost_stats_sum_overrun_commit_overrun_and_dropped() -> None:
    assert parse_lost_stats(stats(7, 1, 2)) == 10
    assert parse_lost_stats(stats(0)) == 0
    assert parse_lost_stats("entries: 3\nbytes: 9\n") is None  # no loss counter: not stats
    assert parse_lost_stats("overrun: many\n") is None


def _tracefs_root(tmp_path: Path, cpus: int = 2) -> Path:
    """A tree with a tracefs mount and memras's instance (the files setup() touches)."""
    root = tmp_path / "root"
    inst = root / INSTANCE
    for event in ("ras/mc_event", "mce/mce_record"):
        (inst / "events" / event).mkdir(parents=True)
        (inst / "events" / event / "enable").write_text("0\n")
    (inst / "buffer_percent").write_text("")  # written like sysfs: no truncation
    (inst / "trace_pipe").write_text("")
    for cpu in range(cpus):
        (inst / f"per_cpu/cpu{cpu}").mkdir(parents=True)
    set_stats(root, [0] * cpus)
    (root / "proc/sys/kernel/random").mkdir(parents=True)
    (root / "proc/sys/kernel/random/boot_id").write_text("boot-1\n")
    (root / "proc/stat").write_text("btime 1700000000\n")
    return root


def set_stats(root: Path, overruns: list[int], dropped: int = 0) -> None:
    for cpu, overrun in enumerate(overruns):
        (root / INSTANCE / f"per_cpu/cpu{cpu}/stats").write_text(stats(overrun, 0, dropped))


def _poll(root: Path, store: Store, *, lines: list[str] = ()) -> TraceSource:
    """One start + poll of the trace source, stored as the watcher stores a batch."""
    with (root / INSTANCE / "trace_pipe").open("a") as pipe:
        pipe.write("".join(line + "\n" for line in lines))
    source = TraceSource(Host(root))
    source.start(store.get_cursor("trace"))
    batch = source.poll(0.0)
    for gap in batch.gaps:
        store.add_gap(gap.source, gap.subject, gap.count, gap.error_type, message=gap.message)
    store.add_events(batch.records,
                     cursor=("trace", batch.cursor) if batch.cursor is not None else None)
    source.stop()
    return source


def test_stats_overrun_is_a_gap_also_across_a_restart(tmp_path: Path) -> None:
    root = _tracefs_root(tmp_path)
    store = Store.open(tmp_path / "m.db")
    set_stats(root, [4, 1])  # lost before memras ever read: the baseline, not a gap
    _poll(root, store, lines=[MC_EVENT])
    assert store.count() == 1 and not store.gaps()
    assert (root / INSTANCE / "buffer_percent").read_text() == "0"  # setup ran on the tree
    assert store.get_cursor("trace") == "boot-1:5"  # the first poll says where it starts
    set_stats(root, [4, 1])  # nothing new lost: no gap
    _poll(root, store)
    assert not store.gaps() and store.get_cursor("trace") == "boot-1:5"
    set_stats(root, [10, 3], dropped=1)  # 6 + 2 overwritten, 1 dropped on each CPU
    _poll(root, store, lines=["CPU:0 [LOST 6 EVENTS]",
                              MC_EVENT.replace("84373.06", "84374.06")])
    (gap,) = store.gaps()  # the marker is the same loss as the counters: one gap
    assert (gap["source"], gap["subject"], gap["count"]) == ("trace", "trace", 10)
    assert "lost 10 events" in gap["message"] and store.count() == 2
    assert store.get_cursor("trace") == "boot-1:15"
    set_stats(root, [12, 3], dropped=1)  # lost while the watcher was stopped
    _poll(root, store)
    assert [g["count"] for g in store.gaps()] == [10, 2]
    set_stats(root, [1, 0])  # the instance was recreated: it counts from 0 again
    _poll(root, store)
    assert [g["count"] for g in store.gaps()] == [10, 2, 1]
    assert store.get_cursor("trace") == "boot-1:1"
    (root / "proc/sys/kernel/random/boot_id").write_text("boot-2\n")
    set_stats(root, [3, 0])  # a new boot's buffer: every loss in it is unrecorded
    _poll(root, store)
    assert [g["count"] for g in store.gaps()] == [10, 2, 1, 3]
    store.close()


def test_stats_are_read_at_most_every_interval(tmp_path: Path) -> None:
    root = _tracefs_root(tmp_path, cpus=1)
    now = [0.0]
    source = TraceSource(Host(root), stats_interval_s=2.0, clock=lambda: now[0])
    source.start(None)
    set_stats(root, [5])
    assert [g.count for g in source.poll(0.0).gaps] == [5]
    set_stats(root, [9])
    now[0] = 1.0
    assert not source.poll(0.0).gaps  # within the interval: not read
    now[0] = 2.5
    assert [g.count for g in source.poll(0.0).gaps] == [4]
    set_stats(root, [2])  # counters went down: a recreated instance, its 2 lost
    now[0] = 5.0
    assert [g.count for g in source.poll(0.0).gaps] == [2]
    source.stop()


@pytest.mark.parametrize(("marker", "count", "text"), [
    ("CPU:1 [LOST 37 EVENTS]", 37, "lost 37 events of CPU 1"),
    ("CPU:0 [LOST EVENTS]", 0, "lost some events of CPU 0"),
])
def test_a_lost_marker_in_a_tailed_trace_is_a_gap_through_the_watcher(
        tmp_path: Path, marker: str, count: int, text: str) -> None:
    """A simulated root has no stats: the pipe's marker is the record of the loss."""
    root = tmp_path / "sim"
    (root / ".memras-sim").mkdir(parents=True)
    (root / ".memras-sim/trace").write_text(
        "\n".join([MC_EVENT, marker, MC_EVENT.replace("84373.06", "84399.06")]) + "\n")
    store = Store.open(tmp_path / "m.db")
    stats_ = Watcher(store, [TraceSource(Host(root))]).run(once=True)
    assert stats_.sources["trace"].gaps == 1 and store.count() == 2
    (gap,) = store.gaps()
    assert (gap["subject"], gap["count"]) == (f"cpu{marker[4]}", count)
    assert text in gap["message"]
    Watcher(store, [TraceSource(Host(root))]).run(once=True)  # resumed past it: no repeat
    assert len(store.gaps()) == 1 and store.count() == 2
    store.close()
