"""Preflight: every reason to refuse a replacement, checked before anything changes.

Each check gives one pass/fail line. The memory reserve is the one tunable:
after the module's online blocks are gone, ``MemAvailable`` must stay at or above
``reserve_bytes``, by default ``max(2 GiB, 10 % of MemTotal)`` — enough for the kernel
to keep migrating pages and for the workload not to be pushed into reclaim or OOM.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from memras.text import format_bytes
from memras.topology.units import GOES_OUT_WHOLE
from memras.workflow.backends import Backend, Target

if TYPE_CHECKING:
    from memras.host import Host

GiB = 1 << 30
MIN_RESERVE_BYTES = 2 * GiB
RESERVE_FRACTION = 0.10


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    ok: bool
    detail: str

    def line(self) -> str:
        return f"{'PASS' if self.ok else 'FAIL'}  {self.name}: {self.detail}"

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "ok": self.ok, "detail": self.detail}


def default_reserve(mem_total: int) -> int:
    """max(2 GiB, 10 % of MemTotal)."""
    return max(MIN_RESERVE_BYTES, int(mem_total * RESERVE_FRACTION))


@dataclass
class PreflightInput:
    host: Host
    target: Target
    mapping_status: str  # mapped | interleaved | unmapped
    mapping_reason: str
    backend: Backend
    force_zone: bool = False
    reserve_bytes: int | None = None
    other_replacement: int | None = None  # id of another replacement holding the lock


def check_privileges(inp: PreflightInput) -> Check:
    if inp.host.is_simulated:
        return Check("privileges", True, "simulated root: writes go to the simulator")
    if inp.host.can_write():
        return Check("privileges", True, "running as root")
    return Check("privileges", False, "memras must run as root to change memory blocks")


def check_mapping(inp: PreflightInput) -> Check:
    t = inp.target
    if inp.mapping_status == "mapped" and t.blocks:
        whole = GOES_OUT_WHOLE in inp.mapping_reason  # a unit of several modules
        return Check("mapping", True, f"{len(t.blocks)} blocks memory{t.blocks[0]}-"
                     f"memory{t.blocks[-1]} ({format_bytes(t.size)}) " +
                     (inp.mapping_reason if whole else "belong to this DIMM only"))
    if inp.mapping_status == "interleaved":
        return Check("mapping", False,
                     "this DIMM is interleaved with others, so no memory block belongs to it "
                     "alone; interleaved DIMMs can only be replaced as their whole interleave "
                     f"set / memory device ({inp.mapping_reason})")
    return Check("mapping", False, f"the DIMM's memory blocks are not known: "
                 f"{inp.mapping_reason or 'no mapping found'}")


def check_zones(inp: PreflightInput) -> Check:
    host, bad = inp.host, []
    for block in inp.target.blocks:
        b = host.memory.read(block)
        if b.state == "offline":
            continue  # already offline (a resumed run): nothing to migrate
        if b.zone != "Movable":
            bad.append(f"memory{block} ({b.zone or 'mixed zones'})")
    if not bad:
        return Check("zones", True, "every block is online in ZONE_MOVABLE or already offline")
    text = ", ".join(bad[:4]) + (" …" if len(bad) > 4 else "")
    if inp.force_zone:
        return Check("zones", True, f"--force-zone: not Movable: {text}; offlining may fail")
    return Check("zones", False, f"not in ZONE_MOVABLE: {text}; kernel-zone blocks hold "
                 "unmovable pages and usually cannot be offlined (use --force-zone to try)")


def check_reserve(inp: PreflightInput) -> Check:
    info = inp.host.meminfo.read()
    reserve = inp.reserve_bytes if inp.reserve_bytes is not None else default_reserve(
        info.total)
    online = [b for b in inp.target.blocks if inp.host.memory.state(b) != "offline"]
    removing = len(online) * inp.target.block_size
    after = info.available - removing
    detail = (f"MemAvailable {format_bytes(info.available)} - {format_bytes(removing)} = "
              f"{format_bytes(max(after, 0))}, reserve {format_bytes(reserve)}")
    return Check("memory reserve", after >= reserve, detail)


def check_lock(inp: PreflightInput) -> Check:
    if inp.other_replacement is None:
        return Check("lock", True, "no other replacement in progress")
    return Check("lock", False, f"replacement #{inp.other_replacement} is in progress; "
                 "resume or abort it first")


def check_backend(inp: PreflightInput) -> Check:
    try:
        result = inp.backend.can_remove(inp.target)
    except Exception as exc:  # a plugin's bug is a failed check, not a crash
        return Check(f"backend {inp.backend.name}", False, f"{type(exc).__name__}: {exc}")
    return Check(f"backend {inp.backend.name}", result.ok, result.detail)


CHECKS: tuple[Callable[[PreflightInput], Check], ...] = (
    check_privileges, check_mapping, check_lock, check_zones, check_reserve, check_backend,
)


def run_preflight(inp: PreflightInput) -> list[Check]:
    """All checks, in order; the zone/reserve/backend checks need a mapping to mean much."""
    out = []
    for check in CHECKS:
        if check in (check_zones, check_reserve, check_backend) and not inp.target.blocks:
            out.append(Check(check.__name__.removeprefix("check_").replace("_", " "), False,
                             "skipped: no memory blocks to check"))
            continue
        out.append(check(inp))
    return out
