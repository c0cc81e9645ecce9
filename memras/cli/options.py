"""Options more than one command declares, and the readers of their values.

One function per option, so ``--dry-run``, ``--yes``, ``--operator``, ``--on-failure``
and the block retry options are spelled, defaulted and explained the same way in every
command that changes the machine (capacity, replace, hotplug-test, partition, vm) or
records who did something (alerts ack/resolve, audit seal), and the error-selection
options (``--since/--until/--dimm/--type``) mean the same in ``errors`` and ``summary``.
An option renamed for consistency keeps its old name hidden for one release
(:func:`add_renamed`), saying the new one on stderr. :func:`confirm` is the one
confirmation rule: type the name of what goes. The table of them all is in
docs/user-guide.md ("Options and exit codes").

Cheap to import on purpose: ``memras summary`` reads SQLite without SQLAlchemy
(memras.store.quick), so nothing here may pull it in.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from memras.config import DURATION_FORMS, duration_seconds
from memras.errors import Refused, UsageError
from memras.records import ErrorType
from memras.store.results import MEMORY_FAILURE_TYPE
from memras.text import escape
from memras.topology.naming import Confirmation
from memras.workflow.offline import DEFAULT_BLOCK_TIMEOUT_S, DEFAULT_MAX_ATTEMPTS

# ---- options of the commands that change the machine ------------------------------------

def add_dry_run(p: argparse.ArgumentParser, what: str = "show the plan") -> None:
    """``--dry-run``: ``what`` it does instead, and that nothing changes."""
    p.add_argument("--dry-run", action="store_true", help=f"{what}; change nothing")


def add_yes(p: argparse.ArgumentParser) -> None:
    p.add_argument("--yes", action="store_true", help="do not ask for confirmation")


def add_operator(p: argparse.ArgumentParser, help: str = "your name, recorded in the "
                 "audit trail", *, old: str | None = None) -> None:
    """``--operator``: who did it, for the audit trail (the login name is recorded too);
    ``old``: the name this command used before (``--by``), hidden, for one release."""
    p.add_argument("--operator", help=help)
    if old:
        add_renamed(p, old, "--operator", "operator")


def add_on_failure(p: argparse.ArgumentParser, default: str, what: str) -> None:
    """``--on-failure rollback|leave``: what an interrupted or failed run does with the
    blocks it already changed (``rollback``: put them back; ``leave``: as they are)."""
    p.add_argument("--on-failure", choices=ON_FAILURE, default=default,
                   help=f"when {what} fails or is cancelled: rollback puts the blocks "
                        f"already changed back, leave leaves them (default {default})")


ON_FAILURE = ("rollback", "leave")


class _Renamed(argparse.Action):
    """A hidden old spelling of a renamed option: sets the new option's value and says
    the new name on stderr (scripts keep working for one release, then it goes)."""

    def __init__(self, option_strings: Sequence[str], dest: str, new: str = "",
                 **kw: Any) -> None:
        self.new = new
        super().__init__(option_strings, dest, help=argparse.SUPPRESS, **kw)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:
        setattr(namespace, self.dest, self.const if self.nargs == 0 else values)
        print(f"memras: {option_string} is now {self.new}; the old name goes in the next "
              "release", file=sys.stderr)


def add_renamed(p: argparse._ActionsContainer, old: str, new: str, dest: str, *,
                const: Any = None) -> None:
    """``old`` as a hidden alias of ``new`` (whose value lands in ``dest``); with ``const``
    the old one was a flag that now means ``new const`` (``--rollback`` is
    ``--on-failure rollback``)."""
    if const is None:
        p.add_argument(old, dest=dest, action=_Renamed, new=new, default=argparse.SUPPRESS)
    else:
        p.add_argument(old, dest=dest, action=_Renamed, new=f"{new} {const}", nargs=0,
                       const=const, default=argparse.SUPPRESS)


def confirm(ctx: Any, what: str, asked: Confirmation, *, yes: bool,
            details: Sequence[str] = ()) -> None:
    """The one confirmation rule: say ``what`` will happen (and ``details``), then the
    engineer types the name of what goes (``asked``: a DIMM's slot label, a guest's
    device id, the blocks). ``--yes`` skips the question; no terminal, or any other
    answer, is a refusal (exit 3) and nothing was changed."""
    if yes:
        return
    if not sys.stdin.isatty():
        raise Refused(f"refusing to {what} without confirmation: no terminal; nothing was "
                      "changed", hint="run it on a terminal, or pass --yes")
    ctx.print(f"This will {what}.")
    for line in details:
        ctx.print(line)
    if not asked.accepts(input(f"{escape(asked.prompt)}: ")):
        raise Refused(f"that is not the {asked.what} {asked.name!r}; nothing was changed",
                      hint="run it again and type the name shown, or pass --yes")


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
