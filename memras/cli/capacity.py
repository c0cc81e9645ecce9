"""``memras capacity online|offline SIZE|RANGE|--blocks N-M``: chmem with safety rails;
``memras capacity online|offline --dax daxR.I``: a CXL DAX device's memory as system RAM
or back to devdax (:mod:`memras.capacity.dax`); ``memras capacity`` (``list``): the
memory blocks, the DAX devices and what the kernel shows of dynamic capacity.

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
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from memras.alerts.alert import Severity
from memras.capacity import chmem, dax
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
from memras.config import node_reserve_setting
from memras.errors import EXIT_REFUSED, Refused, UsageError
from memras.text import block_names, format_bytes
from memras.topology.naming import Confirmation
from memras.workflow.offline import RetryPolicy

R = TypeVar("R")

if TYPE_CHECKING:
    from memras.host import Host

DEFAULT_RESERVE_FRACTION = 0.10
MIN_RESERVE_BYTES = 256 << 20


def _args(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", nargs="?", default="list", choices=("list", "online", "offline"),
                   help="list (the default: blocks, DAX devices, dynamic capacity), online "
                   "(chmem -e) or offline (chmem -d)")
    p.add_argument("request", nargs="?", help="SIZE <n>[m|M|g|G] (MiB default) or RANGE "
                   "0x<start>-0x<end>")
    p.add_argument("--blocks", metavar="N[-M]", help="a block range instead (chmem -b)")
    p.add_argument("--dax", metavar="DAX", help="a CXL DAX device (dax0.0) instead: online = "
                   "system-ram (kmem), blocks online; offline = blocks offline, devdax")
    p.add_argument("--zone", help="DMA, DMA32, Normal, Highmem, Movable, Device "
                   "(online default: Movable; never a kernel zone unless named here)")
    p.add_argument("--node", type=int, metavar="N", help="only blocks of NUMA node N")
    add_dry_run(p)
    add_yes(p)
    p.add_argument("--reserve", help="MemAvailable to keep when offlining, e.g. 1G "
                   "(default max(256M, 10%% of MemTotal))")
    p.add_argument("--force-node", action="store_true",
                   help="offline even when a NUMA node would fall below [workflow] "
                   "node_reserve (default 10%% of the node)")
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


def _node_reserves(args: argparse.Namespace, ctx: Context) -> dict[str, Any]:
    """What each NUMA node keeps after an offline: --config's [workflow] node_reserve,
    and whether --force-node makes a shortfall a warning."""
    return {"node_reserve": node_reserve_setting(ctx.config), "force_node": args.force_node}


@command("capacity", "online/offline memory like chmem (SIZE, RANGE, --blocks; exit 0/1/64) "
         "or a CXL DAX device (--dax); list")(_args)
def run(args: argparse.Namespace, ctx: Context) -> int:
    check_retry_options(args)
    if args.action == "list":
        if args.request or args.blocks or args.dax:
            raise UsageError("say online or offline before what to change",
                             hint="e.g. memras capacity offline --dax dax0.0")
        return _list(ctx, ctx.host)
    host = ctx.writable_host()
    if args.dax:
        return _run_dax(args, ctx, host)
    the_plan = _plan(args, host)
    checks = chmem.preflight(host, the_plan, _reserve(args, host),
                             **_node_reserves(args, ctx))
    if args.dry_run:
        return _show_plan(ctx, the_plan, checks)
    _refuse_failed(checks)
    _confirm(args, ctx, the_plan)

    def execute(run: _Run) -> chmem.Result:
        return chmem.execute(host, the_plan, retry=run.retry, cancel=run.cancel,
                             progress=run.progress, on_outcome=run.block)

    def finish(recorder: Recorder, result: chmem.Result, retry: RetryPolicy) -> None:
        if args.on_failure == "rollback" and result.exit_status != chmem.EXIT_OK:
            chmem.rollback(host, result, retry=retry)
        _record_result(recorder, args.action, result)

    result = _audited(args, ctx, f"capacity.{args.action}", the_plan.as_dict(), checks,
                      execute, finish)
    return _show_result(ctx, result)


def _refuse_failed(checks: list[Any]) -> None:
    failed = [c for c in checks if not c.ok]
    if failed:
        raise Refused(f"preflight refused: {failed[0].name}: {failed[0].detail}",
                      hint="nothing was changed; see --dry-run")


@dataclass(frozen=True)
class _Run:
    """What an audited change gets: its retry policy, cancel flag, progress callback,
    and the audit writers for a block's outcome and a driver write."""

    retry: RetryPolicy
    cancel: threading.Event
    progress: Callable[..., Any]
    block: Callable[[Any], None]
    driver: Callable[[dict[str, Any]], None]


