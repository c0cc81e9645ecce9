"""``memras hotplug-test``: cycle hot-pluggable blocks, assert everything, write a report.

Exit 0 only when every check passed; 1 on any failed check (the selftest's flaw
was exiting 0); 130 when cancelled (Ctrl-C stops after the current write, then the
blocks are restored); 2 for bad arguments; 3 for refusals (no --i-understand, a failed
preflight, the host name not typed). ``--dry-run`` shows the plan
and preflight and changes nothing. On a real root (``/``) it refuses unless run as
root with ``--i-understand``, and asks for confirmation unless ``--yes``.
"""

from __future__ import annotations

import argparse
import os
import socket
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from memras.capacity.chmem import parse_size
from memras.cli import command
from memras.cli.context import Context
from memras.cli.options import (
    add_dry_run,
    add_retry_options,
    add_yes,
    check_retry_options,
    confirm,
    duration,
)
from memras.cli.progress import ProgressDisplay
from memras.errors import NotPermitted, Refused, UsageError
from memras.hotplug_test import Config, HotplugTest, Want, plan
from memras.hotplug_test.model import Report
from memras.hotplug_test.pressure import workload_size
from memras.hotplug_test.render import _ms, write_reports
from memras.hotplug_test.select import Selection, parse_block_list
from memras.text import block_names, format_bytes
from memras.topology.naming import Confirmation
from memras.workflow.offline import RetryPolicy

if TYPE_CHECKING:
    from memras.host import Host

MIN_RESERVE_BYTES = 256 << 20
RESERVE_FRACTION = 0.10
EXIT_FAILED = 1
EXIT_CANCELLED = 130


def _args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--cycles", type=int, default=1, help="offline/online cycles (default 1)")
    p.add_argument("--duration", type=duration, metavar="TIME",
                   help="repeat cycles for this long: seconds, or 30s, 5m, 2h (overrides "
                        "--cycles)")
    p.add_argument("--blocks", metavar="N[-M],…", help="only these blocks (still only "
                   "hot-pluggable ones)")
    p.add_argument("--max-blocks", type=int, help="test at most this many blocks")
    p.add_argument("--include-kernel-zones", action="store_true",
                   help="also cycle online blocks of kernel zones (boot memory); expect EBUSY")
    p.add_argument("--pressure", type=float, default=0.0, metavar="PERCENT",
                   help="fill this share of free memory with patterned data, verified after "
                        "each cycle (default 0: no workload)")
    p.add_argument("--pressure-max", metavar="SIZE", help="cap the workload, e.g. 512M")
    for name, what in (("uevents", "uevent assertions"),
                       ("inject", "memory-notifier-error-inject checks")):
        g = p.add_mutually_exclusive_group()
        g.add_argument(f"--{name}", dest=name, action="store_const", const="on",
                       help=f"require {what} (fail if they cannot run)")
        g.add_argument(f"--no-{name}", dest=name, action="store_const", const="off",
                       help=f"skip {what}")
        p.set_defaults(**{name: "auto"})
    p.add_argument("--hwpoison", action="store_true", help="soft-offline one page in a block, "
                   "then offline it (loses 4 KiB for good)")
    p.add_argument("--eject", choices=("acpi",), help="eject one tested ACPI memory device and "
                   "wait for a module to be re-inserted")
    p.add_argument("--readd-timeout", type=duration, default=300.0,
                   help="time to wait for removal and re-insertion (seconds, or 5m; "
                        "default 300)")
    add_retry_options(p, per="write", busy="EBUSY/EAGAIN")
    p.add_argument("--uevent-timeout", type=duration, default=3.0,
                   help="time to wait for each uevent (seconds, or 3s)")
    p.add_argument("--report-dir", type=Path,
                   help="where report.json, report.md and latency.svg go "
                        "(default ./hotplug-test-<time>)")
    add_dry_run(p)
    add_yes(p)
    p.add_argument("--i-understand", action="store_true",
                   help="allow running on this machine's real memory (root only)")


def config_from_args(args: argparse.Namespace) -> Config:
    if args.cycles < 1 or (args.duration is not None and args.duration <= 0):
        raise UsageError("--cycles and --duration must be positive")
    if not 0 <= args.pressure < 100:
        raise UsageError("--pressure is a percentage of free memory, 0 to 99")
    check_retry_options(args)
    if args.readd_timeout <= 0:
        raise UsageError("--readd-timeout must be positive")
    return Config(
        cycles=args.cycles, duration_s=args.duration,
        blocks=parse_block_list(args.blocks) if args.blocks else None,
        max_blocks=args.max_blocks, include_kernel_zones=args.include_kernel_zones,
        pressure_share=args.pressure / 100,
        pressure_max_bytes=parse_size(args.pressure_max) if args.pressure_max else None,
        uevents=Want(args.uevents), inject=Want(args.inject), hwpoison=args.hwpoison,
        eject=args.eject, readd_timeout_s=args.readd_timeout,
        uevent_timeout_s=args.uevent_timeout,
        policy=RetryPolicy(block_timeout_s=args.block_timeout, max_attempts=args.max_attempts))


def refuse_real_root(host: Host, args: argparse.Namespace) -> None:
    """The real machine only with --i-understand, as root; a simulated or captured tree always."""
    if not host.is_real or host.is_simulated:
        return
    if not args.i_understand:
        raise NotPermitted(
            "refusing to cycle this machine's real memory blocks",
            hint="use --root with a simulated tree, or in a maintenance window run "
                 "--dry-run first, then add --i-understand (as root)")
    if os.geteuid() != 0:
        raise NotPermitted("memras hotplug-test on the real machine needs root",
                           hint="run it with sudo, after --dry-run")


