"""The ``simulated`` backend: the demo's and the tests' technician.

Removal is a real ACPI eject through :class:`memras.host.Host` (the simulated kernel
applies the kernel's rules: offline every block, or re-online and fail with EBUSY);
insertion calls the simulator's ``insert_dimm`` for the same slot. A CXL memdev goes
through the ``cxl`` backend's steps (teardown, slot power-off, bring-up) with the
simulator's ``insert_cxl_memdev`` as the technician. It serves the simulator, so it
sits with it above production code.
"""

from __future__ import annotations

from typing import Any

from memras.plugins.backends.acpi import AcpiBackend
from memras.plugins.backends.cxl import CxlBackend, next_serial

from memras.sim import actions
from memras.sim.cxl import insert_cxl_memdev
from memras.workflow.backends import BackendContext, BackendResult, Target


class SimulatedCxl(CxlBackend):
    """The cxl backend with the simulator inserting the new device (a new serial)."""

    def technician(self, cx: dict[str, Any]) -> str | None:
        serial = next_serial(cx)
        insert_cxl_memdev(self.ctx.host.root, cx["host"], serial=serial,
                          size=int(cx.get("ram_size") or 0))
        return f"simulated device, sn {serial:#x}"


class SimulatedBackend(AcpiBackend):
    name = "simulated"
    needs_operator = False
    inserts = True

    def __init__(self, ctx: BackendContext) -> None:
        super().__init__(ctx)
        self.cxl = SimulatedCxl(ctx)

    def can_remove(self, target: Target) -> BackendResult:
        if not self.ctx.host.is_simulated:
            return BackendResult(False, "the simulated backend works only on a simulated root")
        if target.cxl:
            return self.cxl.can_remove(target)
        return super().can_remove(target)

    def remove(self, target: Target) -> BackendResult:
        return self.cxl.remove(target) if target.cxl else super().remove(target)

    def insert(self, target: Target) -> BackendResult:
        if target.cxl:
            return self.cxl.insert(target)
        serial = f"NEW-{target.serial or target.dimm_id}"[:32]
        blocks = actions.insert_dimm(self.ctx.host.root, target.acpi_device or "",
                                     size=target.size, serial=serial, part=target.part,
                                     name=target.locator or target.label or None)
        return BackendResult(True, f"inserted a new simulated module ({serial})",
                             {"serial": serial, "blocks": list(blocks)})
