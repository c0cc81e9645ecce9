"""``memras evaluate``: score memras's verdicts and the mcelog/rasdaemon rules on a
labelled history (errors + failure tickets), to tune memras.toml on a fleet's own past."""

from __future__ import annotations

import argparse
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from memras.cli import command
from memras.cli.context import Context
from memras.cli.options import add_renamed
from memras.cli.progress import ProgressDisplay
from memras.config import DURATION_FORMS, duration_seconds
from memras.errors import EXIT_INTERRUPTED, MemrasError, UsageError
from memras.evaluate import ReplayCancelled, ReplayWatch, evaluate
from memras.evaluate import history as H
from memras.health.config import load_config

if TYPE_CHECKING:
    from memras.evaluate.metrics import Evaluation, RuleScore
    from memras.evaluate.replay import Replay

PLAIN_EVERY_S = 10.0  # a progress line this often on a pipe or a log
LIVE_EVERY_S = 0.25  # the terminal's bar: often enough to move, not per host

def parse_horizon(text: str) -> float:
    """``--horizon``: a positive duration (the one duration reader: ``72h``, ``30d``, ``2w``)."""
    seconds = duration_seconds(text)
    if not seconds:
        raise UsageError(f"--horizon {text!r}: not a duration",
                         hint=f"use {DURATION_FORMS}, more than 0")
    return seconds


def _args(p: argparse.ArgumentParser) -> None:
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--csv", metavar="PATH", help="errors, one per row (see the user guide)")
    src.add_argument("--rasdaemon-db", metavar="PATH", help="a rasdaemon ras-mc_event.db")
    add_renamed(src, "--rasdaemon", "--rasdaemon-db", "rasdaemon_db")
    src.add_argument("--memras", metavar="DB", help="a memras database (path or URL)")
    p.add_argument("--tickets", metavar="PATH", required=True,
                   help="failures: host, DIMM, failure time (CSV)")
    p.add_argument("--host", default="local",
                   help="the host name of a --rasdaemon-db/--memras database's errors, as "
                        "the tickets name it (default: local)")
    p.add_argument("--horizon", metavar="TIME",
                   help="count a flag only if at most this long before the failure (30d)")
    p.add_argument("--per-dimm", action="store_true",
                   help="also list each DIMM's first flag per rule")


@command("evaluate", "how verdicts and mcelog/rasdaemon rules did on a labelled history")(
    _args)
def run(args: argparse.Namespace, ctx: Context) -> int:
    config = load_config(ctx.config)
    horizon_s = parse_horizon(args.horizon) if args.horizon else None
    if args.csv:
        errors = H.read_events_csv(args.csv)
    elif args.rasdaemon_db:
        errors = H.read_rasdaemon_db(args.rasdaemon_db, args.host)
    else:
        errors = H.read_memras_db(args.memras, args.host)
    tickets = H.read_tickets_csv(args.tickets, errors.skipped)
    total = errors.total
    cancel = threading.Event()
    with ProgressDisplay(ctx, "evaluate", total=total, cancel=cancel) as shown:
        watch = ReplayWatch(ReplayProgress(shown, total), cancel)
        try:
            result, replayed = evaluate(errors, tickets, config, horizon_s=horizon_s,
                                        watch=watch)
        except ReplayCancelled as stop:
            shown.close()
            ctx.error(MemrasError(
                f"evaluate stopped: {stop.events:,} of {total:,} events replayed "
                f"({stop.hosts} of {len(errors.events)} hosts); nothing was scored",
                hint="run it again to score the whole history"))
            return EXIT_INTERRUPTED
    if ctx.json:
        data = result.to_dict()
        if args.per_dimm:
            data["per_dimm"] = [d.to_dict() for _, d in sorted(replayed.dimms.items())]
        ctx.emit_json(data)
        return 0
    _print(ctx, result)
    if args.per_dimm:
        _print_dimms(ctx, replayed, [s.rule for s in result.scores])
    return 0


