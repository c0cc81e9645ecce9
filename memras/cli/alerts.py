"""``memras alerts``: list, acknowledge, resolve and test alerts.

::

    memras alerts [list] [--state open|acked|resolved|all]
    memras alerts ack ID [ID ...] | --dimm NAME  [--note TEXT] [--by NAME]
    memras alerts resolve ID [ID ...] | --dimm NAME  [--by NAME]
    memras alerts test [--hook NAME ...]

``ack`` and ``resolve`` take several ids (all are checked before any changes) or
``--dimm`` (every unresolved alert of that DIMM, named as any command names it);
``--json`` prints ``{"changed": [...], "unchanged": [...]}`` alert payloads.

Hooks come from the ``[alerts]`` table of ``--config``. ``test`` sends one test
alert through each configured hook (with the configured retries, no rate limit,
nothing stored) and exits 1 if any hook failed or did not load.
"""

from __future__ import annotations

import argparse
import io
from collections.abc import Callable
from typing import Any

from memras.alerts.alert import Alert, AlertState
from memras.alerts.dispatcher import (
    FAILED,
    DeliverySummary,
    Dispatcher,
    HookResult,
    MemoryAlertStore,
)
from memras.alerts.hooks import available_hooks, load_hooks
from memras.alerts.service import AlertService, Changes, load_alerts_config
from memras.cli import add_global_options, command
from memras.cli.context import Context
from memras.cli.options import add_operator
from memras.errors import UsageError
from memras.text import escape
from memras.topology.inventory import resolve_dimm

STATES = ("open", "acked", "resolved", "all")


def _args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--state", choices=STATES, default="open",
                        help="which alerts to list (default open)")
    sub = parser.add_subparsers(dest="action", metavar="ACTION")
    listing = sub.add_parser("list", help="list alerts (the default)")
    listing.add_argument("--state", choices=STATES, default=argparse.SUPPRESS)
    ack = sub.add_parser("ack", help="acknowledge alerts: silences repeats until resolved")
    _targets(ack)
    ack.add_argument("--note", help="why, or what happens next (earlier notes are kept)")
    add_operator(ack, "who acknowledges (default: $SUDO_USER or the login name)", old="--by")
    resolve = sub.add_parser("resolve", help="close alerts; a new one may fire again")
    _targets(resolve)
    add_operator(resolve, "who resolves (default: $SUDO_USER or the login name)",
                 old="--by")
    test = sub.add_parser("test", help="send a test alert through the configured hooks")
    test.add_argument("--hook", action="append", metavar="NAME",
                      help="only this hook (repeatable)")
    for child in (listing, ack, resolve, test):
        add_global_options(child, suppress=True)


