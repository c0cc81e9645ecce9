"""``memras summary``: per-DIMM error counts, the way ``ras-mc-ctl --summary`` prints them.

Events are rows, as rasdaemon counts them; errors are the sum of their counts; then
totals by type. A CXL memdev's records that are not media errors (poison, health, AER,
overflow: what ``memras errors`` lists beside the errors) count one error each, under
the memdev's name (memras.store.cxl.error_summary). Without filters, on SQLite, the
counts are read with the standard ``sqlite3`` module (:mod:`memras.store.quick`): the
command is then mostly start-up, and SQLAlchemy alone would cost more than the rest.
So nothing at the top of this module may import SQLAlchemy.
"""

from __future__ import annotations

import argparse
from dataclasses import asdict

from memras.cli import command
from memras.cli.context import Context
from memras.cli.options import add_error_filters, error_filters
from memras.store.quick import read_summary


@command("summary", "per-DIMM error counts, like ras-mc-ctl --summary")(add_error_filters)
def run(args: argparse.Namespace, ctx: Context) -> int:
    filters = error_filters(args)
    summary = None if any(filters.values()) else read_summary(ctx.db)
    if summary is None:  # filtered, not SQLite, or an older schema: the generic read
        # lazy like Store (read-only; lazy in ctx): these import SQLAlchemy
        from memras.cli.dimm_rows import dimm_filter
        from memras.store.cxl import error_summary

        with ctx.store() as store:
            if args.dimm:  # any name of one DIMM
                filters["dimm"] = dimm_filter(ctx, store, args.dimm)
            summary = error_summary(store, **filters)
    if ctx.json:
        ctx.emit_json(asdict(summary))
        return 0
    if not summary.groups:
        ctx.print("No memory errors.")
        return 0
    ctx.table(["TYPE", "LABEL", "LOCATION", "EVENTS", "ERRORS"],
              [(g.type, g.label, g.location, g.events, g.errors) for g in summary.groups],
              right=["EVENTS", "ERRORS"])
    ctx.print()
    ctx.table(["TYPE", "EVENTS", "ERRORS"],
              [(t.type, t.events, t.errors) for t in summary.totals],
              right=["EVENTS", "ERRORS"])
    return 0
