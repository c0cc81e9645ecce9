"""CXL poison -> page or memdev action (memras.health.cxl_poison) on the ``cxl`` simulator
profile: two memdevs interleaved 2 ways at 4 KiB into region0 (HPA 0x290000000), onlined
Movable as blocks 82-85.

The poison lines are real: the 6.12 CXL lab guest wrote REAL_612_POISON (tests/unit/
test_cxl_parsers.py: DPA 0x40000 while no region mapped it; the cxl-events scenario) and
REAL_612_POISON_MAPPED (the cxl-poison scenario: DPA 0xff00000 of mem0's 1-way ram
region0 at HPA 0x2d0000000). MAPPED_612_POISON is the latter with the DPA and HPA of
this profile (mem0's DPA 0x40000 at interleave position 0 of region0: the HPA the
kernel's cxl_dpa_to_hpa() gives).
"""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest

from memras.cli import main
from memras.health.cxl import judge_cxl, memdev_verdicts
from memras.health.cxl_poison import CxlPoisonWatch, act_on_poison, poison_hpas
from memras.health.engine import ChangeKind
from memras.health.page_action import MemoryPageBook, PageAction, StorePageBook
from memras.health.rules import rule_for
from memras.health.verdict import VerdictState
from memras.host import Host
from memras.host.cxl import KPF_HWPOISON, dpa_to_hpa, hpa_to_dpa
from memras.ingest.parsers.ftrace import parse_trace_line
from memras.records import CxlEvent
from memras.sim import profiles
from memras.sim.cxl import REGION_START
from memras.store import Store
from tests.unit.test_cxl_parsers import REAL_612_POISON

WHEN = datetime(2026, 12, 7, tzinfo=UTC)
DPA = 0x40000
# mem0 is position 0 of 2 at 4 KiB: DPA page 64 is the region's 128th page
HPA = REGION_START + 2 * DPA
REAL_612_POISON_MAPPED = (
    "              sh-307     [000] .....    80.019860: cxl_poison: memdev=mem0 host=0000:0"
    "d:00.0 serial=0 trace_type=List region=region0 region_uuid=00000000-0000-0000-0000-0000"
    "00000000 hpa=0x2dff00000 dpa=0xff00000 dpa_length=0x40 source=Internal flags= overflow"
    "_time=0")
MAPPED_612_POISON = REAL_612_POISON_MAPPED.replace(
    "hpa=0x2dff00000 dpa=0xff00000", f"hpa={HPA:#x} dpa={DPA:#x}")


def poison(line: str = MAPPED_612_POISON, **changes: str) -> CxlEvent:
    for old, new in changes.items():
        line = line.replace(old, new)
    ev = parse_trace_line(line)
    assert isinstance(ev, CxlEvent) and ev.event == "poison", line
    return ev


@pytest.fixture
def srv(tmp_path: Path) -> profiles.SimServer:
    return profiles.create("cxl", tmp_path / "srv")


@pytest.fixture
def store(tmp_path: Path):
    s = Store.open(tmp_path / "m.db")
    yield s
    s.close()


def poisoned(srv: profiles.SimServer) -> list[int]:
    return srv.state().poisoned


def test_the_lines_parse_as_expected() -> None:
    real = poison(REAL_612_POISON_MAPPED)
    assert (real.memdev, real.dpa, real.dpa_length, real.hpa, real.region, real.trace_type) \
        == ("mem0", 0xFF00000, 0x40, 0x2DFF00000, "region0", "List")
    ev = poison()
    assert (ev.memdev, ev.dpa, ev.dpa_length, ev.hpa, ev.region) == (
        "mem0", DPA, 0x40, HPA, "region0")
    assert poison(REAL_612_POISON).hpa is None


