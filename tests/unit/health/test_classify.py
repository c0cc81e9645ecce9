"""Fault-mode classification: one constructed pattern per mode, plus mixed and noisy cases."""

from __future__ import annotations

import random

import pytest

from memras.errors import UsageError
from memras.health.classify import (
    ClassifyParams,
    FaultMode,
    classify_dimm,
    longest_storm_run,
)

from ._events import ce

HOUR = 3600.0


def cell_repeats_fast() -> list:
    return [ce(i * 30.0, rank=0, bank=1, row=0x10, column=0x20) for i in range(3)]


def cell_repeats_slowly() -> list:
    return [ce(i * 5 * HOUR, rank=0, bank=1, row=0x10, column=0x20) for i in range(3)]


def row_fault() -> list:
    return [ce(i * HOUR, rank=0, bank=1, row=0x1A2F, column=c) for i, c in enumerate([8, 64])]


def column_fault() -> list:
    return [ce(i * HOUR, rank=0, bank=2, row=r, column=0x40) for i, r in enumerate([1, 99, 400])]


def bank_fault() -> list:
    # 1001 CEs in one bank, each on its own row and column: no row/column repeats.
    return [ce(i * 10.0, rank=1, bank=3, row=i, column=(i * 7) % 1024 + 1000 * i)
            for i in range(1001)]


def multi_bank_fault() -> list:
    return [ce(i * 10.0, rank=0, bank=i % 4, row=i, column=i) for i in range(1001)]


def rank_fault() -> list:
    return [ce(i * 10.0, rank=i % 2, bank=i % 4, row=i, column=i) for i in range(1001)]


