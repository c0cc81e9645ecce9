"""``memras blocks``: memory blocks with the columns and values of util-linux lsmem.

Prints what ``lsmem -o RANGE,SIZE,STATE,REMOVABLE,BLOCK,NODE,ZONES`` prints
(``--all`` as ``lsmem -a``, ``--bytes`` as ``-b``, ``--json`` as ``-J``); the
rendering lives in :mod:`memras.topology.lsmem` so the TUI shows the same rows.

lsmem pads RANGE's addresses to 16 hex digits, which makes its table 81 columns wide.
When that layout does not fit the output's width (80 on a pipe, see
memras.cli.render.output_width) the addresses are padded only to the digits the
highest address needs (``0x100000000-0x4ffffffff``): the same rows, columns and
values, still aligned. ``--wide`` prints lsmem's layout byte for byte.
"""

from __future__ import annotations

import argparse

from rich.cells import cell_len

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
        return 0
    text = lsmem.render(view, list_all=args.all, as_bytes=args.bytes)
    if not ctx.wide and max(map(cell_len, text.splitlines())) > ctx.width:
        text = lsmem.render(view, list_all=args.all, as_bytes=args.bytes,
                            digits=lsmem.range_digits(view))
    ctx.out.write(text)
    return 0