def _audited(args: argparse.Namespace, ctx: Context, step: str, plan: dict[str, Any],
             checks: list[Any], execute: Callable[[_Run], R],
             finish: Callable[[Recorder, R, RetryPolicy], None]) -> R:
    """``execute`` with progress, cancel and the audit trail of ``step`` (``capacity.
    offline``, ``capacity.dax.online``...): the plan and preflight first, a row per
    block and driver write, then whatever ``finish`` records (rollback, result, alert)."""
    recorder = Recorder.open(ctx.db, operator=args.operator, alerts=True)
    try:
        recorder.audit(f"{step}.start", {**plan, "preflight": [c.as_dict() for c in checks]})
        retry = RetryPolicy(block_timeout_s=args.block_timeout, max_attempts=args.max_attempts)
        cancel = threading.Event()
        with ProgressDisplay(ctx, "capacity", in_bytes=True, cancel=cancel) as shown:
            result = execute(_Run(
                retry, cancel, shown.blocks,
                block=lambda o: recorder.audit(f"{step}.block", {
                    "block": o.block, "write": o.write, "ok": o.ok,
                    "attempts": o.attempts, "error": o.error}),
                driver=lambda w: recorder.audit(f"{step}.driver", w)))
        finish(recorder, result, retry)
    finally:
        recorder.close()
    return result


def _record_result(recorder: Recorder, action: str, result: chmem.Result) -> None:
    _record_outcome(recorder, f"capacity.{action}", f"{action} {result.plan.request.text}",
                    result, {"changed": result.changed})


def _record_outcome(recorder: Recorder, step: str, what: str, result: Any,
                    evidence: dict[str, Any]) -> None:
    """The change's result in the audit trail, and a warning alert when it fell short."""
    recorder.audit(f"{step}.result", result.as_dict())
    if result.exit_status:
        recorder.alert(f"memras capacity {what}: {result.summary()}",
                       step=step.replace(".", "-"), severity=Severity.WARNING,
                       evidence={"exit_status": result.exit_status, **evidence})


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


def _dry_run_json(ctx: Context, plan: dict[str, Any], checks: list[Any]) -> int:
    """A dry run's plan and preflight as JSON; exit 0, or 3 when preflight refuses."""
    ctx.emit_json({"dry_run": True, **plan, "preflight": [c.as_dict() for c in checks]})
    return _dry_run_status(checks)


def _dry_run_status(checks: list[Any]) -> int:
    """A dry run exits as the run would: refused when a check failed."""
    return chmem.EXIT_OK if all(c.ok for c in checks) else EXIT_REFUSED


def _print_checks(ctx: Context, checks: list[Any]) -> int:
    """The preflight lines of a text dry run, and its exit status."""
    for c in checks:
        ctx.print(c.line())
    return _dry_run_status(checks)


def _show_plan(ctx: Context, the_plan: Any, checks: list[Any]) -> int:
    if ctx.json:
        return _dry_run_json(ctx, the_plan.as_dict(), checks)
    req = the_plan.request
    ctx.print(f"dry run: {req.action} {req.text}: would change {block_names(the_plan.expected())}"
              f" ({format_bytes(len(the_plan.expected()) * the_plan.block_size)})")
    if the_plan.already:
        ctx.print(f"already {req.action}: {block_names(list(the_plan.already))}")
    for s in the_plan.skipped[:8]:
        ctx.print(f"skip memory{s.block}: {s.reason}")
    return _print_checks(ctx, checks)


def _show_result(ctx: Context, result: chmem.Result) -> int:
    if ctx.json:
        ctx.emit_json(result.as_dict())
        return int(result.exit_status)
    _print_blocks(ctx, result)
    ctx.print(result.summary())
    return int(result.exit_status)


def _print_blocks(ctx: Context, result: chmem.Result) -> None:
    """chmem's line per block (``Memory Block 82 (0x…-0x…) disabled``)."""
    verb = "enabled" if result.plan.request.action == "online" else "disabled"
    for o in result.outcomes:
        start = o.block * result.plan.block_size
        line = (f"Memory Block {o.block} (0x{start:016x}-"
                f"0x{start + result.plan.block_size - 1:016x})")
        ctx.print(f"{line} {verb}" if o.ok else f"{line} failed: {o.error}")
    if result.rolled_back:
        ctx.print(f"rolled back: {block_names(result.rolled_back)}")


# --- the listing and --dax (memras.capacity.dax) ---------------------------------------


