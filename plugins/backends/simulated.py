"""The ``simulated`` backend: the demo's and the tests' technician.

Removal is a real ACPI eject through :class:`memras.host.Host` (the simulated kernel
applies the kernel's rules: offline every block, or re-online and fail with EBUSY);
insertion calls the simulator's ``insert_dimm`` for the same slot. It serves the
simulator, so it sits with it above production code.
"""

from __future__ import annotations

from memras.plugins.backends.acpi import AcpiBackend

from memras.sim import actions
from memras.workflow.backends import BackendResult, Target


class SimulatedBackend(AcpiBackend):
    name = "simulated"
    needs_operator = False
    inserts = True

    def can_remove(self, target: Target) -> BackendResult:
        if not self.ctx.host.is_simulated:
            return BackendResult(False, "the simulated backend works only on a simulated root")
        return super().can_remove(target)

    def insert(self, target: Target) -> BackendResult:
        serial = f"NEW-{target.serial or target.dimm_id}"[:32]
        blocks = actions.insert_dimm(self.ctx.host.root, target.acpi_device or "",
                                     size=target.size, serial=serial, part=target.part,
                                     name=target.locator or target.label or None)
        return BackendResult(True, f"inserted a new simulated module ({serial})",
                             {"serial": serial, "blocks": list(blocks)})
