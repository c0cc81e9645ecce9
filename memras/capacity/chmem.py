"""chmem-compatible capacity requests: which blocks to change, in what order, and the exit.

This mirrors util-linux ``sys-utils/chmem.c`` (2.38) so that ``memras capacity
offline 256M`` and ``chmem -d 256M`` given the same request and state change the
same blocks:

- SIZE ``<n>[k|m|g|t]`` (MiB when no suffix; ``KiB``/``MiB`` binary, ``KB``/``MB``
  decimal as strtosize reads them) must be a multiple of the block size. chmem's
  ``chmem_size`` walks the blocks in index order for online and in *reverse* order for
  offline, skips blocks already in the target state and blocks whose zone does not
  fit, and keeps going past a block whose write fails until SIZE worth of blocks
  changed state or the blocks run out.
- RANGE ``0x<start>-0x<end>`` (start and end+1 block-aligned) or ``--blocks N[-M]``:
  every block of the range; blocks already in the target state count as done
  (``chmem_range``), a zone mismatch or a failed write counts as not done.
- Zones: ``-z`` takes DMA, DMA32, Normal, Highmem, Movable, Device (any case). Online
  with ``Movable`` writes ``online_movable``, with another zone ``online_kernel``,
  and needs the zone among the block's ``valid_zones``; offline with a zone needs
  the block to be in it (the first ``valid_zones`` word of an online block).
- Exit: 0 when all was done, 1 when nothing was, 64 when part was.

Where memras differs on purpose (each is safer and documented in the user guide):

1. Online without ``--zone`` writes ``online_movable`` when Movable is valid, as
   chmem does; where it is not, chmem writes ``online`` (the kernel then picks a
   kernel zone, and the block soon holds unmovable pages and can never be offlined
   again, hotplug-and-qemu §1). memras treats such a block as a zone mismatch
   instead: say ``--zone Normal`` to online into a kernel zone knowingly.
2. Zone names match whole ``valid_zones`` words; chmem's ``strcasestr`` lets
   ``-z DMA`` match ``DMA32``.
3. A write refused with EBUSY/EAGAIN is retried with backoff
   (:func:`memras.workflow.offline.set_block_state`) before the block counts as
   failed; chmem tries once. So memras may succeed where chmem reports 64.
"""

from __future__ import annotations

import errno
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from memras.errors import UsageError
from memras.host.memory_blocks import MemoryBlock
from memras.text import format_bytes
from memras.workflow.offline import Progress, RetryPolicy, set_block_state

if TYPE_CHECKING:
    from memras.host import Host

