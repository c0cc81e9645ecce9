"""``memras locate ADDR`` and ``memras locate --dimm DIMM``: the locator on the command line."""

from __future__ import annotations

import argparse
import dataclasses

from memras.cli import command
from memras.cli.context import Context
from memras.errors import UsageError
from memras.text import escape
from memras.topology.cxl import locate_cxl
from memras.topology.inventory import dimm_inventory, resolve_dimm
from memras.topology.locate import locate
from memras.topology.naming import display_names, wide_name


def parse_address(text: str) -> int:
    """``0x100201000`` or ``4297068544``; anything else is a UsageError."""
    try:
        value = int(text, 16) if text.lower().startswith("0x") else int(text, 10)
    except ValueError:
        value = -1
    if value < 0:
        raise UsageError(f"{text!r} is not an address (give hex like 0x100201000 or decimal)")
    return value


def _args(p: argparse.ArgumentParser) -> None:
    p.add_argument("address", nargs="?", help="physical address, hex (0x…) or decimal")
    p.add_argument("--dimm", help="reverse: the blocks a DIMM backs (label, locator, id…)")


@command("locate", "address → page, block, node, zone, ACPI device, DIMM, CXL memdev")(_args)
def run(args: argparse.Namespace, ctx: Context) -> int:
    if args.dimm is not None:
        return _reverse(ctx, args.dimm)
    if args.address is None:
        raise UsageError("give an address or --dimm DIMM", hint="e.g. memras locate 0x100201000")
    address = parse_address(args.address)
    loc = locate(ctx.host, address)
    cxl = locate_cxl(ctx.host, address)  # None unless a CXL region maps it
    if ctx.json:
        ctx.emit_json({**dataclasses.asdict(loc), "cxl": cxl.as_dict() if cxl else None})
        return 0
    state = loc.block_state or "absent"
    rows = [
        ("address", f"{loc.address:#x}"),
        ("page (PFN)", f"{loc.pfn:#x}"),
        ("block", f"memory{loc.block} [{loc.block_start:#x}-{loc.block_end:#x}] {state}"),
        ("node", loc.node), ("zone", loc.zone or " ".join(loc.valid_zones) or None),
        ("ACPI device", f"{loc.acpi_device} (uid {loc.acpi_uid})" if loc.acpi_device else None),
        ("DIMM", ", ".join(c.name for c in loc.candidates) or None),
        ("mapping", f"{loc.status}: {loc.reason}"),
    ]
    if cxl is not None:
        rows += [
            ("CXL memdev", f"{cxl.memdev or '?'} ({cxl.host or '?'}"
             + (f", serial {cxl.serial:#x})" if cxl.serial is not None else ")")),
            ("DPA", f"{cxl.dpa:#x}" if cxl.dpa is not None else None),
            ("region", f"{cxl.region} (interleave position {cxl.position})"),
            ("DAX device", cxl.dax),
        ]
    for name, value in rows:
        ctx.print(f"{name:<12} {escape(str(value)) if value is not None else '-'}")
    return 0


def _reverse(ctx: Context, text: str) -> int:
    dimms = dimm_inventory(ctx.host)
    dimm = resolve_dimm(ctx.host, text, inventory=dimms)
    name = display_names(dimms)[dimm.id]
    if ctx.json:
        ctx.emit_json({"dimm": dimm.id, "name": name, "label": dimm.label,
                       "status": dimm.mapping,
                       "blocks": list(dimm.blocks), "acpi_device": dimm.acpi_device,
                       "reason": dimm.mapping_reason})
        return 0
    blocks = f"{dimm.blocks[0]}-{dimm.blocks[-1]} ({len(dimm.blocks)})" if dimm.blocks else "-"
    ctx.print(f"DIMM         {escape(wide_name(dimm, name))}")
    ctx.print(f"mapping      {dimm.mapping}: {escape(dimm.mapping_reason)}")
    ctx.print(f"blocks       {blocks}")
    ctx.print(f"ACPI device  {dimm.acpi_device or '-'}")
    return 0
