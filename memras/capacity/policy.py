"""Capacity on demand: when standby memory goes online, and when it goes back offline.

What it decides. A configured amount of *standby* memory (``standby_blocks`` or
``standby`` size, always onlined into ZONE_MOVABLE so it can be taken back) is kept
offline while the machine is comfortable. :func:`decide` looks at one sample
(``MemAvailable`` from /proc/meminfo and PSI ``some avg10`` from
/proc/pressure/memory) and returns one :class:`Action`: ONLINE, OFFLINE or NONE.

- Pressure is HIGH when MemAvailable < ``on_available_below_bytes`` or PSI some avg10
  > ``psi_on_above_pct``. STANDBY + HIGH -> ONLINE.
- Pressure is LOW when MemAvailable > ``off_available_above_bytes`` and PSI (if the
  kernel has it) < ``psi_off_below_pct``. ACTIVE + LOW continuously for ``hold_s``
  -> OFFLINE, but only if MemAvailable minus the standby memory still stays at or
  above ``reserve_bytes`` (never take memory the system needs).

Hysteresis, so it never flaps. The on and off thresholds are separate (validated:
off > on for MemAvailable, off < on for PSI, reserve >= the on threshold, so an
offline can never by itself re-create the pressure that onlines), LOW must hold for
``hold_s`` without a single HIGH/middle sample, and any transition (or failed
attempt) starts a ``min_dwell_s`` during which no other transition is made. So a
flapping input produces at most one transition per dwell.

The standby memory may also be a CXL DAX device (``standby_dax = "dax0.0"``): ONLINE
is then ``memras capacity online --dax`` (kmem binds, the blocks come online movable)
and OFFLINE ``offline --dax`` (every block offline, the device back to devdax), through
:mod:`memras.capacity.dax`; an idle expander is the pool.

Why not the obvious alternative (online on every dip, offline on every recovery):
an offline migrates every page of the standby memory (about 0.6 s per 128 MiB block
under TCG, hotplug-and-qemu §1), so flapping would cost more than the memory saves.

Cost: one read of /proc/meminfo, /proc/pressure/memory and the memory blocks every
``interval_s`` (the watcher calls :meth:`CapacityPolicy.tick` on every loop, about
once a second and more often while events arrive; ticks within ``interval_s`` of the
last sample return at once); block writes only on a transition (through
:mod:`memras.capacity.chmem`, audited and alerted).
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, cast

from memras.alerts.alert import Severity
from memras.capacity import chmem, dax
from memras.capacity.chmem import parse_size
from memras.capacity.record import Recorder
from memras.errors import UsageError

if TYPE_CHECKING:
    from memras.host import Host
    from memras.workflow.offline import RetryPolicy

MiB, GiB = 1 << 20, 1 << 30

# Tunables: (MIN, DEFAULT, MAX).
HOLD_S = (10.0, 300.0, 86400.0)  # LOW must last this long before an offline
MIN_DWELL_S = (5.0, 120.0, 86400.0)  # no second transition within this
ON_AVAILABLE_BELOW_BYTES = (16 * MiB, 1 * GiB, 1 << 50)
OFF_AVAILABLE_ABOVE_BYTES = (32 * MiB, 2 * GiB, 1 << 50)
PSI_ON_ABOVE_PCT = (0.1, 10.0, 100.0)
PSI_OFF_BELOW_PCT = (0.0, 2.0, 100.0)
RESERVE_BYTES = (16 * MiB, 1 * GiB, 1 << 50)  # default = the on threshold's default


class Mode(enum.StrEnum):
    STANDBY = "standby"  # standby memory offline
    ACTIVE = "active"  # standby memory online


class Move(enum.StrEnum):
    NONE = "none"
    ONLINE = "online"
    OFFLINE = "offline"


@dataclass(frozen=True, slots=True)
class PolicyState:
    mode: Mode
    since: float  # time of the last transition or attempt (dwell starts here)
    low_since: float | None = None  # start of the current LOW run


@dataclass(frozen=True, slots=True)
class Sample:
    now: float  # seconds (monotonic or epoch; only differences matter)
    available_bytes: int
    psi_some_avg10: float | None  # None: kernel without PSI
    standby_online_bytes: int  # standby memory online now (what an offline removes)


@dataclass(frozen=True, slots=True)
class Action:
    move: Move
    reason: str
    state: PolicyState  # the state after this sample (before any write)


@dataclass(frozen=True)
class PolicyConfig:
    standby_blocks: tuple[int, ...] = ()
    standby_bytes: int = 0
    standby_dax: str | None = None  # a CXL DAX device as the standby memory
    on_available_below_bytes: int = ON_AVAILABLE_BELOW_BYTES[1]
    off_available_above_bytes: int = OFF_AVAILABLE_ABOVE_BYTES[1]
    psi_on_above_pct: float = PSI_ON_ABOVE_PCT[1]
    psi_off_below_pct: float = PSI_OFF_BELOW_PCT[1]
    hold_s: float = HOLD_S[1]
    min_dwell_s: float = MIN_DWELL_S[1]
    reserve_bytes: int = RESERVE_BYTES[1]
    interval_s: float = 10.0
    enabled: bool = True
    extra: Mapping[str, Any] = field(default_factory=dict)


def _pressure(sample: Sample, c: PolicyConfig) -> str:
    psi = sample.psi_some_avg10
    if sample.available_bytes < c.on_available_below_bytes or (
            psi is not None and psi > c.psi_on_above_pct):
        return "high"
    if sample.available_bytes > c.off_available_above_bytes and (
            psi is None or psi < c.psi_off_below_pct):
        return "low"
    return "middle"


def decide(state: PolicyState, sample: Sample, config: PolicyConfig) -> Action:
    """One decision from one sample. Pure: the caller performs the move."""
    pressure = _pressure(sample, config)
    dwelling = sample.now - state.since < config.min_dwell_s
    low_since = (state.low_since if state.low_since is not None else sample.now) \
        if pressure == "low" else None
    kept = replace(state, low_since=low_since)
    why = (f"MemAvailable {sample.available_bytes // MiB}M, PSI some avg10 "
           f"{'n/a' if sample.psi_some_avg10 is None else sample.psi_some_avg10}")
    if state.mode == Mode.STANDBY:
        if pressure != "high":
            return Action(Move.NONE, f"no pressure ({why})", kept)
        if dwelling:
            return Action(Move.NONE, f"pressure, but within the dwell ({why})", kept)
        return Action(Move.ONLINE, f"pressure: {why}",
                      PolicyState(Mode.ACTIVE, sample.now, None))
    if pressure != "low" or low_since is None:
        return Action(Move.NONE, f"pressure not low ({why})", kept)
    if sample.now - low_since < config.hold_s:
        return Action(Move.NONE, f"low for {sample.now - low_since:.0f}s of "
                      f"{config.hold_s:.0f}s ({why})", kept)
    if dwelling:
        return Action(Move.NONE, f"low, but within the dwell ({why})", kept)
    after = sample.available_bytes - sample.standby_online_bytes
    if after < max(config.reserve_bytes, config.on_available_below_bytes):
        return Action(Move.NONE, f"offlining would leave MemAvailable {after // MiB}M, "
                      f"below the reserve {config.reserve_bytes // MiB}M", kept)
    return Action(Move.OFFLINE, f"low for {config.hold_s:.0f}s: {why}",
                  PolicyState(Mode.STANDBY, sample.now, None))


# --- configuration ([capacity] table) -------------------------------------------------


def _bounded(raw: Mapping[str, Any], key: str, bounds: tuple[float, float, float],
             parse: Any = float) -> Any:
    lo, default, hi = bounds
    if key not in raw:
        return parse(default)
    try:
        value = parse(raw[key])
    except (TypeError, ValueError, UsageError):
        raise UsageError(f"[capacity] {key} = {raw[key]!r} is not valid") from None
    if not lo <= value <= hi:
        raise UsageError(f"[capacity] {key} = {raw[key]!r} is out of range",
                         hint=f"allowed {lo:g} to {hi:g}")
    return value


def _size(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value

    return parse_size(str(value))


def _blocks(value: Any) -> tuple[int, ...]:
    text = str(value)
    first, _, last = text.partition("-")
    if not first.isdigit() or (last and not last.isdigit()):
        raise ValueError(text)
    return tuple(range(int(first), int(last or first) + 1))


KNOWN_KEYS = {"enabled", "standby", "standby_blocks", "standby_dax", "on_available_below",
              "off_available_above", "psi_on_above_pct", "psi_off_below_pct", "hold_s",
              "min_dwell_s", "reserve", "interval_s"}


def load_policy_config(raw: Mapping[str, Any]) -> PolicyConfig:
    """Validate the [capacity] TOML table; every bad value is a one-line UsageError."""
    unknown = sorted(set(raw) - KNOWN_KEYS)
    if unknown:
        raise UsageError(f"[capacity] has unknown keys: {', '.join(unknown)}",
                         hint="see the user guide, capacity-vm-partition")
    if sum(k in raw for k in ("standby", "standby_blocks", "standby_dax")) != 1:
        raise UsageError("[capacity] needs exactly one of standby (a size), "
                         "standby_blocks (N-M) or standby_dax (a DAX device, dax0.0)")
    dax_name = str(raw["standby_dax"]) if "standby_dax" in raw else None
    if dax_name is not None and not re.fullmatch(r"dax\d+\.\d+", dax_name):
        raise UsageError(f"[capacity] standby_dax = {raw['standby_dax']!r}: "
                         "name a DAX device, e.g. dax0.0")
    try:
        blocks = _blocks(raw["standby_blocks"]) if "standby_blocks" in raw else ()
    except ValueError:
        raise UsageError(f"[capacity] standby_blocks = {raw['standby_blocks']!r}: use N-M"
                         ) from None
    on = _bounded(raw, "on_available_below", ON_AVAILABLE_BELOW_BYTES, _size)
    c = PolicyConfig(
        standby_blocks=blocks,
        standby_bytes=_bounded(raw, "standby", (1, 0, 1 << 50), _size) if "standby" in raw
        else 0,
        standby_dax=dax_name,
        on_available_below_bytes=on,
        off_available_above_bytes=_bounded(raw, "off_available_above",
                                           OFF_AVAILABLE_ABOVE_BYTES, _size),
        psi_on_above_pct=_bounded(raw, "psi_on_above_pct", PSI_ON_ABOVE_PCT),
        psi_off_below_pct=_bounded(raw, "psi_off_below_pct", PSI_OFF_BELOW_PCT),
        hold_s=_bounded(raw, "hold_s", HOLD_S),
        min_dwell_s=_bounded(raw, "min_dwell_s", MIN_DWELL_S),
        reserve_bytes=_bounded(raw, "reserve", (RESERVE_BYTES[0], on, RESERVE_BYTES[2]), _size),
        interval_s=_bounded(raw, "interval_s", (1.0, 10.0, 3600.0)),
        enabled=bool(raw.get("enabled", True)))
    _check_hysteresis(c)
    return c


def _check_hysteresis(c: PolicyConfig) -> None:
    if c.off_available_above_bytes <= c.on_available_below_bytes:
        raise UsageError("[capacity] off_available_above must be above on_available_below",
                         hint="the gap between them is the hysteresis")
    if c.psi_off_below_pct >= c.psi_on_above_pct:
        raise UsageError("[capacity] psi_off_below_pct must be below psi_on_above_pct")
    if c.reserve_bytes < c.on_available_below_bytes:
        raise UsageError("[capacity] reserve must be at least on_available_below",
                         hint="else giving memory back would itself cause the pressure")


def parse_psi_some_avg10(text: str) -> float | None:
    """``some avg10=1.23 avg60=… total=…`` -> 1.23; None when absent or malformed."""
    for line in text.splitlines():
        words = line.split()
        if words and words[0] == "some":
            for word in words[1:]:
                key, _, value = word.partition("=")
                if key == "avg10":
                    try:
                        return float(value)
                    except ValueError:
                        return None
    return None


# --- the runner ---------------------------------------------------------------------


class CapacityPolicy:
    """Samples the host, calls :func:`decide`, performs the move; for the watcher's tick.

    Moves go through :mod:`memras.capacity.chmem` with zone Movable (online writes
    ``online_movable``; offline touches only Movable blocks). A failed or partial
    move keeps the mode but restarts the dwell, so a refusing kernel is not hammered.
    """

    def __init__(self, config: PolicyConfig, recorder: Recorder | None = None,
                 retry: RetryPolicy | None = None) -> None:
        self.config = config
        self.recorder = recorder or Recorder()
        self.retry = retry
        self.state: PolicyState | None = None
        self.blocks: tuple[int, ...] = ()
        self.last_action: Action | None = None
        self.sampled_at: float | None = None

    def standby_blocks(self, host: Host) -> tuple[int, ...]:
        """The configured blocks; a size is resolved once to the highest Movable blocks."""
        if self.blocks:
            return self.blocks
        if self.config.standby_blocks:
            self.blocks = self.config.standby_blocks
            return self.blocks
        if self.config.standby_dax:
            # its range: the blocks exist only while kmem has the device
            pool = dax.find_dax(host, self.config.standby_dax)
            self.blocks = tuple(pool.device.blocks(pool.block_size))
            return self.blocks
        bs = host.memory.block_size()
        count = -(-self.config.standby_bytes // bs)
        movable = [b.index for b in host.memory.all() if "Movable" in b.valid_zones]
        if len(movable) < count:
            raise UsageError(f"[capacity] standby needs {count} Movable blocks, "
                             f"this host has {len(movable)}")
        self.blocks = tuple(sorted(movable)[-count:])
        return self.blocks

    def sample(self, host: Host, now: float) -> Sample:
        blocks = set(self.standby_blocks(host))
        online = [b for b in host.memory.all() if b.index in blocks and b.online]
        psi = parse_psi_some_avg10(host.fs.read("/proc/pressure/memory", default=""))
        return Sample(now, host.meminfo.read().available, psi,
                      len(online) * host.memory.block_size())

    def tick(self, host: Host, now: float) -> Action:
        """One sample, one decision, at most one move; nothing within ``interval_s``."""
        if self.sampled_at is not None and self.state is not None and \
                now - self.sampled_at < self.config.interval_s:
            return Action(Move.NONE, "not sampled: within interval_s", self.state)
        self.sampled_at = now
        sample = self.sample(host, now)
        if self.state is None:
            mode = Mode.ACTIVE if sample.standby_online_bytes else Mode.STANDBY
            self.state = PolicyState(mode, now - self.config.min_dwell_s)
        action = decide(self.state, sample, self.config)
        self.state = action.state
        if action.move != Move.NONE:
            self._perform(host, action, sample)
        self.last_action = action
        return action

    def _perform(self, host: Host, action: Action, sample: Sample) -> None:
        # move is ONLINE or OFFLINE here (tick() skips NONE): exactly chmem's two actions
        verb = cast("chmem.Action", action.move.value)
        if self.config.standby_dax:
            self._perform_dax(host, action, sample, verb)
            return
        blocks = [b for b in host.memory.all() if b.index in set(self.standby_blocks(host))]
        todo = [b for b in blocks if not chmem.in_target_state(verb, b.state)]
        req = chmem.Request(verb, f"standby {len(todo)} blocks", "Movable", count=len(todo))
        result = chmem.execute(host, chmem.plan(req, blocks), retry=self.retry)
        self._record(action, sample, verb, result.exit_status, result.done, result.summary(),
                     result.as_dict(), result.changed)

    def _perform_dax(self, host: Host, action: Action, sample: Sample,
                     verb: chmem.Action) -> None:
        """The standby DAX device to system-ram (ONLINE) or back to devdax (OFFLINE)."""
        assert self.config.standby_dax is not None  # the caller's branch
        the_plan = dax.plan_dax(host, verb, self.config.standby_dax, zone="Movable")
        result = dax.execute_dax(host, the_plan, retry=self.retry)
        done = len(result.blocks.changed) if result.blocks is not None else 0
        self._record(action, sample, verb, result.exit_status, done, result.summary(),
                     result.as_dict(), result.blocks.changed if result.blocks else [])

    def _record(self, action: Action, sample: Sample, verb: chmem.Action, exit_status: int,
                done: int, summary: str, data: dict[str, Any], changed: list[int]) -> None:
        ok = exit_status == chmem.EXIT_OK
        if not ok and not (action.move == Move.ONLINE and done):
            assert self.state is not None  # tick() set it before deciding this move
            self.state = replace(self.state, mode=(
                Mode.STANDBY if action.move == Move.ONLINE else Mode.ACTIVE), low_since=None)
        data = {"reason": action.reason, "available_bytes": sample.available_bytes,
                "psi_some_avg10": sample.psi_some_avg10, **data}
        self.recorder.audit(f"capacity.policy.{verb}", data)
        self.recorder.alert(
            f"capacity on demand: {verb} {summary} ({action.reason})",
            step=f"capacity-policy-{verb}",
            severity=Severity.INFO if ok else Severity.WARNING,
            evidence={"changed": changed, "exit_status": exit_status})
