"""``memras dimms``: the DIMM inventory with counters, the health engine's verdicts and
the module registry's identity of each module (a replaced module is a new DIMM), and the
replaceable units (memras.topology.units): the UNIT column names the smallest unit each
DIMM goes out with, and a units table follows with every unit's blocks, zones and DIMMs
(an ACPI memory device whose DIMMs nothing names is listed there only)."""

from __future__ import annotations

import argparse

from memras.cli import command
from memras.cli.context import Context
from memras.cli.dimm_rows import dimm_rows, health_columns, module_text
from memras.text import format_bytes
from memras.topology.inventory import dimm_inventory
from memras.topology.memory_map import read_memory_map
from memras.topology.naming import display_names
from memras.topology.units import replaceable_units, smallest_unit


def _args(p: argparse.ArgumentParser) -> None:
    """--wide (also serial, ACPI device, mapping) is the global option (memras.cli)."""


@command("dimms", "DIMM inventory: label, location, size, CE/UE, verdict, replaceable unit")(
    _args)
def run(args: argparse.Namespace, ctx: Context) -> int:
    mm = read_memory_map(ctx.host)
    dimms = dimm_inventory(ctx.host, memory_map=mm)
    units = replaceable_units(mm, dimms)
    verdicts, modules = health_columns(ctx, dimms)
    rows = dimm_rows(dimms, verdicts, modules)
    names = display_names(dimms)
    for r in rows:
        unit = smallest_unit(units, r["id"])
        r["unit"] = unit.id if unit else None
    unit_rows = [{**u.as_dict(), "dimm_names": [names.get(i, i) for i in u.dimms]}
                 for u in units]
    if ctx.json:
        ctx.emit_json({"dimms": rows, "units": unit_rows,
                       "problems": ctx.host.smbios.problems})
        return 0
    if not rows and not unit_rows:
        ctx.print("no DIMMs found (no EDAC, SMBIOS or ACPI memory devices under this root)")
        return 0
    # DIMM: slot locator, else EDAC label, else id (memras.topology.naming); LABEL: the
    # EDAC label, as the kernel prints it in its error lines
    headers = ["DIMM", "ID", "LABEL", "LOCATION", "SIZE", "CE", "UE", "VERDICT", "MODULE",
               "UNIT"]
    if getattr(args, "wide", False):
        headers += ["SERIAL", "ACPI", "MAPPING"]
    table = []
    for r in rows:
        row = [r["name"], r["id"], r["label"], r["location"],
               format_bytes(r["size_bytes"]) if r["size_bytes"] else None,
               r["ce"], r["ue"], r["verdict"], module_text(r["module"]), r["unit"]]
        if getattr(args, "wide", False):
            row += [r["serial"], r["acpi_device"], r["mapping"]]
        table.append(row)
    if rows:
        ctx.table(headers, table, right=("SIZE", "CE", "UE"),
                  optional=("LOCATION", "MODULE", "UNIT"), flex="VERDICT")
    if unit_rows:  # what can come out at once, and what goes with it
        ctx.print("")
        ctx.table(["UNIT", "KIND", "BLOCKS", "ZONE", "SIZE", "DIMMS"],
                  [[u["id"], u["kind"] + ("" if u["ejectable"] else " (no ACPI device)"),
                    u["blocks"], "/".join(u["zones"]) or None, format_bytes(u["size_bytes"]),
                    ", ".join(u["dimm_names"]) or "unknown"] for u in unit_rows],
                  right=("SIZE",))
    for problem in ctx.host.smbios.problems:
        ctx.print(f"note: {problem}")
    return 0
