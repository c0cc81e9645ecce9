"""``memras fleet``: the central PostgreSQL of a fleet of hosts.

``init`` creates or upgrades the fleet tables (once, as the database's owner); ``ship
--once`` does one shipping pass of this host by hand (``memras watch`` ships by itself
when ``[fleet] url`` is set); ``hosts``, ``dimms``, ``failures`` and ``replacements``
only read, so a read-only role is enough for them, as it is for ``tui`` (the terminal
UI's fleet screen, started on it).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from memras.cli import command
from memras.cli.configcheck import checked_config
from memras.cli.context import Context
from memras.config import read_config_file
from memras.errors import UsageError

if TYPE_CHECKING:
    from memras.fleet.ship import FleetConfig

ACTIONS = ("init", "ship", "hosts", "dimms", "failures", "replacements", "evaluate", "tui")


def _args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--url", metavar="URL",
                   help="the central database (default: [fleet] url of --config)")
    sub = p.add_subparsers(dest="action", metavar="ACTION")
    sub.add_parser("init", help="create or upgrade the fleet tables (the database's owner)")
    ship = sub.add_parser("ship", help="ship what is new on this host to the central store")
    ship.add_argument("--once", action="store_true",
                      help="one pass, then exit (without it: ship every [fleet] interval "
                           "until SIGTERM, as a process of its own beside memras watch)")
    sub.add_parser("hosts", help="every host: last contact, backlog, skipped errors")
    dimms = sub.add_parser("dimms", help="DIMMs across the fleet, most urgent verdict first")
    dimms.add_argument("--all", action="store_true", help="also the DIMMs judged ok")
    sub.add_parser("failures", help="failure rates by manufacturer and part number")
    sub.add_parser("replacements", help="replacements across the fleet with their audit heads")
    ev = sub.add_parser("evaluate", help="memras evaluate on the central history (labels: "
                                         "the fleet's replacements, or --tickets)")
    ev.add_argument("--tickets", metavar="PATH",
                    help="failures as a CSV (host, DIMM, time) instead of the replacements")
    ev.add_argument("--horizon", metavar="TIME",
                    help="count a flag only if at most this long before the failure (30d)")
    sub.add_parser("tui", help="the terminal UI on its fleet screen (needs a terminal)")


NO_URL = "no central database: [fleet] url is not set"
NO_URL_HINT = "set url in the [fleet] table of --config, or pass --url"


def fleet_config(url: str | None, config_path: str | Path | None) -> FleetConfig | None:
    """The central database a command reads: ``url`` as given (no password file), else
    ``[fleet]`` of the config file; None when neither names one. The file is checked
    whole first (every problem, as `config check` words them). ``memras fleet`` and
    ``memras tui --fleet-url`` both resolve it here."""
    from memras.fleet.ship import FleetConfig

    checked_config(config_path)
    return FleetConfig(url) if url else FleetConfig.of(read_config_file(config_path))


def _engine(args: argparse.Namespace, ctx: Context) -> Any:
    from memras.fleet.ship import central_engine

    config = fleet_config(args.url, ctx.config)
    if config is None:
        raise UsageError(NO_URL, hint=NO_URL_HINT)
    return central_engine(config.url, config.password_file)


@command("fleet", "the fleet's central PostgreSQL: init, ship --once, hosts, dimms, "
                  "failures, replacements, evaluate, tui")(_args)
def run(args: argparse.Namespace, ctx: Context) -> int:
    if args.action is None:
        raise UsageError("memras fleet needs an action", hint=f"one of {', '.join(ACTIONS)}")
    if args.action == "tui":
        return _tui(args, ctx)
    from sqlalchemy.exc import SQLAlchemyError

    from memras.fleet.ship import central_error

    engine = _engine(args, ctx)
    try:
        if args.action == "init":
            return _init(engine, ctx)
        if args.action == "ship":
            return _ship(engine, args, ctx)
        return _read(engine, args, ctx)
    except SQLAlchemyError as exc:
        raise central_error("read" if args.action not in ("init", "ship") else args.action,
                            exc) from exc
    finally:
        engine.dispose()


def _tui(args: argparse.Namespace, ctx: Context) -> int:
    """``memras fleet tui``: ``memras tui`` opened on its fleet screen, this database's."""
    from memras.cli.tui import require_terminal, start_app

    require_terminal(ctx)
    config = fleet_config(args.url, ctx.config)
    if config is None:
        raise UsageError(NO_URL, hint=NO_URL_HINT)
    return start_app(ctx, fleet=config, start_mode="fleet")


def _init(engine: Any, ctx: Context) -> int:
    from memras.fleet.schema import LATEST_VERSION, migrate

    with engine.begin() as conn:
        applied = migrate(conn)
    if ctx.json:
        ctx.emit_json({"applied": applied, "version": LATEST_VERSION})
    else:
        ctx.print(f"fleet schema version {LATEST_VERSION}"
                  + (f" (applied now: {', '.join(map(str, applied))})" if applied
                     else " (already current)"))
    return 0


def _ship(engine: Any, args: argparse.Namespace, ctx: Context) -> int:
    from memras.fleet.identity import host_identity
    from memras.fleet.ship import FleetConfig, Shipper
    from memras.store import Store

    config = FleetConfig.of(read_config_file(ctx.config))
    identity = host_identity(ctx.root)
    with Store.open(ctx.db, create=False) as local:
        shipper = Shipper(local, engine, identity,
                          **({"max_error_backlog": config.max_error_backlog} if config else {}))
        if not args.once:
            return _ship_until_stopped(shipper, config, ctx)
        result = shipper.ship_once()
    if ctx.json:
        ctx.emit_json({"host_id": identity.host_id, "hostname": identity.hostname,
                       **result.as_dict()})
        return 0
    sent = sum(result.shipped.values())
    ctx.print(f"{identity.hostname} ({identity.host_id[:12]}): shipped {sent} rows; "
              f"backlog {result.backlog}"
              + (f"; skipped {result.dropped_now} errors beyond the backlog bound"
                 if result.dropped_now else ""))
    rows = [(name.removeprefix("fleet_"), n) for name, n in result.shipped.items()]
    ctx.table(["TABLE", "ROWS"], rows, right=["ROWS"])
    return 0


