"""``memras watch``: the watcher daemon (``--once``: drain the sources and exit).

As a service (contrib/systemd/memras-watch.service): READY=1 and WATCHDOG=1 through
$NOTIFY_SOCKET (:mod:`memras.watcher.notify`); SIGHUP re-reads the config file (health
thresholds, alert hooks, the capacity policy) and swaps the pipeline between two
batches, keeping the old one when the new file is invalid; one journal line per stored
error and health change (:mod:`memras.watcher.journal`), on by default when stderr is
the journal. The sources and the command-line options stay as started.
"""

from __future__ import annotations

import argparse
import signal
import threading

from memras.alerts.metrics import MetricsTick
from memras.alerts.service import load_alerts_config
from memras.bmc.config import bmc_config
from memras.capacity.policy import CapacityPolicy, load_policy_config
from memras.capacity.record import Recorder
from memras.cli import command
from memras.cli.configcheck import checked_config
from memras.cli.context import Context
from memras.config import read_config_file
from memras.errors import UsageError
from memras.fleet.identity import host_identity
from memras.fleet.ship import FleetConfig, ShipperThread, open_shipper
from memras.health.config import load_config
from memras.health.dimm_names import attribute_errors
from memras.host.tracefs import DEFAULT_BUFFER_KB
from memras.ingest.before_boot import BeforeBootSource
from memras.ingest.edac_ledger import OWN_RESETS_CURSOR
from memras.ingest.sources import (
    EdacCounterSource,
    KmsgSource,
    LiveSource,
    RasdaemonSource,
    TraceSource,
)
from memras.store import Store
from memras.store.retention import watcher_tasks
from memras.store.settings import StoreSettings
from memras.text import redact
from memras.watcher import journal
from memras.watcher.notify import SdNotify
from memras.watcher.pipeline import Pipeline, after_store_hook
from memras.watcher.watch import Periodic, Watcher, WatchStats

ALL_SOURCES = ("kmsg", "trace", "edac", "rasdaemon", "bert", "pstore")
# bert and pstore (errors from before this boot) are read once at start, when present
DEFAULT_SOURCES = ("kmsg", "trace", "edac", "bert", "pstore")


def _args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--once", action="store_true", help="read what is available now, store it, exit")
    p.add_argument("--sources", default=",".join(DEFAULT_SOURCES),
                   help=f"comma-separated, from {','.join(ALL_SOURCES)} (default %(default)s)")
    p.add_argument("--rasdaemon-db", metavar="PATH",
                   help="tail a running rasdaemon's database (adds the rasdaemon source)")
    p.add_argument("--edac-interval", type=float, default=5.0, metavar="SECONDS",
                   help="EDAC counter poll interval (default %(default)s)")
    p.add_argument("--no-health", action="store_true",
                   help="store events only; do not compute verdicts or fire alerts")
    p.add_argument("--log-events", action=argparse.BooleanOptionalAction, default=None,
                   help="log one MEMRAS_EVENT=… line per stored error and health change "
                        "on stderr (default: on when stderr is the systemd journal)")


def build_sources(ctx: Context, names: list[str], args: argparse.Namespace,
                  store: Store | None = None) -> list[LiveSource]:
    host = ctx.writable_host()  # the trace source creates and enables a tracefs instance
    config = read_config_file(ctx.config)  # checked at start: [watch] and [bmc] read here
    sources: list[LiveSource] = []
    for name in names:
        if name == "kmsg":
            if not host.kmsg.available():
                raise UsageError(f"no kernel log at {host.kmsg.path()}",
                                 hint="drop kmsg from --sources or check --root")
            sources.append(KmsgSource(host))
        elif name == "trace":
            if host.tracefs.available():
                sources.append(TraceSource(host, buffer_kb=config.section("watch").get(
                    "trace_buffer_kb", DEFAULT_BUFFER_KB)))
            else:
                ctx.err.write("memras: tracefs is not mounted: trace source disabled "
                              "(mount -t tracefs nodev /sys/kernel/tracing)\n")
        elif name == "edac":
            if host.edac.present:
                # the replacement workflow marks the counter resets it makes in the store
                marks = (lambda: store.get_cursor(OWN_RESETS_CURSOR)) if store else None
                sources.append(EdacCounterSource(
                    host, interval_s=args.edac_interval, own_resets=marks,
                    grace_s=load_alerts_config(ctx.config).gap_grace_s))
        elif name == "bert" and host.bert.present:
            sources.append(BeforeBootSource(host, "bert"))
        elif name == "pstore" and host.pstore.names():
            sources.append(BeforeBootSource(host, "pstore"))
        elif name == "rasdaemon":
            if not args.rasdaemon_db:
                raise UsageError("the rasdaemon source needs --rasdaemon-db PATH")
            sources.append(RasdaemonSource(args.rasdaemon_db))
    bmc = bmc_config(config)  # [bmc] set: its SEL is a source too
    if bmc is not None and bmc.kind == "ipmi":
        from memras.watcher.sel_source import BmcSelSource

        sources.append(BmcSelSource(bmc))
    return sources


def capacity_tasks(ctx: Context, store: Store, pipeline: Pipeline | None) -> list[Periodic]:
    """The capacity-on-demand policy as a watcher task, when [capacity] enables it."""
    raw = load_config(ctx.config).raw_section("capacity")
    if not raw or not raw.get("enabled", True):
        return []
    recorder = Recorder(store=store, operator="memras-watch",
                        alerts=pipeline.alerts if pipeline else None)
    policy = CapacityPolicy(load_policy_config(raw), recorder=recorder)
    host = ctx.writable_host()
    return [lambda now: policy.tick(host, now)]


