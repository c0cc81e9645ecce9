"""``memras capacity online|offline SIZE|RANGE|--blocks N-M``: chmem with safety rails.

Same requests, block choice and exit statuses as util-linux ``chmem -e|-d`` (0 done,
1 nothing done, 64 partial; see :mod:`memras.capacity.chmem`), plus: ``--dry-run``
prints the plan, preflight refuses to offline memory the system needs (``--reserve``),
offlining asks for the size to be typed (``--yes`` on scripts), a refusal exits 3, Ctrl-C
stops after the current block, ``--on-failure rollback`` undoes a partial run (the old
``--rollback``, hidden for one release), and every block is audited.
"""

from __future__ import annotations

import argparse
import threading
from typing import TYPE_CHECKING, Any

from memras.alerts.alert import Severity
from memras.capacity import chmem
from memras.capacity.record import Recorder
from memras.cli import command
from memras.cli.context import Context
from memras.cli.options import (
    add_dry_run,
    add_on_failure,
    add_operator,
    add_renamed,
    add_retry_options,
    add_yes,
    check_retry_options,
    confirm,
)
from memras.cli.progress import ProgressDisplay
from memras.errors import EXIT_REFUSED, Refused, UsageError
from memras.text import block_names, format_bytes
from memras.topology.naming import Confirmation
from memras.workflow.offline import RetryPolicy

if TYPE_CHECKING:
    from memras.host import Host

DEFAULT_RESERVE_FRACTION = 0.10
MIN_RESERVE_BYTES = 256 << 20


def _args(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", choices=("online", "offline"), help="online (chmem -e) or "
                   "offline (chmem -d)")
    p.add_argument("request", nargs="?", help="SIZE <n>[m|M|g|G] (MiB default) or RANGE "
                   "0x<start>-0x<end>")
    p.add_argument("--blocks", metavar="N[-M]", help="a block range instead (chmem -b)")
    p.add_argument("--zone", help="DMA, DMA32, Normal, Highmem, Movable, Device "
                   "(online default: Movable; never a kernel zone unless named here)")
    p.add_argument("--node", type=int, metavar="N", help="only blocks of NUMA node N")
    add_dry_run(p)
    add_yes(p)
    p.add_argument("--reserve", help="MemAvailable to keep when offlining, e.g. 1G "
                   "(default max(256M, 10%% of MemTotal))")
    add_on_failure(p, "leave", "a block")  # leave: as chmem; rollback then exits 1
    add_renamed(p, "--rollback", "--on-failure", "on_failure", const="rollback")
    add_operator(p)
    add_retry_options(p)


def default_reserve(mem_total: int) -> int:
    """max(256 MiB, 10 % of MemTotal): small guests can still give memory back."""
    return max(MIN_RESERVE_BYTES, int(mem_total * DEFAULT_RESERVE_FRACTION))


def _plan(args: argparse.Namespace, host: Host):
    if bool(args.request) == bool(args.blocks):
        raise UsageError("give exactly one of SIZE|RANGE or --blocks N-M",
                         hint="e.g. memras capacity offline 256M")
    if not host.memory.present:
        raise UsageError(f"no /sys/devices/system/memory under {host.root}",
                         hint="this kernel has no memory hotplug, or --root is wrong")
    req = chmem.parse_request(args.action, args.blocks or args.request,
                              block_size=host.memory.block_size(), blocks=bool(args.blocks),
                              zone=args.zone)
    if args.node is not None and args.node not in (nodes := host.nodes.indexes()):
        raise UsageError(f"no NUMA node {args.node} under {host.root}"
                         f"{' (nodes: ' + ', '.join(map(str, nodes)) + ')' if nodes else ''}",
                         hint="see /sys/devices/system/node or `lscpu`")
    return chmem.plan(req, host.memory.all(), node=args.node)


def _reserve(args: argparse.Namespace, host: Host) -> int:
    if args.reserve is None:
        return default_reserve(host.meminfo.read().total)
    return chmem.parse_size(args.reserve)


@command("capacity", "online/offline memory like chmem: SIZE, RANGE or --blocks; exit 0/1/64"
         )(_args)
