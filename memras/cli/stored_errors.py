"""``memras errors``: the stored memory error events, newest last (``--since``, ``--dimm``…).

Named ``stored_errors`` rather than after its command: ``memras.errors`` is the
exception hierarchy, and two modules called ``errors`` would be one too many to read.
Every kernel- or firmware-supplied string (labels, messages) is escaped before it is
shown.
"""

from __future__ import annotations

import argparse
from dataclasses import asdict
from typing import Any

from memras.cli import command
from memras.cli.context import Context
from memras.cli.dimm_rows import dimm_filter, dimm_names
from memras.cli.options import add_error_filters, error_filters
from memras.errors import UsageError
from memras.records import DimmLocation
from memras.store import Store, StoredError


def _args(p: argparse.ArgumentParser) -> None:
    add_error_filters(p)
    p.add_argument("--limit", type=int, help="show only the newest N events")


@command("errors", "stored memory error events (--since, --dimm, --type)")(_args)
def run(args: argparse.Namespace, ctx: Context) -> int:
    if args.limit is not None and args.limit < 0:
        raise UsageError("--limit must be 0 or more", hint="e.g. --limit 50")
    filters = error_filters(args)
    with ctx.store() as store:
        if args.dimm:
            filters["dimm"] = dimm_filter(ctx, store, args.dimm)
        events = store.errors(limit=args.limit, **filters)
        shown = _dimm_names(ctx, store, events)
    if ctx.json:
        ctx.emit_json([_error_json(e, shown) for e in events])
        return 0
    if not events:
        ctx.print("No memory errors stored.")
        return 0
    # CLOCK: where TIME came from (records.TimeSource); "import" is when it was imported
    rows = [(e.id, e.time.astimezone().strftime("%Y-%m-%d %H:%M:%S %z"), e.time_source or "-",
             e.type, e.count, shown.get(e.dimm_id or ""), e.label, _location(e.location),
             _hex(e.address), e.source, e.message)
            for e in events]
    # DIMM: the module as people name it (memras.topology.naming); LABEL: as the kernel
    # printed it
    ctx.table(["ID", "TIME", "CLOCK", "TYPE", "COUNT", "DIMM", "LABEL", "LOCATION",
               "ADDRESS", "SOURCE", "MESSAGE"], rows, right=["ID", "COUNT"],
              optional=("LABEL", "CLOCK", "SOURCE", "LOCATION", "COUNT", "ADDRESS"))
    return 0


def _hex(value: int | None) -> str | None:
    return None if value is None else f"0x{value:x}"


def _location(loc: DimmLocation) -> str:
    """mc:top:mid:low as rasdaemon prints it, -1 for unknown."""
    parts = (loc.mc, loc.top_layer, loc.middle_layer, loc.lower_layer)
    return ":".join(str(-1 if p is None else p) for p in parts)


def _dimm_names(ctx: Context, store: Store, events: list[StoredError]) -> dict[str, str]:
    """DIMM id -> the name to show, for the DIMMs these events were attributed to."""
    ids = {e.dimm_id for e in events if e.dimm_id}
    if not ids:
        return {}
    names = dimm_names(ctx, store)
    return {dimm_id: names.display(dimm_id) for dimm_id in ids}


def _error_json(e: StoredError, shown: dict[str, str]) -> dict[str, Any]:
    data = asdict(e)
    data["label"] = e.label
    data["dimm_name"] = shown.get(e.dimm_id) if e.dimm_id else None  # as people name it
    return data
