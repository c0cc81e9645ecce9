"""The simulator's hidden state: what a real kernel knows but sysfs does not show.

Stored as JSON in ``<root>/.memras-sim/state.json`` next to three append-only
logs the detection code polls like the real sources:

- ``uevents``: one ``ACTION DEVPATH`` line per kernel uevent (``add``, ``online``,
  ``offline``, ``remove``), as ``udevadm monitor --kernel`` would show them;
- ``kmsg``: raw ``/dev/kmsg`` records, ``pri,seq,usec,-;message``;
- ``trace``: ftrace text lines (``task-pid [cpu] flags ts: event: …``).

The tree under the root is the truth for everything sysfs shows (block state,
zone, counters); this file holds the rest: the spec, which blocks hold unmovable
pages, "busy N more times" flags, poisoned pages, the simulated clock. Every
mutation happens under an exclusive ``flock`` on ``lock`` so a test, the workflow
and the demo can drive one simulated server from several processes.
"""

from __future__ import annotations

import fcntl
import json
import os
import random
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from memras.errors import UsageError
from memras.host._fs import SIM_MARKER
from memras.sim.spec import ServerSpec, spec_from_json, spec_to_json

STATE_FILE = "state.json"
UEVENTS_FILE = "uevents"
KMSG_FILE = "kmsg"
TRACE_FILE = "trace"
BOOT_UPTIME_US = 3_600_000_000  # the simulated server has been up one hour at creation
STEP_US = 250_000  # the clock advances this much (plus seeded jitter) per kernel action


@dataclass
class SimState:
    spec: ServerSpec
    unmovable: set[int] = field(default_factory=set)
    busy: dict[int, int] = field(default_factory=dict)  # block -> failures still to come
    poisoned: list[int] = field(default_factory=list)  # page-aligned physical addresses
    uptime_us: int = BOOT_UPTIME_US
    kmsg_seq: int = 1000
    reserved_kb: int = 0  # memory the kernel keeps out of MemTotal (memmap, kernel image)
    edac_reset_uptime_us: int = 0
    rng_calls: int = 0

    def tick(self) -> int:
        """Advance the monotonic clock by a seeded, deterministic step; return it."""
        self.uptime_us += STEP_US + self.rng().randrange(0, 50_000)
        return self.uptime_us

    def rng(self) -> random.Random:
        """A fresh generator per call, seeded by the spec's seed and a counter."""
        self.rng_calls += 1
        return random.Random(f"{self.spec.seed}:{self.rng_calls}")

    def to_json(self) -> dict[str, Any]:
        return {
            "spec": spec_to_json(self.spec),
            "unmovable": sorted(self.unmovable),
            "busy": {str(k): v for k, v in sorted(self.busy.items())},
            "poisoned": self.poisoned,
            "uptime_us": self.uptime_us,
            "kmsg_seq": self.kmsg_seq,
            "reserved_kb": self.reserved_kb,
            "edac_reset_uptime_us": self.edac_reset_uptime_us,
            "rng_calls": self.rng_calls,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SimState:
        return cls(
            spec=spec_from_json(data["spec"]),
            unmovable=set(data.get("unmovable", [])),
            busy={int(k): v for k, v in data.get("busy", {}).items()},
            poisoned=list(data.get("poisoned", [])),
            uptime_us=data.get("uptime_us", BOOT_UPTIME_US),
            kmsg_seq=data.get("kmsg_seq", 1000),
            reserved_kb=data.get("reserved_kb", 0),
            edac_reset_uptime_us=data.get("edac_reset_uptime_us", 0),
            rng_calls=data.get("rng_calls", 0),
        )


def sim_dir(root: str | Path) -> Path:
    return Path(root) / SIM_MARKER


def is_simulated(root: str | Path) -> bool:
    return sim_dir(root).is_dir()


def read_state(root: str | Path) -> SimState:
    path = sim_dir(root) / STATE_FILE
    try:
        return SimState.from_json(json.loads(path.read_text()))
    except FileNotFoundError:
        raise UsageError(f"{root} is not a simulated server (no {SIM_MARKER}/{STATE_FILE})",
                         hint="create one with memras.sim.create(profile, root)") from None


def write_state(root: str | Path, state: SimState) -> None:
    path = sim_dir(root) / STATE_FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(state.to_json()))
    os.replace(tmp, path)  # atomic: a reader never sees half a state


@contextmanager
def locked_state(root: str | Path) -> Iterator[SimState]:
    """Load the state under an exclusive lock and save it when the block ends."""
    d = sim_dir(root)
    with open(d / "lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            state = read_state(root)
            try:
                yield state
            except OSError:
                # A refused kernel write still changed hidden state (a busy count
                # spent, a rollback done): keep it, then report the refusal.
                write_state(root, state)
                raise
            write_state(root, state)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def append_line(root: str | Path, name: str, line: str) -> None:
    with open(sim_dir(root) / name, "a") as f:
        f.write(line + "\n")


def uevent(root: str | Path, action: str, devpath: str) -> None:
    """Record a kernel uevent, e.g. ``offline /devices/system/memory/memory33``."""
    append_line(root, UEVENTS_FILE, f"{action} {devpath}")


def read_uevents(root: str | Path) -> list[tuple[str, str]]:
    path = sim_dir(root) / UEVENTS_FILE
    if not path.exists():
        return []
    # every line is written as "<action> <devpath>": two fields (mypy sees tuple[str, ...])
    return [tuple(line.split(" ", 1)) for line in path.read_text().splitlines() if line]  # type: ignore[misc]


def kmsg(root: str | Path, state: SimState, level: int, message: str) -> str:
    """Append a raw /dev/kmsg record (facility kern, so pri == level); return it."""
    state.kmsg_seq += 1
    record = f"{level},{state.kmsg_seq},{state.tick()},-;{message}"
    append_line(root, KMSG_FILE, record)
    return record
