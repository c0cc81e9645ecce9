"""``memras config show|check|import``: the effective configuration, validated or imported.

``import`` writes a memras.toml from rasdaemon's (/etc/default/rasdaemon) and/or
mcelog's (/etc/mcelog/mcelog.conf) settings, with notes on what had no equivalent.

``show`` prints secrets redacted (:func:`memras.text.redact_config`: webhook secrets,
SMTP passwords, tokens and URL credentials as ``***``), plain and ``--json`` alike.
``check`` runs :func:`memras.cli.configcheck.checked_config`, as ``watch`` does at start:
the schema (every mistake, one line each), then each table loaded as the watcher loads
it, every secret a hook reads from a file included, without loading the hooks (nothing
is connected to or started).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from memras.cli import add_global_options, command
from memras.cli.configcheck import checked_config
from memras.cli.context import Context
from memras.errors import UsageError
from memras.health.config import dump_toml, import_configs, load_config
from memras.text import redact_config


def _args(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    imp = sub.add_parser("import", help="memras.toml from rasdaemon and/or mcelog settings")
    imp.add_argument("--rasdaemon", type=Path, help="e.g. /etc/default/rasdaemon")
    imp.add_argument("--mcelog", type=Path, help="e.g. /etc/mcelog/mcelog.conf")
    imp.add_argument("--output", type=Path, help="write the TOML here instead of printing it")
    show = sub.add_parser("show", help="the effective configuration (defaults filled in)")
    check = sub.add_parser("check", help="validate the config file; exit 2, one line per mistake")
    for parser in (imp, show, check):
        add_global_options(parser, suppress=True)


@command("config", "show, check or import (from rasdaemon/mcelog) the memras config")(_args)
def run(args: argparse.Namespace, ctx: Context) -> int:
    if args.action == "import":
        return _import(args, ctx)
    config = checked_config(ctx.config) if args.action == "check" else load_config(ctx.config)
    if args.action == "check":
        where = str(config.path) if config.path else "built-in defaults (no config file)"
        if ctx.json:
            ctx.emit_json({"ok": True, "path": where})
        else:
            ctx.print(f"{where}: ok")
        return 0
    shown = redact_config(config.to_dict())
    if ctx.json:
        ctx.emit_json(shown)
    else:
        ctx.out.write(dump_toml(shown))
    return 0


def _import(args: argparse.Namespace, ctx: Context) -> int:
    imported = import_configs(args.rasdaemon, args.mcelog)
    if args.output is not None:
        if args.output.exists():
            raise UsageError(f"{args.output} exists", hint="choose a new --output path")
        args.output.write_text(imported.to_toml())
    if ctx.json:
        ctx.emit_json({"config": imported.data, "notes": imported.notes,
                       "written": str(args.output) if args.output else None})
    elif args.output is None:
        ctx.out.write(imported.to_toml())
    else:
        ctx.print(f"wrote {args.output}")
    return 0
