"""The replacement in progress, read without taking it over, and where the memory is.

What ``memras status``, the TUI dashboard's banner and ``memras replace --resume
--dry-run`` show, and the last words of a command that stopped half-way::

    replacement #3 of P1-DIMMB1 in progress at offline_blocks — 10 of 32 blocks offline
    (memory32–memory41) — run `memras replace --resume` (or --abort)

:func:`in_progress` only reads: the lock row (which replacement), its rows (which step,
which blocks memras touched) and the process lock file (whether a process is driving it
right now). It never takes the process lock, never writes, and works on a database
opened read-only. :func:`where_text` is the one wording of "where the memory is" (the
runner's ``where_is_memory`` uses it too); :func:`kernel_where` says it from the kernel
alone, for a command whose database just failed (locked, gone).
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from memras.errors import StoreError, WorkflowError
from memras.topology.naming import confirmation
from memras.workflow import lock
from memras.workflow.models import ReplacementBlockRow, ReplacementRow
from memras.workflow.states import HAPPY_PATH, Event, State, advance, step_named

if TYPE_CHECKING:
    from memras.host import Host
    from memras.store.store import Store

RESUME = "memras replace --resume"
ABORT = "memras replace --abort"
OFFLINE_STATUSES = ("offline", "offlining")


def block_span(blocks: Sequence[int]) -> str:
    """``memory32–memory41, memory50``: runs of consecutive blocks, as sysfs names."""
    out: list[str] = []
    ordered = sorted(blocks)
    start = prev = ordered[0] if ordered else 0
    for b in [*ordered[1:], None]:
        if b is not None and b == prev + 1:
            prev = b
            continue
        out.append(f"memory{start}" if start == prev else f"memory{start}–memory{prev}")
        if b is not None:
            start = prev = b
    return ", ".join(out) if ordered else "none"


def where_text(state: State, old: Sequence[tuple[int, str]], new: Sequence[tuple[int, str]]
               ) -> str:
    """Where the memory is, from the state and the (block, status) rows of both modules."""
    offline = [b for b, status in old if status in OFFLINE_STATUSES]
    online_new = [b for b, status in new if status == "online"]
    if state in (State.CLOSED, State.ABORTED) or (state is State.ONLINE and online_new):
        return f"the new module is in: {len(online_new)} blocks online (Movable)"
    if state in (State.REMOVED, State.INSERTED):
        return "the old module is removed; its memory is gone until a new one is online"
    if offline:
        return f"{len(offline)} of {len(old)} blocks of the old module are offline: " \
               f"{block_span(offline)}"
    return f"all {len(old)} blocks of the old module are online"


def kernel_where(host: Host, blocks: Sequence[int]) -> str:
    """Where the memory is, from the kernel alone (the database could not be read)."""
    try:
        present = set(host.memory.indexes())
        states = {b: host.memory.state(b) for b in blocks if b in present}
    except (OSError, ValueError):
        return "the memory blocks could not be read either; see `memras blocks`"
    offline = [b for b, s in states.items() if s == "offline"]
    gone = len(blocks) - len(states)
    parts = [f"{len(offline)} of {len(blocks)} memory blocks of the module's range are "
             f"offline" + (f" ({block_span(offline)})" if offline else "")]
    if gone:
        parts.append(f"{gone} are gone (module removed)")
    return ", ".join(parts) + " (read from the kernel: the database could not be read)"


def driven_now(path: Path) -> bool | None:
    """Whether a process holds the replacement's process lock right now (None: unknown).

    A shared, non-blocking flock on a read-only descriptor: it fails only while a driver
    holds its exclusive lock, and it is never kept. A missing file: nobody drives it."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return False
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return None
    finally:
        os.close(fd)  # closing drops the shared lock, if it was taken
    return False


@dataclass(frozen=True, slots=True)
class Pending:
    """A replacement that has started and not ended (the lock holder)."""

    id: int
    dimm: str  # the slot label (memras.topology.naming), else the EDAC label, else the id
    dimm_label: str  # the EDAC label the replacement recorded
    dimm_id: str
    state: str
    current_step: str | None  # the step that was running when it stopped, if any
    next_step: str  # what `memras replace --resume` performs first
    plan: list[str]  # from next_step to the end of the happy path
    abort_step: str | None  # what --abort performs (None: nothing to roll back to)
    abort_note: str  # why there is no abort step, or ""
    blocks_total: int
    blocks_offline: list[int]
    where: str
    error: str | None
    driven: bool | None  # a process drives it right now (None: cannot tell)
    resume: str = RESUME
    abort: str = ABORT

    @property
    def at(self) -> str:
        """The step it stopped at: the running one, else the one resume performs."""
        return self.current_step or self.next_step

    def line(self) -> str:
        """One line: which replacement, the step, the blocks offline, what to run."""
        offline = f"{len(self.blocks_offline)} of {self.blocks_total} blocks offline"
        if self.blocks_offline:
            offline += f" ({block_span(self.blocks_offline)})"
        if self.state in (State.REMOVED, State.INSERTED):
            offline = "the old module is removed"
        doing = ("a memras process is driving it now" if self.driven else
                 f"run `{self.resume}` (or --abort)")
        return (f"replacement #{self.id} of {self.dimm} in progress at {self.at} — "
                f"{offline} — {doing}")

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["at"] = self.at
        data["line"] = self.line()
        return data


def in_progress(store: Store, host: Host) -> Pending | None:
    """The replacement in progress, read-only; None when there is none.

    StoreError when the database cannot be read (the caller says so: "none" would hide
    a replacement that holds memory offline)."""
    try:
        with store.session() as s:
            holder = lock.holder(s)
            if holder is None:
                return None
            row = s.get(ReplacementRow, holder.replacement_id)
            if row is None:
                return None
            blocks = s.execute(select(ReplacementBlockRow.role, ReplacementBlockRow.block,
                                      ReplacementBlockRow.status).where(
                ReplacementBlockRow.replacement_id == row.id).order_by(
                ReplacementBlockRow.block)).all()
            row_id, state_text, step = row.id, row.state, row.current_step
            dimm, dimm_id, error = row.dimm_label or row.dimm_id, row.dimm_id, row.error
            target = dict((row.target or {}).get("target") or {})
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot read the replacement in progress: "
                         f"{str(exc).splitlines()[0]}",
                         hint="run `memras doctor`") from None
    state = State(state_text)
    if state.terminal:
        return None
    old = [(b, status) for role, b, status in blocks if role == "old"]
    new = [(b, status) for role, b, status in blocks if role == "new"]
    following = step_named(step) if step else advance(state, Event.NEXT)
    names = [s.name for s in HAPPY_PATH]
    plan = names[names.index(following.name):] if following.name in names \
        else [following.name]
    try:
        abort_step: str | None = advance(state, Event.ABORT).name
        abort_note = ""
    except WorkflowError as exc:
        abort_step, abort_note = None, exc.msg
    return Pending(
        id=row_id, dimm_id=dimm_id, dimm_label=dimm,
        dimm=confirmation(dimm_id, locator=str(target.get("locator") or ""),
                          label=str(target.get("label") or dimm)).name,
        state=state.value, current_step=step,
        next_step=following.name, plan=plan, abort_step=abort_step, abort_note=abort_note,
        blocks_total=len(old) or len(target.get("blocks") or []),
        blocks_offline=[b for b, status in old if status in OFFLINE_STATUSES],
        where=where_text(state, old, new), error=error,
        driven=driven_now(lock.lock_file_for(host.root, is_real=host.is_real)))
