"""``memras config``, ``memras labels`` and ``memras verdicts``: the health layer's commands."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from memras.cli import add_global_options, command
from memras.cli.context import Context
from memras.errors import UsageError

if TYPE_CHECKING:
    from memras.health.modules import ModuleRecord
    from memras.health.verdict import Verdict


def _config_args(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    imp = sub.add_parser("import", help="memras.toml from rasdaemon and/or mcelog settings")
    imp.add_argument("--rasdaemon", type=Path, help="e.g. /etc/default/rasdaemon")
    imp.add_argument("--mcelog", type=Path, help="e.g. /etc/mcelog/mcelog.conf")
    imp.add_argument("--output", type=Path, help="write the TOML here instead of printing it")
    show = sub.add_parser("show", help="the effective configuration (defaults filled in)")
    check = sub.add_parser("check", help="validate the config file; exit 2 with one line if bad")
    for parser in (imp, show, check):
        add_global_options(parser, suppress=True)


@command("config", "show, check or import (from rasdaemon/mcelog) the memras config")(_config_args)
def run_config(args: argparse.Namespace, ctx: Context) -> int:
    from memras.health.config import dump_toml, import_configs, load_config

    if args.action == "import":
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
    config = load_config(ctx.config)
    if args.action == "check":
        where = str(config.path) if config.path else "built-in defaults (no config file)"
        if ctx.json:
            ctx.emit_json({"ok": True, "path": where})
        else:
            ctx.print(f"{where}: ok")
        return 0
    if ctx.json:
        ctx.emit_json(config.to_dict())
    else:
        ctx.out.write(dump_toml(config.to_dict()))
    return 0


def _labels_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", choices=["show", "register"], nargs="?", default="show")
    p.add_argument("--labeldb", type=Path, help="rasdaemon label file (/etc/ras/dimm_labels.db)")
    p.add_argument("--labels-dir", type=Path, help="rasdaemon label dir (/etc/ras/dimm_labels.d)")
    p.add_argument("--edac-labeldb", type=Path, help="edac-utils labels.db (/etc/edac/labels.db)")
    p.add_argument("--mainboard", help="VENDOR:MODEL instead of /sys/class/dmi/id")


@command("labels", "DIMM labels from rasdaemon/edac-utils label files: show or register")(
    _labels_args)
def run_labels(args: argparse.Namespace, ctx: Context) -> int:
    from memras.health import labels as L

    boards = []
    files, explicit = L.label_files(args.labeldb, args.labels_dir, L.RASDAEMON_LABEL_DB,
                                    L.RASDAEMON_LABEL_DIR)
    boards += L.read_label_files(files, L.Flavour.RASDAEMON, explicit=explicit)
    edac_files, edac_explicit = L.label_files(
        args.edac_labeldb, None, L.EDAC_UTILS_LABEL_DB,
        L.EDAC_UTILS_LABEL_DIR) if args.edac_labeldb or not explicit else ([], False)
    boards += L.read_label_files(edac_files, L.Flavour.EDAC_UTILS, explicit=edac_explicit)
    host = ctx.writable_host() if args.action == "register" else ctx.host
    board = L.read_board(host, args.mainboard)
    plan = L.plan_labels(host, L.matching_boards(boards, board))
    results = L.register_labels(host, plan) if args.action == "register" else \
        [(p, p.status) for p in plan]
    if ctx.json:
        ctx.emit_json({"board": {"vendor": board.vendor, "model": board.model,
                                 "product": board.product},
                       "labels": [{**p.to_dict(), "result": r} for p, r in results]})
    elif not plan:
        ctx.print(f"no labels for board {board.vendor!r} {board.model!r} in "
                  f"{len(files) + len(edac_files)} label file(s)")
    else:
        ctx.table(["LABEL", "LOCATION", "NODE", "CURRENT", "RESULT"],
                  [(p.label, p.target, p.node or "missing", p.current, r) for p, r in results])
    failed = [r for _, r in results if r not in ("written", "same", "change", "missing")]
    return 1 if failed else 0


def _verdicts_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--at", help="judge as of this time (ISO 8601, e.g. 2024-03-01T12:00)")
    p.add_argument("--history", metavar="DIMM", help="the recorded verdict changes of DIMM")


def parse_time(text: str) -> datetime:
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(f"--at {text!r}: not a time",
                         hint="use ISO 8601, e.g. 2024-03-01 or 2024-03-01T12:00:00+00:00"
                         ) from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


@command("verdicts", "per-DIMM verdicts with the rules that fired (--at TIME: as of then)")(
    _verdicts_args)
def run_verdicts(args: argparse.Namespace, ctx: Context) -> int:
    from datetime import timedelta

    from memras.health.api import replay_verdicts, verdict_history
    from memras.health.config import load_config
    from memras.health.modules import module_history
    from memras.store import Store

    modules: list[ModuleRecord] | None = None
    with Store.open(ctx.db, create=False) as store:
        if args.history:
            verdicts = verdict_history(store, args.history)
            modules = module_history(store, args.history)
        else:
            at = parse_time(args.at) if args.at else None
            until = at + timedelta(microseconds=1) if at else None
            # With the host, errors known only by address are mapped to their DIMM (as
            # the watcher and `memras dimms` do); replay never writes page actions.
            current, _ = replay_verdicts(store, load_config(ctx.config), until, host=ctx.host)
            verdicts = [current[k] for k in sorted(current)]
    if modules is not None:
        return _print_history(ctx, verdicts, modules)
    if ctx.json:
        ctx.emit_json([v.to_dict() for v in verdicts])
        return 0
    if not verdicts:
        ctx.print("no verdicts: no memory errors stored" + (f" before {args.at}" if args.at
                                                             else ""))
        return 0
    ctx.table(["DIMM", "VERDICT", "SINCE", "RULES", "WHY"],
              [(v.dimm_id, v.state.value, v.at.strftime("%Y-%m-%d %H:%M:%S"),
                ",".join(v.rules), v.reasons[0] if v.reasons else "") for v in verdicts])
    return 0


def _print_history(ctx: Context, verdicts: list[Verdict], modules: list[ModuleRecord]) -> int:
    """A slot's verdicts, each with the module it judged: a replacement starts a new one."""
    from memras.health.modules import module_at

    owners = [module_at(modules, v.at) for v in verdicts]
    if ctx.json:
        ctx.emit_json([{**v.to_dict(), "module": m.to_dict() if m else None}
                       for v, m in zip(verdicts, owners, strict=True)])
        return 0
    if not verdicts:
        ctx.print("no verdicts recorded for this DIMM")
        return 0
    ctx.table(["DIMM", "MODULE", "VERDICT", "SINCE", "RULES", "WHY"],
              [(v.dimm_id, (m.serial or m.identity) if m else "-", v.state.value,
                v.at.strftime("%Y-%m-%d %H:%M:%S"), ",".join(v.rules),
                v.reasons[0] if v.reasons else "")
               for v, m in zip(verdicts, owners, strict=True)])
    for m in modules[:-1]:
        if m.removed_at is not None:
            ctx.print(f"module {m.serial or m.identity} removed "
                      f"{m.removed_at.strftime('%Y-%m-%d %H:%M:%S')}")
    return 0
