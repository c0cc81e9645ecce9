"""``memras labels [show|register]``: DIMM labels from rasdaemon/edac-utils label files.

Reads rasdaemon's (/etc/ras/dimm_labels.db, dimm_labels.d/) and edac-utils'
(/etc/edac/labels.db) label files, keeps the entries for this board (or
``--mainboard VENDOR:MODEL``) and shows them beside the current EDAC labels;
``register`` writes them, as ``ras-mc-ctl --register-labels`` does (see
:mod:`memras.health.labels`). Exit 1 when a label could not be written.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from memras.cli import command
from memras.cli.context import Context
from memras.health import labels as L
from memras.topology.inventory import dimm_inventory
from memras.topology.naming import display_names


def _args(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", choices=["show", "register"], nargs="?", default="show")
    p.add_argument("--labeldb", type=Path, help="rasdaemon label file (/etc/ras/dimm_labels.db)")
    p.add_argument("--labels-dir", type=Path, help="rasdaemon label dir (/etc/ras/dimm_labels.d)")
    p.add_argument("--edac-labeldb", type=Path, help="edac-utils labels.db (/etc/edac/labels.db)")
    p.add_argument("--mainboard", help="VENDOR:MODEL instead of /sys/class/dmi/id")


@command("labels", "DIMM labels from rasdaemon/edac-utils label files: show or register")(
    _args)
def run(args: argparse.Namespace, ctx: Context) -> int:
    boards = []
    files, explicit = L.label_files(args.labeldb, args.labels_dir, L.RASDAEMON_LABEL_DB,
                                    L.RASDAEMON_LABEL_DIR)
    boards += L.read_label_files(files, L.Flavour.RASDAEMON, explicit=explicit)
    edac_files, edac_explicit = L.label_files(
        args.edac_labeldb, None, L.EDAC_UTILS_LABEL_DB,
        L.EDAC_UTILS_LABEL_DIR) if args.edac_labeldb or not explicit else ([], False)
    boards += L.read_label_files(edac_files, L.Flavour.EDAC_UTILS, explicit=edac_explicit)
    host = ctx.writable_host() if args.action == "register" else ctx.host
    board = L.read_board(host, args.mainboard)
    plan = L.plan_labels(host, L.matching_boards(boards, board))
    results = L.register_labels(host, plan) if args.action == "register" else \
        [(p, p.status) for p in plan]
    # the module each EDAC node is, by the name people use (memras.topology.naming)
    shown = display_names(dimm_inventory(host)) if plan else {}
    if ctx.json:
        ctx.emit_json({"board": {"vendor": board.vendor, "model": board.model,
                                 "product": board.product},
                       "labels": [{**p.to_dict(), "dimm_name": shown.get(p.node or ""),
                                   "result": r} for p, r in results]})
    elif not plan:
        ctx.print(f"no labels for board {board.vendor!r} {board.model!r} in "
                  f"{len(files) + len(edac_files)} label file(s)")
    else:
        ctx.table(["LABEL", "LOCATION", "NODE", "DIMM", "CURRENT", "RESULT"],
                  [(p.label, p.target, p.node or "missing", shown.get(p.node or ""), p.current, r)
                   for p, r in results])
    failed = [r for _, r in results if r not in ("written", "same", "change", "missing")]
    return 1 if failed else 0