@command("watch", "watcher daemon: store errors live from kmsg, tracefs, EDAC, rasdaemon")(_args)
def run(args: argparse.Namespace, ctx: Context) -> int:
    checked_config(ctx.config)  # every problem of the file, as `config check` words them
    names = [n.strip() for n in args.sources.split(",") if n.strip()]
    unknown = sorted(set(names) - set(ALL_SOURCES))
    if unknown:
        raise UsageError(f"unknown source(s): {', '.join(unknown)}",
                         hint=f"choose from {', '.join(ALL_SOURCES)}")
    if args.rasdaemon_db and "rasdaemon" not in names:
        names.append("rasdaemon")
    store = Store.open(ctx.db)
    sources = build_sources(ctx, names, args, store)
    if not sources:
        raise UsageError("no source is available on this host", hint="see --sources")
    on_journal = journal.stderr_is_journal(stream=ctx.err)
    log_events = on_journal if args.log_events is None else args.log_events
    with journal.logging_to(ctx.err, journal=on_journal, events=log_events):
        stats = _serve(args, ctx, store, sources, log_events)
    return _report(ctx, stats)


def _serve(args: argparse.Namespace, ctx: Context, store: Store, sources: list[LiveSource],
           log_events: bool) -> WatchStats:
    """Run the watcher until SIGTERM/SIGINT (or drained, with --once), reloading on SIGHUP."""
    events = journal.EventLog() if log_events else None
    watcher = Watcher(store, sources, notify=SdNotify.from_env(), event_log=events)
    pipeline = _install_pipeline(args, ctx, store, watcher)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    if not args.once:
        signal.signal(signal.SIGHUP, lambda *_: watcher.request_reload())

        def reload() -> None:
            nonlocal pipeline
            old, pipeline = pipeline, _install_pipeline(args, ctx, store, watcher)
            if old is not None:
                old.close()  # its queued alerts are delivered first

        watcher.on_reload = reload
    if not args.once and not ctx.json:
        ctx.print(f"memras watch: sources {', '.join(s.name for s in sources)}; "
                  f"database {redact(str(ctx.db))}; Ctrl-C or SIGTERM to stop")
    shipper = None
    try:
        shipper = _fleet_shipper(ctx)  # [fleet] url: its own thread, own connections
        return watcher.run(stop, once=args.once)
    finally:
        # the pipeline first: closing it stores its queued alerts, which the shipper's
        # final pass (--once) must see
        if pipeline is not None:
            pipeline.close()
        if shipper is not None:
            shipper.stop(final_pass=args.once)


def _fleet_shipper(ctx: Context) -> ShipperThread | None:
    """With ``[fleet] url``: the shipper thread started (memras.fleet.ship)."""
    config = FleetConfig.of(read_config_file(ctx.config))
    if config is None:
        return None
    thread = ShipperThread(open_shipper(str(ctx.db), config, host_identity(ctx.root)),
                           config.interval_s)
    thread.start()
    return thread


def _install_pipeline(args: argparse.Namespace, ctx: Context, store: Store,
                      watcher: Watcher) -> Pipeline | None:
    """Health, alerts and capacity from the config file, wired into ``watcher``: at start
    and on each reload (an invalid file raises here, before anything is swapped)."""
    pipeline = None if args.no_health else after_store_hook(ctx, store)
    try:
        periodic = capacity_tasks(ctx, store, pipeline)
    except Exception:
        if pipeline is not None:
            pipeline.close()
        raise
    watcher.on_stored = pipeline.after_store if pipeline else None
    watcher.on_cxl = pipeline.after_cxl if pipeline else None  # the CXL poison action
    watcher.on_gap = pipeline.on_gap if pipeline else None
    settings = StoreSettings.of(ctx.config)  # [store]: the mirror, retention's pruning
    settings.apply(store)
    watcher.periodic = [*periodic, *watcher_tasks(store, settings), *_metrics(store, pipeline)]
    if watcher.event_log is not None:
        watcher.event_log.resolver = pipeline.engine.resolver if pipeline else None
        if pipeline is not None:
            pipeline.on_change = watcher.event_log.change
    return pipeline


def _metrics(store: Store, pipeline: Pipeline | None) -> list[Periodic]:
    """With a metrics hook (prometheus): the metrics rewritten every interval, changed or
    not, counting a stored row once the pipeline has attributed it to its DIMM."""
    if pipeline is None:
        return []
    if not any(hook.publishes_metrics for _, hook in pipeline.alerts.dispatcher.hooks):
        return []
    metrics = pipeline.alerts.metrics
    if metrics is not None:  # rows stored before this start get their DIMM first
        pipeline.attributed_to = attribute_errors(store, pipeline.engine.resolver,
                                                  pipeline.attributed_to)
        metrics.settled = lambda: pipeline.attributed_to
    return [MetricsTick(pipeline.alerts.dispatcher.publish_metrics)]


def _report(ctx: Context, stats: WatchStats) -> int:
    if ctx.json:
        ctx.emit_json(stats.as_dict())
    else:
        rows = [(n, s.read, s.inserted, s.duplicates, s.skipped, s.gaps, s.errors)
                for n, s in sorted(stats.sources.items())]
        ctx.table(["SOURCE", "READ", "STORED", "DUPLICATES", "SKIPPED", "GAPS", "ERRORS"], rows,
                  right=["READ", "STORED", "DUPLICATES", "SKIPPED", "GAPS", "ERRORS"])
    return 1 if any(s.errors for s in stats.sources.values()) else 0