def test_the_real_lines_hpa_is_not_this_hosts_system_ram(srv) -> None:
    """The lab's line on the profile: HPA 0x2dff00000 is in no region and no block here."""
    out = act_on_poison(srv.host(), poison(REAL_612_POISON_MAPPED), PageAction.HARD,
                        MemoryPageBook(), time=WHEN)
    assert out.outcome == "not-system-ram" and poisoned(srv) == []


def test_dpa_to_hpa_inverts_hpa_to_dpa(srv: profiles.SimServer) -> None:
    (region,) = srv.host().cxl.regions()
    for memdev, dpa in (("mem0", DPA), ("mem1", DPA + 0x123), ("mem0", 0), ("mem1", 0xFFFFFFF)):
        hpa = dpa_to_hpa(region, memdev, dpa)
        assert hpa is not None
        where = hpa_to_dpa(region, hpa)
        assert where is not None and (where.memdev, where.dpa) == (memdev, dpa)
    assert dpa_to_hpa(region, "mem0", 256 << 20) is None  # past its decoder
    assert dpa_to_hpa(region, "mem7", 0) is None


def test_poison_in_an_online_region_is_hard_offlined_once(srv, store) -> None:
    host = srv.host()
    book = StorePageBook(store)
    before = host.meminfo.read().hardware_corrupted
    watch = CxlPoisonWatch(store, host, book, action=PageAction.SOFT)  # the default knob
    store.add_events([poison()])
    changes = watch.process([poison()])
    pages = [c for c in changes if c.kind == ChangeKind.PAGE_OFFLINED]
    assert len(pages) == 1 and pages[0].dimm_id == "label:mem0"
    assert pages[0].evidence["outcome"] == "done"
    assert pages[0].evidence["steps"] == [["hard", "done"]]  # hard: the data is lost
    assert pages[0].rule_ids == ("cxl-poison",)
    assert poisoned(srv) == [HPA]
    assert host.meminfo.read().hardware_corrupted == before + 4096
    # the memdev's verdict moved with it
    (verdict,) = [c for c in changes if c.kind == ChangeKind.VERDICT_CHANGED]
    assert (verdict.dimm_id, verdict.verdict) == ("label:mem0", VerdictState.REPAIR.value)
    assert verdict.rule_ids == ("cxl-poison",)
    # the list read again, and again by a restarted watcher: nothing new, nothing written
    assert watch.process([poison()]) == []
    again = CxlPoisonWatch(store, host, StorePageBook(store), action=PageAction.HARD)
    assert again.process([poison()]) == []
    row = book.get(HPA)
    assert row is not None and row.outcome == "done" and row.steps == (("hard", "done"),)
    assert poisoned(srv) == [HPA]
    assert host.meminfo.read().hardware_corrupted == before + 4096


