"""``memras blocks``: memory blocks with the columns and values of util-linux lsmem.

Prints what ``lsmem -o RANGE,SIZE,STATE,REMOVABLE,BLOCK,NODE,ZONES`` prints
(``--all`` as ``lsmem -a``, ``--bytes`` as ``-b``, ``--json`` as ``-J``); the
rendering lives in :mod:`memras.topology.lsmem` so the TUI shows the same rows.
"""

from __future__ import annotations

import argparse

from memras.cli import command
from memras.cli.context import Context
from memras.topology import lsmem


def _args(p: argparse.ArgumentParser) -> None:
    p.add_argument("-a", "--all", action="store_true",
                   help="one row per memory block, as lsmem -a")
    p.add_argument("-b", "--bytes", action="store_true",
                   help="sizes in bytes, as lsmem -b")


@command("blocks", "memory blocks; same columns and values as util-linux lsmem")(_args)
def run(args: argparse.Namespace, ctx: Context) -> int:
    view = lsmem.read_view(ctx.host.memory)
    if ctx.json:
        ctx.emit_json(lsmem.to_json(view, list_all=args.all, as_bytes=args.bytes))
    else:
        ctx.out.write(lsmem.render(view, list_all=args.all, as_bytes=args.bytes))
    return 0
