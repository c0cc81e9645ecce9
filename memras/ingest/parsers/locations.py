"""DIMM location from the text the kernel attaches to a memory error.

One decoder for every form, so the trace, kernel-log, rasdaemon-row and GHES parsers
agree on what a field means:

- EDAC labels: driver defaults ``CPU_SrcID#%u_MC#%u_Chan#%u_DIMM#%u`` (skx/i10nm,
  skx_common.c), ``CPU_SrcID#%u_Ha#%u_Chan#%u_DIMM#%u`` (sb_edac.c) and the generic
  ``mc#%u<layer>#%u…`` (edac_mc.c ``edac_mc_alloc``); several labels joined with
  " or " (edac_mc.c) decode to nothing — the fault is not located to one DIMM.
- ``key:value`` detail text: the EDAC location (``channel:2 slot:0``, ``csrow:1
  channel:0``), skx/i10nm driver details (``socket:0 imc:0 rank:0 bg:0 ba:3 row:dad3
  col:3c0``, ≥6.1 ``ProcessorSocketId:0x0 … BankGroup:0x5``, ADXL ``ChannelId:0x0
  DimmSlotId:0x1``), sb_edac (``socket:0 ha:0 channel_mask:4 rank:0``), amd64_edac
  (``Cs: 0x0 Bank Grp: 0x0 Bank Addr: 0x1f Row: 0x27f Column: 0x7e0``) and the CPER
  location of drivers/firmware/efi/cper.c ``cper_mem_err_location`` (``node:6 card:1
  … column:560``; ``node: 6`` before ~5.18).

Keys whose meaning is not a DimmLocation field (imc, ha: a per-socket controller;
card, module, ChipSelect) stay in ``driver_detail`` only: never guessed into a field.
The CPER ``node`` is the socket on every platform memras knows (cper.c prints the
SMBIOS memory-array node); it is recorded as the socket.
"""

from __future__ import annotations

import re
from typing import Any

from memras.ingest.parsers._common import any_int, hex_int
from memras.records import DimmLocation

_SKX_LABEL = re.compile(r"CPU_SrcID#(\d+)_(?:MC|Ha)#\d+_Chan#(\d+)_DIMM#(\d+)")
_GENERIC_LABEL_LAYER = re.compile(r"(csrow|channel|slot|branch|memory)#(\d+)")

# key:value with an optional space after the colon; the value must end the token
# (so "err_code:0x0080:0x0090" yields nothing, and "DIMM location:N0" is no number).
_PAIR = re.compile(
    r"(?<![\w#])([A-Za-z][A-Za-z_]*(?: [A-Z][a-z]+)?):\s?(0x[0-9a-fA-F]+|-?[0-9a-fA-F]+)(?![\w:#])"
)

# normalized key -> DimmLocation field
_FIELD_OF_KEY = {
    "socket": "socket",
    "processorsocketid": "socket",
    "node": "socket",
    "channel": "channel",
    "channelid": "channel",
    "slot": "slot",
    "dimmslotid": "slot",
    "csrow": "csrow",
    "rank": "rank",
    "physicalrankid": "rank",
    "bg": "bank_group",
    "bankgroup": "bank_group",
    "bank grp": "bank_group",
    "bank_group": "bank_group",
    "ba": "bank",
    "bank": "bank",
    "bank addr": "bank",
    "bank_address": "bank",
    "row": "row",
    "col": "column",
    "column": "column",
    "device": "device",
}
_BARE_HEX_KEYS = frozenset({"row", "col"})  # old skx_edac prints row:%x col:%x


def location_from_label(label: str | None) -> DimmLocation:
    """Socket/channel/slot or csrow/channel a driver's default label encodes."""
    if not label or " or " in label:
        return DimmLocation(label=label or None)
    m = _SKX_LABEL.search(label)
    if m:
        return DimmLocation(socket=int(m[1]), channel=int(m[2]), slot=int(m[3]), label=label)
    if label.startswith("mc#"):
        layers = {name: int(num) for name, num in _GENERIC_LABEL_LAYER.findall(label)}
        return DimmLocation(
            csrow=layers.get("csrow"),
            channel=layers.get("channel"),
            slot=layers.get("slot"),
            label=label,
        )
    return DimmLocation(label=label)


def location_from_pairs(text: str) -> DimmLocation:
    """DimmLocation fields named by ``key:value`` pairs; first occurrence wins."""
    if not text:
        return DimmLocation()
    bare_hex = "imc:" in text  # the old skx_edac detail, whose row/col are bare hex
    values: dict[str, Any] = {}  # ints only; Any because DimmLocation also has str fields
    for key, raw in _PAIR.findall(text):
        norm = key.lower()
        name = _FIELD_OF_KEY.get(norm)
        if name is None or name in values:
            continue
        number = hex_int(raw) if bare_hex and norm in _BARE_HEX_KEYS else any_int(raw)
        if number is not None and number >= 0:
            values[name] = number
    return DimmLocation(**values)


# edac_layer_name[] in drivers/edac/edac_mc.c: the names the generic EDAC line prints
# for each layer, in layer order ("channel:2 slot:0", "csrow:1 channel:0").
_EDAC_LAYER_NAMES = ("branch", "channel", "slot", "csrow", "memory")
_LAYER_PAIR = re.compile(r"(\w+):(-?\d+)")


def layers_from_edac_location(text: str | None) -> DimmLocation:
    """top/middle/lower layer numbers from the EDAC line's location, as mc_event has them.

    The trace event carries ``location:top:mid:low``; the kernel-log line prints the
    same layers by name. Recovering them keeps a DIMM's rows together in rasdaemon's
    tables whichever source reported the error. Text that is not pure layer pairs
    (ghes_edac prints node/card/module…) gives no layers.
    """
    pairs = _LAYER_PAIR.findall(text or "")
    if not pairs or len(pairs) > 3 or any(name not in _EDAC_LAYER_NAMES for name, _ in pairs):
        return DimmLocation()
    values = [int(v) for _, v in pairs] + [None, None]
    return DimmLocation(top_layer=values[0], middle_layer=values[1], lower_layer=values[2])