def _ship_until_stopped(shipper: Any, config: Any, ctx: Context) -> int:
    """`memras fleet ship`: the watcher's shipper loop in a process of its own (its own
    interpreter: no GIL shared with the watcher), until SIGTERM or Ctrl-C."""
    import signal

    from memras.fleet.ship import DEFAULT_INTERVAL_S, ShipperThread

    thread = ShipperThread(shipper, config.interval_s if config else DEFAULT_INTERVAL_S)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: thread.stop_event.set())
    if not ctx.json:
        ctx.print(f"memras fleet ship: every {thread.interval_s:g} s; SIGTERM to stop")
    thread.run()  # in this thread: returns once stopped
    thread.stop(final_pass=True)
    if ctx.json:
        ctx.emit_json({"passes": thread.passes, "failures": thread.failures,
                       "last_error": thread.last_error})
    return 0


def _when(value: Any) -> str:
    return value.isoformat(" ", "seconds") if value is not None else "-"


def _read(engine: Any, args: argparse.Namespace, ctx: Context) -> int:
    from memras.fleet import read

    with engine.connect() as conn:
        read.require_schema(conn)
        handlers: dict[str, Callable[[Any], int]] = {
            "hosts": lambda c: _hosts(read.hosts(c), ctx),
            "dimms": lambda c: _dimms(read.dimms(c, include_ok=args.all), ctx),
            "failures": lambda c: _failures(read.failures(c), ctx),
            "replacements": lambda c: _replacements(read.replacements(c), ctx),
            "evaluate": lambda c: _evaluate(c, args, ctx),
        }
        return handlers[args.action](conn)


def _hosts(rows: list[Any], ctx: Context) -> int:
    if ctx.json:
        ctx.emit_json([r.as_dict() for r in rows])
        return 0
    ctx.table(["HOST", "ID", "LAST CONTACT", "BACKLOG", "SKIPPED", "VERSION"],
              [(r.hostname, r.host_id[:12], _when(r.last_contact), r.backlog,
                r.dropped_errors, r.memras_version) for r in rows],
              right=["BACKLOG", "SKIPPED"], optional=["VERSION", "ID", "SKIPPED"],
              flex="HOST")
    return 0


def _dimms(rows: list[Any], ctx: Context) -> int:
    if ctx.json:
        ctx.emit_json([r.as_dict() for r in rows])
        return 0
    if not rows:
        ctx.print("no DIMM across the fleet has a verdict worse than ok")
        return 0
    ctx.table(["HOST", "SLOT", "SERIAL", "PART", "VERDICT", "SINCE", "EVIDENCE"],
              [(r.hostname, r.label or r.dimm_id, r.serial, r.part, r.verdict,
                _when(r.since), r.evidence) for r in rows],
              optional=["PART", "SERIAL", "SINCE"])
    return 0


def _failures(rows: list[Any], ctx: Context) -> int:
    if ctx.json:
        ctx.emit_json([r.as_dict() for r in rows])
        return 0
    ctx.table(["MANUFACTURER", "PART", "MODULES", "FAILED", "RATE", "MEDIAN AGE"],
              [(r.manufacturer or "-", r.part or "-", r.modules, r.failed,
                f"{100 * r.rate:.2f}%", r.age_text()) for r in rows],
              right=["MODULES", "FAILED", "RATE", "MEDIAN AGE"], flex="PART")
    return 0


def _replacements(rows: list[Any], ctx: Context) -> int:
    if ctx.json:
        ctx.emit_json([r.as_dict() for r in rows])
        return 0
    ctx.table(["HOST", "ID", "SLOT", "STATE", "STARTED", "AUDIT", "AUDIT HEAD"],
              [(r.hostname, r.replacement_id, r.dimm_label or r.dimm_id, r.state,
                _when(r.created_at), r.audit_entries,
                (r.audit_head or "-")[:16]) for r in rows],
              right=["ID", "AUDIT"], optional=["AUDIT HEAD", "STARTED"], flex="HOST")
    return 0


def _evaluate(conn: Any, args: argparse.Namespace, ctx: Context) -> int:
    from memras.cli.evaluate import _print, parse_horizon
    from memras.evaluate import evaluate
    from memras.evaluate import history as H
    from memras.fleet.evaluate import FleetTickets, fleet_history, fleet_tickets, named_tickets
    from memras.health.config import load_config
    from memras.text import escape

    horizon_s = parse_horizon(args.horizon) if args.horizon else None
    errors = fleet_history(conn)
    labels = (FleetTickets(named_tickets(conn, errors,
                                         H.read_tickets_csv(args.tickets, errors.skipped)))
              if args.tickets else fleet_tickets(conn, errors))
    result, _ = evaluate(errors, labels.tickets, load_config(ctx.config), horizon_s=horizon_s)
    if ctx.json:
        ctx.emit_json({**result.to_dict(),
                       "host_level": [h.as_dict() for h in labels.host_level]})
        return 0
    _print(ctx, result)
    for h in labels.host_level:
        ctx.print(f"  host-level: {escape(h.host)} replacement {h.replacement_id}: "
                  f"{escape(h.why)}")
    return 0
