"""``memras verdicts [--at TIME] [--history DIMM]``: per-DIMM verdicts and the rules that fired.

Without ``--history`` the verdicts are replayed from the stored errors (as of
``--at``, default now), so a changed config shows its effect at once; with it, the
recorded verdict changes of one slot, each beside the module it judged.
"""

from __future__ import annotations

import argparse
from datetime import timedelta

from memras.cli import command
from memras.cli.context import Context
from memras.cli.dimm_rows import dimm_names
from memras.cli.options import parse_when
from memras.health.api import replay_verdicts, verdict_history
from memras.health.config import load_config
from memras.health.cxl import with_device_verdicts
from memras.health.dimm_names import DimmNames
from memras.health.module_registry import ModuleRecord, module_at, module_history
from memras.health.verdict import Verdict


def _args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--at", help="judge as of this time: 24h or 7d ago, or ISO 8601 "
                               "(e.g. 2024-03-01T12:00)")
    p.add_argument("--history", "--dimm", metavar="DIMM",
                   help="the recorded verdict changes of DIMM (id, label, locator, serial…)")


@command("verdicts", "per-DIMM verdicts with the rules that fired (--at TIME: as of then)")(
    _args)
def run(args: argparse.Namespace, ctx: Context) -> int:
    if args.history:
        with ctx.store() as store:
            names = dimm_names(ctx, store)
            dimm = names.resolve(args.history)  # any name; unknown: exit 2, closest names
            verdicts = verdict_history(store, dimm.id)
            modules = module_history(store, dimm.id)
        return _print_history(ctx, verdicts, modules, names)
    at = parse_when(args.at) if args.at else None  # the one time reader, as --since
    until = at + timedelta(microseconds=1) if at else None
    with ctx.store() as store:
        # With the host, errors known only by address are mapped to their DIMM (as
        # the watcher and `memras dimms` do); replay never writes page actions.
        config = load_config(ctx.config)
        current, _ = replay_verdicts(store, config, until, host=ctx.host)
        # a CXL memdev's own records (poison list, health, severity) judge it too
        current = with_device_verdicts(store, current, until=until, config=config)
        names = dimm_names(ctx, store)
        shown = {k: names.display(k) for k in current}
    verdicts = [current[k] for k in sorted(current, key=lambda k: (shown[k], k))]
    if ctx.json:
        ctx.emit_json([{**v.to_dict(), "dimm_name": shown[v.dimm_id]} for v in verdicts])
        return 0
    if not verdicts:
        ctx.print("no verdicts: no memory errors stored" + (f" before {args.at}" if args.at
                                                             else ""))
        return 0
    ctx.table(["DIMM", "ID", "VERDICT", "SINCE", "RULES", "WHY"],
              [(shown[v.dimm_id], v.dimm_id, v.state.value, v.since.strftime("%Y-%m-%d %H:%M:%S"),
                ",".join(v.rules), v.reasons[0] if v.reasons else "") for v in verdicts],
              optional=("RULES", "SINCE"))
    return 0


def _print_history(ctx: Context, verdicts: list[Verdict], modules: list[ModuleRecord],
                   names: DimmNames) -> int:
    """A slot's verdicts, each with the module it judged: a replacement starts a new one."""
    owners = [module_at(modules, v.at) for v in verdicts]
    if ctx.json:
        ctx.emit_json([{**v.to_dict(), "dimm_name": names.display(v.dimm_id),
                        "module": m.to_dict() if m else None}
                       for v, m in zip(verdicts, owners, strict=True)])
        return 0
    if not verdicts:
        ctx.print("no verdicts recorded for this DIMM")
        return 0
    ctx.table(["DIMM", "MODULE", "VERDICT", "SINCE", "RULES", "WHY"],
              [(names.display(v.dimm_id), (m.serial or m.identity) if m else "-", v.state.value,
                v.since.strftime("%Y-%m-%d %H:%M:%S"), ",".join(v.rules),
                v.reasons[0] if v.reasons else "")
               for v, m in zip(verdicts, owners, strict=True)],
              optional=("RULES", "MODULE", "SINCE"))
    for m in modules[:-1]:
        if m.removed_at is not None:
            ctx.print(f"module {m.serial or m.identity} removed "
                      f"{m.removed_at.strftime('%Y-%m-%d %H:%M:%S')}")
    return 0
