"""Replace on evidence that predicts a UE, not on counts (verdict-truth issue, policy B).

Each history is built here, event by event, as the fault it stands for: a fault that grows
past its footprint, a stable bank fault with many CEs, a row that keeps erring after its
page is offlined, a fault over several banks.
"""

from __future__ import annotations

from memras.health.config import parse_config
from memras.health.engine import HealthEngine
from memras.health.verdict import Verdict, VerdictState

from ._events import ce
from .test_verdict_truth import DIMM_A, OffliningHost

HOUR = 3600.0
DAY = 86400.0
NO_PAGES = "[page]\naction='off'"


def judge(events: list, toml: str = NO_PAGES, host: object = None) -> Verdict:
    e = HealthEngine(parse_config(toml), host=host, resolver=lambda ev: None)
    for event in events:  # one at a time, as a watcher sees them
        e.process([event])
    return e.verdicts()[DIMM_A]


def row_fault(days: int, per_day: int = 2, row: int = 0x10) -> list:
    """A row fault in bank 0.-.1: CEs at new columns of one row, ``per_day`` a day."""
    return [ce(d * DAY + i * HOUR, rank=0, bank=1, row=row, column=0x20 + d * per_day + i)
            for d in range(days) for i in range(per_day)]


def test_a_row_fault_spreading_to_other_rows_of_its_bank_escalates_to_replace() -> None:
    spreading = [ce(5 * DAY + i * 6 * HOUR, rank=0, bank=1, row=0x400 + 0x111 * i, column=i)
                 for i in range(3)]
    v = judge([*row_fault(5), *spreading])
    assert v.state == VerdictState.REPLACE_LATER and v.rules[0] == "memras-fault-growing"
    assert v.evidence["fault_mode"] == "row"  # still a row: the growth is beside it
    assert v.evidence["growing"] and v.evidence["spread_places"] == 3
    assert "3 CE(s) at 3 new cell(s)" in v.reasons[0]


def test_the_same_row_fault_without_spreading_stays_at_repair() -> None:
    v = judge(row_fault(8))  # 16 CEs, crosses nothing but its own pattern
    assert v.state == VerdictState.REPAIR and v.evidence["fault_mode"] == "row"
    assert not v.evidence["growing"] and v.evidence["spread"] == 0


def test_one_stray_ce_in_the_bank_is_not_growth() -> None:
    stray = ce(5 * DAY, rank=0, bank=1, row=0x7777, column=3)
    v = judge([*row_fault(5), stray])
    assert v.evidence["spread_places"] == 1 and not v.evidence["growing"]
    assert v.state == VerdictState.REPAIR


def test_a_stable_bank_fault_with_many_ces_is_repair_not_replace() -> None:
    # 60 CEs a day for three days over rows and columns of one bank: mcelog's DIMM
    # threshold and the Sun rule fire, and both are counts
    events = [ce(d * DAY + i * 1440.0, rank=1, bank_group=2, bank=3, row=0x100 + 37 * (60 * d + i),
                 column=(53 * (60 * d + i)) % 1024) for d in range(3) for i in range(60)]
    v = judge(events)
    assert v.evidence["fault_mode"] == "bank" and not v.evidence["growing"]
    assert v.state == VerdictState.REPAIR
    assert {"mcelog-dimm-ce-10/24h", "sun-x4140-24/24h", "srds22-bank"} <= set(v.rules)
    sun = v.reasons[v.rules.index("sun-x4140-24/24h")]
    assert sun.startswith("60 CEs in 24 h") and "does not predict a UE" in sun


def test_a_bank_fault_reaching_other_banks_of_its_rank_escalates() -> None:
    bank = [ce(i * 2 * HOUR, rank=1, bank_group=2, bank=3, row=0x100 + 37 * i,
               column=(53 * i) % 1024) for i in range(12)]
    others = [ce(24 * HOUR + i * HOUR, rank=1, bank_group=i, bank=0, row=0x900 + i, column=i)
              for i in range(2)]
    v = judge([*bank, *others])
    assert v.evidence["fault_mode"] == "bank" and v.evidence["growing"]
    assert v.state == VerdictState.REPLACE_LATER and "memras-fault-growing" in v.rules
    assert "2 new bank(s)" in v.reasons[v.rules.index("memras-fault-growing")]


