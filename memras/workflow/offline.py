"""Offline and online memory blocks one at a time: retries, backoff, deadline, cancel.

Offlining is where replacements fail in practice: the kernel answers EBUSY when it
cannot migrate or isolate a page right now (pinned pages, page cache under writeback),
EAGAIN on transient allocation failures. Both often succeed a moment later, so a block
is retried with exponential backoff (``backoff_initial_s`` doubling up to
``backoff_max_s``) until ``max_attempts`` or the per-block deadline ``block_timeout_s``.
Any other errno (EINVAL: memory holes or a block spanning zones; EPERM) fails at once.

A single kernel write can itself run long (the kernel keeps migrating until a signal).
When running in the main thread memras arms an interval timer for the remaining
deadline, whose signal makes the kernel give up with EINTR; in a worker thread (the
TUI) the deadline is checked between attempts.

The callbacks ``before(block)`` and ``after(block, result)`` are how the runner
persists each block's status *around* each write; nothing here knows about a database.
"""

from __future__ import annotations

import errno
import signal
import threading
import time
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from memras.errors import KernelInterfaceError, WorkflowError

if TYPE_CHECKING:
    from memras.host import Host

RETRYABLE_ERRNOS = frozenset({errno.EBUSY, errno.EAGAIN, errno.EINTR})

DEFAULT_BLOCK_TIMEOUT_S = 120.0
DEFAULT_MAX_ATTEMPTS = 6
DEFAULT_BACKOFF_INITIAL_S = 0.2
DEFAULT_BACKOFF_MAX_S = 5.0


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    block_timeout_s: float = DEFAULT_BLOCK_TIMEOUT_S
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    backoff_initial_s: float = DEFAULT_BACKOFF_INITIAL_S
    backoff_max_s: float = DEFAULT_BACKOFF_MAX_S

    def backoff(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        return min(self.backoff_max_s, self.backoff_initial_s * (2 ** (attempt - 1)))


@dataclass(frozen=True, slots=True)
class BlockResult:
    block: int
    ok: bool
    attempts: int
    seconds: float
    error: str | None = None  # "EBUSY: Device or resource busy"


@dataclass(frozen=True, slots=True)
class Progress:
    """What a progress bar needs; ``eta_s`` is None until one block has finished."""

    step: str
    done_blocks: int
    total_blocks: int
    done_bytes: int
    total_bytes: int
    eta_s: float | None
    message: str = ""


@dataclass
class BatchResult:
    results: list[BlockResult] = field(default_factory=list)
    cancelled: bool = False

    @property
    def failed(self) -> list[BlockResult]:
        return [r for r in self.results if not r.ok]

    @property
    def ok(self) -> bool:
        return not self.cancelled and not self.failed


class _Deadline(Exception):
    pass


def _on_alarm(signum: int, frame: object) -> None:
    raise _Deadline


@contextmanager
def _bounded_write(seconds: float):
    """In the main thread, interrupt a long kernel write after ``seconds`` (EINTR)."""
    if threading.current_thread() is not threading.main_thread() or seconds <= 0:
        yield
        return
    previous = signal.signal(signal.SIGALRM, _on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _errno_text(exc: OSError) -> str:
    name = errno.errorcode.get(exc.errno or 0, "E?")
    return f"{name}: {exc.strerror or exc}"


def set_block_state(host: Host, block: int, state: str, policy: RetryPolicy,
                    cancel: threading.Event) -> BlockResult:
    """Write ``state`` to one block, retrying EBUSY/EAGAIN with backoff until the deadline."""
    started = time.monotonic()
    deadline = started + policy.block_timeout_s
    attempt, last_error = 0, None
    while attempt < policy.max_attempts and not cancel.is_set():
        attempt += 1
        try:
            with _bounded_write(deadline - time.monotonic()):
                host.memory.set_state(block, state)
            return BlockResult(block, True, attempt, time.monotonic() - started)
        except _Deadline:
            last_error = f"timeout: still not {state} after {policy.block_timeout_s:g}s"
            break
        except OSError as exc:
            last_error = _errno_text(exc)
            if exc.errno not in RETRYABLE_ERRNOS:
                break
        except KernelInterfaceError as exc:
            last_error = exc.msg
            break
        wait = min(policy.backoff(attempt), max(0.0, deadline - time.monotonic()))
        if time.monotonic() + wait >= deadline:
            last_error = f"{last_error} (per-block timeout {policy.block_timeout_s:g}s)"
            break
        if cancel.wait(wait):
            break
    if cancel.is_set() and last_error is None:
        last_error = "cancelled"
    return BlockResult(block, False, attempt, time.monotonic() - started, last_error)


def run_blocks(host: Host, blocks: Sequence[int], state: str, *, step: str, policy: RetryPolicy,
               cancel: threading.Event, before: Callable[[int], None],
               after: Callable[[BlockResult], None],
               progress: Callable[[Progress], None] | None = None,
               skip: Callable[[int], bool] = lambda b: False) -> BatchResult:
    """Set every block to ``state`` in order; stop at the first failure or on cancel."""
    block_size = host.memory.block_size()
    total = len(blocks)
    batch, started = BatchResult(), time.monotonic()
    for done, block in enumerate(blocks):
        _report(progress, step, done, total, block_size, started, f"memory{block}")
        if cancel.is_set():
            batch.cancelled = True
            break
        if skip(block):
            batch.results.append(BlockResult(block, True, 0, 0.0))
            continue
        before(block)
        result = set_block_state(host, block, state, policy, cancel)
        after(result)
        batch.results.append(result)
        if not result.ok:
            batch.cancelled = cancel.is_set()
            break
    else:
        _report(progress, step, total, total, block_size, started, "done")
    return batch


def _report(progress: Callable[[Progress], None] | None, step: str, done: int, total: int,
            block_size: int, started: float, message: str) -> None:
    if progress is None:
        return
    elapsed = time.monotonic() - started
    eta = elapsed / done * (total - done) if done else None
    progress(Progress(step, done, total, done * block_size, total * block_size, eta, message))


def online_state_for(valid_zones: Sequence[str]) -> str:
    """``online_movable`` when the kernel allows it; never plain ``online``/``online_kernel``.

    A hot-pluggable block onlined into a kernel zone soon holds unmovable pages and can
    never be offlined again, so memras refuses rather than choose a kernel zone.
    """
    if "Movable" in valid_zones:
        return "online_movable"
    raise WorkflowError(
        f"the kernel does not allow this block in ZONE_MOVABLE (valid_zones: "
        f"{' '.join(valid_zones) or 'none'})",
        hint="memras will not online hot-pluggable memory into a kernel zone; check "
             "movable_node / memhp_default_state and online it by hand if you must")
