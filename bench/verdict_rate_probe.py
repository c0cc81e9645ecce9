"""Could a rate-growth rule lead mcelog's count on the verdict-truth fleet? An offline probe.

The verdict-truth bench (bench/verdict_truth.py) finds memras's replace level behind
mcelog's 10 CEs / 24 h in median lead time, and argues that no precise rule can lead
by more in that fleet's model: a failing fault looks like a stable one until the last
PROGRESS_D days before its UE, and then its rate rises and it spreads. Spread is what
memras-fault-growing reads; this probe tests the other signal, the rising rate, on the
same generated fleet, without the health engine (seconds, not minutes):

For every DIMM's CE times (before its UE, when it failed), at most every 30 min, the CEs
of the last W hours are set against those of up to B hours before (from the first CE in
that lookback, so a quiet start or a cut history's gap does not read as growth), counted
three ways — erring hours, erring 5-minute bins, and CEs with their over-dispersion
measured on the DIMM's own hourly counts (quasi-binomial) — and the DIMM is flagged at the
first time the recent rate is >= R times the rate before with a binomial tail below
10^-S (memras.health.classify's test). Reported per setting: DIMMs flagged that failed
(TP) and that did not (FP), precision, and the median lead of the TPs, beside mcelog's
rule on the same histories.

Run: .venv/bin/python bench/verdict_rate_probe.py [--dimms 10000] [--seed 1] [--write-docs]
"""

from __future__ import annotations

import argparse
import bisect
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from _docs import replace_figures  # bench/ is the script directory on sys.path
from verdict_truth import generate

from memras.health.classify import _log10_binomial_tail

DAY_S = 86400.0
START = "<!-- verdict-rate-probe figures: written by bench/verdict_rate_probe.py -->"
END = "<!-- end: verdict-rate-probe figures -->"
UNITS = {"erring hours": 3600, "erring 5-min bins": 300, "CEs, over-dispersed": 0}
SETTINGS = [(w, r, unit) for w in (48, 120) for r in (2.5, 4.0) for unit in UNITS.values()]
LOOKBACK_H, STRENGTH = 480, 8

Dimm = tuple[str, str]


def histories(dimms: int, seed: int) -> tuple[dict[Dimm, list[float]], dict[Dimm, float]]:
    """(host, DIMM) -> its CE times before its UE (s), and the failed ones' UE times."""
    fleet = generate(dimms, 730.0, seed)
    t0 = datetime(2024, 1, 1, tzinfo=UTC)
    ces: dict[Dimm, list[float]] = {}
    for host, events in fleet.history.events.items():
        for e in events:
            slot = e.location.socket * 8 + e.location.channel * 2 + e.location.slot
            key = (host, f"S{slot // 8}:C{slot // 2 % 4}:D{slot % 2}")
            if not e.error_type.is_uncorrected:
                ces.setdefault(key, []).append((e.timestamp - t0).total_seconds())
    failed = {(t.host, t.dimm): (t.time - t0).total_seconds() for t in fleet.tickets}
    for key, times in ces.items():
        times.sort()
        if key in failed:
            times[:] = [t for t in times if t < failed[key]]
    return ces, failed


def mcelog_first(times: Sequence[float]) -> float | None:
    """mcelog's per-DIMM trigger: the first CE that makes 10 within 24 h."""
    for i, t in enumerate(times):
        if i + 1 - bisect.bisect_left(times, t - DAY_S + 1e-9) >= 10:
            return t
    return None


def _bins(times: Sequence[float], unit: int) -> tuple[list[int], list[int]]:
    """The distinct ``unit``-second bins with CEs, and the prefix sums of their squared
    counts (for the hourly dispersion)."""
    bins: list[int] = []
    counts: list[int] = []
    for t in times:
        b = int(t // unit)
        if bins and bins[-1] == b:
            counts[-1] += 1
        else:
            bins.append(b)
            counts.append(1)
    squares = [0]
    for c in counts:
        squares.append(squares[-1] + c * c)
    return bins, squares


def rate_first(times: Sequence[float], window_h: float, ratio: float,
               unit: int) -> float | None:
    """The first time the rate-growth test passes (module docstring), or None."""
    window, lookback = window_h * 3600, LOOKBACK_H * 3600
    bins, squares = _bins(times, unit or 3600)
    last = -1e18
    for i, t in enumerate(times):
        if t - last < 1800 and i + 1 < len(times):
            continue
        last = t
        cut = t - window
        lo = bisect.bisect_right(times, cut - lookback)
        mid = bisect.bisect_right(times, cut)
        before = cut - times[lo] if mid > lo else 0.0
        if before < window:
            continue
        b_lo = bisect.bisect_left(bins, int(times[lo] // (unit or 3600)))
        b_mid = bisect.bisect_right(bins, int(cut // (unit or 3600)))
        if unit:
            n_before, n_recent, phi = b_mid - b_lo, bisect.bisect_right(
                bins, int(t // unit)) - b_mid, 1.0
        else:
            n_before, n_recent = mid - lo, i + 1 - mid
            hours = before / 3600
            mean = n_before / hours
            phi = max(1.0, ((squares[b_mid] - squares[b_lo]) / hours - mean * mean) / mean)
        if n_recent < 3 or n_recent < ratio * n_before * window / before:
            continue
        k, n = int(n_recent / phi), int((n_recent + n_before) / phi)
        if k >= 1 and -_log10_binomial_tail(k, n, window / (window + before)) >= STRENGTH:
            return t
    return None


def score(ces: dict[Dimm, list[float]], failed: dict[Dimm, float],
          first: Callable[[Sequence[float]], float | None]) -> tuple[int, int, float | None]:
    tp = fp = 0
    leads = []
    for key, times in ces.items():
        at = first(times)
        if at is None:
            continue
        if key in failed:
            tp += 1
            leads.append((failed[key] - at) / DAY_S)
        else:
            fp += 1
    leads.sort()
    return tp, fp, leads[len(leads) // 2] if leads else None


def report(dimms: int, seed: int) -> str:
    ces, failed = histories(dimms, seed)
    rows = [("mcelog DIMM 10 / 24h CE", *score(ces, failed, mcelog_first))]
    for window_h, ratio, unit in SETTINGS:
        name = next(k for k, v in UNITS.items() if v == unit)
        rows.append((f"{window_h} h vs {LOOKBACK_H} h before, >= {ratio:g}x, {name}",
                     *score(ces, failed, lambda ts, w=window_h, r=ratio, u=unit:
                            rate_first(ts, w, r, u))))
    lines = [f"`bench/verdict_rate_probe.py --dimms {dimms} --seed {seed}`: {len(failed)} "
             f"failed DIMMs; binomial tail < 10^-{STRENGTH} in every rate setting.", "",
             "| rule | TP | FP | precision | median lead |", "|---|---|---|---|---|"]
    for name, tp, fp, lead in rows:
        precision = f"{tp / (tp + fp):.2f}" if tp + fp else "-"
        lines.append(f"| {name} | {tp} | {fp} | {precision} | "
                     f"{f'{lead:.1f} d' if lead is not None else '-'} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dimms", type=int, default=10_000)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--write-docs", action="store_true",
                   help="replace the probe's figures in docs/performance.md")
    args = p.parse_args(argv)
    figures = report(args.dimms, args.seed)
    print(figures)
    if args.write_docs:
        replace_figures(START, END, figures, new_section="{figures}")
        print("wrote the rate-probe figures in docs/performance.md", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
