"""Messages the wizard's workers post: one per engine call, plus live progress."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from textual.message import Message


@dataclass
class WizardOpened(Message):
    """The wizard looked for an interrupted replacement; ``update`` is it, or None."""

    update: Any  # WizardUpdate | None


@dataclass
class WizardAdvanced(Message):
    """An engine call returned: the new state, the snapshot and the steps performed."""

    update: Any  # memras.workflow.driver.WizardUpdate


@dataclass
class WizardStepDone(Message):
    """One workflow step finished (posted while a longer call is still running)."""

    outcome: Any  # memras.workflow.runner.StepOutcome


@dataclass
class WizardProgress(Message):
    """Blocks done so far in the running step; a newer one replaces an older one."""

    progress: Any  # memras.workflow.offline.Progress

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, WizardProgress)


@dataclass
class WizardFailed(Message):
    """An engine call raised before it could say anything else."""

    error: str
