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
    ("multi-bank", multi_bank_fault, FaultMode.MULTI_BANK, "srds22-channel"),
    ("rank", rank_fault, FaultMode.RANK, "srds22-channel"),
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


def test_peer_dimm_on_channel_means_channel_not_dimm() -> None:
    result = classify_dimm(row_fault(), peer_ces_on_channel=12)
    assert (result.mode, result.rule) == (FaultMode.CHANNEL, "sun-x4140-several-dimms")
    assert not result.mode.contained
    # A neighbour with fewer CEs than peer_ce_min does not shift the blame.
    assert classify_dimm(row_fault(), peer_ces_on_channel=3).mode == FaultMode.ROW


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
    params = ClassifyParams.from_mapping({"bank_ce_min": 5}, "memras.toml: [classify]")
    events = [ce(i * 10.0, rank=1, bank=3, row=i, column=1000 * i) for i in range(6)]
    assert classify_dimm(events, params).mode == FaultMode.BANK
    assert classify_dimm(events).mode == FaultMode.RANDOM


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
