"""Page offlining on a simulated root: outcomes, HardwareCorrupted, never twice, restarts."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from memras.health.config import parse_config
from memras.health.engine import ChangeKind, HealthEngine
from memras.health.page_action import (
    MemoryPageBook,
    PageAction,
    StorePageBook,
    act_on_page,
)
from memras.host import Host
from memras.sim.profiles import create
from memras.store import Store

from ._events import ce

WHEN = datetime(2024, 3, 1, tzinfo=UTC)


@pytest.fixture
def host(tmp_path: Path) -> Host:
    return create("qemu-guest", tmp_path / "root").host()


def online_page(host: Host) -> int:
    block = next(b for b in host.memory.all() if b.online and b.index > 0)
    return block.start + 0x5000


def offline_block_page(host: Host) -> int:
    block = next(b for b in host.memory.all() if b.online and b.zone == "Movable")
    host.memory.set_state(block.index, "offline")
    return block.start + 0x3000


def test_soft_offline_done_and_hardware_corrupted_grows(host: Host) -> None:
    page = online_page(host)
    out = act_on_page(host, page + 0x123, PageAction.SOFT, MemoryPageBook(), time=WHEN)
    assert out.page == page and out.outcome == "done" and out.steps == (("soft", "done"),)
    assert out.hw_corrupted_after - out.hw_corrupted_before == 4096


def test_done_page_is_never_written_twice(host: Host) -> None:
    book = MemoryPageBook()
    page = online_page(host)
    act_on_page(host, page, PageAction.SOFT, book, time=WHEN)
    again = act_on_page(host, page, PageAction.HARD, book, time=WHEN)
    assert again.outcome == "already-done" and again.steps == () and again.attempts == 2
    assert host.meminfo.read().hardware_corrupted == 4096  # the hard write never happened


OUTCOMES = [
    ("invalid pfn", lambda h: 1 << 45, PageAction.SOFT, "ENXIO", [("soft", "ENXIO")]),
    ("offline block, soft", offline_block_page, PageAction.SOFT, "EIO", [("soft", "EIO")]),
    ("offline block, soft-then-hard", offline_block_page, PageAction.SOFT_THEN_HARD, "ENXIO",
     [("soft", "EIO"), ("hard", "ENXIO")]),
    ("hard", online_page, PageAction.HARD, "done", [("hard", "done")]),
    ("account", online_page, PageAction.ACCOUNT, "accounted", []),
]


@pytest.mark.parametrize(("name", "where", "action", "outcome", "steps"), OUTCOMES,
                         ids=[o[0] for o in OUTCOMES])
def test_outcomes(host: Host, name, where, action, outcome, steps) -> None:
    out = act_on_page(host, where(host), action, MemoryPageBook(), time=WHEN)
    assert out.outcome == outcome and list(out.steps) == steps


def test_kernel_without_offline_files_is_unsupported(tmp_path: Path) -> None:
    bare = tmp_path / "bare"
    (bare / "proc").mkdir(parents=True)
    out = act_on_page(Host(bare), 0x10000, PageAction.SOFT, MemoryPageBook(), time=WHEN)
    assert out.outcome == "unsupported"


def test_page_state_survives_a_restart(host: Host, tmp_path: Path) -> None:
    page = online_page(host)
    with Store.open(tmp_path / "m.db") as store:
        act_on_page(host, page, PageAction.SOFT, StorePageBook(store), time=WHEN, dimm_id="d")
    with Store.open(tmp_path / "m.db") as store:
        book = StorePageBook(store)
        again = act_on_page(host, page, PageAction.SOFT, book, time=WHEN)
        assert again.outcome == "already-done"
        assert [p.outcome for p in book.all()] == ["done"]


def test_engine_offlines_a_page_at_its_threshold(host: Host) -> None:
    page = online_page(host)
    events = [ce(i * 60.0, address=page + 0x40, rank=0, bank=0, row=5, column=1)
              for i in range(3)]
    engine = HealthEngine(parse_config("[page]\naction = 'soft'"), None, host,
                          resolver=lambda e: "DIMM_A1")
    changes = engine.process(events)
    offlined = [c for c in changes if c.kind == ChangeKind.PAGE_OFFLINED]
    assert len(offlined) == 1  # 2/24h fires on the 2nd CE; the 3rd does not refill it
    assert offlined[0].evidence["outcome"] == "done"
    assert offlined[0].rule_ids == ("mcelog-page-ce-2/24h",)
    assert offlined[0].dimm_id == "DIMM_A1"
    assert host.meminfo.read().hardware_corrupted == 4096
