"""The lab latency probe's pure parts: percentiles, clock mapping, counting each CE once."""

from __future__ import annotations

import pytest

from memras.lab.latency_probe import (
    STEP,
    addresses,
    clock_offset,
    parse_seen,
    percentile,
    phase_summary,
)


@pytest.mark.parametrize(("values", "q", "expected"), [
    ([1.0], 50, 1.0),
    ([1.0, 2.0], 50, 1.0),
    ([1.0, 2.0, 3.0, 4.0], 50, 2.0),
    ([float(v) for v in range(1, 101)], 99, 99.0),
    ([float(v) for v in range(1, 101)], 100, 100.0),
    ([float(v) for v in range(1, 1001)], 90, 900.0),
])
def test_percentile_is_nearest_rank(values: list[float], q: float, expected: float) -> None:
    assert percentile(values, q) == expected


def test_clock_offset_takes_the_tightest_bracket() -> None:
    # a preempted write (second sample) must not pull the offset 0.5 s off
    samples = [(1000.0, 1000.0002, 10.0), (1001.0, 1002.0, 10.6), (1003.0, 1003.0004, 13.0)]
    assert clock_offset(samples) == pytest.approx(990.0001)


def test_parse_seen_reads_rows_and_each_roads_calibrations() -> None:
    text = ["offset trace 1796579341.442469", "offset kmsg 1796579342.682469", "ready",
            "1796579566.660300 4296015872 224.983027 trace",
            "1796579566.660300 4296020000 223.75 kmsg",
            "offset trace 1796579341.442470", "offset kmsg 1796579342.682471"]
    rows, offsets = parse_seen(text)
    assert rows == [(1796579566.6603, 4296015872, 224.983027, "trace"),
                    (1796579566.6603, 4296020000, 223.75, "kmsg")]
    assert offsets == {"trace": [1796579341.442469, 1796579341.44247],
                       "kmsg": [1796579342.682469, 1796579342.682471]}


def test_phase_summary_counts_each_address_once_and_ignores_earlier_runs() -> None:
    injected = addresses(0x100200000, 4)
    # printk's clock runs 1.24 s behind the trace clock in this boot (as in the lab's)
    offsets = {"trace": 1000.0, "kmsg": 1001.24}
    rows = [
        (1100.5, injected[0], 100.0, "trace"),  # 0.5 s
        (1101.0, injected[1], 99.26, "kmsg"),  # 0.5 s, not 1.74 s: kmsg's own offset
        (1101.0, injected[1], 100.6, "trace"),  # stored twice (kmsg and trace not merged)
        (1102.0, injected[2], 101.0, "trace"),  # 1.0 s
        (1050.0, injected[3], 49.0, "trace"),  # an earlier run's row at the same address
        (1102.0, 0x5000, 101.0, "trace"),  # not injected here
    ]
    s = phase_summary(injected, rows, offsets, since=1099.0)
    assert (s["injected"], s["stored"], s["stored_twice_or_more"], s["missing"]) == (4, 3, 1, 1)
    assert s["missing_sample"] == [f"{injected[3]:#x}"]
    assert (s["p50_s"], s["max_s"]) == (pytest.approx(0.5), pytest.approx(1.0))
    assert injected[1] - injected[0] == STEP == 4096  # one dedup page per event


def test_phase_summary_without_rows_has_no_figures() -> None:
    s = phase_summary(addresses(0x1000, 2), [], {}, since=0.0)
    assert s["missing"] == 2 and "p50_s" not in s