def test_a_page_the_kernel_poisoned_already_is_not_written(srv) -> None:
    """/proc/kpageflags' HWPOISON bit (fs/proc/page.c: one u64 per PFN) says so."""
    flags = bytearray(8 * (HPA // 4096 + 1))
    flags[-8:] = KPF_HWPOISON.to_bytes(8, "little")
    (srv.root / "proc" / "kpageflags").write_bytes(bytes(flags))
    host = srv.host()
    assert host.cxl.page_hwpoisoned(HPA) is True
    assert host.cxl.page_hwpoisoned(HPA - 4096) is False
    out = act_on_poison(host, poison(), PageAction.HARD, MemoryPageBook(), time=WHEN)
    assert out.outcome == "already-offlined" and out.new_pages == ()
    assert poisoned(srv) == []


def test_the_kernels_already_poisoned_answer_is_not_a_failure(srv) -> None:
    """A page poisoned behind memras's back (not in its book): the simulated kernel says
    EHWPOISON, as memory_failure() does for a second hard offline."""
    host = srv.host()
    host.memory.hard_offline_page(HPA)
    out = act_on_poison(host, poison(), PageAction.HARD, MemoryPageBook(), time=WHEN)
    assert out.outcome == "already-offlined", out
    assert poisoned(srv) == [HPA]


def test_without_an_hpa_nothing_is_written_and_the_verdict_moves(srv, store) -> None:
    """The real line (no region mapped DPA 0x40000 when it was read), on a host whose
    region is gone too: no page to act on; the memdev is judged."""
    shutil.rmtree(srv.root / "sys/devices/platform/ACPI0017:00/root0/decoder0.0/region0")
    (srv.root / "sys/bus/cxl/devices/region0").unlink()
    host = srv.host()
    ev = poison(REAL_612_POISON)
    assert poison_hpas(host, ev) == ([], "", "no region maps the DPA")
    watch = CxlPoisonWatch(store, host, StorePageBook(store), action=PageAction.HARD)
    store.add_events([ev])
    changes = watch.process([ev])
    assert [c.kind for c in changes] == [ChangeKind.VERDICT_CHANGED]
    assert changes[0].verdict == VerdictState.REPAIR.value
    assert changes[0].rule_ids == ("cxl-poison",)
    assert poisoned(srv) == []
    assert memdev_verdicts(store, ["mem0"])["mem0"].rules == ["cxl-poison"]


def test_a_record_without_hpa_read_before_its_region_existed_is_acted_on(srv) -> None:
    """The kernel printed no HPA (no region then); region0 maps the DPA now."""
    host = srv.host()
    out = act_on_poison(host, poison(REAL_612_POISON), PageAction.HARD, MemoryPageBook(),
                        time=WHEN)
    assert (out.outcome, out.region, [p.page for p in out.pages]) == (
        "offlined", "region0", [HPA])
    assert poisoned(srv) == [HPA]


def test_devdax_or_offline_blocks_are_no_system_ram(srv) -> None:
    host = srv.host()
    host.memory.set_state(HPA // host.memory.block_size(), "offline")
    out = act_on_poison(host, poison(), PageAction.HARD, MemoryPageBook(), time=WHEN)
    assert out.outcome == "not-system-ram" and out.pages == ()
    assert poisoned(srv) == []


def test_a_longer_range_offlines_each_interleaved_page(srv) -> None:
    """12 KiB of mem0's DPA: three pages, every other 4 KiB of the 2-way region."""
    host = srv.host()
    ev = poison(MAPPED_612_POISON, **{"dpa_length=0x40": "dpa_length=0x3000"})
    out = act_on_poison(host, ev, PageAction.HARD, MemoryPageBook(), time=WHEN)
    assert [p.page for p in out.pages] == [HPA, HPA + 0x2000, HPA + 0x4000]
    assert sorted(poisoned(srv)) == [HPA, HPA + 0x2000, HPA + 0x4000]


def test_the_kernels_hpa_wins_when_the_tables_disagree(srv) -> None:
    host = srv.host()
    ev = poison(MAPPED_612_POISON, **{f"hpa={HPA:#x}": f"hpa={HPA + 0x1000:#x}"})
    out = act_on_poison(host, ev, PageAction.HARD, MemoryPageBook(), time=WHEN)
    assert [p.page for p in out.pages] == [HPA + 0x1000]
    assert "disagrees" in out.detail


@pytest.mark.parametrize("action", [PageAction.ACCOUNT, PageAction.OFF])
def test_account_and_off_write_nothing(srv, store, action: PageAction) -> None:
    host = srv.host()
    book = StorePageBook(store)
    watch = CxlPoisonWatch(store, host, book, action=action)
    changes = watch.process([poison()])
    assert poisoned(srv) == [] and host.meminfo.read().hardware_corrupted == 0
    pages = [c for c in changes if c.kind == ChangeKind.PAGE_OFFLINED]
    if action == PageAction.ACCOUNT:
        assert [c.evidence["outcome"] for c in pages] == ["accounted"]
        assert watch.process([poison()]) == []  # once, like a done page
    else:
        assert pages == [] and book.get(HPA) is None


def test_a_dry_run_writes_nothing_not_even_the_page_book(srv) -> None:
    host = srv.host()
    book = MemoryPageBook()
    out = act_on_poison(host, poison(), PageAction.HARD, book, time=WHEN, dry_run=True)
    assert out.outcome == "dry-run" and [p.page for p in out.pages] == [HPA]
    assert poisoned(srv) == [] and book.pages == {}


def test_a_kernel_without_hard_offline_page_is_unsupported(tmp_path: Path) -> None:
    """A plain (not simulated) tree whose kernel has no CONFIG_MEMORY_FAILURE: the
    outcome says unsupported, and nothing is written."""
    profiles.create("cxl", tmp_path / "srv")
    root = tmp_path / "srv"
    shutil.rmtree(root / ".memras-sim")
    (root / "sys/devices/system/memory/hard_offline_page").unlink()
    out = act_on_poison(Host(root), poison(), PageAction.HARD, MemoryPageBook(), time=WHEN)
    assert out.outcome == "failed" and out.pages[0].outcome == "unsupported"


def test_clear_and_overflow_records() -> None:
    listed = poison()
    cleared = poison(**{"trace_type=List": "trace_type=Clear"})
    overflow = poison(**{"flags= ": "flags=Overflow "})
    assert overflow.poison_flags == 2
    out = act_on_poison(None, cleared, PageAction.HARD, MemoryPageBook(), time=WHEN)
    assert out.outcome == "cleared" and out.pages == ()
    v = judge_cxl([overflow])["mem0"]
    assert (v.state, v.rules) == (VerdictState.REPLACE_LATER, ["cxl-poison", "cxl-poison-overflow"])
    v = judge_cxl([listed, cleared])["mem0"]
    assert (v.state, v.rules) == (VerdictState.REPAIR, ["cxl-poison"])


def test_poison_over_many_pages_replaces_the_memdev_and_a_clear_counts_down() -> None:
    """Four 4 KiB pages of DPA (offlined_pages_min 2 + spread_min 2): retiring pages does
    not contain it."""
    three = poison(**{"dpa_length=0x40": "dpa_length=0x3000"})
    fourth = poison(**{"dpa=0x40000": "dpa=0x80000"})
    v = judge_cxl([three])["mem0"]
    assert v.state is VerdictState.REPAIR
    v = judge_cxl([three, fourth])["mem0"]
    assert (v.state, v.rules) == (VerdictState.REPLACE_LATER, ["cxl-poison", "cxl-poison-spread"])
    assert "4 pages" in v.reasons[1]
    cleared = poison(**{"dpa=0x40000": "dpa=0x80000", "trace_type=List": "trace_type=Clear"})
    v = judge_cxl([three, fourth, cleared])["mem0"]
    assert v.state is VerdictState.REPAIR
    assert judge_cxl([three, fourth], poison_replace=5)["mem0"].state is VerdictState.REPAIR
    for rule in ("cxl-poison", "cxl-poison-spread", "cxl-poison-overflow"):
        assert rule_for(rule) is not None, rule


def test_memras_watch_offlines_the_page_once_and_dimms_shows_the_verdict(srv, capsys) -> None:
    root, db = str(srv.root), str(srv.root.parent / "w.db")
    trace = srv.root / ".memras-sim" / "trace"
    with open(trace, "a") as f:
        f.write(MAPPED_612_POISON + "\n")
    assert main(["--root", root, "--db", db, "watch", "--once", "--sources", "trace"]) == 0
    capsys.readouterr()
    assert poisoned(srv) == [HPA]
    with open(trace, "a") as f:  # the list read again: the same entry, a later time
        f.write(MAPPED_612_POISON.replace("80.019860", "140.019860") + "\n")
    assert main(["--root", root, "--db", db, "watch", "--once", "--sources", "trace"]) == 0
    capsys.readouterr()
    assert poisoned(srv) == [HPA]
    with Store.open(db) as store:
        row = StorePageBook(store).get(HPA)
        assert row is not None and (row.outcome, row.dimm_id) == ("done", "label:mem0")
        assert row.steps == (("hard", "done"),) and row.attempts == 1
    assert main(["--root", root, "--db", db, "--json", "dimms"]) == 0
    rows = {c["id"]: c for c in json.loads(capsys.readouterr().out)["cxl"]}
    assert rows["mem0"]["verdict"] == VerdictState.REPAIR.value
    assert rows["mem0"]["rules"] == ["cxl-poison"]
    assert f"HPA {HPA:#x}" in rows["mem0"]["reasons"][0]
    assert rows["mem1"]["verdict"] == "ok"


def test_watch_without_health_acts_on_nothing(srv, capsys) -> None:
    root, db = str(srv.root), str(srv.root.parent / "w.db")
    with open(srv.root / ".memras-sim" / "trace", "a") as f:
        f.write(MAPPED_612_POISON + "\n")
    assert main(["--root", root, "--db", db, "watch", "--once", "--sources", "trace",
                 "--no-health"]) == 0
    capsys.readouterr()
    assert poisoned(srv) == []


def test_dimms_judges_poison_with_the_config_files_knobs(srv, capsys, tmp_path: Path) -> None:
    """Two poisoned pages: repair by default, replace with [classify] 1 + 1."""
    root, db = str(srv.root), str(tmp_path / "d.db")
    with Store.open(db) as store:
        store.add_events([poison(**{"dpa_length=0x40": "dpa_length=0x2000"})])
    config = tmp_path / "memras.toml"
    config.write_text("[classify]\nofflined_pages_min = 1\nspread_min = 1\n")
    verdicts = {}
    for extra in ([], ["--config", str(config)]):
        assert main(["--root", root, "--db", db, *extra, "--json", "dimms"]) == 0
        rows = {c["id"]: c for c in json.loads(capsys.readouterr().out)["cxl"]}
        verdicts[bool(extra)] = (rows["mem0"]["verdict"], rows["mem0"]["rules"])
    assert verdicts[False] == (VerdictState.REPAIR.value, ["cxl-poison"])
    assert verdicts[True] == (VerdictState.REPLACE_LATER.value, ["cxl-poison", "cxl-poison-spread"])


def test_import_stores_and_judges_poison_but_never_acts(srv, capsys, tmp_path: Path) -> None:
    root, db = str(srv.root), str(tmp_path / "i.db")
    trace = tmp_path / "trace.txt"
    trace.write_text(MAPPED_612_POISON + "\n")
    assert main(["--root", root, "--db", db, "import", "trace", str(trace)]) == 0
    capsys.readouterr()
    assert main(["--root", root, "--db", db, "--json", "dimms"]) == 0
    rows = {c["id"]: c for c in json.loads(capsys.readouterr().out)["cxl"]}
    assert rows["mem0"]["rules"] == ["cxl-poison"]
    assert poisoned(srv) == []


def test_verdicts_shows_the_memdev_its_poison_judged(srv, capsys, tmp_path: Path) -> None:
    root, db = str(srv.root), str(tmp_path / "v.db")
    with Store.open(db) as store:
        store.add_events([poison()])  # stored now (no clock in the line: the import time)
    assert main(["--root", root, "--db", db, "--json", "verdicts"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert (row["dimm"], row["verdict"], row["rules"]) == (
        "label:mem0", VerdictState.REPAIR.value, ["cxl-poison"])
    assert f"HPA {HPA:#x}" in row["reasons"][0]
    assert main(["--root", root, "--db", db, "verdicts"]) == 0
    assert "label:mem0 repair-by-page-offlining mem0 holds poisoned" in capsys.readouterr().out
    # as of a time before the record: nothing to judge
    assert main(["--root", root, "--db", db, "--json", "verdicts", "--at",
                 "2020-01-01T00:00"]) == 0
    assert json.loads(capsys.readouterr().out) == []
