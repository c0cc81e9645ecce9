"""``memras sim``: make a simulated server on disk, and make things happen to it.

For rehearsal (a field engineer walks through a replacement before the night of the swap),
for bug reports (a tree that shows the problem, no real server needed) and for trying a
config. The server is the same simulator the tests and ``memras demo`` use
(:mod:`memras.sim`): a complete sysfs/proc/dev tree under ``DIR/root`` plus its state.

    memras sim profiles
    memras sim create PROFILE DIR          # DIR/root, and DIR/memras.db once used
    memras --root DIR/root sim inject DIMM [--count N] [--ue] [--address ADDR]
                                           [--before-boot bert|pstore]
    memras --root DIR/root sim insert SLOT [--size 4G] [--serial S]

``inject`` and ``insert`` write only under a simulated root: a real ``--root`` (one
without the simulator's state) is refused, so nothing here can touch a real kernel.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from memras.capacity.chmem import parse_size
from memras.cli import add_global_options, command
from memras.cli.context import Context
from memras.errors import Refused, UsageError
from memras.sim import actions, profiles
from memras.text import escape


def _args(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    sub.add_parser("profiles", help="the server profiles sim create can write")
    create = sub.add_parser("create", help="write a simulated server into DIR (new or empty)")
    create.add_argument("profile", help="a profile name (see `memras sim profiles`)")
    create.add_argument("dir", help="directory for the server: DIR/root is its --root")
    inject = sub.add_parser("inject", help="report memory errors on a DIMM of --root's server")
    inject.add_argument("dimm", help="the DIMM by its slot name, e.g. P1-DIMMA1")
    inject.add_argument("--count", type=int, default=1, help="errors in this report (default 1)")
    inject.add_argument("--ue", action="store_true", help="uncorrected instead of corrected")
    inject.add_argument("--address", type=lambda t: int(t, 0),
                        help="physical address (default: one on the DIMM)")
    inject.add_argument("--before-boot", choices=["bert", "pstore"],
                        help="an uncorrected error that reset the server, as the next boot "
                             "finds it: the firmware's BERT record or the previous "
                             "kernel's pstore log")
    insert = sub.add_parser("insert", help="plug a module into an empty slot of --root's server")
    insert.add_argument("slot", help="the empty slot (PNP0C80 uid, device name or DIMM name)")
    insert.add_argument("--size", help="module size, e.g. 4G (default: the slot's)")
    insert.add_argument("--serial", default="", help="the new module's serial number")
    for sp in (sub.choices.values()):  # --root/--json/… after the action too
        add_global_options(sp, suppress=True)


@command("sim", "make a simulated server (profiles, create) and inject errors or insert "
                "modules into one")(_args)
def run(args: argparse.Namespace, ctx: Context) -> int:
    if args.action == "profiles":
        return _profiles(ctx)
    if args.action == "create":
        return _create(ctx, args.profile, args.dir)
    root = _simulated_root(ctx)
    if args.action == "inject":
        if args.count < 1:
            raise UsageError(f"--count {args.count}: a report holds at least one error")
        if args.before_boot:
            return _before_boot(ctx, root, args)
        address = actions.inject_ce(root, args.dimm, args.address, count=args.count, ue=args.ue)
        kind = "uncorrected" if args.ue else "corrected"
        result = {"dimm": args.dimm, "address": address, "count": args.count, "type": kind}
        ctx.emit_json(result) if ctx.json else ctx.print(
            f"{args.count} {kind} error(s) on {escape(args.dimm)} at {address:#x}: "
            "in the kernel log, the trace file and the EDAC counters")
        return 0
    size = parse_size(args.size) if args.size else None
    blocks = actions.insert_dimm(root, args.slot, size, serial=args.serial)
    ctx.emit_json({"slot": args.slot, "blocks": blocks}) if ctx.json else ctx.print(
        f"module inserted in {escape(args.slot)}: blocks {', '.join(map(str, blocks))}")
    return 0


def _before_boot(ctx: Context, root: Path, args: argparse.Namespace) -> int:
    from memras.sim.before_boot import inject_before_boot

    address = inject_before_boot(root, args.dimm, args.before_boot, args.address)
    result = {"dimm": args.dimm, "address": address, "count": 1, "type": "uncorrected",
              "before_boot": args.before_boot}
    where = ("/sys/firmware/acpi/tables/data/BERT" if args.before_boot == "bert"
             else "/sys/fs/pstore")
    ctx.emit_json(result) if ctx.json else ctx.print(
        f"an uncorrected error on {escape(args.dimm)} at {address:#x} reset the server: "
        f"in {where} (memras import {args.before_boot}, or the next memras watch)")
    return 0


def _profiles(ctx: Context) -> int:
    rows = [(name, (build.__doc__ or "").strip().splitlines()[0] if build.__doc__ else "")
            for name, build in profiles.PROFILES.items()]
    if ctx.json:
        ctx.emit_json({"profiles": [{"name": n, "about": a} for n, a in rows]})
    else:
        ctx.table(["PROFILE", "ABOUT"], rows)
    return 0


def _create(ctx: Context, profile: str, directory: str) -> int:
    target = Path(directory).expanduser().absolute()
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise UsageError(f"{target} is not an empty directory",
                         hint="sim create needs a new or empty directory")
    server = profiles.create(profile, target / "root")
    db = target / "memras.db"
    use = f"memras --root {server.root} --db {db}"
    if ctx.json:
        ctx.emit_json({"profile": profile, "root": str(server.root), "db": str(db),
                       "dimms": len(server.spec.dimms), "use": use})
    else:
        ctx.print(f"simulated {profile} server in {target}")
        ctx.print(f"  use it:      {use} dimms")
        ctx.print(f"  an error:    memras --root {server.root} sim inject DIMM --count 5")
        ctx.print(f"  watch it:    {use} watch --once")
    return 0


def _simulated_root(ctx: Context) -> Path:
    """--root, only when it is a simulated server: sim never writes to a real tree."""
    root = Path(ctx.root)
    if not ctx.host.is_simulated:
        raise Refused(f"refusing to change --root {root}: it is not a simulated server; "
                      "nothing was changed",
                         hint="make one with `memras sim create PROFILE DIR`, then pass "
                              "--root DIR/root")
    return root
