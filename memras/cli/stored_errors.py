"""``memras errors``: the stored memory error events, newest last (``--since``, ``--dimm``…).

A CXL memdev's records that are not media errors (its poison list, health, AER and
overflow records: memras_cxl_event, memras.store.cxl.cxl_records) are listed among
them, by time, under the same filters: their ID reads ``cxl:N`` (another table's
ids), LOCATION the DPA, ADDRESS the HPA; ``--json`` gives ``"record": "cxl"`` and the
record's own fields under ``"cxl"`` (error rows: ``"record": "error"``).

Named ``stored_errors`` rather than after its command: ``memras.errors`` is the
exception hierarchy, and two modules called ``errors`` would be one too many to read.
Every kernel- or firmware-supplied string (labels, messages) is escaped before it is
shown.
"""

from __future__ import annotations

import argparse
from dataclasses import asdict
from datetime import datetime
from typing import Any

from memras.cli import command
from memras.cli.context import Context
from memras.cli.dimm_rows import dimm_filter, dimm_names
from memras.cli.options import add_error_filters, error_filters
from memras.errors import UsageError
from memras.records import DimmLocation
from memras.store import Store, StoredError
from memras.store.cxl import StoredCxlRecord, cxl_records

Listed = StoredError | StoredCxlRecord


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
        events = _newest(store.errors(limit=args.limit, **filters),
                         cxl_records(store, limit=args.limit, **filters), args.limit)
        shown = _dimm_names(ctx, store, events)
    if ctx.json:
        ctx.emit_json([_json(e, shown) for e in events])
        return 0
    if not events:
        ctx.print("No memory errors stored.")
        return 0
    # CLOCK: where TIME came from (records.TimeSource); "import" is when it was imported
    rows = [_row(e, shown) for e in events]
    # DIMM: the module as people name it (memras.topology.naming); LABEL: as the kernel
    # printed it
    ctx.table(["ID", "TIME", "CLOCK", "TYPE", "COUNT", "DIMM", "LABEL", "LOCATION",
               "ADDRESS", "SOURCE", "MESSAGE"], rows, right=["ID", "COUNT"],
              optional=("LABEL", "CLOCK", "SOURCE", "LOCATION", "COUNT", "ADDRESS"))
    return 0


def _newest(errors: list[StoredError], records: list[StoredCxlRecord], limit: int | None
            ) -> list[Listed]:
    """Both lists as one, oldest first (by time, errors before records at one time);
    ``limit``: its newest ``limit`` (each list holds its own newest ``limit`` already)."""
    merged: list[Listed] = sorted([*errors, *records], key=_order)
    return merged[len(merged) - limit:] if limit is not None and limit < len(merged) \
        else merged


def _order(e: Listed) -> tuple[datetime, int, int]:
    return e.time, isinstance(e, StoredCxlRecord), e.id


def _row(e: Listed, shown: dict[str, str]) -> tuple[Any, ...]:
    when = e.time.astimezone().strftime("%Y-%m-%d %H:%M:%S %z")
    if isinstance(e, StoredCxlRecord):
        ev = e.event
        return (f"cxl:{e.id}", when, e.time_source, e.type, 1, shown.get(e.dimm_id),
                ev.memdev, "-" if ev.dpa is None else f"DPA {ev.dpa:#x}", _hex(ev.hpa),
                str(ev.source), e.message)
    return (e.id, when, e.time_source or "-", e.type, e.count, shown.get(e.dimm_id or ""),
            e.label, _location(e.location), _hex(e.address), e.source, e.message)


def _hex(value: int | None) -> str | None:
    return None if value is None else f"0x{value:x}"


def _location(loc: DimmLocation) -> str:
    """mc:top:mid:low as rasdaemon prints it, -1 for unknown."""
    parts = (loc.mc, loc.top_layer, loc.middle_layer, loc.lower_layer)
    return ":".join(str(-1 if p is None else p) for p in parts)


def _dimm_names(ctx: Context, store: Store, events: list[Listed]) -> dict[str, str]:
    """DIMM id -> the name to show, for the DIMMs these events were attributed to."""
    ids = {e.dimm_id for e in events if e.dimm_id}
    if not ids:
        return {}
    names = dimm_names(ctx, store)
    return {dimm_id: names.display(dimm_id) for dimm_id in ids}


def _json(e: Listed, shown: dict[str, str]) -> dict[str, Any]:
    if isinstance(e, StoredCxlRecord):
        return _record_json(e, shown)
    data = {"record": "error", **asdict(e)}
    data["label"] = e.label
    data["dimm_name"] = shown.get(e.dimm_id) if e.dimm_id else None  # as people name it
    return data


def _record_json(e: StoredCxlRecord, shown: dict[str, str]) -> dict[str, Any]:
    """A CXL record under an error row's keys where they mean the same (``address``:
    the HPA; no EDAC location), and its own fields under ``cxl``."""
    ev = e.event
    fields = {k: v for k, v in asdict(ev).items()
              if v not in (None, "") and k not in ("source", "timestamp", "uptime_s", "raw")}
    return {"record": "cxl", "id": e.id, "time": e.time, "uptime": ev.uptime_s,
            "source": str(ev.source), "type": e.type, "count": 1, "address": ev.hpa,
            "location": None, "message": e.message, "driver": "cxl", "dimm_id": e.dimm_id,
            "raw": ev.raw, "flags": None, "time_source": e.time_source, "label": ev.memdev,
            "dimm_name": shown.get(e.dimm_id), "cxl": {**fields, "flags": e.flags}}