def everywhere() -> list:
    # 1200 CEs spread evenly over every bank of both ranks: no place holds more than
    # chance would, so only their volume (SRDS'22 channel rule) names a fault.
    return [ce(i * 10.0, rank=i % 2, bank=(i // 2) % 16, row=i, column=i % 1024)
            for i in range(1200)]


def controller_fault() -> list:
    return [ce(i * 10.0, channel=i % 2, rank=0, bank=0, row=i, column=i) for i in range(1001)]


def random_errors() -> list:
    return [ce(i * HOUR, rank=0, bank=i, row=100 + i, column=200 + i) for i in range(4)]


def address_only_cell() -> list:
    return [ce(i * 20.0, address=0x1234_5040, mc=None, top_layer=None) for i in range(2)]


CASES = [
    ("cell-fast", cell_repeats_fast, FaultMode.CELL, "srds22-cell"),
    ("cell-slow", cell_repeats_slowly, FaultMode.CELL, "memras-cell-repeat"),
    ("row", row_fault, FaultMode.ROW, "srds22-row"),
    ("column", column_fault, FaultMode.COLUMN, "srds22-column"),
    ("bank", bank_fault, FaultMode.BANK, "srds22-bank"),
    ("multi-bank", multi_bank_fault, FaultMode.MULTI_BANK, "memras-multi-bank"),
    ("rank", rank_fault, FaultMode.RANK, "memras-multi-bank"),
    ("everywhere", everywhere, FaultMode.RANK, "srds22-channel"),
    ("controller", controller_fault, FaultMode.CONTROLLER, "srds22-socket"),
    ("random", random_errors, FaultMode.RANDOM, "srds22-random"),
    ("address-only cell", address_only_cell, FaultMode.CELL, "srds22-cell"),
    ("nothing", list, FaultMode.NONE, "no-ce"),
]


@pytest.mark.parametrize(("name", "build", "mode", "rule"), CASES, ids=[c[0] for c in CASES])
def test_each_mode(name: str, build, mode: FaultMode, rule: str) -> None:
    result = classify_dimm(build())
    assert (result.mode, result.rule) == (mode, rule)


def test_row_evidence() -> None:
    result = classify_dimm(row_fault())
    ev = result.evidence
    assert ev.rows == (0x1A2F,) and ev.columns == (8, 64)
    assert ev.banks == ("0.-.1",) and ev.ranks == (0,)
    assert ev.ce_count == 2 and ev.ue_count == 0
    assert ev.first_seen is not None and ev.last_seen is not None
    assert (ev.last_seen - ev.first_seen).total_seconds() == HOUR
    assert "row 0x1a2f" in ev.detail and "2 distinct columns" in ev.detail
    assert result.mode.contained


def test_events_in_any_order_give_the_same_result() -> None:
    events = column_fault()
    assert classify_dimm(events) == classify_dimm(list(reversed(events)))


def test_peer_dimm_on_channel_means_channel_when_no_local_fault() -> None:
    result = classify_dimm(random_errors(), peer_ces_on_channel=12)
    assert (result.mode, result.rule) == (FaultMode.CHANNEL, "sun-x4140-several-dimms")
    assert not result.mode.contained
    # A neighbour with fewer CEs than peer_ce_min does not shift the blame.
    assert classify_dimm(random_errors(), peer_ces_on_channel=3).mode == FaultMode.RANDOM
    # A fault confined to one row of one bank is inside this DIMM's DRAM, neighbour or not.
    assert classify_dimm(row_fault(), peer_ces_on_channel=12).mode == FaultMode.ROW


def test_mixed_row_and_noise_finds_the_row() -> None:
    rng = random.Random(7)
    noise = [ce(rng.uniform(0, 100 * HOUR), rank=rng.randrange(2), bank=rng.randrange(16),
                row=rng.randrange(1 << 16), column=rng.randrange(1024)) for _ in range(30)]
    result = classify_dimm(noise + row_fault())
    assert (result.mode, result.rule) == (FaultMode.ROW, "srds22-row")
    assert result.evidence.ce_records == 32


def test_noisy_random_stays_random() -> None:
    rng = random.Random(11)
    rows = rng.sample(range(1 << 16), 50)
    cols = rng.sample(range(1 << 10), 50)
    noise = [ce(i * 600.0, rank=0, bank=rng.randrange(16), row=rows[i], column=cols[i])
             for i in range(50)]
    assert classify_dimm(noise).mode == FaultMode.RANDOM


def test_ues_are_counted_but_not_classified() -> None:
    result = classify_dimm([ce(0, ue=True, count=2), *row_fault()])
    assert result.evidence.ue_count == 2 and result.mode == FaultMode.ROW


STORMS = [
    ([i * 59.0 for i in range(11)], 11, True),  # >10 CEs each <=60 s apart
    ([i * 59.0 for i in range(10)], 10, False),  # exactly 10: not more than 10
    ([i * 61.0 for i in range(30)], 1, False),
    ([0, 10, 20, 1000, 1010, 1020, 1030], 4, False),
]


@pytest.mark.parametrize(("times", "run", "storm"), STORMS)
def test_storm(times: list[float], run: int, storm: bool) -> None:
    assert longest_storm_run(times, 60) == run
    events = [ce(t, rank=0, bank=i, row=i, column=i) for i, t in enumerate(times)]
    result = classify_dimm(events)
    assert result.storm is storm
    assert ("storm" in result.rules) is storm


def test_thresholds_are_tunable() -> None:
    # Six CEs in one bank, each on its own row and column: 1 in 10^9 by chance -> bank.
    events = [ce(i * 10.0, rank=1, bank=3, row=i, column=1000 * i) for i in range(6)]
    assert classify_dimm(events).mode == FaultMode.BANK
    params = ClassifyParams.from_mapping({"bank_ce_min": 10}, "memras.toml: [classify]")
    assert classify_dimm(events, params).mode == FaultMode.RANDOM
    strict = ClassifyParams.from_mapping({"min_strength": 20}, "memras.toml: [classify]")
    assert classify_dimm(row_fault(), strict).mode == FaultMode.RANDOM


@pytest.mark.parametrize(("values", "message"), [
    ({"bank_ce_min": 0}, "memras.toml: [classify] bank_ce_min = 0: out of range (allowed 1.."),
    ({"bank": 5}, "memras.toml: [classify] unknown key 'bank' (allowed:"),
    ({"storm_gap_s": "60s"},
     "memras.toml: [classify] storm_gap_s = '60s': expected a whole number"),
])
def test_bad_tunables(values: dict, message: str) -> None:
    with pytest.raises(UsageError) as info:
        ClassifyParams.from_mapping(values, "memras.toml: [classify]")
    assert info.value.msg.startswith(message)


# ---- the histories of the verdict-truth issue: evidence strength, not rule order ----

def test_column_fault_with_a_stray_second_column_stays_a_column() -> None:
    # 14 rows of column 0x40 in bank 0.-.2; row 7 is also seen once in column 0x41. The
    # old first-match rules saw "row 7, 2 columns" first and called it a row fault.
    events = [ce(i * HOUR, rank=0, bank=2, row=r, column=0x40) for i, r in enumerate(range(14))]
    events.append(ce(20 * HOUR, rank=0, bank=2, row=7, column=0x41))
    result = classify_dimm(events)
    assert (result.mode, result.rule) == (FaultMode.COLUMN, "srds22-column")
    assert result.evidence.explained == 14 and not result.evidence.tie
    assert result.evidence.runner_up.startswith("bank 0.-.2")  # weaker, and stated
    assert not result.mode.contained


def test_bank_fault_of_a_few_hundred_ces_is_a_bank_not_a_coincidental_column() -> None:
    rng = random.Random(5)
    events = [ce(i * 60.0, rank=0, bank_group=1, bank=2, row=rng.randrange(1 << 16),
                 column=rng.randrange(1 << 10)) for i in range(300)]
    columns: dict[int, set[int]] = {}
    for e in events:
        columns.setdefault(e.location.column, set()).add(e.location.row)
    assert max(len(rows) for rows in columns.values()) >= 2  # the coincidence is there
    result = classify_dimm(events)
    assert (result.mode, result.rule) == (FaultMode.BANK, "srds22-bank")
    assert result.evidence.explained == 300 and "bank 0.1.2" in result.evidence.detail


def test_scattered_low_rate_over_30_days_is_random_with_no_column_reason() -> None:
    rng = random.Random(3)
    events = [ce(rng.uniform(0, 30 * 24 * HOUR), rank=rng.randrange(2), bank=rng.randrange(16),
                 row=rng.randrange(1 << 16), column=rng.randrange(1 << 10)) for _ in range(60)]
    # a 2-row column by coincidence (SRDS'22's column rule fires on it)
    events.append(ce(31 * 24 * HOUR, rank=events[0].location.rank, bank=events[0].location.bank,
                     row=events[0].location.row + 1, column=events[0].location.column))
    result = classify_dimm(events)
    assert (result.mode, result.rule) == (FaultMode.RANDOM, "srds22-random")
    assert "column" not in result.evidence.detail.replace("cell, row, column or bank", "")
    assert result.evidence.explained == 0


def test_equally_strong_explanations_are_stated_as_a_tie() -> None:
    events = [ce(i * HOUR, rank=0, bank=b, row=r, column=0x40 + b)
              for i, (b, r) in enumerate([(1, 1), (1, 2), (1, 3), (5, 1), (5, 2), (5, 3)])]
    result = classify_dimm(events)
    assert result.mode == FaultMode.COLUMN and result.evidence.tie
    assert "as strong: column" in result.evidence.detail


def test_repaired_pages_leave_the_storm() -> None:
    events = [ce(i * 5.0, rank=0, bank=1, row=0x10, column=0x20, address=0x5000)
              for i in range(30)]
    assert classify_dimm(events).storm
    result = classify_dimm(events, repaired_pages={0x5000: 10.0})
    assert not result.storm and result.evidence.repaired == 30
    assert result.mode == FaultMode.CELL  # the fault is still what it was


def test_fits_says_whether_a_new_event_is_where_the_fault_is() -> None:
    result = classify_dimm(column_fault())
    assert result.fits(ce(0, rank=0, bank=2, row=7, column=0x40))
    assert not result.fits(ce(0, rank=0, bank=2, row=7, column=0x41))
    assert classify_dimm(random_errors()).fits(ce(0, rank=1, bank=9, row=1, column=1))
