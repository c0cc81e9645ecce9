"""``memras tui`` (and bare ``memras``): the terminal UI on --root and --db."""

from __future__ import annotations

import argparse
import sys

from memras.cli import command
from memras.cli.context import Context
from memras.errors import UsageError


def _args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--read-only", action="store_true",
                   help="never write (no replacement, no alert acks), even as root")


@command("tui", "the terminal UI: dashboard, DIMM detail, memory map, alerts, audit")(_args)
def run(args: argparse.Namespace, ctx: Context) -> int:
    if not (sys.stdin.isatty() and ctx.out.isatty()):  # else escape codes into a pipe, a hang
        raise UsageError("memras tui needs a terminal: stdin and stdout must be a tty",
                         hint="run it in a terminal; for text use `memras status` or "
                              "`memras status --json`")
    # Not at the top: `memras --help` loads every command module, and memras.cli is
    # core code that must not import Textual (tests/unit/test_import_hygiene.py).
    from memras.tui.app import MemrasApp

    ctx.load_simulator_if_simulated()
    MemrasApp(ctx.root, ctx.db, read_only=True if args.read_only else None,
              config_path=ctx.config).run()
    return 0