def test_a_row_that_errs_after_its_pages_are_offlined_escalates() -> None:
    # two CEs offline a page (mcelog's page threshold 2 / 24h); after both pages of the
    # row are offlined (an 8 KiB DDR4 row), the row errs at two more pages
    host = OffliningHost()
    pages = [0x4000_0000, 0x4000_1000, 0x5000_0000, 0x6000_0000]
    events = [ce(d * DAY + i * HOUR, address=page + 0x40 * i, rank=0, bank=1, row=0x10,
                 column=0x20 + 4 * d + i) for d, page in enumerate(pages[:2]) for i in range(2)]
    later = [ce(3 * DAY + i * DAY, address=page, rank=0, bank=1, row=0x10, column=0x30 + i)
             for i, page in enumerate(pages[2:])]
    v = judge(events, toml="", host=host)
    assert host.offlined == pages[:2] and v.state == VerdictState.REPAIR
    v = judge([*events, *later], toml="", host=OffliningHost())
    assert v.state == VerdictState.REPLACE_LATER and "memras-erring-after-offline" in v.rules
    assert v.evidence["after_offline"] == 2 and v.evidence["erring_after_offline"]
    assert not v.evidence["growing"]  # the same row: not spread, still erring


def test_a_row_erring_on_its_second_page_after_the_first_is_offlined_is_still_repair() -> None:
    # one 8 KiB row, two pages: its second page erring later is the same bounded fault
    host = OffliningHost()
    first = [ce(i * HOUR, address=0x4000_0000 + 0x40 * i, rank=0, bank=1, row=0x10,
                column=0x20 + i) for i in range(2)]
    second = [ce(DAY + i * DAY, address=0x4000_1000 + 0x40 * i, rank=0, bank=1, row=0x10,
                 column=0x30 + i) for i in range(2)]
    v = judge([*first, *second], toml="", host=host)
    assert v.state == VerdictState.REPAIR and v.evidence["after_offline"] == 0


def test_a_row_whose_errors_stay_on_its_offlined_page_stays_at_repair() -> None:
    host = OffliningHost()
    events = [ce(i * HOUR, address=0x4000_0000 + 0x40 * (i % 4), rank=0, bank=1, row=0x10,
                 column=0x20 + i % 4) for i in range(8)]
    v = judge(events, toml="", host=host)
    assert host.offlined == [0x4000_0000]
    assert v.state == VerdictState.REPAIR and v.evidence["after_offline"] == 0


def test_a_fault_over_two_banks_is_replace_without_any_count() -> None:
    # 8 CEs, days apart (no threshold crossed), 4 each in two banks of rank 0
    events = [ce(i * DAY, rank=0, bank_group=i % 2, bank=1, row=0x100 + 0x333 * i, column=i)
              for i in range(8)]
    v = judge(events)
    assert v.evidence["fault_mode"] == "multi-bank" and not v.evidence["thresholds_crossed"]
    assert v.state == VerdictState.REPLACE_LATER and v.rules[0] == "memras-multi-bank"
    assert "Sridharan" in v.reasons[0]


def _scattered(n: int, step_s: float, device: int) -> list:
    """n CEs of one device over both ranks and all banks, no row or column twice."""
    return [ce(i * step_s, rank=i % 2, bank_group=(i // 2) % 4, bank=(i // 8) % 4,
               row=0x100 + 0x301 * i, column=(97 * i) % 1024, device=device)
            for i in range(n)]


def test_a_device_erring_over_both_ranks_is_a_rank_fault_to_replace() -> None:
    # a fault of one device's shared circuitry: no cell, row, column or bank stands out
    v = judge(_scattered(8, 6 * HOUR, device=5))
    assert v.evidence["fault_mode"] == "rank" and v.evidence["fault_rule"] == "memras-device"
    assert v.state == VerdictState.REPLACE_LATER and v.rules[0] == "memras-device"


def test_the_same_pattern_without_devices_is_chance() -> None:
    events = [ce(i * 6 * HOUR, rank=i % 2, bank_group=(i // 2) % 4, bank=(i // 8) % 4,
                 row=0x100 + 0x301 * i, column=(97 * i) % 1024) for i in range(8)]
    v = judge(events)
    assert v.evidence["fault_mode"] == "random" and v.state == VerdictState.WATCH


def test_a_one_minute_burst_of_one_device_over_banks_is_watch_until_it_recurs() -> None:
    burst = _scattered(6, 10.0, device=3)  # a transient multi-rank fault: one moment
    v = judge(burst)
    assert v.evidence["fault_mode"] == "rank" and v.state == VerdictState.WATCH
    assert "transient" in v.reasons[v.rules.index("memras-device")]
    again = [ce(2 * DAY + i * 60.0, rank=1, bank_group=3, bank=2, row=0x7000 + i,
                column=i, device=3) for i in range(2)]
    assert judge([*burst, *again]).state == VerdictState.REPLACE_LATER
