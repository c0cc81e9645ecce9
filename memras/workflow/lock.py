"""One replacement at a time: a database row (survives crashes) plus an flock (live owner).

The row in ``memras_workflow_lock`` says *which* replacement is in progress; it stays
after a crash, kill -9 or reboot, so no second replacement can start until the first is
resumed to an end or aborted. The ``flock`` on a file says *whether a process is driving
it right now*; the kernel drops it when that process dies, so ``--resume`` can tell a
crashed run (lock free) from a live one (lock held) without trusting a stale pid.
"""

from __future__ import annotations

import fcntl
import os
import socket
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy.orm import Session

from memras.errors import WorkflowError
from memras.workflow.models import WorkflowLockRow

LOCK_NAME = "replacement"
REAL_LOCK_PATH = Path("/run/memras/replace.lock")


def lock_file_for(root: Path, *, is_real: bool) -> Path:
    """/run/memras/replace.lock on a real machine; a file under a test/simulated root."""
    return REAL_LOCK_PATH if is_real else Path(root) / ".memras-replace.lock"


class ProcessLock:
    """An exclusive, non-blocking flock held for as long as this object is open."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise WorkflowError(
                f"another memras process (pid {holder}) is driving a replacement right now",
                hint="wait for it to finish, or stop that process first") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the flock
            self._fd = None

    @property
    def held(self) -> bool:
        return self._fd is not None


def holder(session: Session) -> WorkflowLockRow | None:
    return session.get(WorkflowLockRow, LOCK_NAME)


def take(session: Session, replacement_id: int) -> None:
    """Record ``replacement_id`` as the one in progress, or refuse if another is."""
    row = holder(session)
    if row is not None and row.replacement_id != replacement_id:
        raise WorkflowError(
            f"replacement #{row.replacement_id} is still in progress",
            hint="finish it with `memras replace --resume` or undo it with "
                 "`memras replace --abort`")
    if row is None:
        session.add(WorkflowLockRow(name=LOCK_NAME, replacement_id=replacement_id,
                                    pid=os.getpid(), host=socket.gethostname(),
                                    acquired_at=datetime.now(UTC).replace(tzinfo=None)))


def release(session: Session, replacement_id: int) -> None:
    row = holder(session)
    if row is not None and row.replacement_id == replacement_id:
        session.delete(row)
