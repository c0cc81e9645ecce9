"""The ``memras`` command line: global options, the command registry, error handling.

Each command lives in its own module under ``memras.cli`` and registers itself with
:func:`command`. A command function takes the parsed arguments and a
:class:`Context`, prints through ``ctx.out`` and returns an exit status. Every
:class:`memras.errors.MemrasError` becomes one line on stderr and its exit code;
no traceback reaches the user (``MEMRAS_DEBUG=1`` shows it).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import traceback
from collections.abc import Callable, Sequence

from memras import __version__
from memras.cli.context import Context
from memras.errors import MemrasError, UsageError

CommandFn = Callable[[argparse.Namespace, Context], int]
Configure = Callable[[argparse.ArgumentParser], None]

# Command modules, imported lazily by main() so that `memras blocks` does not pay
# for SQLAlchemy or Textual. Each registers one or more commands.
COMMAND_MODULES = [
    "memras.cli.blocks",
    "memras.cli.locate",
    "memras.cli.dimms",
    "memras.cli.status",
    "memras.cli.demo",
    "memras.cli.ingest",
    "memras.cli.watch",
    "memras.cli.health",
    "memras.cli.alerts",
    "memras.cli.replace",
    "memras.cli.audit",
    "memras.cli.lab",
    "memras.cli.hotplug_test",
    "memras.cli.capacity",
    "memras.cli.vm",
    "memras.cli.partition",
    "memras.cli.tui",
]

_REGISTRY: dict[str, tuple[str, Configure, CommandFn]] = {}


def command(name: str, help: str) -> Callable[[Configure], Callable[[CommandFn], CommandFn]]:
    """Register ``memras NAME``: ``@command("blocks", "…")(configure)(run)``.

    Usage::

        def _args(p): p.add_argument("--all", action="store_true")

        @command("blocks", "memory blocks like lsmem")(_args)
        def run(args, ctx): ...
    """

    def with_args(configure: Configure) -> Callable[[CommandFn], CommandFn]:
        def register(fn: CommandFn) -> CommandFn:
            _REGISTRY[name] = (help, configure, fn)
            return fn

        return register

    return with_args


def add_global_options(parser: argparse.ArgumentParser, *, suppress: bool = False) -> None:
    """--root/--db/--json/--config, accepted before or after the command name."""
    default = argparse.SUPPRESS if suppress else None
    parser.add_argument(
        "--root", default=default if suppress else "/", help="sysfs/proc/dev prefix (default /)"
    )
    parser.add_argument("--db", default=default, help="database URL or path (default $MEMRAS_DB)")
    parser.add_argument("--config", default=default, help="config file (TOML)")
    parser.add_argument(
        "--json",
        action="store_true",
        default=argparse.SUPPRESS if suppress else False,
        help="machine-readable output",
    )


def _load_commands() -> None:
    for module in COMMAND_MODULES:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:  # a missing dependency, not a missing command module
                raise


def build_parser() -> argparse.ArgumentParser:
    _load_commands()
    parser = argparse.ArgumentParser(
        prog="memras",
        description="Watch memory errors, judge DIMMs, replace failing memory without downtime.",
    )
    parser.add_argument("--version", action="version", version=f"memras {__version__}")
    add_global_options(parser)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in sorted(_REGISTRY):
        help_text, configure, fn = _REGISTRY[name]
        p = sub.add_parser(name, help=help_text, description=help_text)
        add_global_options(p, suppress=True)
        configure(p)
        p.set_defaults(_run=fn)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        args = parser.parse_args([*(argv or sys.argv[1:]), "tui"]) if "tui" in _REGISTRY else args
        if not getattr(args, "command", None):
            parser.print_help()
            return 0
    ctx = Context.from_args(args)
    try:
        return int(args._run(args, ctx) or 0)
    except MemrasError as exc:
        ctx.error(exc)
        return exc.exit_code
    except KeyboardInterrupt:
        print("memras: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except Exception as exc:  # last resort: one line, never a traceback by default
        if os.environ.get("MEMRAS_DEBUG"):
            traceback.print_exc()
        ctx.error(UsageError(f"internal error: {type(exc).__name__}: {exc}",
                             hint="rerun with MEMRAS_DEBUG=1 and report it"))
        return 70
