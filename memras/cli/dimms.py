"""``memras dimms``: the DIMM inventory with counters, the health engine's verdicts and
the module registry's identity of each module (a replaced module is a new DIMM)."""

from __future__ import annotations

import argparse

from memras.cli import command
from memras.cli.context import Context
from memras.cli.dimm_rows import dimm_rows, health_columns, module_text
from memras.text import format_bytes
from memras.topology.inventory import dimm_inventory


def _args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--wide", action="store_true", help="also serial, ACPI device, mapping")


@command("dimms", "DIMM inventory: label, location, size, CE/UE, verdict")(_args)
def run(args: argparse.Namespace, ctx: Context) -> int:
    dimms = dimm_inventory(ctx.host)
    verdicts, modules = health_columns(ctx, dimms)
    rows = dimm_rows(dimms, verdicts, modules)
    if ctx.json:
        ctx.emit_json({"dimms": rows, "problems": ctx.host.smbios.problems})
        return 0
    if not rows:
        ctx.print("no DIMMs found (no EDAC, SMBIOS or ACPI memory devices under this root)")
        return 0
    # DIMM: slot locator, else EDAC label, else id (memras.topology.naming); LABEL: the
    # EDAC label, as the kernel prints it in its error lines
    headers = ["DIMM", "ID", "LABEL", "LOCATION", "SIZE", "CE", "UE", "VERDICT", "MODULE"]
    if args.wide:
        headers += ["SERIAL", "ACPI", "MAPPING"]
    table = []
    for r in rows:
        row = [r["name"], r["id"], r["label"], r["location"],
               format_bytes(r["size_bytes"]) if r["size_bytes"] else None,
               r["ce"], r["ue"], r["verdict"], module_text(r["module"])]
        if args.wide:
            row += [r["serial"], r["acpi_device"], r["mapping"]]
        table.append(row)
    ctx.table(headers, table, right=("SIZE", "CE", "UE"))
    for problem in ctx.host.smbios.problems:
        ctx.print(f"note: {problem}")
    return 0
