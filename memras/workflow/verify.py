"""Verification after the new module is online, and the EDAC baseline.

Checks: every new block online in ZONE_MOVABLE; MemTotal back to at least its value
before removal; the new module is not the old one (its blocks are other kernel objects
than the old module's, its ACPI device is present in the same slot); the new module's
identity (SMBIOS serial/part) recorded, and a warning if it still reports the old
serial. The serial the module registry files the new module under
(:func:`module_serial`) is SMBIOS's when it changed, else the one the backend
reported when it inserted the module (SMBIOS is built at boot; many platforms never
re-read a hot-replaced slot). EDAC: the error counters of the memory controller
are recorded as the new baseline. They are reset only when no *other* DIMM on that
controller has errors — resetting ``mcN/reset_counters`` zeroes every DIMM on the
controller, so doing it with another DIMM's errors present would erase evidence.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from memras.health.module_registry import real_serial
from memras.host import Host
from memras.text import format_bytes
from memras.topology.inventory import resolve_dimm
from memras.workflow.backends import Target
from memras.workflow.detect import block_ids
from memras.workflow.preflight import Check


@dataclass
class VerifyReport:
    checks: list[Check] = field(default_factory=list)
    identity: dict[str, Any] = field(default_factory=dict)
    edac: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    def as_dict(self) -> dict[str, Any]:
        return {"checks": [c.as_dict() for c in self.checks], "identity": self.identity,
                "edac": self.edac, "ok": self.ok}


def check_new_blocks(host: Host, blocks: list[int]) -> Check:
    if not blocks:
        return Check("new blocks", False, "no memory blocks of the new module are present")
    bad = []
    for index in blocks:
        b = host.memory.read(index)
        if b.state != "online" or b.zone != "Movable":
            bad.append(f"memory{index} {b.state} {b.zone or '-'}")
    if bad:
        return Check("new blocks", False, "not online Movable: " + ", ".join(bad))
    return Check("new blocks", True, f"{len(blocks)} blocks online in ZONE_MOVABLE")


def check_module_identity(host: Host, target: Target, new_blocks: list[int]) -> Check:
    """The module online now is not the old one: none of its blocks is an old block
    object (same number, same sysfs inode), and the unit's ACPI device is present with
    the slot (``_UID``) the old module had."""
    old = {b: i for b, i in zip(target.blocks, target.block_ids, strict=False) if i}
    now = dict(zip(new_blocks, block_ids(host, new_blocks), strict=True))
    same = [b for b, i in now.items() if i and old.get(b) == i]
    if same:
        return Check("module identity", False,
                     f"memory{same[0]} is still the old module's block (same kernel "
                     "object): the old module was never removed")
    parts = [f"blocks {_span(new_blocks)} are new kernel objects" if old else
             f"blocks {_span(new_blocks)} (old block identities not recorded)"]
    if target.acpi_device:
        try:
            dev = host.acpi.read(target.acpi_device)
        except Exception as exc:  # the device is the unit's; unreadable is a failure
            return Check("module identity", False,
                         f"{target.acpi_device} unreadable ({type(exc).__name__})")
        if not dev.present:
            return Check("module identity", False,
                         f"{dev.name} is not present (status {dev.status})")
        if target.slot and dev.uid and dev.uid != target.slot:
            return Check("module identity", False,
                         f"{dev.name} is in slot {dev.uid}, the old module was in "
                         f"slot {target.slot}")
        parts.append(f"{dev.name} present in slot {dev.uid or '?'}"
                     + (f" ({dev.path})" if dev.path else ""))
    return Check("module identity", True, "; ".join(parts))


def _span(blocks: list[int]) -> str:
    if not blocks:
        return "(none)"
    lo, hi = min(blocks), max(blocks)
    return f"memory{lo}" if lo == hi else f"memory{lo}-{hi}"


def check_mem_total(host: Host, before: int) -> Check:
    now = host.meminfo.read().total
    detail = f"MemTotal {format_bytes(now)} (before removal {format_bytes(before)})"
    return Check("MemTotal", now >= before, detail)


def new_identity(host: Host, target_locator: str, old_serial: str) -> tuple[dict[str, Any], Check]:
    """The new module's SMBIOS identity when the platform shows it."""
    try:
        # Host keeps the SMBIOS it read first (the tables are built at boot); a fresh
        # reader sees a platform that refreshed the slot's entry after the swap.
        dimm = resolve_dimm(Host(host.root) if isinstance(host, Host) else host,
                            target_locator)
        dev = dimm.smbios
        ident = {"id": dimm.id, "label": dimm.label, "locator": dev.locator if dev else "",
                 "serial": dev.serial if dev else "", "part": dev.part_number if dev else "",
                 "manufacturer": dev.manufacturer if dev else ""}
    except Exception as exc:  # identity is recorded when known; its absence is no failure
        return {}, Check("identity", True, f"not available ({type(exc).__name__})")
    if ident["serial"] and ident["serial"] == old_serial:
        return ident, Check("identity", True,
                            f"serial {ident['serial']} unchanged: firmware may not have "
                            "re-read the slot (recorded as is)")
    return ident, Check("identity", True,
                        f"serial {ident['serial'] or '?'} part {ident['part'] or '?'}")


def module_serial(ident: dict[str, Any], old_serial: str,
                  backend_serial: str) -> tuple[str, str]:
    """(serial, source) of the new module: "smbios", "backend" or "none" (no serial)."""
    smbios = real_serial(ident.get("serial"))
    if smbios and smbios != real_serial(old_serial):
        return smbios, "smbios"
    backend = real_serial(backend_serial)
    return (backend, "backend") if backend else ("", "none")


def edac_baseline(host: Host, label: str, *, reset_allowed: bool,
                  before_reset: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Record (and where safe reset) the counters of the controller holding ``label``;
    ``before_reset(mc)`` runs just before the reset (the watcher's own-reset mark)."""
    try:
        controllers = host.edac.controllers()
    except Exception as exc:
        return {"note": f"EDAC not readable: {exc}"}
    for mc in controllers:
        mine = [d for d in mc.dimms if d.label == label]
        if not mine:
            continue
        others = [d for d in mc.dimms if d.label != label and (d.ce_count or d.ue_count)]
        base = {"mc": mc.index, "ce": mine[0].ce_count, "ue": mine[0].ue_count,
                "others_with_errors": [d.label for d in others], "reset": False}
        if reset_allowed and not others:
            try:
                if before_reset is not None:
                    before_reset(mc.index)
                host.edac.reset_counters(mc.index)
                base["reset"] = True
            except (OSError, Exception) as exc:
                base["note"] = f"reset failed: {exc}"
        return base
    return {"note": "no EDAC DIMM with this label (no baseline)"}
