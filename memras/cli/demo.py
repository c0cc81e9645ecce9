"""``memras demo``: the TUI on a simulated server whose memory fails live; no root needed.

On a terminal it opens the TUI on the demo server
(memras.sim.demo.DemoServer), read-write on the simulated root, so the replacement wizard
can be played to the end. ``--script``, or stdout or stdin not being a terminal (the TUI
could not draw or read keys), plays the whole story headless instead and prints the
narrative (``--json``: a summary).
``--keep DIR`` leaves the simulated server in DIR for later ``memras --root`` runs.
Nothing on this machine's /sys or /proc is read or written.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from memras.cli import command
from memras.cli.context import Context
from memras.errors import UsageError
from memras.sim.demo import DEFAULT_SEED, SCRIPT_SPEED, DemoServer, run_scripted


def _args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--script", action="store_true",
                   help="play the story headless and print it (default when not a terminal)")
    p.add_argument("--keep", metavar="DIR",
                   help="create the simulated server in DIR (empty or new) and keep it")
    p.add_argument("--seed", type=int, default=None, help="story seed (same seed, same story)")
    p.add_argument("--speed", type=float, default=None,
                   help="story speed factor (default 1 in the TUI, 12 with --script)")


def _keep_dir(text: str | None) -> Path | None:
    if text is None:
        return None
    path = Path(text).expanduser().absolute()
    if path.exists() and any(path.iterdir()):
        raise UsageError(f"{path} is not empty", hint="--keep needs a new or empty directory")
    return path


def _print_keep_hint(ctx: Context, directory: Path) -> None:
    ctx.print(f"the simulated server is kept in {directory}; look at it with:")
    ctx.print(f"  memras --root {directory / 'root'} --db {directory / 'memras.db'} status")


@command("demo", "the TUI on a built-in simulated server with live memory errors; no root")(
    _args)
def run(args: argparse.Namespace, ctx: Context) -> int:
    keep = _keep_dir(args.keep)
    seed = DEFAULT_SEED if args.seed is None else args.seed
    if args.speed is not None and args.speed <= 0:
        raise UsageError("--speed must be positive")
    if ctx.out.isatty() and sys.stdin.isatty() and not args.script and not ctx.json:
        return _run_tui(ctx, keep, seed, args.speed or 1.0)
    return _run_script(ctx, keep, seed, args.speed or SCRIPT_SPEED)


def _run_script(ctx: Context, keep: Path | None, seed: int, speed: float) -> int:
    summary = run_scripted(ctx.out, directory=keep, seed=seed, speed=speed, quiet=ctx.json)
    if ctx.json:
        ctx.emit_json(summary)
    return 0 if summary["replacement"]["state"] == "closed" else 1


def _run_tui(ctx: Context, keep: Path | None, seed: int, speed: float) -> int:
    # Not at the top: the scripted demo (--script, --json, a pipe) would pay Textual's
    # start-up for nothing, and memras.cli is core code that must not import Textual
    # (tests/unit/test_import_hygiene.py).
    from memras.tui.app import MemrasApp

    demo = DemoServer(keep, seed=seed, speed=speed)
    try:
        demo.start()
        app = MemrasApp(demo.root, demo.db_url, read_only=False, demo=demo)
        app.run()
    finally:
        demo.stop()
    if keep is not None:
        _print_keep_hint(ctx, keep)
    return 0
