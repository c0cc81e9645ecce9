"""Which blocks a hotplug test may touch, and why the others are left alone.

The kernel selftest (tools/testing/selftests/memory-hotplug/mem-on-off-test.sh)
offlines a random share of *all* removable blocks, boot ZONE_NORMAL included, and
then reports the EBUSY it provoked as a kernel failure. Here only memory that is
meant to be hot-unplugged is tested: online blocks whose zone is Movable (and,
when the legacy ``removable`` file exists, say 1). Kernel-zone blocks are tested
only with ``include_kernel_zones``; blocks spanning zones (``none``) never, since
the kernel refuses them with EINVAL by design; offline blocks are left offline.
"""

from __future__ import annotations

from dataclasses import dataclass

from memras.errors import UsageError
from memras.host.memory_blocks import MemoryBlock


@dataclass(frozen=True, slots=True)
class Selection:
    blocks: tuple[int, ...]
    zones: dict[int, str]  # block -> zone at the start (what it must come back to)
    skipped: tuple[tuple[int, str], ...]  # (block, reason)

    def as_dict(self) -> dict[str, object]:
        return {"blocks": list(self.blocks), "zones": {str(k): v for k, v in self.zones.items()},
                "skipped": [{"block": b, "reason": r} for b, r in self.skipped]}


def parse_block_list(text: str) -> tuple[int, ...]:
    """``32-35,40`` -> (32, 33, 34, 35, 40)."""
    out: list[int] = []
    for part in text.split(","):
        part = part.strip().removeprefix("memory")
        if not part:
            continue
        first, _, last = part.partition("-")
        try:
            lo, hi = int(first), int(last or first)
        except ValueError:
            raise UsageError(f"not a block list: {text!r}", hint="e.g. --blocks 32-35,40") from None
        if hi < lo:
            raise UsageError(f"empty block range {part!r}")
        out.extend(range(lo, hi + 1))
    return tuple(sorted(set(out)))


def select_blocks(blocks: list[MemoryBlock], *, only: tuple[int, ...] | None = None,
                  include_kernel_zones: bool = False,
                  max_blocks: int | None = None) -> Selection:
    chosen: list[int] = []
    zones: dict[int, str] = {}
    skipped: list[tuple[int, str]] = []
    present = {b.index for b in blocks}
    for index in only or ():
        if index not in present:
            skipped.append((index, "no such block"))
    for b in blocks:
        if only is not None and b.index not in only:
            continue
        reason = _reason_to_skip(b, include_kernel_zones)
        if reason is None and max_blocks is not None and len(chosen) >= max_blocks:
            reason = f"beyond --max-blocks {max_blocks}"
        if reason:
            skipped.append((b.index, reason))
            continue
        chosen.append(b.index)
        zones[b.index] = b.zone or ""
    return Selection(tuple(chosen), zones, tuple(skipped))


def _reason_to_skip(b: MemoryBlock, include_kernel_zones: bool) -> str | None:
    if b.state != "online":
        return f"{b.state} at the start (the test leaves it so)"
    zone = b.zone
    if zone is None:
        return "spans zones or nodes (valid_zones none): the kernel refuses it"
    if b.removable is False:
        return "removable=0"
    if zone != "Movable" and not include_kernel_zones:
        return f"kernel zone {zone} (boot memory; --include-kernel-zones to test it)"
    return None
