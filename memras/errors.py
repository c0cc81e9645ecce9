"""Errors memras raises, each with a one-line message that says what to do.

    MemrasError                 title + msg, shown as one line by the CLI and TUI
     ├── UsageError             bad argument or input from the user (exit 2)
     ├── Refused                memras declined: a preflight, a safety rule or an
     │                          unconfirmed question said no; nothing changed (exit 3)
     ├── KernelInterfaceError   a sysfs/procfs/tracefs file could not be read or written
     │    └── NotPermitted      a write refused by memras's own safety rules (exit 3)
     ├── ParseError             text that is not what the parser expected
     ├── StoreError             the database could not be opened, read or written
     ├── HookError              an alert plugin failed
     ├── WorkflowError          a replacement step refused or failed
     ├── QemuError              QEMU's monitor (QMP) could not be reached or refused a command
 ├── BmcError               the BMC (ipmitool, Redfish) could not be reached or refused
     └── LabError               the QEMU lab could not be set up or driven

OSError and SQLAlchemyError are translated where they occur, so that a caller
never has to know which library a failure came from.

:data:`EXIT_CODES` is every exit status a memras command ends with and what it means;
docs/user-guide.md ("Options and exit codes") shows the same table
(tests/unit/test_exit_codes.py keeps the two equal and runs every command for them).
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_REFUSED = 3
EXIT_PARTIAL = 64  # util-linux chmem's "some done" (memras capacity only)
EXIT_INTERNAL = 70  # EX_SOFTWARE: a bug in memras, one line, MEMRAS_DEBUG=1 for the traceback
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as a shell reports Ctrl-C

EXIT_CODES: dict[int, str] = {
    EXIT_OK: "ok: done, or nothing to do",
    EXIT_FAILURE: "failed: a step, a check or a source failed (what and where on stderr)",
    EXIT_USAGE: "bad input: an unknown option, command, name, file or value; "
                "nothing was changed",
    EXIT_REFUSED: "refused: a preflight check, a safety rule or an unanswered or wrong "
                  "confirmation; nothing was changed",
    EXIT_PARTIAL: "partial: `capacity` changed some blocks but not all (as chmem)",
    EXIT_INTERNAL: "internal error: a bug in memras; rerun with MEMRAS_DEBUG=1 and "
                   "report it",
    EXIT_INTERRUPTED: "interrupted: Ctrl-C; what stays changed is said on stderr",
}


class MemrasError(Exception):
    """Base class. ``title`` is a short heading, ``msg`` the full sentence."""

    title = "memras error"
    exit_code = EXIT_FAILURE

    def __init__(self, msg: str, *, hint: str | None = None) -> None:
        self.msg = msg
        self.hint = hint
        super().__init__(msg if hint is None else f"{msg}; {hint}")


class UsageError(MemrasError):
    title = "Invalid input"
    exit_code = EXIT_USAGE


class Refused(MemrasError):
    """memras declined to act: a preflight check failed, a safety rule forbids it, or the
    confirmation was not given (no terminal without --yes, or not the name asked for).
    Nothing was changed; the hint says how to get past it when one may."""

    title = "Refused"
    exit_code = EXIT_REFUSED


class KernelInterfaceError(MemrasError):
    title = "Kernel interface error"


class NotPermitted(KernelInterfaceError):
    """A kernel write memras's own safety rules refuse: a refusal (exit 3), not a failure."""

    title = "Not permitted"
    exit_code = EXIT_REFUSED


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


class BmcError(MemrasError):
    """The BMC could not be reached, refused, or answered what memras cannot use."""

    title = "BMC error"


class LabError(MemrasError):
    title = "Lab error"