def _targets(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("ids", type=int, nargs="*", metavar="ID", help="alert ids")
    parser.add_argument("--dimm", metavar="NAME",
                        help="every open or acknowledged alert of this DIMM "
                             "(id, label, locator, serial, mcN/dimmM)")


@command("alerts", "alert list, ack, resolve, and hook test")(_args)
def run(args: argparse.Namespace, ctx: Context) -> int:
    action = args.action or "list"
    if action == "test":
        return _test(args, ctx)
    with ctx.store(write=action != "list") as store:  # list only reads
        # each alert names its DIMM by the slot label now (memras.alerts.naming)
        service = AlertService.configured(store, ctx.config, warn=ctx.err, host=ctx.host)
        try:
            return _ACTIONS[action](args, ctx, service)
        finally:
            service.close()


def _list(args: argparse.Namespace, ctx: Context, service: AlertService) -> int:
    state = None if args.state == "all" else AlertState(args.state)
    alerts = service.list(state)  # DIMM: the slot label; the stored label is in the JSON
    deliveries = service.delivery_summaries(alerts)  # failed attempts, last error (redacted)
    if ctx.json:
        ctx.emit_json([_with_deliveries(a, deliveries) for a in alerts])
        return 0
    if not alerts:
        ctx.print(f"no {'' if state is None else state.value + ' '}alerts")
        return 0
    rows = [(a.id, a.time.strftime("%Y-%m-%d %H:%M"), a.severity.value, a.kind.value,
             a.state.value, a.dimm_shown, a.repeats, a.message) for a in alerts]
    ctx.table(["ID", "TIME", "SEVERITY", "KIND", "STATE", "DIMM", "REPEATS", "MESSAGE"], rows,
              right=["ID", "REPEATS"], optional=("REPEATS",))
    _print_failed_deliveries(ctx, alerts, deliveries)
    return 0


def _with_deliveries(alert: Alert, deliveries: dict[int, DeliverySummary]) -> dict[str, Any]:
    summary = deliveries.get(alert.id) if alert.id is not None else None
    return {**alert.to_payload(), "deliveries": (summary or DeliverySummary()).to_json()}


def _print_failed_deliveries(ctx: Context, alerts: list[Alert],
                             deliveries: dict[int, DeliverySummary]) -> None:
    """One line per listed alert a hook failed on: how often, and the last error."""
    for alert in alerts:
        summary = deliveries.get(alert.id) if alert.id is not None else None
        if summary is None or not summary.failed:
            continue
        state = (f"not delivered to {', '.join(summary.undelivered)}" if summary.undelivered
                 else "delivered after retrying")
        ctx.print(f"alert {alert.id}: {summary.failed} failed delivery attempt"
                  f"{'' if summary.failed == 1 else 's'}, {escape(state)}; "
                  f"last: {escape(summary.last_error)}")


def _ack(args: argparse.Namespace, ctx: Context, service: AlertService) -> int:
    if _by_dimm(args):
        changes = service.ack_alerts(_dimm_alerts(ctx, service, args.dimm), by=args.operator,
                                     note=args.note)
    else:
        changes = service.ack_many(_ids(args), by=args.operator, note=args.note)
    return _report(ctx, changes, lambda a: f"acknowledged by {a.acked_by}",
                   "already acknowledged")


def _resolve(args: argparse.Namespace, ctx: Context, service: AlertService) -> int:
    if _by_dimm(args):
        changes = service.resolve_alerts(_dimm_alerts(ctx, service, args.dimm), by=args.operator)
    else:
        changes = service.resolve_many(_ids(args), by=args.operator)
    return _report(ctx, changes, lambda a: "resolved", "already resolved")


def _by_dimm(args: argparse.Namespace) -> bool:
    if args.dimm and args.ids:
        raise UsageError("give alert ids or --dimm, not both")
    return bool(args.dimm)


def _ids(args: argparse.Namespace) -> list[int]:
    if not args.ids:
        raise UsageError(f"name the alerts to {args.action}: ID [ID ...] or --dimm NAME",
                         hint="see `memras alerts list`")
    return list(args.ids)


def _dimm_alerts(ctx: Context, service: AlertService, name: str) -> list[Alert]:
    """The unresolved alerts of the DIMM ``name`` (resolved as every command does); a
    name this host does not show (a module since removed) is matched as stored."""
    try:
        dimm = resolve_dimm(ctx.host, name)
    except UsageError:
        stored = service.unresolved_for_dimm(name, label=name)
        if stored:
            return stored
        raise
    return service.unresolved_for_dimm(dimm.id, label=dimm.label or None)


def _report(ctx: Context, changes: Changes, done: Callable[[Alert], str],
            already: str) -> int:
    if ctx.json:
        ctx.emit_json(changes.to_json())
        return 0
    for alert in changes.changed:
        ctx.print(f"alert {alert.id} {done(alert)}")
    for alert in changes.unchanged:
        ctx.print(f"alert {alert.id} unchanged: {already}")
    if not changes.changed and not changes.unchanged:
        ctx.print("no open or acknowledged alerts on that DIMM")
    return 0


_ACTIONS = {"list": _list, "ack": _ack, "resolve": _resolve}


def _test(args: argparse.Namespace, ctx: Context) -> int:
    config = load_alerts_config(ctx.config)
    configured = [h.name for h in config.hooks]
    if not configured:
        raise UsageError("no alert hooks configured",
                         hint="add an [alerts.hooks.NAME] table to the --config file")
    wanted = args.hook or configured
    unknown = [name for name in wanted if name not in configured]
    if unknown:
        raise UsageError(f"hook {', '.join(unknown)} is not configured "
                         f"(configured: {', '.join(configured)}; "
                         f"installed: {', '.join(sorted(available_hooks()))})")
    warnings = io.StringIO()
    report = load_hooks(config, only=wanted, warn=warnings)
    dispatcher = Dispatcher(MemoryAlertStore(), report.hooks, config)
    try:
        results = dispatcher.send_test()
    finally:
        dispatcher.close()
    results += [HookResult(name, "not-loaded", 0, why) for name, why in report.failures.items()]
    _print_results(ctx, results)
    return 1 if any(r.status in (FAILED, "not-loaded") for r in results) else 0


def _print_results(ctx: Context, results: list[Any]) -> None:
    if ctx.json:
        ctx.emit_json({"results": [{"hook": r.hook, "status": r.status, "attempts": r.attempts,
                                    "error": r.error or None} for r in results]})
        return
    ctx.table(["HOOK", "STATUS", "ATTEMPTS", "ERROR"],
              [(r.hook, r.status, r.attempts, r.error or "") for r in results],
              right=["ATTEMPTS"])
