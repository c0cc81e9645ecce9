"""``memras tui`` (and bare ``memras``): the terminal UI on --root and --db.

With a fleet database (``--fleet-url``, or ``[fleet] url`` of --config, resolved as
``memras fleet`` resolves it) the app has its fleet screen too (``f``); ``memras fleet
tui`` starts on it.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from memras.cli import command
from memras.cli.context import Context
from memras.errors import MemrasError, UsageError

if TYPE_CHECKING:
    from memras.fleet.ship import FleetConfig


def _args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--read-only", action="store_true",
                   help="never write (no replacement, no alert acks), even as root")
    p.add_argument("--fleet-url", metavar="URL",
                   help="the fleet's central database for the fleet screen (f) "
                        "(default: [fleet] url of --config)")


def require_terminal(ctx: Context) -> None:
    if not (sys.stdin.isatty() and ctx.out.isatty()):  # else escape codes into a pipe, a hang
        raise UsageError("memras tui needs a terminal: stdin and stdout must be a tty",
                         hint="run it in a terminal; for text use `memras status` or "
                              "`memras status --json`")


def start_app(ctx: Context, *, read_only: bool | None = None,
              fleet: FleetConfig | None = None, fleet_note: str = "",
              start_mode: str = "dashboard") -> int:
    # Not at the top: `memras --help` loads every command module, and memras.cli is
    # core code that must not import Textual (tests/unit/test_import_hygiene.py).
    from memras.tui.app import MemrasApp

    ctx.load_simulator_if_simulated()
    MemrasApp(ctx.root, ctx.db, read_only=read_only, config_path=ctx.config, fleet=fleet,
              fleet_note=fleet_note, start_mode=start_mode).run()
    return 0


@command("tui", "the terminal UI: dashboard, DIMM detail, memory map, alerts, audit, "
                "fleet")(_args)
def run(args: argparse.Namespace, ctx: Context) -> int:
    from memras.cli.fleet import fleet_config

    require_terminal(ctx)
    fleet, note = None, ""
    try:
        fleet = fleet_config(args.fleet_url, ctx.config)
    except MemrasError as exc:  # a config problem: the host's screens still work
        if args.fleet_url:
            raise
        note = exc.msg + (f" ({exc.hint})" if exc.hint else "")
    return start_app(ctx, read_only=True if args.read_only else None, fleet=fleet,
                     fleet_note=note)
