"""The ``memras`` command line: global options, the command registry, error handling.

Each command lives in its own module under ``memras.cli`` and registers itself with
:func:`command`. A command function takes the parsed arguments and a
:class:`Context`, prints through ``ctx.out`` and returns an exit status. Every
:class:`memras.errors.MemrasError` becomes one line on stderr and its exit code;
no traceback reaches the user (``MEMRAS_DEBUG=1`` shows it).
"""

from __future__ import annotations

import argparse
import difflib
import importlib
import json
import os
import re
import sys
import traceback
import typing
from collections.abc import Callable, Sequence
from pathlib import Path

from memras import __version__
from memras.cli.context import Context
from memras.config import ConfigProblems
from memras.errors import EXIT_INTERNAL, EXIT_INTERRUPTED, MemrasError, UsageError

CommandFn = Callable[[argparse.Namespace, Context], int]
Configure = Callable[[argparse.ArgumentParser], None]

# Which module registers each command: one module per command, named after it except
# `import` (a keyword: importing) and `errors` (stored_errors, beside memras.errors).
# Only the module of the command being run is imported, so `memras blocks` does not pay
# for SQLAlchemy, Textual or the parsers, and a command module imports what it needs
# at its top; `memras --help` imports them all. tests/unit/test_cli_registry.py keeps
# this table equal to what the modules register.
COMMANDS: dict[str, str] = {
    "acquit": "memras.cli.repaired",
    "alerts": "memras.cli.alerts",
    "audit": "memras.cli.audit",
    "blocks": "memras.cli.blocks",
    "capacity": "memras.cli.capacity",
    "completion": "memras.cli.completion",
    "config": "memras.cli.config",
    "demo": "memras.cli.demo",
    "dimms": "memras.cli.dimms",
    "doctor": "memras.cli.doctor",
    "errors": "memras.cli.stored_errors",
    "evaluate": "memras.cli.evaluate",
    "fleet": "memras.cli.fleet",
    "hotplug-test": "memras.cli.hotplug_test",
    "import": "memras.cli.importing",
    "lab": "memras.cli.lab",
    "labels": "memras.cli.labels",
    "led": "memras.cli.led",
    "locate": "memras.cli.locate",
    "partition": "memras.cli.partition",
    "prune": "memras.cli.prune",
    "repaired": "memras.cli.repaired",
    "replace": "memras.cli.replace",
    "sim": "memras.cli.sim",
    "status": "memras.cli.status",
    "summary": "memras.cli.summary",
    "tui": "memras.cli.tui",
    "verdicts": "memras.cli.verdicts",
    "vm": "memras.cli.vm",
    "watch": "memras.cli.watch",
}
COMMAND_MODULES = sorted(set(COMMANDS.values()))
_GLOBAL_WITH_VALUE = ("--root", "--db", "--config")

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


def closest(word: str, known: Sequence[str]) -> str | None:
    """The known word nearest ``word`` (difflib), for "did you mean"; None when none is."""
    close = difflib.get_close_matches(word, list(known), n=1, cutoff=0.6)
    return close[0] if close else None


class MemrasParser(argparse.ArgumentParser):
    """argparse with one line per mistake (no usage block) and the nearest command or
    option suggested: ``memras: unrecognized arguments: --jsn; did you mean --json?``.
    Subcommand parsers are of this class too (argparse makes them of the parent's)."""

    argv: Sequence[str] = ()

    def error(self, message: str) -> typing.NoReturn:
        suggestion = self._suggest(message)
        hint = f"; did you mean {suggestion}?" if suggestion else ""
        choice = re.match(r"argument (\S+): invalid choice: ('[^']*') (\(.*\))", message)
        if choice:  # the list of every choice only when none is near
            message = f"unknown {choice[1].lower()} {choice[2]}" + ("" if hint
                                                                    else f" {choice[3]}")
        self.exit(2, f"memras: {message}{hint} (see `{self.prog} --help`)\n")

    def _suggest(self, message: str) -> str | None:
        choice = re.match(r"argument \S+: invalid choice: '([^']*)' \(choose from (.*)\)",
                          message)
        if choice:
            return closest(choice[1], re.findall(r"'([^']*)'", choice[2]))
        unknown = re.match(r"unrecognized arguments: (\S+)", message)
        if unknown and unknown[1].startswith("-"):
            return closest(unknown[1].split("=", 1)[0], self._option_strings())
        return None

    def _option_strings(self) -> list[str]:
        """This parser's options and those of the command named in ``argv``."""
        options = [o for a in self._actions for o in a.option_strings]
        name = command_name(self.argv)
        for action in self._actions:
            if isinstance(action, argparse._SubParsersAction) and name in action.choices:
                options += [o for a in action.choices[name]._actions for o in a.option_strings]
        return options


