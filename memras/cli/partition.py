"""``memras partition move SIZE --from QMP_A --to QMP_B``: move memory between two guests.

Refuses unless A can spare SIZE (its MemAvailable via ``--from-agent`` qemu-ga
socket, or ``--force``); ``--dry-run`` shows the plan; rolls back to A if B
cannot take the memory. See :mod:`memras.capacity.partition`.
"""

from __future__ import annotations

import argparse

from memras.capacity import partition, vm
from memras.capacity.chmem import parse_size
from memras.capacity.record import Recorder
from memras.cli import command
from memras.cli.context import Context
from memras.cli.options import add_dry_run, add_operator, add_yes, confirm, duration
from memras.errors import Refused, UsageError
from memras.text import format_bytes
from memras.topology.naming import Confirmation


def _args(p: argparse.ArgumentParser) -> None:
    p.add_argument("op", choices=("move",))
    p.add_argument("size", help="how much, e.g. 512M or 1G")
    p.add_argument("--from", dest="source", required=True, help="QMP socket of the giving VM")
    p.add_argument("--to", dest="dest", required=True, help="QMP socket of the taking VM")
    p.add_argument("--from-agent", help="qemu-ga socket of the giving VM (MemAvailable)")
    p.add_argument("--reserve", default="256M", help="MemAvailable A must keep (default 256M)")
    p.add_argument("--force", action="store_true",
                   help="move without checking A's MemAvailable (no guest agent)")
    p.add_argument("--timeout", type=duration, default=60.0,
                   help="time per device step (seconds, or 2m)")
    add_dry_run(p, "plan and check only")
    add_yes(p)
    add_operator(p)


@command("partition", "move memory between two QEMU guests on this host")(_args)
def run(args: argparse.Namespace, ctx: Context) -> int:
    size, reserve = parse_size(args.size), parse_size(args.reserve)
    if args.source == args.dest:
        raise UsageError("--from and --to are the same VM")
    with vm.connect(args.source, args.timeout) as qa, vm.connect(args.dest, args.timeout) as qb:
        removal = partition.plan_removal(vm.list_devices(qa), size)
        meminfo = partition.guest_meminfo(args.from_agent) if args.from_agent else None
        ok, detail = partition.spare_check(size, reserve, meminfo, args.force)
        what = (f"move {format_bytes(size)}: {removal.kind} "
                f"{', '.join(d.id for d in removal.devices)} from A to B")
        if args.dry_run or not ok:
            if ctx.json:
                ctx.emit_json({"dry_run": args.dry_run, "plan": what, "spare_ok": ok,
                               "spare": detail})
            else:
                ctx.print(f"{'dry run: ' if args.dry_run else ''}{what}\n"
                          f"{'PASS' if ok else 'FAIL'}  spare: {detail}")
            if not ok:
                raise Refused(f"refused: {detail}", hint="nothing was changed")
            return 0
        confirm(ctx, what, Confirmation(format_bytes(size), "size"), yes=args.yes)
        recorder = Recorder.open(ctx.db, operator=args.operator, alerts=True)
        try:
            recorder.audit("partition.start", {"plan": what, "spare": detail,
                                               "from": args.source, "to": args.dest})
            result = partition.move(qa, qb, size, removal, recorder=recorder,
                                    timeout=args.timeout)
            recorder.audit("partition.result", result.as_dict())
        finally:
            recorder.close()
    if ctx.json:
        ctx.emit_json(result.as_dict())
    else:
        for s in result.steps:
            ctx.print(f"{s['vm']:>4} {s['op']} {s['device']}: {'ok' if s['ok'] else 'FAILED'}"
                      f" ({s['detail']})")
        ctx.print("moved" if result.ok else
                  "FAILED; A got its memory back" if result.rolled_back else "FAILED")
    return 0 if result.ok else 1
