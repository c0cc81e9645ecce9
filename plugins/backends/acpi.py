"""The ``acpi`` backend: eject the module's PNP0C80 device through sysfs.

Writing 1 to ``/sys/bus/acpi/devices/PNP0C80:XX/eject`` makes the kernel offline any
still-online block, remove the memory and run the firmware's ``_EJ0``
(drivers/acpi/scan.c). The write returns before that work is done (it is queued to the
ACPI hotplug workqueue), so we then wait for the kernel to report the module gone: the
blocks' ``remove`` uevents, or sysfs showing them absent or re-created as other objects
(:class:`memras.workflow.detect.ModuleWatch`, opened before the eject, so a new module
added at once into the same slot — same block numbers — is not mistaken for the old
one). The new module is inserted by a person (or the platform); insertion is detected
the same way.
"""

from __future__ import annotations

from memras.errors import MemrasError, WorkflowError
from memras.workflow.backends import Backend, BackendResult, Target
from memras.workflow.detect import ModuleWatch


class AcpiBackend(Backend):
    name = "acpi"
    needs_operator = True  # someone inserts the new module

    def can_remove(self, target: Target) -> BackendResult:
        if not target.acpi_device:
            return BackendResult(False, "no ACPI memory device (PNP0C80) covers this DIMM")
        dev = self.ctx.host.acpi.read(target.acpi_device)
        if not dev.ejectable:
            return BackendResult(False, f"{dev.name} has no eject file (not hot-removable)")
        if not dev.present:
            return BackendResult(False, f"{dev.name} is not present (status {dev.status})")
        return BackendResult(True, f"{dev.name} (slot {dev.uid}) can be ejected")

    def remove(self, target: Target) -> BackendResult:
        name = target.acpi_device or ""
        watch = self.ctx.watch or ModuleWatch(self.ctx.host, target)  # before the eject
        try:
            self.ctx.host.acpi.eject(name)
        except OSError as exc:
            raise WorkflowError(f"the kernel refused to eject {name}: {exc.strerror}",
                                hint="a block could not be offlined; the kernel re-onlined "
                                     "them (ACPI _OST busy)") from None
        except MemrasError:
            raise
        how = watch.wait_gone(timeout_s=self.ctx.timeout_s, cancel=self.ctx.cancel)
        return BackendResult(True, f"{name} ejected ({how})", {"device": name, "seen": how})

    def insert(self, target: Target) -> BackendResult:
        self.ctx.say(f"Insert the new module into slot {target.slot or '?'} "
                     f"({target.label or target.locator}); waiting for the kernel to add it…")
        return BackendResult(True, "waiting for the new module", {})