class ReplayProgress:
    """A replay's progress on stderr (:class:`ProgressDisplay`): events done of the
    total, events/s and the time left; the bar on a terminal, a line every
    PLAIN_EVERY_S on a pipe, nothing with --json."""

    def __init__(self, shown: ProgressDisplay, total: int,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.shown, self.total, self.clock = shown, total, clock
        self.every = LIVE_EVERY_S if shown.mode == "rich" else PLAIN_EVERY_S
        self.start = self.last = clock()

    def __call__(self, done: int) -> None:
        now = self.clock()
        if self.shown.mode == "off" or now - self.last < self.every:
            return
        self.last = now
        rate = done / (now - self.start) if now > self.start else 0.0
        left = f", ~{_clock_time((self.total - done) / rate)} left" if rate else ""
        if self.shown.mode == "rich":  # the bar counts and estimates the time itself
            self.shown.message(f"replaying, {rate:,.0f} events/s")
            self.shown.update(done)
        else:
            self.shown.message(f"{done:,} of {self.total:,} events replayed, "
                               f"{rate:,.0f} events/s{left}")


def _clock_time(seconds: float) -> str:
    """``42s``, ``3m05s``, ``2h10m``: a time left, to the unit that matters."""
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _lead(hours: float | None) -> str:
    """Hours below two days, days above: lead times span minutes to months."""
    if hours is None:
        return "-"
    return f"{hours:.1f}h" if hours < 48 else f"{hours / 24:.1f}d"


def _row(s: RuleScore) -> list[object]:
    return [s.name, s.flagged, s.tp, s.fp, s.fn, _pct(s.precision), _pct(s.recall),
            _lead(s.lead_h(0.5)), _lead(s.lead_h(0.1)), _lead(s.lead_h(0.9))]


_UNITS = {"host": "host", "dimm": "DIMM"}  # "mixed": units


def _print(ctx: Context, r: Evaluation) -> None:
    x = r.extra
    horizon = "" if r.horizon_s is None else f", flags within {_lead(r.horizon_s / 3600)}"
    ctx.print(f"{x.get('events', 0)} events on {r.dimms} DIMMs of {r.hosts} host(s); "
              f"{r.failures} failed {_UNITS.get(r.unit, 'unit')}(s), "
              f"{r.failures_without_events} with no events{horizon}")
    if r.unit == "host":
        ctx.print("scored per host: a ticket names no DIMM, so a host counts as flagged "
                  "when its first DIMM was")
    elif r.unit == "mixed":
        ctx.print(f"scored per DIMM, but {r.host_units} host(s) as one unit each: "
                  f"{r.host_level_tickets} ticket(s) name no DIMM")
    ctx.table(["RULE", "FLAGGED", "TP", "FP", "FN", "PRECISION", "RECALL", "LEAD", "P10",
               "P90"], [_row(s) for s in r.scores],
              right=["FLAGGED", "TP", "FP", "FN", "PRECISION", "RECALL", "LEAD", "P10",
                     "P90"])
    notes = [f"{x[k]} {what}" for k, what in (
        ("skipped_rows", "row(s) skipped"), ("untimed", "event(s) without a wall time"),
        ("unattributed", "event(s) naming no DIMM")) if x.get(k)]
    if notes:
        ctx.print("not judged: " + ", ".join(notes))
    for reason in x.get("skipped_reasons", []):
        ctx.print(f"  skipped {reason}")


def _print_dimms(ctx: Context, replayed: Replay, rules: list[str]) -> None:
    ctx.print()
    rows = []
    for (host, dimm), d in sorted(replayed.dimms.items()):
        flags = [d.flags[r].strftime("%Y-%m-%d %H:%M") if r in d.flags else "-" for r in rules]
        rows.append([host, dimm, d.ces, d.ues, *flags])
    ctx.table(["HOST", "DIMM", "CE", "UE", *rules], rows, right=["CE", "UE"])
