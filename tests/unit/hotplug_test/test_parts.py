"""The harness's pure parts: percentiles, block choice, the pattern workload, uevents, SVG."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from memras.errors import UsageError
from memras.host import Host
from memras.hotplug_test.model import Op, Report, percentile
from memras.hotplug_test.pressure import CHUNK, PatternWorkload, workload_size
from memras.hotplug_test.render import markdown, svg
from memras.hotplug_test.select import parse_block_list, select_blocks
from memras.hotplug_test.uevents import UeventWatch
from memras.sim import profiles
from memras.sim.state import uevent


@pytest.mark.parametrize(("values", "pct", "expected"), [
    ([], 50, None),
    ([3.0], 99, 3.0),
    ([1.0, 2.0, 3.0, 4.0], 50, 2.0),
    ([1.0, 2.0, 3.0, 4.0], 90, 4.0),
    ([float(i) for i in range(1, 101)], 99, 99.0),
    ([float(i) for i in range(1, 101)], 90, 90.0),
])
def test_percentile_nearest_rank(values: list[float], pct: float, expected: float | None) -> None:
    assert percentile(values, pct) == expected


def test_report_needs_a_pass_and_no_failure() -> None:
    report = Report()
    report.add("notifier-offline", None, detail="not loaded")
    assert not report.ok  # nothing was proved
    report.add("offline", True, block=32)
    assert report.ok
    report.add("zone", False, block=32, detail="Normal (was Movable)")
    assert not report.ok and [c.name for c in report.failures] == ["zone"]
    assert list(report.tally()) == ["offline", "zone", "notifier-offline"]


def test_migration_throughput_uses_only_measured_offlines() -> None:
    report = Report()
    report.ops += [Op("offline", 32, 1, 0.5, True, 1, 64 << 20),
                   Op("offline", 33, 1, 0.5, True, 1, 32 << 20),
                   Op("offline", 34, 1, 9.0, True, 1, None),
                   Op("online", 32, 1, 0.1, True)]
    mig = report.migration()
    assert mig["bytes"] == 96 << 20 and mig["bytes_per_s"] == 96 << 20


def test_parse_block_list() -> None:
    assert parse_block_list("32-34,40,memory41") == (32, 33, 34, 40, 41)
    with pytest.raises(UsageError):
        parse_block_list("x-3")
    with pytest.raises(UsageError):
        parse_block_list("5-3")


@pytest.fixture
def guest(tmp_path: Path) -> Path:
    return profiles.create("qemu-guest", tmp_path / "root").root


def test_only_movable_blocks_unless_kernel_zones_are_asked_for(guest: Path) -> None:
    blocks = Host(guest).memory.all()
    sel = select_blocks(blocks)
    assert sel.blocks == tuple(range(32, 40))
    assert set(sel.zones.values()) == {"Movable"}
    reasons = dict(sel.skipped)
    assert "valid_zones none" in reasons[0] and "kernel zone DMA32" in reasons[1]
    wide = select_blocks(blocks, include_kernel_zones=True, max_blocks=3, only=(0, 1, 2, 3, 99))
    assert wide.blocks == (1, 2, 3)
    assert dict(wide.skipped)[99] == "no such block"


def test_workload_detects_a_flipped_byte() -> None:
    w = PatternWorkload(2 * CHUNK, seed=1)
    w.fill()
    assert w.verify().ok
    w.corrupt(300)
    v = w.verify()
    assert not v.ok and v.bad_pages == 1 and v.first_bad == (300,)
    w.release()


def test_workload_size_is_bounded_by_this_machine() -> None:
    assert workload_size(0.5, 512 << 30, local_free=100 << 20) == 50 << 20
    assert workload_size(0.5, 512 << 30, local_free=100 << 30, max_bytes=10 << 20) == 10 << 20
    assert workload_size(0, 1 << 30) == 0


def test_uevent_watch_fails_a_duplicate(guest: Path) -> None:
    watch = UeventWatch(Host(guest), timeout_s=0.5)
    assert watch.kind == "simulator"
    uevent(guest, "offline", "/devices/system/memory/memory33")
    assert watch.expect([("offline", "memory33")])[0]
    uevent(guest, "offline", "/devices/system/memory/memory33")
    uevent(guest, "offline", "/devices/system/memory/memory33")
    ok, detail = watch.expect([("offline", "memory33")])
    assert not ok and detail.count("offline memory33") == 3
    ok, detail = watch.expect([("online", "memory34")])
    assert not ok and "got [none]" in detail


def test_svg_is_xml_and_markdown_names_failures() -> None:
    report = Report()
    report.plan = {"blocks": [32, 33]}
    report.ops += [Op("offline", 32, 1, 0.2, True), Op("online", 32, 1, 0.1, True),
                   Op("offline", 33, 1, 0.4, True)]
    report.add("offline", True, block=32)
    report.add("offline", False, block=33, cycle=1, detail="EBUSY: Device or resource busy")
    root = ET.fromstring(svg(report))
    assert root.tag.endswith("svg") and len(root.findall("{*}rect")) == 4  # background + 3
    text = markdown(report)
    assert text.startswith("# memras hotplug-test: FAIL")
    assert "- **offline** memory33 cycle 1: EBUSY" in text
