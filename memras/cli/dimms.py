"""``memras dimms``: the DIMM inventory with counters, the health engine's verdicts and
the module registry's identity of each module (a replaced module is a new DIMM), and the
replaceable units (memras.topology.units): the UNIT column names the smallest unit each
DIMM goes out with, and a units table follows with every unit's blocks, zones and DIMMs
(an ACPI memory device whose DIMMs nothing names is listed there only). CXL memdevs
follow in a table of their own: each is a unit, with its regions, DAX devices, blocks,
nodes and verdict."""

from __future__ import annotations

import argparse
from typing import Any

from memras.cli import command
from memras.cli.context import Context
from memras.cli.dimm_rows import dimm_rows, health_columns, module_text
from memras.errors import MemrasError
from memras.health.config import load_config
from memras.health.cxl import memdev_verdicts
from memras.text import format_bytes
from memras.topology.cxl import cxl_units
from memras.topology.inventory import dimm_inventory
from memras.topology.memory_map import MemoryMap, read_memory_map
from memras.topology.naming import display_names
from memras.topology.units import block_ranges, replaceable_units, smallest_unit


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
    cxl_rows = _cxl_rows(ctx, mm)
    if ctx.json:
        ctx.emit_json({"dimms": rows, "units": unit_rows, "cxl": cxl_rows,
                       "problems": ctx.host.smbios.problems})
        return 0
    if not rows and not unit_rows and not cxl_rows:
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
    if cxl_rows:  # CXL memdevs: each its own replaceable unit (memras.topology.cxl)
        ctx.print("")
        ctx.table(["MEMDEV", "HOST", "SERIAL", "SIZE", "REGION", "DAX", "BLOCKS", "NODE",
                   "VERDICT"],
                  [[c["id"], c["host"], f"{c['serial']:#x}" if c["serial"] is not None
                    else None, format_bytes(c["ram_size"] + c["pmem_size"]),
                    ",".join(c["regions"]) or None, ",".join(c["dax"]) or None,
                    block_ranges(c["block_list"]), ",".join(map(str, c["nodes"])) or None,
                    c["verdict"]] for c in cxl_rows],
                  right=("SIZE",), optional=("HOST", "SERIAL", "DAX"), flex="VERDICT")
    for problem in ctx.host.smbios.problems:
        ctx.print(f"note: {problem}")
    return 0


def _cxl_rows(ctx: Context, mm: MemoryMap) -> list[dict[str, Any]]:
    """Each CXL memdev as a unit, with its verdict (memras.health.cxl.memdev_verdicts:
    its media errors as the engine judged them and its own severity and health)."""
    units = cxl_units(ctx.host, memory_map=mm)
    if not units:
        return []
    verdicts: dict[str, Any] = {}
    try:
        with ctx.store() as store:
            verdicts = memdev_verdicts(store, [u.memdev.name for u in units],
                                       config=load_config(ctx.config))  # [classify] knobs
    except MemrasError as exc:
        print(f"memras: CXL verdicts unavailable: {exc.msg}", file=ctx.err)
    rows = []
    for u in units:
        v = verdicts.get(u.memdev.name)
        rows.append({**u.as_dict(), "verdict": str(v.state) if v else None,
                     "rules": list(v.rules) if v else [],
                     "reasons": list(v.reasons) if v else []})
    return rows
