"""What a hotplug test run is asked to do and what it found: config, checks, timings, report.

A run is a list of :class:`Check` results (pass / fail / skip, each naming the
block and cycle it concerns) and :class:`Op` timings (one per kernel write that
changed a block, or per eject / re-add). The verdict is strict: one failed check
fails the run, and a feature the user *required* that could not run is a failed
check, not a skip. Skips are only for optional features this machine lacks.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

from memras.workflow.offline import RetryPolicy

SCHEMA_VERSION = 1


class Outcome(StrEnum):
    PASS = "pass"
    FAIL = "fail"
    SKIP = "skip"


class Want(StrEnum):
    """An optional feature: run it if possible (AUTO), insist on it (ON), or not (OFF)."""

    AUTO = "auto"
    ON = "on"
    OFF = "off"


# The checks a run can make, in report order, with what each one proves.
CHECKS: dict[str, str] = {
    "offline": "the block went offline (EBUSY/EAGAIN retried with backoff) and reads offline",
    "online": "the block came back online",
    "zone": "the re-onlined block is in its original zone (Movable for hot-pluggable memory)",
    "uevent": "exactly one offline/online uevent for that block per state change",
    "data": "the pressure workload's pages read back bit-identical after the cycle",
    "notifier-offline": "MEM_GOING_OFFLINE=-16 makes offline fail EBUSY; the block stays online",
    "notifier-online": "MEM_GOING_ONLINE=-12 makes online fail; the block stays offline, "
                       "then comes back online once cleared",
    "hwpoison": "a soft-offlined page inside the block does not stop the block offlining",
    "eject": "the ACPI device ejects: its blocks are offlined and removed",
    "readd": "the re-added device's blocks come back online Movable",
    "restore": "every tested block is online at the end, as it was at the start",
}


@dataclass(frozen=True, slots=True)
class Config:
    cycles: int = 1
    duration_s: float | None = None  # with it, cycles repeat until the time is up
    blocks: tuple[int, ...] | None = None  # restrict to these indexes
    max_blocks: int | None = None
    include_kernel_zones: bool = False
    pressure_share: float = 0.0  # of the free memory, 0 = no workload
    pressure_max_bytes: int | None = None
    uevents: Want = Want.AUTO
    inject: Want = Want.AUTO
    hwpoison: bool = False
    eject: str | None = None  # "acpi"
    readd_timeout_s: float = 300.0
    uevent_timeout_s: float = 3.0
    policy: RetryPolicy = field(default_factory=RetryPolicy)


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    outcome: Outcome
    block: int | None = None
    cycle: int | None = None
    detail: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "outcome": self.outcome.value, "block": self.block,
                "cycle": self.cycle, "detail": self.detail}


@dataclass(frozen=True, slots=True)
class Op:
    kind: str  # offline | online | eject | readd
    block: int | None
    cycle: int | None
    seconds: float
    ok: bool
    attempts: int = 1
    in_use_bytes: int | None = None  # pages in use in the block just before offlining

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def percentile(values: list[float], pct: float) -> float | None:
    """Nearest-rank percentile (the value below which ``pct`` % of the samples lie)."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]


def latency_summary(values: list[float]) -> dict[str, float | int | None]:
    return {"count": len(values), "p50": percentile(values, 50), "p90": percentile(values, 90),
            "p99": percentile(values, 99), "max": max(values) if values else None}


@dataclass
class Report:
    environment: dict[str, Any] = field(default_factory=dict)
    plan: dict[str, Any] = field(default_factory=dict)
    checks: list[Check] = field(default_factory=list)
    ops: list[Op] = field(default_factory=list)
    cycles_done: int = 0
    seconds: float = 0.0
    cancelled: bool = False
    pressure: dict[str, Any] = field(default_factory=dict)

    def add(self, name: str, ok: bool | None, *, block: int | None = None,
            cycle: int | None = None, detail: str = "") -> Check:
        """Record a check; ``ok=None`` is a skip."""
        outcome = Outcome.SKIP if ok is None else Outcome.PASS if ok else Outcome.FAIL
        check = Check(name, outcome, block, cycle, detail)
        self.checks.append(check)
        return check

    @property
    def failures(self) -> list[Check]:
        return [c for c in self.checks if c.outcome is Outcome.FAIL]

    @property
    def ok(self) -> bool:
        return not self.cancelled and not self.failures and any(
            c.outcome is Outcome.PASS for c in self.checks)

    def tally(self) -> dict[str, dict[str, int]]:
        """{check name: {pass: n, fail: n, skip: n}} in CHECKS order."""
        counts: dict[str, Counter[str]] = {}
        for c in self.checks:
            counts.setdefault(c.name, Counter())[c.outcome.value] += 1
        order = [n for n in CHECKS if n in counts] + [n for n in counts if n not in CHECKS]
        return {n: {o.value: counts[n][o.value] for o in Outcome} for n in order}

    def latencies(self, kind: str, block: int | None = None) -> list[float]:
        return [op.seconds for op in self.ops if op.kind == kind and op.ok
                and (block is None or op.block == block)]

    def migration(self) -> dict[str, Any]:
        """Bytes in use in loaded blocks when they were offlined, over the time it took."""
        measured = [op for op in self.ops if op.kind == "offline" and op.ok
                    and op.in_use_bytes is not None]
        moved = sum(op.in_use_bytes or 0 for op in measured)
        secs = sum(op.seconds for op in measured)
        return {"offlines_measured": len(measured), "bytes": moved, "seconds": round(secs, 6),
                "bytes_per_s": round(moved / secs) if secs > 0 and moved else None}

    def figures(self) -> dict[str, Any]:
        per_block: dict[str, Any] = {}
        for block in sorted({op.block for op in self.ops if op.block is not None}):
            per_block[str(block)] = {k: latency_summary(self.latencies(k, block))
                                     for k in ("offline", "online")}
        return {"offline": latency_summary(self.latencies("offline")),
                "online": latency_summary(self.latencies("online")),
                "eject": latency_summary(self.latencies("eject")),
                "readd": latency_summary(self.latencies("readd")),
                "per_block": per_block, "migration": self.migration()}

    def as_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA_VERSION,
            "ok": self.ok,
            "cancelled": self.cancelled,
            "seconds": round(self.seconds, 3),
            "cycles_done": self.cycles_done,
            "environment": self.environment,
            "plan": self.plan,
            "summary": self.tally(),
            "failures": [c.as_dict() for c in self.failures],
            "figures": self.figures(),
            "pressure": self.pressure,
            "checks": [c.as_dict() for c in self.checks],
            "ops": [op.as_dict() for op in self.ops],
        }
