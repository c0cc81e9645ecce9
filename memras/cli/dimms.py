"""``memras dimms``: the DIMM inventory with counters and the health engine's verdicts."""

from __future__ import annotations

import argparse
import importlib
from typing import Any

from memras.cli import command
from memras.cli.context import Context
from memras.inventory import DimmInfo
from memras.text import format_bytes

NO_VERDICT = "-"


def current_verdicts(ctx: Context, dimms: list[DimmInfo]) -> dict[str, str]:
    """DIMM id -> verdict from ``memras.health.api.current_verdicts(db_url, ids)``.

    The seam to the health engine: until that module exists (or when its database
    is not reachable) every DIMM shows "-" rather than failing the inventory.
    """
    try:
        api = importlib.import_module("memras.health.api")
    except ModuleNotFoundError:
        return {}
    fn = getattr(api, "current_verdicts", None)
    if fn is None:
        return {}
    try:
        return {str(k): str(v) for k, v in fn(ctx.db, [d.id for d in dimms]).items()}
    except Exception as exc:  # a broken store must not hide the inventory
        print(f"memras: verdicts unavailable: {exc}", file=ctx.err)
        return {}


def dimm_row(d: DimmInfo, verdicts: dict[str, str]) -> dict[str, Any]:
    return {
        "id": d.id, "label": d.label, "location": d.location, "size_bytes": d.size_bytes,
        "ce": d.ce_count, "ue": d.ue_count, "verdict": verdicts.get(d.id, NO_VERDICT),
        "locator": d.smbios.locator if d.smbios else None,
        "bank_locator": d.smbios.bank_locator if d.smbios else None,
        "serial": d.smbios.serial if d.smbios else None,
        "part_number": d.smbios.part_number if d.smbios else None,
        "manufacturer": d.smbios.manufacturer if d.smbios else None,
        "speed_mts": d.smbios.speed_mts if d.smbios else None,
        "edac": d.edac_ref, "acpi_device": d.acpi_device, "acpi_uid": d.acpi_uid,
        "blocks": list(d.blocks), "mapping": d.mapping, "mapping_reason": d.mapping_reason,
        "match": d.match,
    }


def _args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--wide", action="store_true", help="also serial, ACPI device, mapping")


@command("dimms", "DIMM inventory: label, location, size, CE/UE, verdict")(_args)
def run(args: argparse.Namespace, ctx: Context) -> int:
    from memras.inventory import dimm_inventory

    dimms = dimm_inventory(ctx.host)
    verdicts = current_verdicts(ctx, dimms)
    rows = [dimm_row(d, verdicts) for d in dimms]
    if ctx.json:
        ctx.emit_json({"dimms": rows, "problems": ctx.host.smbios.problems})
        return 0
    if not rows:
        ctx.print("no DIMMs found (no EDAC, SMBIOS or ACPI memory devices under this root)")
        return 0
    headers = ["ID", "LABEL", "LOCATION", "SIZE", "CE", "UE", "VERDICT"]
    if args.wide:
        headers += ["SERIAL", "ACPI", "MAPPING"]
    table = []
    for r in rows:
        row = [r["id"], r["label"], r["location"],
               format_bytes(r["size_bytes"]) if r["size_bytes"] else None,
               r["ce"], r["ue"], r["verdict"]]
        if args.wide:
            row += [r["serial"], r["acpi_device"], r["mapping"]]
        table.append(row)
    ctx.table(headers, table, right=("SIZE", "CE", "UE"))
    for problem in ctx.host.smbios.problems:
        ctx.print(f"note: {problem}")
    return 0