def run(args: argparse.Namespace, ctx: Context) -> int:
    check_retry_options(args)
    host = ctx.writable_host()
    the_plan = _plan(args, host)
    checks = chmem.preflight(host, the_plan, _reserve(args, host), node=args.node)
    if args.dry_run:
        return _show_plan(ctx, the_plan, checks)
    failed = [c for c in checks if not c.ok]
    if failed:
        raise Refused(f"preflight refused: {failed[0].name}: {failed[0].detail}",
                         hint="nothing was changed; see --dry-run")
    _confirm(args, ctx, the_plan)
    recorder = Recorder.open(ctx.db, operator=args.operator, alerts=True)
    try:
        recorder.audit(f"capacity.{args.action}.start", {**the_plan.as_dict(),
                       "preflight": [c.as_dict() for c in checks]})
        retry = RetryPolicy(block_timeout_s=args.block_timeout, max_attempts=args.max_attempts)
        cancel = threading.Event()
        with ProgressDisplay(ctx, "capacity", in_bytes=True, cancel=cancel) as shown:
            result = chmem.execute(
                host, the_plan, retry=retry, cancel=cancel, progress=shown.blocks,
                on_outcome=lambda o: recorder.audit(f"capacity.{args.action}.block",
                                                    {"block": o.block, "write": o.write,
                                                     "ok": o.ok, "attempts": o.attempts,
                                                     "error": o.error}))
        if args.on_failure == "rollback" and result.exit_status != chmem.EXIT_OK:
            chmem.rollback(host, result, retry=retry)
        _record_result(recorder, args.action, result)
    finally:
        recorder.close()
    return _show_result(ctx, result)


def _record_result(recorder: Recorder, action: str, result: chmem.Result) -> None:
    data = result.as_dict()
    recorder.audit(f"capacity.{action}.result", data)
    if result.exit_status:
        recorder.alert(f"memras capacity {action} {result.plan.request.text}: "
                       f"{result.summary()}", step=f"capacity-{action}",
                       severity=Severity.WARNING,
                       evidence={"exit_status": result.exit_status,
                                 "changed": result.changed})


def _confirm(args: argparse.Namespace, ctx: Context, the_plan: Any) -> None:
    kernel_zone = any(c.write == "online_kernel" for c in the_plan.candidates)
    if args.yes or (args.action == "online" and not kernel_zone):
        return
    size = format_bytes(len(the_plan.expected()) * the_plan.block_size)
    if args.action == "offline":
        confirm(ctx, f"take {size} offline (blocks {block_names(the_plan.expected())})",
                Confirmation(size, "size"), yes=False)
    else:
        zone = the_plan.request.zone
        confirm(ctx, f"online {size} into the kernel zone {zone}: it can never be offlined "
                     "again", Confirmation(zone, "zone"), yes=False)


def _show_plan(ctx: Context, the_plan: Any, checks: list[Any]) -> int:
    ok = all(c.ok for c in checks)
    if ctx.json:
        ctx.emit_json({"dry_run": True, **the_plan.as_dict(),
                       "preflight": [c.as_dict() for c in checks]})
        return chmem.EXIT_OK if ok else EXIT_REFUSED
    req = the_plan.request
    ctx.print(f"dry run: {req.action} {req.text}: would change {block_names(the_plan.expected())}"
              f" ({format_bytes(len(the_plan.expected()) * the_plan.block_size)})")
    if the_plan.already:
        ctx.print(f"already {req.action}: {block_names(list(the_plan.already))}")
    for s in the_plan.skipped[:8]:
        ctx.print(f"skip memory{s.block}: {s.reason}")
    for c in checks:
        ctx.print(c.line())
    return chmem.EXIT_OK if ok else EXIT_REFUSED  # as the run would: refused


def _show_result(ctx: Context, result: chmem.Result) -> int:
    if ctx.json:
        ctx.emit_json(result.as_dict())
        return int(result.exit_status)
    verb = "enabled" if result.plan.request.action == "online" else "disabled"
    for o in result.outcomes:
        start = o.block * result.plan.block_size
        line = (f"Memory Block {o.block} (0x{start:016x}-"
                f"0x{start + result.plan.block_size - 1:016x})")
        ctx.print(f"{line} {verb}" if o.ok else f"{line} failed: {o.error}")
    if result.rolled_back:
        ctx.print(f"rolled back: {block_names(result.rolled_back)}")
    ctx.print(result.summary())
    return int(result.exit_status)
