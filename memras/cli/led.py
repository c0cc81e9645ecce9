"""``memras led on|off [DIMM]``: the slot's locator LED through the BMC of ``[bmc]``.

Redfish lights the slot itself (its Memory resource, found by the DIMM's label or
locator); IPMI lights the chassis identify LED, the only locator its standard has, so
there the DIMM is optional and only printed. ``memras replace`` does the same at its
swap step on its own (memras.bmc.led.WORKFLOW_LED).
"""

from __future__ import annotations

import argparse

from memras.bmc.config import bmc_config
from memras.bmc.led import set_slot_led, slot_names
from memras.cli import command
from memras.cli.context import Context
from memras.config import read_config_file
from memras.errors import UsageError
from memras.text import escape


def _args(p: argparse.ArgumentParser) -> None:
    p.add_argument("state", choices=["on", "off"], help="light or clear the LED")
    p.add_argument("dimm", nargs="?",
                   help="the DIMM (label, locator, id; as `memras dimms` names it); "
                        "needed for Redfish, which lights the slot itself")


def _names(ctx: Context, text: str) -> tuple[list[str], str]:
    """The slot names to look up, and how the DIMM was found (for the output)."""
    from memras.topology.inventory import resolve_dimm

    try:
        dimm = resolve_dimm(ctx.host, text)
    except UsageError:  # not on this --root: the BMC may still know the slot by name
        return slot_names(text), "not in this host's inventory; looked up by that name"
    return slot_names(dimm.label, dimm.id, text), "inventory"


@command("led", "light or clear the DIMM slot's LED through the BMC ([bmc])")(_args)
def run(args: argparse.Namespace, ctx: Context) -> int:
    config = bmc_config(read_config_file(ctx.config))
    if config is None:
        raise UsageError("no BMC is configured",
                         hint="add a [bmc] table to memras.toml (see the user guide, "
                              "'Finding the slot: the BMC LED')")
    on = args.state == "on"
    names: list[str] = []
    found = ""
    if args.dimm:
        names, found = _names(ctx, args.dimm)
    elif config.kind == "redfish":
        raise UsageError("Redfish lights one slot: name the DIMM",
                         hint=f"memras led {args.state} P1-DIMMA1")
    result = set_slot_led(config, names, on)
    if ctx.json:
        ctx.emit_json({**result.as_dict(), "dimm": args.dimm, "names": names,
                       "found": found})
        return 0 if result.ok else 1
    ctx.print(result.detail)
    if args.dimm and result.kind == "ipmi":
        ctx.print(f"DIMM {escape(args.dimm)}: its label is how to find the slot")
    if not result.ok:
        ctx.err.write(f"memras: the BMC reports the LED {result.data.get('read_back')}, "
                      f"not {args.state}\n")
        return 1
    return 0
