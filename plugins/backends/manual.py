"""The ``manual`` backend: a person pulls and inserts the module on a hot-swap riser.

memras tells the operator exactly what to pull (slot, label, SMBIOS locator, serial)
and waits for the kernel to report the module gone, then a new one added; nothing is
written by this backend.
"""

from __future__ import annotations

from memras.text import escape
from memras.workflow.backends import Backend, BackendResult, Target
from memras.workflow.detect import ModuleWatch


class ManualBackend(Backend):
    name = "manual"
    needs_operator = True

    def can_remove(self, target: Target) -> BackendResult:
        return BackendResult(True, "an operator removes the module by hand")

    def remove(self, target: Target) -> BackendResult:
        watch = self.ctx.watch or ModuleWatch(self.ctx.host, target)
        self.ctx.say(
            f"Pull the module now: slot {escape(target.slot or '?')}, label "
            f"{escape(target.label)}, locator {escape(target.locator) or '?'}, serial "
            f"{escape(target.serial) or '?'}. Waiting for the kernel to report it gone…")
        how = watch.wait_gone(timeout_s=self.ctx.timeout_s, cancel=self.ctx.cancel)
        return BackendResult(True, f"the kernel reports the module removed ({how})",
                             {"seen": how})

    def insert(self, target: Target) -> BackendResult:
        self.ctx.say(f"Insert the new module into the same slot ({escape(target.label)}); "
                     "waiting for the kernel to add it…")
        return BackendResult(True, "waiting for the new module")