def add_global_options(parser: argparse.ArgumentParser, *, suppress: bool = False) -> None:
    """--root/--db/--json/--config/--wide, accepted before or after the command name."""
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
    parser.add_argument(
        "--wide",
        action="store_true",
        default=argparse.SUPPRESS if suppress else False,
        help="tables with every column in full (default: fit the terminal, 80 "
             "columns when not one; dimms: also serial, ACPI device, mapping)",
    )


def _load_commands(modules: Sequence[str] = COMMAND_MODULES) -> None:
    for module in modules:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:  # a missing dependency, not a missing command module
                raise


def command_name(argv: Sequence[str]) -> str | None:
    """The command word in ``argv``, skipping global options and their values."""
    skip = False
    for token in argv:
        if skip:
            skip = False
            continue
        if token in _GLOBAL_WITH_VALUE:
            skip = True
        elif not token.startswith("-"):
            return token
    return None


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The parser; with ``argv`` naming a known command, only that command's module loads."""
    name = command_name(argv) if argv is not None else None
    _load_commands([COMMANDS[name]] if name in COMMANDS else COMMAND_MODULES)
    parser = MemrasParser(
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


def report_problems(ctx: Context, exc: ConfigProblems) -> None:
    """Each problem on its own line (the hint once, after the last); --json: one object."""
    if ctx.json:
        json.dump({"error": exc.msg, "hint": exc.hint, "type": "ConfigProblems",
                   "problems": exc.problems}, ctx.err)
        ctx.err.write("\n")
        return
    for i, problem in enumerate(exc.problems, 1):
        ctx.error(UsageError(problem, hint=exc.hint if i == len(exc.problems) else None))


def check_global_arguments(args: argparse.Namespace) -> None:
    """A --root that is no directory and an unknown --backend are bad input (exit 2)."""
    root = getattr(args, "root", None)
    if root and not Path(root).is_dir():
        raise UsageError(f"--root {root} is not a directory",
                         hint="pass a captured or simulated tree "
                              "(`memras sim create PROFILE DIR`), or omit it for /")
    backend = getattr(args, "backend", None)
    if isinstance(backend, str):
        from memras.workflow.backends import available_backends  # only when one is named

        known = sorted(available_backends())
        if backend not in known:
            near = closest(backend, known)
            raise UsageError(f"unknown backend {backend!r}"
                             + (f"; did you mean {near!r}?" if near else ""),
                             hint=f"installed backends: {', '.join(known) or 'none'}")


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if command_name(argv) is None and not any(a in ("-h", "--help", "--version") for a in argv):
        argv.append("tui")  # bare `memras` is the TUI, as DESIGN.md says
    parser = build_parser(argv)
    MemrasParser.argv = argv
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 0
    ctx = Context.from_args(args)
    try:
        check_global_arguments(args)
        return int(args._run(args, ctx) or 0)
    except ConfigProblems as exc:  # every problem of the config file, one line each
        report_problems(ctx, exc)
        return exc.exit_code
    except MemrasError as exc:
        ctx.error(exc)
        return exc.exit_code
    except KeyboardInterrupt:
        print("memras: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        return 0
    except Exception as exc:  # last resort: one line, never a traceback by default
        if os.environ.get("MEMRAS_DEBUG"):
            traceback.print_exc()
        ctx.error(UsageError(f"internal error: {type(exc).__name__}: {exc}",
                             hint="rerun with MEMRAS_DEBUG=1 and report it"))
        return EXIT_INTERNAL
