"""Options more than one command declares, and the readers of their values.

One function per option, so ``--dry-run``, ``--yes``, ``--operator`` and the block
retry options are spelled, defaulted and explained the same way in every command
that changes the machine (capacity, replace, hotplug-test, partition, vm), and the
error-selection options (``--since/--until/--dimm/--type``) mean the same in
``errors`` and ``summary``.

Cheap to import on purpose: ``memras summary`` reads SQLite without SQLAlchemy
(memras.store.quick), so nothing here may pull it in.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime, timedelta
from typing import Any

from memras.config import DURATION_FORMS, duration_seconds
from memras.errors import UsageError
from memras.records import ErrorType
from memras.store.results import MEMORY_FAILURE_TYPE
from memras.workflow.offline import DEFAULT_BLOCK_TIMEOUT_S, DEFAULT_MAX_ATTEMPTS

# ---- options of the commands that change the machine ------------------------------------

def add_dry_run(p: argparse.ArgumentParser, what: str = "show the plan") -> None:
    """``--dry-run``: ``what`` it does instead, and that nothing changes."""
    p.add_argument("--dry-run", action="store_true", help=f"{what}; change nothing")


def add_yes(p: argparse.ArgumentParser) -> None:
    p.add_argument("--yes", action="store_true", help="do not ask for confirmation")


def add_operator(p: argparse.ArgumentParser) -> None:
    """``--operator``: who did it, for the audit trail (the login name is recorded too)."""
    p.add_argument("--operator", help="your name, recorded in the audit trail")


def add_retry_options(p: argparse.ArgumentParser, *, per: str = "block",
                      busy: str = "EBUSY") -> None:
    """``--block-timeout`` (seconds ``per`` write) and ``--max-attempts`` (tries on ``busy``)."""
    p.add_argument("--block-timeout", type=duration, default=DEFAULT_BLOCK_TIMEOUT_S,
                   help=f"time per {per} (seconds, or 30s, 5m)")
    p.add_argument("--max-attempts", type=int, default=DEFAULT_MAX_ATTEMPTS,
                   help=f"tries per block on {busy}")


def duration(text: str) -> float:
    """An argparse ``type`` for durations: ``90``, ``30s``, ``5m``, ``24h``, ``7d`` in
    seconds (memras.config.duration_seconds, as the config file reads them)."""
    seconds = duration_seconds(text)
    if seconds is None:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration (use {DURATION_FORMS})")
    return seconds


def check_retry_options(args: argparse.Namespace) -> None:
    if args.block_timeout <= 0 or args.max_attempts < 1:
        raise UsageError("--block-timeout and --max-attempts must be positive")


# ---- selecting stored errors (errors, summary) -------------------------------------------

# --type shorthands: CE/UE as operators say them, then every stored type name.
_TYPE_ALIASES = {
    "ce": ["Corrected"],
    "ue": [t.value for t in ErrorType if t.is_uncorrected],
}


def add_error_filters(p: argparse.ArgumentParser) -> None:
    p.add_argument("--since", help="from this time: 24h, 7d, YYYY-MM-DD or ISO time")
    p.add_argument("--until", help="before this time (same forms as --since)")
    p.add_argument("--dimm", help="a DIMM by any name: id, label, locator, serial, ACPI device")
    p.add_argument("--type", help="CE, UE, Corrected, Uncorrected, Deferred, Fatal, Info, "
                                  "MemoryFailure (comma-separated)")


def error_filters(args: argparse.Namespace) -> dict[str, Any]:
    """The keyword arguments of ``Store.errors`` and ``Store.summary``."""
    return {
        "since": parse_when(args.since) if args.since else None,
        "until": parse_when(args.until) if args.until else None,
        "dimm": args.dimm,
        "type": parse_types(args.type),
    }


def parse_when(text: str, *, now: datetime | None = None) -> datetime:
    """``24h``/``7d``/``30m`` ago, a date ``2024-12-19``, or an ISO time (local if naive)."""
    now = now or datetime.now(UTC)
    value = text.strip()
    ago = duration_seconds(value) if value[-1:].isalpha() else None  # 24h ago; 2024: a year
    if ago is not None:
        return now - timedelta(seconds=ago)
    try:
        parsed = datetime.fromisoformat(value.replace(" ", "T", 1) if " " in value else value)
    except ValueError:
        raise UsageError(f"cannot read the time {text!r}",
                         hint="use 24h, 7d, 30m, 2w, YYYY-MM-DD or an ISO time") from None
    return parsed if parsed.tzinfo else parsed.astimezone()


def parse_types(text: str | None) -> list[str] | None:
    """``--type CE,Fatal`` as stored type names; None when not given."""
    if text is None:
        return None
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
