"""bench/verdict_truth.py's generator keeps what the rules need of a long history."""

from __future__ import annotations

import importlib
import random
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[3] / "bench"


def _bench():  # bench/ is a directory of scripts, each importing its siblings by name
    sys.path.insert(0, str(BENCH))
    try:
        return importlib.import_module("verdict_truth")
    finally:
        sys.path.remove(str(BENCH))


def test_a_long_history_keeps_its_first_and_its_last_records() -> None:
    vt = _bench()
    n = vt.MAX_CE_RECORDS
    items = list(range(3 * n))
    cut = vt._cut(items)
    assert len(cut) == n and cut[: n // 2] == items[: n // 2] and cut[-1] == items[-1]
    assert vt._cut(items[:n]) == items[:n]


def test_a_failing_high_rate_fault_errs_up_to_its_ue() -> None:
    # the days before a UE are where a progressing fault shows itself: a cut history
    # must not end months before the UE (it did when only the first records were kept)
    vt = _bench()
    rng = random.Random(7)
    day = vt.DAY_S
    fault = vt.Fault("single-bank", True, onset_s=0.0, rank=0, bank_group=0, bank=0,
                     row=0, column=0, ue_s=400 * day)
    for _ in range(200):  # the CE rate is drawn per call; some draws exceed the cap
        times = vt._bursts(rng, fault, 400 * day)
        if len(times) == vt.MAX_CE_RECORDS:
            break
    assert len(times) == vt.MAX_CE_RECORDS
    assert 400 * day - max(times) < 2 * day and min(times) < 100 * day