Action = Literal["online", "offline"]
ZONES = ("DMA", "DMA32", "Normal", "Highmem", "Movable", "Device")
EXIT_OK, EXIT_FAILURE, EXIT_PARTIAL = 0, 1, 64
MiB = 1 << 20
_SUFFIX = {"": MiB, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40, "P": 1 << 50}
_DECIMAL = {"K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15}
_SIZE_RE = re.compile(r"^(\d+)(?:([KkMmGgTtPp])(iB|B)?)?$")


def canonical_zone(name: str | None) -> str | None:
    """``movable`` -> ``Movable``; UsageError for a name chmem does not know."""
    if name is None:
        return None
    for zone in ZONES:
        if zone.lower() == name.lower():
            return zone
    raise UsageError(f"unknown memory zone: {name}", hint="zones: " + ", ".join(ZONES))


def parse_size(text: str) -> int:
    """A chmem SIZE in bytes: ``512`` (MiB), ``512m``, ``2G``, ``1GiB``, ``1GB`` (10^9)."""
    m = _SIZE_RE.match(text.strip())
    if not m:
        raise UsageError(f"not a size: {text!r}", hint="use <n>[m|M|g|G], e.g. 256M or 2g")
    number, unit, tail = int(m.group(1)), (m.group(2) or "").upper(), m.group(3)
    return number * (_DECIMAL[unit] if tail == "B" else _SUFFIX[unit])


@dataclass(frozen=True, slots=True)
class Request:
    """One chmem request: SIZE (``count`` blocks) or an inclusive block range."""

    action: Action
    text: str
    zone: str | None = None
    count: int | None = None  # SIZE requests
    first: int | None = None  # RANGE / --blocks requests
    last: int | None = None

    @property
    def is_size(self) -> bool:
        return self.count is not None

    @property
    def total(self) -> int:
        """Blocks the request is about: SIZE in blocks, or the range's length."""
        if self.count is not None:
            return self.count
        assert self.first is not None and self.last is not None
        return self.last - self.first + 1


def parse_request(action: Action, text: str, *, block_size: int, blocks: bool = False,
                  zone: str | None = None) -> Request:
    """Parse SIZE, RANGE or (with ``blocks``) BLOCKRANGE as chmem's parse_parameter does."""
    zone = canonical_zone(zone)
    parts = text.strip().split("-")
    if len(parts) > 2 or not all(parts):
        raise UsageError(f"invalid parameter: {text}",
                         hint="SIZE (256M), RANGE (0x100000000-0x11fffffff) or --blocks N-M")
    if blocks:
        first, last = (_block_number(p) for p in (parts[0], parts[-1]))
    elif len(parts) == 1:
        size = parse_size(parts[0])
        if size <= 0 or size % block_size:
            raise UsageError(f"size must be a positive multiple of the memory block size "
                             f"({format_bytes(block_size)}): {text}")
        return Request(action, text, zone, count=size // block_size)
    else:
        first, last = _address_range(parts[0], parts[1], block_size)
    if first > last:
        raise UsageError(f"invalid range: {text}", hint="the start must not exceed the end")
    return Request(action, text, zone, first=first, last=last)


def _block_number(text: str) -> int:
    if not text.isdigit():
        raise UsageError(f"not a block number: {text!r}", hint="e.g. --blocks 32-35")
    return int(text)


def _address_range(start: str, end: str, block_size: int) -> tuple[int, int]:
    values = []
    for part in (start, end):
        if len(part) < 2 or part[1] not in "xX":
            raise UsageError(f"invalid address format: {part}", hint="write it as 0x<hex>")
        try:
            values.append(int(part, 16))
        except ValueError:
            raise UsageError(f"invalid address: {part}") from None
    lo, hi = values
    if lo % block_size or (hi + 1) % block_size:
        raise UsageError("start address and (end address + 1) must be aligned to the "
                         f"memory block size ({format_bytes(block_size)})",
                         hint="see `memras blocks` for the block ranges")
    return lo // block_size, hi // block_size


# --- planning (pure) -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Candidate:
    """A block the request may change, and the state memras would write."""

    block: int
    write: str  # offline | online_movable | online_kernel
    was: str  # the state before, for rollback and reports
    zone: str | None  # its zone when online (for rollback of an offline)


@dataclass(frozen=True, slots=True)
class Skipped:
    block: int
    reason: str


@dataclass(frozen=True)
class Plan:
    """What a request will try, in chmem's order. Pure data; :func:`execute` runs it."""

    request: Request
    block_size: int
    candidates: tuple[Candidate, ...]
    already: tuple[int, ...]  # RANGE: blocks already in the target state (count as done)
    skipped: tuple[Skipped, ...]  # zone mismatches (and missing blocks of a RANGE)

    @property
    def needed(self) -> int:
        """Successful writes that make the request complete."""
        return self.request.total - len(self.already)

    def expected(self) -> list[int]:
        """The blocks a clean run changes (SIZE: the first ``needed`` candidates)."""
        picked = self.candidates[: self.needed] if self.request.is_size else self.candidates
        return [c.block for c in picked]

    def as_dict(self) -> dict[str, Any]:
        return {"action": self.request.action, "request": self.request.text,
                "zone": self.request.zone, "block_size": self.block_size,
                "blocks": self.expected(),
                "candidates": [c.block for c in self.candidates],
                "already": list(self.already),
                "skipped": [{"block": s.block, "reason": s.reason} for s in self.skipped]}


def write_for(action: Action, zone: str | None, block: MemoryBlock) -> tuple[str | None, str]:
    """The state to write to ``block`` for this action and zone, or None and why not."""
    words = [z.lower() for z in block.valid_zones]
    if action == "offline":
        if zone is not None and (not words or words[0] != zone.lower()):
            return None, f"zone mismatch: in {' '.join(block.valid_zones) or '?'}, not {zone}"
        return "offline", ""
    if zone is None:
        if "movable" in words:
            return "online_movable", ""
        return None, ("Movable is not valid here (valid_zones: "
                      f"{' '.join(block.valid_zones) or 'none'}); pass --zone to online "
                      "into a kernel zone knowingly")
    if zone.lower() not in words:
        return None, f"zone mismatch: valid_zones {' '.join(block.valid_zones) or 'none'}"
    return ("online_movable" if zone == "Movable" else "online_kernel"), ""


def in_target_state(action: Action, state: str) -> bool:
    """chmem's ``strncmp(onoff, state, 6)``: ``online*`` or ``offline`` already."""
    return state[:6] == ("online" if action == "online" else "offlin")


def plan(request: Request, blocks: Sequence[MemoryBlock], node: int | None = None) -> Plan:
    """Which blocks the request will try, in chmem's order (see the module docstring).
    ``node`` (``--node``): only that NUMA node's blocks; a RANGE's blocks on other nodes
    are skipped with their node named."""
    ordered = sorted(blocks, key=lambda b: b.index)
    block_size = ordered[0].size if ordered else 0
    elsewhere: list[Skipped] = []
    if node is not None:
        if not request.is_size:
            assert request.first is not None and request.last is not None  # a range request
            elsewhere = [Skipped(b.index, f"on node {b.node}, not node {node}")
                         for b in ordered if b.node != node
                         and request.first <= b.index <= request.last]
        ordered = [b for b in ordered if b.node == node]
    if request.is_size:
        if request.action == "offline":
            ordered.reverse()
    else:
        assert request.first is not None and request.last is not None  # a range request
        ordered = [b for b in ordered if request.first <= b.index <= request.last]
    candidates, already, skipped = [], [], []
    for b in ordered:
        if in_target_state(request.action, b.state):
            if not request.is_size:
                already.append(b.index)
            continue
        write, reason = write_for(request.action, request.zone, b)
        if write is None:
            skipped.append(Skipped(b.index, reason))
            continue
        candidates.append(Candidate(b.index, write, b.state, b.zone))
    if not request.is_size:
        assert request.first is not None and request.last is not None  # a range request
        present = {b.index for b in ordered} | {s.block for s in elsewhere}
        skipped += elsewhere
        skipped += [Skipped(i, "no such memory block")
                    for i in range(request.first, request.last + 1)
                    if i not in present]
    return Plan(request, block_size, tuple(candidates), tuple(already), tuple(skipped))


def exit_status(needed: int, done: int) -> int:
    """chmem's rule: 0 when all ``needed`` writes were done, 1 when none, 64 between."""
    if done >= needed:
        return EXIT_OK
    return EXIT_FAILURE if done == 0 else EXIT_PARTIAL


# --- execution -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Outcome:
    block: int
    write: str
    ok: bool
    attempts: int
    seconds: float
    error: str | None = None


@dataclass
class Result:
    plan: Plan
    outcomes: list[Outcome] = field(default_factory=list)
    cancelled: bool = False
    rolled_back: list[int] = field(default_factory=list)
    rollback_failed: list[int] = field(default_factory=list)

    @property
    def changed(self) -> list[int]:
        return [o.block for o in self.outcomes if o.ok and o.block not in self.rolled_back]

    @property
    def done(self) -> int:
        return len([o for o in self.outcomes if o.ok]) - len(self.rolled_back)

    @property
    def exit_status(self) -> int:
        return exit_status(self.plan.needed, self.done)

    def summary(self) -> str:
        """chmem's last line, e.g. ``Could only disable 128M of memory``."""
        verb = "enable" if self.plan.request.action == "online" else "disable"
        nbytes = self.done * self.plan.block_size
        if self.exit_status == EXIT_OK:
            return f"{verb}d {format_bytes(nbytes)} of memory"
        tail = " (cancelled)" if self.cancelled else ""
        return f"Could only {verb} {format_bytes(nbytes)} of memory{tail}"

    def as_dict(self) -> dict[str, Any]:
        return {**self.plan.as_dict(), "exit_status": self.exit_status,
                "done_blocks": self.done, "changed": self.changed,
                "cancelled": self.cancelled, "rolled_back": self.rolled_back,
                "rollback_failed": self.rollback_failed, "summary": self.summary(),
                "outcomes": [{"block": o.block, "write": o.write, "ok": o.ok,
                              "attempts": o.attempts, "seconds": round(o.seconds, 3),
                              "error": o.error} for o in self.outcomes]}


OnOutcome = Callable[[Outcome], None]


def execute(host: Host, the_plan: Plan, *, retry: RetryPolicy | None = None,
            cancel: threading.Event | None = None,
            progress: Callable[[Progress], None] | None = None,
            on_outcome: OnOutcome | None = None) -> Result:
    """Write each candidate in order until the request is met, as chmem does.

    A failed block does not stop a SIZE request (the next candidate is tried); the
    retries per block are :func:`memras.workflow.offline.set_block_state`'s.
    """
    retry = retry or RetryPolicy()
    cancel = cancel or threading.Event()
    result, started = Result(the_plan), time.monotonic()
    step = f"capacity {the_plan.request.action}"
    for cand in the_plan.candidates:
        if the_plan.request.is_size and result.done >= the_plan.needed:
            break
        if cancel.is_set():
            result.cancelled = True
            break
        _progress(progress, step, result.done, the_plan, started, f"memory{cand.block}")
        r = set_block_state(host, cand.block, cand.write, retry, cancel)
        outcome = Outcome(cand.block, cand.write, r.ok, r.attempts, r.seconds, r.error)
        result.outcomes.append(outcome)
        if on_outcome is not None:
            on_outcome(outcome)
        if not r.ok and cancel.is_set():
            result.cancelled = True
            break
    _progress(progress, step, result.done, the_plan, started, "done")
    return result


def _progress(progress: Callable[[Progress], None] | None, step: str, done: int, p: Plan,
              started: float, message: str) -> None:
    if progress is None:
        return
    total = max(p.needed, 1)
    elapsed = time.monotonic() - started
    eta = elapsed / done * (total - done) if done else None
    progress(Progress(step, done, total, done * p.block_size, total * p.block_size, eta,
                      message))


def rollback(host: Host, result: Result, *, retry: RetryPolicy | None = None) -> Result:
    """Put every block this run changed back into its former state (newest first)."""
    retry = retry or RetryPolicy()
    never = threading.Event()
    by_block = {c.block: c for c in result.plan.candidates}
    for outcome in reversed([o for o in result.outcomes if o.ok]):
        cand = by_block[outcome.block]
        back = _former_state(cand)
        r = set_block_state(host, outcome.block, back, retry, never)
        (result.rolled_back if r.ok else result.rollback_failed).append(outcome.block)
    return result


def _former_state(cand: Candidate) -> str:
    if cand.write != "offline":
        return "offline"
    return "online_movable" if cand.zone == "Movable" else "online_kernel"


def errno_of(error: str | None) -> int | None:
    """``EBUSY`` from an outcome's error text, as a number (for reports and tests)."""
    if not error:
        return None
    name = error.split(":", 1)[0]
    return getattr(errno, name, None)


# --- preflight -------------------------------------------------------------------------


def preflight(host: Host, the_plan: Plan, reserve_bytes: int, *,
              node_reserve: str | int | None = None, force_node: bool = False
              ) -> list[Any]:
    """Checks before changing anything: privileges, something to do, and for offline the
    MemAvailable reserve (after the expected blocks are gone it must stay >= reserve) and
    each NUMA node's that the blocks are on (``[workflow] node_reserve``, as `memras
    replace` keeps it; ``force_node``: --force-node, a warning instead)."""
    # lazy: workflow.preflight reads the backends' entry points (importlib.metadata),
    # which capacity commands that plan or dry-run never need
    from memras.workflow.preflight import Check, node_reserve_check, removal_node_figures

    checks = [Check("privileges", host.can_write(),
                    "simulated root" if host.is_simulated else
                    "running as root" if host.can_write() else "memras must run as root")]
    expected = the_plan.expected()
    checks.append(Check("blocks", bool(expected) or the_plan.needed <= 0,
                        f"{len(expected)} of {the_plan.needed} needed blocks can be tried"
                        if the_plan.needed > 0 else "nothing to do"))
    if the_plan.request.action == "offline":
        info = host.meminfo.read()
        removing = len(expected) * the_plan.block_size
        after = info.available - removing
        checks.append(Check("memory reserve", after >= reserve_bytes,
                            f"MemAvailable {format_bytes(info.available)} - "
                            f"{format_bytes(removing)} = {format_bytes(max(after, 0))}, "
                            f"reserve {format_bytes(reserve_bytes)}"))
        figures = removal_node_figures(host, expected, node_reserve)
        if figures:  # a host without node directories has only the global reserve
            checks.append(node_reserve_check(figures, force_node, emptied_ok=True))
    return checks
