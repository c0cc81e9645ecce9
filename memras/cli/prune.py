"""``memras prune``: delete stored errors older than ``[store] keep`` (or ``--keep``).

The rows an open verdict or a replacement needs are kept however old (see
:mod:`memras.store.retention`, which says why); the rest goes in small batches, each its
own short transaction, so a running watcher keeps storing events meanwhile.
``--dry-run`` counts what would go and changes nothing. ``memras watch`` runs the same
pruning by itself every hour when ``[store] keep`` is set.
"""

from __future__ import annotations

import argparse

from memras.cli import command
from memras.cli.context import Context
from memras.config import read_config_file
from memras.errors import UsageError


def _configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--keep", metavar="DURATION",
                   help='keep errors this long, e.g. 400d (default: [store] keep of --config)')
    p.add_argument("--dry-run", action="store_true",
                   help="count what would be deleted; change nothing")


@command("prune", "delete stored errors older than [store] keep (not what an open verdict "
                  "or a replacement needs)")(_configure)
def run(args: argparse.Namespace, ctx: Context) -> int:
    from memras.store import Store  # here: SQLAlchemy
    from memras.store.retention import keep_from_config, prune

    if args.keep is not None:
        keep_s = keep_from_config({"keep": args.keep})
    else:
        keep_s = keep_from_config(read_config_file(ctx.config).section("store"))
    if keep_s is None:
        raise UsageError("no retention period: [store] keep is not set",
                         hint='set keep = "400d" in the [store] table of --config, '
                              "or pass --keep 400d")
    with Store.open(ctx.db, create=False) as store:
        result = prune(store, keep_s, dry_run=args.dry_run)
    if ctx.json:
        ctx.emit_json(result.as_dict())
        return 0
    verb = "would delete" if args.dry_run else "deleted"
    kept = result.kept_open_verdict + result.kept_replacement
    ctx.print(f"{verb} {result.deleted} of {result.old} stored errors older than "
              f"{result.cutoff.isoformat(' ', 'seconds')} UTC; kept {kept} "
              f"({result.kept_open_verdict} for open verdicts, {result.kept_replacement} "
              f"for replacements)"
              + ("" if args.dry_run else f"; {result.mirror_deleted} rasdaemon-format rows "
                 f"deleted with them"))
    return 0
