"""``memras import``, ``memras errors`` and ``memras summary``: getting errors in and out.

``import`` reads a file (or stdin) through the parsers into the store
(:mod:`memras.store.importing`); ``errors`` lists stored events; ``summary`` prints
per-DIMM counts the way ``ras-mc-ctl --summary`` does (events = rows, as rasdaemon
counts them, plus errors = sum of err_count) and totals by type. Every kernel- or
firmware-supplied string (labels, messages) is escaped before it is shown.
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from typing import Any

from memras.cli import command
from memras.cli.context import Context
from memras.errors import UsageError
from memras.records import ErrorType
from memras.text import escape

_RELATIVE = re.compile(r"^(\d+)\s*([smhdw])$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
# --type shorthands: CE/UE as operators say them, then every stored type name.
_TYPE_ALIASES = {
    "ce": ["Corrected"],
    "ue": [t.value for t in ErrorType if t.is_uncorrected],
}


def parse_when(text: str, *, now: datetime | None = None) -> datetime:
    """``24h``/``7d``/``30m`` ago, a date ``2024-12-19``, or an ISO time (local if naive)."""
    now = now or datetime.now(UTC)
    value = text.strip()
    m = _RELATIVE.match(value.lower())
    if m:
        return now - timedelta(seconds=int(m[1]) * _UNIT_S[m[2]])
    try:
        parsed = datetime.fromisoformat(value.replace(" ", "T", 1) if " " in value else value)
    except ValueError:
        raise UsageError(f"cannot read the time {text!r}",
                         hint="use 24h, 7d, 30m, 2w, YYYY-MM-DD or an ISO time") from None
    return parsed if parsed.tzinfo else parsed.astimezone()


def parse_types(text: str | None) -> list[str] | None:
    if text is None:
        return None
    from memras.store import MEMORY_FAILURE_TYPE

    known = {t.value.lower(): t.value for t in ErrorType}
    known[MEMORY_FAILURE_TYPE.lower()] = MEMORY_FAILURE_TYPE
    out: list[str] = []
    for part in text.split(","):
        key = part.strip().lower()
        if key in _TYPE_ALIASES:
            out += _TYPE_ALIASES[key]
        elif key in known:
            out.append(known[key])
        else:
            names = ", ".join(["CE", "UE", *known.values()])
            raise UsageError(f"unknown error type {part!r}", hint=f"use one of {names}")
    return out


def _open_store(ctx: Context, *, create: bool = False):  # -> memras.store.Store
    from memras.store import Store

    return Store.open(ctx.db, create=create)


# ---- memras import ------------------------------------------------------------------------

def _import_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("kind", choices=["rasdaemon", "dmesg", "trace", "mcelog"],
                   help="what the file holds")
    p.add_argument("path", help="file to read, or - for stdin (not for rasdaemon)")
    p.add_argument("--boot-time", metavar="TIME",
                   help="boot time of the machine a trace file came from (default: this "
                        "machine's), to turn trace uptimes into wall time")


def _boot_time(args: argparse.Namespace) -> datetime | None:
    if args.boot_time:
        return parse_when(args.boot_time)
    if args.kind != "trace":
        return None
    import psutil

    return datetime.fromtimestamp(psutil.boot_time(), UTC)


@command("import", "import errors from a rasdaemon DB, dmesg, trace or mcelog file")(
    _import_args)
def run_import(args: argparse.Namespace, ctx: Context) -> int:
    from memras.store.importing import run_import

    boot_time = _boot_time(args)
    with _open_store(ctx, create=True) as store, _progress(ctx, args) as progress:
        report = run_import(store, args.kind, args.path, boot_time=boot_time,
                            progress=progress)
    if ctx.json:
        ctx.emit_json(asdict(report))
        return 0
    ctx.print(f"{report.inserted} inserted, {report.duplicates} duplicates, "
              f"{report.skipped} skipped, {report.ignored} ignored, "
              f"{report.non_memory} non-memory machine checks")
    for sample in report.skipped_samples:
        ctx.print(f"  skipped: {escape(sample)}")
    return 0


class _progress:
    """A rich progress bar on stderr when it is a terminal; a no-op otherwise."""

    def __init__(self, ctx: Context, args: argparse.Namespace) -> None:
        from memras.store.importing import input_size

        self.enabled = not ctx.json and sys.stderr.isatty()
        self.total = input_size(args.path) if args.kind != "rasdaemon" else None
        self.bar: Any = None

    def __enter__(self):
        if not self.enabled:
            return None
        from rich.progress import Progress

        self.bar = Progress(transient=True)
        self.bar.start()
        task = self.bar.add_task("importing", total=self.total)
        return lambda done: self.bar.update(task, completed=done)

    def __exit__(self, *_exc: object) -> None:
        if self.bar is not None:
            self.bar.stop()


# ---- memras errors ------------------------------------------------------------------------

def _filter_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--since", help="from this time: 24h, 7d, YYYY-MM-DD or ISO time")
    p.add_argument("--until", help="before this time (same forms as --since)")
    p.add_argument("--dimm", help="DIMM label (as the kernel reports it) or DIMM id")
    p.add_argument("--type", help="CE, UE, Corrected, Uncorrected, Deferred, Fatal, Info, "
                                  "MemoryFailure (comma-separated)")


def _errors_args(p: argparse.ArgumentParser) -> None:
    _filter_args(p)
    p.add_argument("--limit", type=int, help="show only the newest N events")


def _filters(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "since": parse_when(args.since) if args.since else None,
        "until": parse_when(args.until) if args.until else None,
        "dimm": args.dimm,
        "type": parse_types(args.type),
    }


@command("errors", "stored memory error events (--since, --dimm, --type)")(_errors_args)
def run_errors(args: argparse.Namespace, ctx: Context) -> int:
    if args.limit is not None and args.limit < 0:
        raise UsageError("--limit must be 0 or more", hint="e.g. --limit 50")
    filters = _filters(args)
    with _open_store(ctx) as store:
        events = store.errors(limit=args.limit, **filters)
    if ctx.json:
        ctx.emit_json([_error_json(e) for e in events])
        return 0
    if not events:
        ctx.print("No memory errors stored.")
        return 0
    rows = [(e.id, e.time.astimezone().strftime("%Y-%m-%d %H:%M:%S %z"), e.type, e.count,
             e.label, _location(e.location), _hex(e.address), e.source, e.message)
            for e in events]
    ctx.table(["ID", "TIME", "TYPE", "COUNT", "LABEL", "LOCATION", "ADDRESS", "SOURCE",
               "MESSAGE"], rows, right=["ID", "COUNT"])
    return 0


def _hex(value: int | None) -> str | None:
    return None if value is None else f"0x{value:x}"


def _location(loc: Any) -> str:
    """mc:top:mid:low as rasdaemon prints it, -1 for unknown."""
    parts = (loc.mc, loc.top_layer, loc.middle_layer, loc.lower_layer)
    return ":".join(str(-1 if p is None else p) for p in parts)


def _error_json(e: Any) -> dict[str, Any]:
    data = asdict(e)
    data["label"] = e.label
    return data


# ---- memras summary -----------------------------------------------------------------------

@command("summary", "per-DIMM error counts, like ras-mc-ctl --summary")(_filter_args)
def run_summary(args: argparse.Namespace, ctx: Context) -> int:
    filters = _filters(args)
    summary = None
    if not any(filters.values()):  # the common case: a SQLite read with no SQLAlchemy
        from memras.store.quick import read_summary

        summary = read_summary(ctx.db)
    if summary is None:
        with _open_store(ctx) as store:
            summary = store.summary(**filters)
    if ctx.json:
        ctx.emit_json(asdict(summary))
        return 0
    if not summary.groups:
        ctx.print("No memory errors.")
        return 0
    ctx.table(["TYPE", "LABEL", "LOCATION", "EVENTS", "ERRORS"],
              [(g.type, g.label, g.location, g.events, g.errors) for g in summary.groups],
              right=["EVENTS", "ERRORS"])
    ctx.print()
    ctx.table(["TYPE", "EVENTS", "ERRORS"],
              [(t.type, t.events, t.errors) for t in summary.totals],
              right=["EVENTS", "ERRORS"])
    return 0
