"""``memras vm list|add|remove|resize --qmp SOCKET``: a guest's memory from the host side.

``remove`` and shrinking ``resize`` take memory from a running guest: they ask for the
device id to be typed (``--yes`` for scripts; no terminal is a refusal, exit 3) and
have ``--dry-run``. Every change is audited.
"""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any

from memras.capacity import vm
from memras.capacity.chmem import parse_size
from memras.capacity.record import Recorder
from memras.cli import command
from memras.cli.context import Context
from memras.cli.options import add_dry_run, add_operator, add_yes, confirm, duration
from memras.errors import UsageError
from memras.text import format_bytes
from memras.topology.naming import Confirmation


def _args(p: argparse.ArgumentParser) -> None:
    p.add_argument("op", choices=("list", "add", "remove", "resize"))
    p.add_argument("target", nargs="*", help="add SIZE | remove ID | resize ID SIZE")
    p.add_argument("--qmp", required=True, help="the VM's QMP unix socket")
    p.add_argument("--id", dest="device_id", help="id of the new pc-dimm (add)")
    p.add_argument("--slot", type=int, help="DIMM slot (add)")
    p.add_argument("--node", type=int, metavar="N",
                   help="guest NUMA node of the new DIMM (add; QEMU's default: 0)")
    p.add_argument("--timeout", type=duration, default=60.0,
                   help="time to wait for the guest (seconds, or 2m)")
    add_dry_run(p, "check and show")
    add_yes(p)
    add_operator(p)


def _need(args: argparse.Namespace, count: int, usage: str) -> list[str]:
    if len(args.target) != count:
        raise UsageError(f"usage: memras vm {usage}")
    return list(args.target)


@command("vm", "QEMU guest memory over QMP: list, add/remove pc-dimm, resize virtio-mem")(_args)
def run(args: argparse.Namespace, ctx: Context) -> int:
    with vm.connect(args.qmp, timeout=args.timeout) as qmp:
        if args.op == "list":
            _need(args, 0, "list --qmp SOCKET")
            return _show_list(ctx, vm.list_devices(qmp))
        result = _change(args, ctx, qmp)
    if result is None:
        return 0
    _record(args, ctx, result)
    if ctx.json:
        ctx.emit_json(result.as_dict())
    else:
        ctx.print(f"{result.op} {result.device}: {'ok' if result.ok else 'FAILED'} "
                  f"in {result.seconds:.2f}s: {result.detail}")
    return 0 if result.ok else 1


def _change(args: argparse.Namespace, ctx: Context, qmp: Any) -> Any:
    if args.op == "add":
        size = parse_size(_need(args, 1, "add SIZE --id ID --qmp SOCKET")[0])
        if not args.device_id:
            raise UsageError("name the new DIMM with --id", hint="e.g. --id dimm2")
        if args.node is not None and args.node < 0:
            raise UsageError(f"--node {args.node}: a NUMA node is 0 or more")
        vm.check_add(qmp, args.device_id, size)
        on = "" if args.node is None else f" on node {args.node}"
        if _dry(args, ctx, f"add pc-dimm {args.device_id} of {format_bytes(size)}{on}"):
            return None
        return vm.add_dimm(qmp, args.device_id, size, slot=args.slot, node=args.node)
    if args.op == "remove":
        (device_id,) = _need(args, 1, "remove ID --qmp SOCKET")
        dev = vm.find(qmp, device_id)
        if _dry(args, ctx, f"remove {dev.type} {device_id} ({format_bytes(dev.size)})"):
            return None
        confirm(ctx, f"unplug {device_id} ({format_bytes(dev.size)}) from the guest",
                Confirmation(device_id, "device id"), yes=args.yes)
        return vm.remove_dimm(qmp, device_id, timeout=args.timeout)
    device_id, text = _need(args, 2, "resize ID SIZE --qmp SOCKET")
    size, dev = parse_size(text), vm.find(qmp, device_id)
    if _dry(args, ctx, f"resize {device_id} from {format_bytes(dev.size)} to "
            f"{format_bytes(size)}"):
        return None
    if size < dev.size:
        confirm(ctx, f"shrink {device_id} by {format_bytes(dev.size - size)}",
                Confirmation(device_id, "device id"), yes=args.yes)
    return vm.resize_virtio_mem(qmp, device_id, size, timeout=args.timeout)


def _dry(args: argparse.Namespace, ctx: Context, what: str) -> bool:
    if not args.dry_run:
        return False
    if ctx.json:
        ctx.emit_json({"dry_run": True, "would": what})
    else:
        ctx.print(f"dry run: would {what}")
    return True


def _record(args: argparse.Namespace, ctx: Context, result: Any) -> None:
    recorder = Recorder.open(ctx.db, operator=args.operator)
    try:
        recorder.audit(f"vm.{result.op}", {"qmp": args.qmp, **result.as_dict()})
    finally:
        recorder.close()


def _show_list(ctx: Context, devices: list[Any]) -> int:
    if ctx.json:
        ctx.emit_json([dataclasses.asdict(d) for d in devices])
        return 0
    rows = [(d.id, d.type, format_bytes(d.size),
             format_bytes(d.requested_size) if d.requested_size is not None else None,
             f"{d.addr:#x}" if d.addr is not None else None, d.slot, d.node, d.backend_id)
            for d in devices]
    ctx.table(("ID", "TYPE", "SIZE", "REQUESTED", "ADDR", "SLOT", "NODE", "BACKEND"), rows,
              right=("SIZE", "REQUESTED"))
    return 0