def _list(ctx: Context, host: Host) -> int:
    blocks = host.memory.all() if host.memory.present else []
    block_size = host.memory.block_size() if host.memory.present else 0
    online = [b for b in blocks if b.online]
    devices = dax.dax_capacity(host)
    dc = dax.dynamic_capacity(host)
    if ctx.json:
        ctx.emit_json({"block_size": block_size, "blocks": len(blocks),
                       "online_blocks": len(online),
                       "online_bytes": len(online) * block_size,
                       "offline_blocks": len(blocks) - len(online),
                       "movable_online_blocks": sum(b.zone == "Movable" for b in online),
                       "dax": [d.as_dict() for d in devices],
                       "dynamic_capacity": dc.as_dict()})
        return 0
    if not blocks:
        ctx.print(f"no memory blocks under {host.root} (no memory hotplug)")
    else:
        ctx.print(f"memory blocks: {len(online)} of {len(blocks)} online "
                  f"({format_bytes(len(online) * block_size)}), block size "
                  f"{format_bytes(block_size)}")
    if devices:
        ctx.table(("DAX", "REGION", "SIZE", "MODE", "ONLINE", "NODE", "MOVABLE", "BLOCKS"),
                  [(d.name, d.device.region or "-", format_bytes(d.device.size),
                    d.device.mode, f"{len(d.online)}/{d.total_blocks}",
                    "-" if d.device.target_node is None else d.device.target_node,
                    {True: "yes", False: "no", None: "-"}[d.movable],
                    _span(d.device.blocks(d.block_size)))
                   for d in devices], right=("SIZE", "ONLINE", "NODE"))
    else:
        ctx.print("DAX devices: none")
    if host.cxl.present():
        ctx.print(dc.line())
    return 0


def _span(blocks: range) -> str:
    """``82-85``: a DAX device's block numbers (its range is contiguous)."""
    if not blocks:
        return "-"
    return str(blocks.start) if len(blocks) == 1 else f"{blocks.start}-{blocks.stop - 1}"


def _run_dax(args: argparse.Namespace, ctx: Context, host: Host) -> int:
    if args.request or args.blocks or args.node is not None:
        raise UsageError("--dax takes the whole device: no SIZE, RANGE, --blocks or --node",
                         hint=f"memras capacity {args.action} --dax dax0.0")
    the_plan = dax.plan_dax(host, args.action, args.dax, zone=args.zone)
    checks = dax.preflight(host, the_plan, _reserve(args, host),
                           **_node_reserves(args, ctx))
    if args.dry_run:
        return _show_dax_plan(ctx, the_plan, checks)
    _refuse_failed(checks)
    if the_plan.nothing_to_do:
        d = the_plan.dax
        result = dax.DaxResult(the_plan, mode_after=d.device.mode,
                               online_after=(len(d.online), d.total_blocks))
        return _show_dax_result(ctx, result)
    size = format_bytes(len(the_plan.block_numbers()) * the_plan.dax.block_size)
    if args.action == "offline" and not args.yes:
        confirm(ctx, f"take {the_plan.dax.name} ({size}, {block_names(the_plan.block_numbers())})"
                     " out of system RAM, back to devdax", Confirmation(size, "size"), yes=False)
    elif the_plan.zone not in (None, "Movable") and not args.yes:
        confirm(ctx, f"online {the_plan.dax.name} into the kernel zone {the_plan.zone}: it can "
                     "never be offlined again", Confirmation(the_plan.zone, "zone"), yes=False)
    step = f"capacity.dax.{args.action}"

    def execute(run: _Run) -> dax.DaxResult:
        return dax.execute_dax(host, the_plan, retry=run.retry, cancel=run.cancel,
                               progress=run.progress, on_outcome=run.block,
                               on_write=run.driver)

    def finish(recorder: Recorder, result: dax.DaxResult, retry: RetryPolicy) -> None:
        if (args.on_failure == "rollback" and result.exit_status != chmem.EXIT_OK
                and result.blocks is not None):
            chmem.rollback(host, result.blocks, retry=retry)
        _record_outcome(recorder, step, f"{args.action} --dax {the_plan.dax.name}", result,
                        {"mode_after": result.mode_after})

    result = _audited(args, ctx, step, the_plan.as_dict(), checks, execute, finish)
    return _show_dax_result(ctx, result)


def _show_dax_plan(ctx: Context, the_plan: dax.DaxPlan, checks: list[Any]) -> int:
    if ctx.json:
        return _dry_run_json(ctx, the_plan.as_dict(), checks)
    d = the_plan.dax
    ctx.print(f"dry run: {the_plan.action} --dax {d.name} ({d.device.mode}, "
              f"{format_bytes(d.device.size)}, node {d.device.target_node})")
    for line in the_plan.steps() or ["nothing to do"]:
        ctx.print(f"  {line}")
    if the_plan.blocks is not None:
        for s in the_plan.blocks.skipped[:8]:
            ctx.print(f"skip memory{s.block}: {s.reason}")
    return _print_checks(ctx, checks)


def _show_dax_result(ctx: Context, result: dax.DaxResult) -> int:
    if ctx.json:
        ctx.emit_json(result.as_dict())
        return int(result.exit_status)
    writes = [f"{w['write']}: " + ("ok" if w["ok"] and not w.get("skipped") else
                                   w.get("skipped") or f"failed: {w.get('error')}")
              for w in result.writes]
    first, then = (writes, []) if result.plan.action == "online" else ([], writes)
    for line in first:  # in the order they ran: online binds first, offline unbinds last
        ctx.print(line)
    if result.blocks is not None:
        _print_blocks(ctx, result.blocks)
    for line in then:
        ctx.print(line)
    ctx.print(result.summary())
    return int(result.exit_status)