def preflight(host: Host, selection: Selection, config: Config) -> list[dict[str, Any]]:
    """What must hold before anything is offlined; each {name, ok, detail}."""
    checks: list[dict[str, Any]] = []
    mem = host.meminfo.read()
    bs = host.memory.block_size() if host.memory.present else 0
    checks.append({"name": "memory-hotplug", "ok": host.memory.present,
                   "detail": "/sys/devices/system/memory present" if host.memory.present else
                   "no /sys/devices/system/memory: kernel without memory hotplug"})
    checks.append({"name": "blocks", "ok": bool(selection.blocks),
                   "detail": f"{len(selection.blocks)} hot-pluggable blocks to test, "
                             f"{len(selection.skipped)} left alone"})
    reserve = max(MIN_RESERVE_BYTES, int(mem.total * RESERVE_FRACTION))
    load = workload_size(config.pressure_share, mem.free, max_bytes=config.pressure_max_bytes)
    spare = mem.available - load - bs
    checks.append({"name": "memory-available", "ok": spare >= reserve,
                   "detail": f"MemAvailable {format_bytes(mem.available)} - workload "
                             f"{format_bytes(load)} - one block {format_bytes(bs)} leaves "
                             f"{format_bytes(max(spare, 0))}; need {format_bytes(reserve)}"})
    return checks


@command("hotplug-test", "hotplug regression/performance harness: cycle hot-pluggable blocks, "
         "assert data/uevents/zones/injection, write a report")(_args)
def run(args: argparse.Namespace, ctx: Context) -> int:
    config = config_from_args(args)
    host = ctx.host if args.dry_run else ctx.writable_host()
    if not args.dry_run:
        refuse_real_root(host, args)
    selection = plan(host, config)
    checks = preflight(host, selection, config)
    if args.dry_run:
        return _show_plan(ctx, selection, checks, config)
    failed = [c for c in checks if not c["ok"]]
    if failed:
        raise Refused(f"preflight refused: {failed[0]['name']}: {failed[0]['detail']}",
                         hint="nothing was changed; see --dry-run")
    report_dir = args.report_dir or Path(f"hotplug-test-{time.strftime('%Y%m%d-%H%M%S')}")
    try:
        report_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot create the report directory {report_dir}: {exc.strerror}",
                         hint="pass --report-dir") from None
    if host.is_real and not host.is_simulated:
        how_long = (f"for {config.duration_s:g}s" if config.duration_s else
                    f"{config.cycles} time(s)")
        host_name = socket.gethostname()
        confirm(ctx, f"offline and online {len(selection.blocks)} memory blocks of THIS "
                     f"machine {how_long}", Confirmation(host_name, "host name"), yes=args.yes)
    cancel = threading.Event()
    with ProgressDisplay(ctx, "hotplug-test", cancel=cancel) as shown:
        report = HotplugTest(host, config, cancel=cancel, progress=shown.message).run()
    report.plan["preflight"] = checks
    files = write_reports(report, report_dir)
    status = 0 if report.ok else EXIT_CANCELLED if report.cancelled else EXIT_FAILED
    if ctx.json:
        ctx.emit_json({**report.as_dict(), "files": files, "exit_status": status})
    else:
        _show_result(ctx, report, files)
    return status


def _show_plan(ctx: Context, selection: Selection, checks: list[dict[str, Any]],
               config: Config) -> int:
    ok = all(c["ok"] for c in checks)
    if ctx.json:
        ctx.emit_json({"dry_run": True, **selection.as_dict(), "preflight": checks,
                       "cycles": config.cycles, "duration_s": config.duration_s})
        return 0 if ok else EXIT_FAILED
    ctx.print(f"dry run: would cycle {len(selection.blocks)} blocks: "
              f"{block_names(selection.blocks, limit=16)}")
    for block, reason in selection.skipped[:16]:
        ctx.print(f"skip memory{block}: {reason}")
    for c in checks:
        ctx.print(f"{'ok  ' if c['ok'] else 'FAIL'} {c['name']}: {c['detail']}")
    return 0 if ok else EXIT_FAILED


def _show_result(ctx: Context, report: Report, files: dict[str, str]) -> None:
    rows = [(name, t["pass"], t["fail"], t["skip"]) for name, t in report.tally().items()]
    ctx.table(("CHECK", "PASS", "FAIL", "SKIP"), rows, right=("PASS", "FAIL", "SKIP"))
    figs = report.figures()
    ctx.print()
    lat = [(k, s["count"], _ms(s["p50"]), _ms(s["p90"]), _ms(s["p99"]), _ms(s["max"]))
           for k in ("offline", "online", "eject", "readd") if (s := figs[k])["count"]]
    if lat:
        ctx.table(("OP", "N", "P50_MS", "P90_MS", "P99_MS", "MAX_MS"), lat,
                  right=("N", "P50_MS", "P90_MS", "P99_MS", "MAX_MS"))
    mig = figs["migration"]
    if mig["bytes_per_s"]:
        ctx.print(f"migration: {format_bytes(mig['bytes'])} in {mig['seconds']:.2f}s = "
                  f"{mig['bytes_per_s'] / (1 << 20):.1f} MiB/s")
    for f in report.failures[:10]:
        where = f" memory{f.block}" if f.block is not None else ""
        ctx.print(f"FAIL {f.name}{where}: {f.detail}")
    ctx.print(f"{'PASS' if report.ok else 'CANCELLED' if report.cancelled else 'FAIL'}: "
              f"report in {files['markdown']}")
