"""Errors memras raises, each with a one-line message that says what to do.

    MemrasError                 title + msg, shown as one line by the CLI and TUI
     ├── UsageError             bad argument or input from the user (exit 2)
     ├── KernelInterfaceError   a sysfs/procfs/tracefs file could not be read or written
     │    └── NotPermitted      a write refused by memras's own safety rules
     ├── ParseError             text that is not what the parser expected
     ├── StoreError             the database could not be opened, read or written
     ├── HookError              an alert plugin failed
     ├── WorkflowError          a replacement step refused or failed
     ├── QemuError              QEMU's monitor (QMP) could not be reached or refused a command
     └── LabError               the QEMU lab could not be set up or driven

OSError and SQLAlchemyError are translated where they occur, so that a caller
never has to know which library a failure came from.
"""

from __future__ import annotations


class MemrasError(Exception):
    """Base class. ``title`` is a short heading, ``msg`` the full sentence."""

    title = "memras error"
    exit_code = 1

    def __init__(self, msg: str, *, hint: str | None = None) -> None:
        self.msg = msg
        self.hint = hint
        super().__init__(msg if hint is None else f"{msg}; {hint}")


class UsageError(MemrasError):
    title = "Invalid input"
    exit_code = 2


class KernelInterfaceError(MemrasError):
    title = "Kernel interface error"


class NotPermitted(KernelInterfaceError):
    title = "Not permitted"


class ParseError(MemrasError):
    title = "Parse error"


class StoreError(MemrasError):
    title = "Database error"


class HookError(MemrasError):
    title = "Alert hook error"


class WorkflowError(MemrasError):
    title = "Replacement workflow error"


class QemuError(MemrasError):
    """QMP could not connect, or QEMU refused a command: exit 1, the operation failed."""

    title = "QEMU error"


class LabError(MemrasError):
    title = "Lab error"
