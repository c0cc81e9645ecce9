"""``memras status``: one screen on memory totals, blocks, DIMMs with errors, open alerts."""

from __future__ import annotations

import argparse
import textwrap
from collections import Counter
from typing import Any

from memras.alerts import api as alert_api
from memras.audit.service import database_file
from memras.cli import command
from memras.cli.context import Context
from memras.cli.dimm_rows import dimm_rows, verdict_column
from memras.errors import MemrasError
from memras.text import escape, format_bytes
from memras.topology.inventory import dimm_inventory
from memras.workflow.pending import in_progress


def open_alerts(ctx: Context) -> list[dict[str, Any]] | None:
    """The open alerts; None when there is no alert store to read (no database yet)."""
    try:
        return alert_api.open_alerts(ctx.db, ctx.host)  # DIMMs by slot label
    except MemrasError:  # a missing or locked database leaves the slot empty, not the screen
        return None


def replacement_in_progress(ctx: Context) -> tuple[dict[str, Any] | None, str]:
    """The replacement in progress (memras.workflow.pending) and, when the database
    cannot say, why: "none" must never hide one that holds memory offline."""
    path = database_file(ctx.db)
    if path is not None and not path.exists():  # no database: nothing was ever started
        return None, ""
    try:
        with ctx.store() as store:
            pending = in_progress(store, ctx.host)
    except MemrasError as exc:
        return None, exc.msg
    return (pending.as_dict() if pending else None), ""


def collect(ctx: Context) -> dict[str, Any]:
    host = ctx.host
    info = host.meminfo.read()
    blocks = host.memory.all()
    size = blocks[0].size if blocks else 0
    by_zone = Counter((b.zone or ("-" if b.online else "offline"), b.state) for b in blocks)
    dimms = dimm_inventory(host) if blocks else []
    verdicts = verdict_column(ctx, dimms)
    replacement, unknown = replacement_in_progress(ctx)
    return {
        "replacement": replacement,  # the one in progress, or null
        "replacement_unknown": unknown or None,  # why the database could not say
        "memory": {
            "total_bytes": info.total, "block_size": size,
            "online_bytes": sum(b.size for b in blocks if b.online),
            "offline_bytes": sum(b.size for b in blocks if not b.online),
            "hardware_corrupted_bytes": info.hardware_corrupted,
        },
        "blocks": [{"zone": z, "state": s, "count": n, "bytes": n * size}
                   for (z, s), n in sorted(by_zone.items())],
        "dimms": dimm_rows(dimms, verdicts),
        "alerts": open_alerts(ctx),
    }


@command("status", "one-screen summary: memory, blocks, DIMMs with errors, open alerts")(
    lambda p: None)
def run(args: argparse.Namespace, ctx: Context) -> int:
    data = collect(ctx)
    if ctx.json:
        ctx.emit_json(data)
        return 0
    if data["replacement"]:  # first: it holds memory offline until someone acts
        for line in textwrap.wrap(escape(data["replacement"]["line"]), 79,
                                  subsequent_indent="  "):
            ctx.print(line)
        ctx.print("")
    elif data["replacement_unknown"]:
        ctx.print(f"replacement in progress: cannot tell ({escape(data['replacement_unknown'])})")
        ctx.print("")
    mem = data["memory"]
    ctx.print(f"memory   total {format_bytes(mem['total_bytes'])}, "
              f"online {format_bytes(mem['online_bytes'])}, "
              f"offline {format_bytes(mem['offline_bytes'])}, "
              f"HardwareCorrupted {format_bytes(mem['hardware_corrupted_bytes'])}")
    ctx.print("")
    ctx.table(["ZONE", "STATE", "BLOCKS", "SIZE"],
              [[b["zone"], b["state"], b["count"], format_bytes(b["bytes"])]
               for b in data["blocks"]], right=("BLOCKS", "SIZE"))
    ctx.print("")
    dimms = data["dimms"]
    errored = [d for d in dimms if (d["ce"] or 0) + (d["ue"] or 0) > 0]
    ctx.print(f"DIMMs    {len(dimms)} found, {len(errored)} with errors")
    if errored:
        ctx.table(["DIMM", "ID", "CE", "UE", "VERDICT"],
                  [[d["name"], d["id"], d["ce"], d["ue"], d["verdict"]] for d in errored],
                  right=("CE", "UE"))
    ctx.print("")
    alerts = data["alerts"]
    if alerts is None:
        ctx.print("alerts   not available (no alert store)")
    else:
        ctx.print(f"alerts   {len(alerts)} open")
        for alert in alerts:
            ctx.wrapped(f"  {escape(str(alert.get('title') or alert))}", hang=4)
    return 0
