"""The slot's locator LED, through whichever BMC ``[bmc]`` names.

Steps as data, as the workflow's: the LED has two states and the replacement moves
it at fixed steps (:data:`WORKFLOW_LED`):

==================  =====  ===============================================
workflow step       LED    why
==================  =====  ===============================================
remove_module       on     "pull this module": the engineer finds the slot
verify              off    the new module is in and checked
rollback            off    nothing is to be pulled any more
online_new          off    stopped after the swap; nothing to pull
==================  =====  ===============================================

A BMC that fails never fails a replacement: :func:`workflow_led` returns what
happened (lit, cleared, or the warning) for the step's audit row and the operator's
screen, and raises nothing. ``memras led`` (:func:`set_slot_led`) is the same call
with errors raised, since there the LED is the whole job.

Which LED: Redfish lights the slot itself (the Memory resource's
``LocationIndicatorActive``); IPMI has only the chassis identify LED in its standard
(a DIMM's own fault LED is an OEM raw command per vendor, not sent: see
:mod:`memras.bmc.ipmi`), so the result says "chassis" and the engineer still reads
the slot label memras prints.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from memras.bmc.config import BmcConfig, bmc_config
from memras.config import read_config_file
from memras.errors import MemrasError
from memras.text import escape

WORKFLOW_LED: dict[str, bool] = {"remove_module": True, "verify": False,
                                 "rollback": False, "online_new": False}


@dataclass
class LedResult:
    ok: bool
    on: bool
    kind: str  # "ipmi" | "redfish"
    led: str  # "chassis identify" | the Memory resource's URI
    slot: str  # the name the slot was looked up by ("" for the chassis LED)
    detail: str
    data: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def slot_names(*names: str | None) -> list[str]:
    """The slot's names, first the most specific, without blanks or repeats."""
    out: list[str] = []
    for name in names:
        if name and name.strip() and name.strip() not in out:
            out.append(name.strip())
    return out


def set_slot_led(config: BmcConfig, names: Iterable[str], on: bool) -> LedResult:
    """Light (``on``) or clear the slot's LED; raises BmcError/Refused on failure."""
    names = list(names)
    state = "on" if on else "off"
    if config.kind == "redfish":
        from memras.bmc.redfish import RedfishClient

        with RedfishClient(config) as client:
            slot = client.find_slot(names)
            write = client.set_led(slot, on)
        ok = write.read_back is on
        shown = slot.names[0] if slot.names else slot.uri
        detail = (f"slot {escape(shown)} LED {state} ({config.describe()}, "
                  f"read back {write.read_back})")
        return LedResult(ok, on, "redfish", slot.uri, shown, detail,
                         {"sent": write.sent, "read_back": write.read_back,
                          "status": write.status})
    from memras.bmc.ipmi import Ipmitool

    result = Ipmitool(config).identify(on)
    detail = (f"chassis identify LED {state} ({config.describe()}); IPMI has no standard "
              "per-slot LED: find the slot by its label")
    return LedResult(True, on, "ipmi", "chassis identify", "", detail,
                     {"argv": list(result.argv), "answer": result.stdout.strip()})


def workflow_led(config_path: str | None, step: str, names: Iterable[str]
                 ) -> dict[str, Any] | None:
    """The LED move of ``step`` (WORKFLOW_LED), for the step's audit data: None when no
    BMC is configured (or ``led = false``) or the step moves no LED; otherwise
    ``{"ok": True, …}`` or ``{"ok": False, "warning": …}``. Never raises."""
    if step not in WORKFLOW_LED:
        return None
    on = WORKFLOW_LED[step]
    try:
        config = bmc_config(read_config_file(config_path))
    except MemrasError as exc:
        return {"ok": False, "on": on, "warning": f"[bmc] config: {exc.msg}"}
    if config is None or not config.led:
        return None
    try:
        result = set_slot_led(config, names, on)
    except MemrasError as exc:
        hint = f" ({exc.hint})" if exc.hint else ""
        return {"ok": False, "on": on, "warning": f"slot LED not turned "
                f"{'on' if on else 'off'}: {exc.msg}{hint}"}
    except Exception as exc:  # a BMC must never fail a replacement  # noqa: BLE001
        return {"ok": False, "on": on,
                "warning": f"slot LED: {type(exc).__name__}: {escape(str(exc))}"}
    out = result.as_dict()
    if not result.ok:
        out["warning"] = f"the BMC reports the LED {result.data.get('read_back')}, " \
                         f"not {'on' if on else 'off'}"
    return out


__all__ = ["WORKFLOW_LED", "LedResult", "set_slot_led", "slot_names", "workflow_led"]
