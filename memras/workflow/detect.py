"""Seeing the kernel add and remove memory: uevents as facts, sysfs as the cross-check.

On a real machine a pyudev ``Monitor.from_netlink(context, source='kernel')`` filtered on
subsystems ``memory`` (and, for module detection, ``acpi``) delivers the kernel's own
``add``/``remove``/``online``/``offline`` uevents (they arrive without udevd). On a
simulated root the simulator appends the same events, in the kernel's order, to
``<root>/.memras-sim/uevents``, which we tail.

A module swap is followed by :class:`ModuleWatch`, opened *before* the eject:

* removed — every one of the module's blocks had a ``remove`` uevent (or its ACPI
  device had one), even if blocks with the same numbers are back by the time we look;
  or sysfs says so: the blocks are absent, or present as *new kernel objects*. A
  block directory is a kernfs node whose inode number is allocated cyclically
  (fs/kernfs/dir.c, ``idr_alloc_cyclic``), so a re-created ``memoryN`` never has the
  inode the old one had: the inode numbers recorded at selection are the module's
  blocks' identity (:func:`block_ids`). A lost uevent therefore costs latency, never
  correctness.
* inserted — an ``add`` of a block in the module's range after its removal, or, in
  sysfs, blocks in the range that are not the old objects.

What was observed (which uevents, and what sysfs said) is returned for the audit.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from memras.errors import WorkflowError
from memras.host._fs import SIM_MARKER

if TYPE_CHECKING:
    from memras.host import Host
    from memras.workflow.backends import Target

DEFAULT_POLL_S = 0.5
MEMORY_SUBSYSTEMS = ("memory",)
MODULE_SUBSYSTEMS = ("memory", "acpi")
MEMORY_DIR = "/sys/devices/system/memory"


@dataclass(frozen=True, slots=True)
class Uevent:
    """One kernel uevent: ``remove memory33`` or ``remove PNP0C80:00`` (acpi)."""

    action: str
    subsystem: str
    name: str
    seq: int = 0  # arrival order in this watch

    def __str__(self) -> str:
        return f"{self.action} {self.name}"


def subsystem_of(devpath: str) -> str:
    """The subsystem of a devpath written by the simulator (the kernel names it)."""
    if devpath.startswith("/devices/system/memory/"):
        return "memory"
    if "/LNXSYSTM:" in devpath or devpath.rsplit("/", 1)[-1].startswith("PNP0C80:"):
        return "acpi"
    return ""


class UeventSource:
    """Kernel uevents of ``subsystems`` as they arrive; never required (None source:
    the caller polls sysfs)."""

    def __init__(self, host: Host, subsystems: Iterable[str] = MEMORY_SUBSYSTEMS) -> None:
        self.host = host
        self.subsystems = tuple(subsystems)
        self._monitor = None
        self._sim_file: Path | None = None
        self._sim_offset = 0
        if host.is_simulated:
            self._sim_file = Path(host.root) / SIM_MARKER / "uevents"
            self._sim_offset = self._size()
        elif host.is_real:
            self._monitor = _netlink_monitor(self.subsystems)

    @property
    def kind(self) -> str | None:
        """"netlink", "simulator", or None (no source: sysfs polling only)."""
        return ("netlink" if self._monitor is not None else
                "simulator" if self._sim_file is not None else None)

    def _size(self) -> int:
        try:
            return self._sim_file.stat().st_size if self._sim_file else 0
        except OSError:
            return 0

    def wait(self, timeout: float) -> list[tuple[str, str]]:
        """(action, device) pairs that arrived; [] on timeout or without a source."""
        return [(e.action, e.name) for e in self.wait_events(timeout)]

    def wait_events(self, timeout: float) -> list[Uevent]:
        """The uevents that arrived within ``timeout`` (all queued ones once one came)."""
        if self._monitor is not None:
            device = self._monitor.poll(timeout=timeout)
            out = []
            while device is not None:
                out.append(Uevent(device.action or "", device.subsystem or "",
                                  device.sys_name))
                device = self._monitor.poll(timeout=0)
            return out
        if self._sim_file is not None:
            end = time.monotonic() + timeout
            while True:
                if self._size() > self._sim_offset:
                    return self._read_sim()
                if time.monotonic() >= end:
                    return []
                time.sleep(max(0.0, min(0.05, end - time.monotonic())))
        time.sleep(timeout)
        return []

    def _read_sim(self) -> list[Uevent]:
        # only called when _sim_file is set (a simulated host)
        with open(self._sim_file, "rb") as fh:  # type: ignore[arg-type]
            fh.seek(self._sim_offset)
            data = fh.read()
        complete = data.rfind(b"\n") + 1  # a line being written is read next time
        self._sim_offset += complete
        out = []
        for line in data[:complete].decode(errors="replace").splitlines():
            action, _, devpath = line.partition(" ")
            subsystem = subsystem_of(devpath)
            if subsystem in self.subsystems:
                out.append(Uevent(action, subsystem, devpath.rsplit("/", 1)[-1]))
        return out

    def close(self) -> None:
        if self._monitor is not None:
            # best effort: the socket goes with the process anyway
            with contextlib.suppress(Exception):
                self._monitor.stop()
            self._monitor = None


def _netlink_monitor(subsystems: tuple[str, ...]):
    try:
        import pyudev

        monitor = pyudev.Monitor.from_netlink(pyudev.Context(), source="kernel")
        for subsystem in subsystems:  # libudev ORs subsystem matches
            monitor.filter_by(subsystem=subsystem)
        monitor.start()
        return monitor
    except Exception:  # no netlink permission or no pyudev: poll sysfs instead
        return None


def wait_for(host: Host, condition: Callable[[], bool], *, what: str, timeout_s: float,
             cancel: threading.Event, poll_s: float = DEFAULT_POLL_S,
             source: UeventSource | None = None,
             on_events: Callable[[list[Uevent]], None] | None = None) -> None:
    """Return once ``condition()`` holds; WorkflowError on timeout or cancel.
    ``on_events`` sees every uevent that arrives while waiting."""
    events = source or UeventSource(host)
    deadline = time.monotonic() + timeout_s
    while not condition():
        if cancel.is_set():
            raise WorkflowError(f"cancelled while waiting for {what}",
                                hint="run `memras replace --resume` to continue")
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise WorkflowError(f"timed out after {timeout_s:g}s waiting for {what}",
                                hint="check the hardware, then `memras replace --resume`")
        got = events.wait_events(min(poll_s, remaining))
        if got and on_events is not None:
            on_events(got)


def present_blocks(host: Host) -> set[int]:
    return set(host.memory.indexes())


def blocks_in_range(host: Host, start: int, size: int) -> list[int]:
    """Blocks present whose range lies inside ``[start, start + size)``."""
    if size <= 0:
        return []
    bs = host.memory.block_size()
    first, last = start // bs, (start + size - 1) // bs
    return [b for b in host.memory.indexes() if first <= b <= last]


def block_id(host: Host, block: int) -> int | None:
    """The kernel object behind ``memoryN`` now: its sysfs inode number (None if absent)."""
    try:
        return os.stat(host.fs.path(f"{MEMORY_DIR}/memory{block}")).st_ino
    except OSError:
        return None


def block_ids(host: Host, blocks: Iterable[int]) -> tuple[int, ...]:
    """Inode numbers of ``blocks`` (0 for an absent one), in order: their identity."""
    return tuple(block_id(host, b) or 0 for b in blocks)


def old_blocks_present(host: Host, target: Target) -> list[int]:
    """The old module's blocks that are still its own kernel objects.

    Without recorded identities (a replacement started before they were recorded) a
    present block number is taken as the old block."""
    ids = dict(zip(target.blocks, target.block_ids, strict=False))
    out = []
    for block in target.blocks:
        now = block_id(host, block)
        if now is None:
            continue
        if ids.get(block) and now != ids[block]:
            continue  # same number, another object: the old block was removed
        out.append(block)
    return out


def new_blocks_present(host: Host, target: Target) -> list[int]:
    """Blocks in the old module's range that are not the old module's objects."""
    old = set(old_blocks_present(host, target)) if target.block_ids else set()
    return [b for b in blocks_in_range(host, target.start, target.size) if b not in old]


@dataclass
class ModuleWatch:
    """What the kernel said about one module's blocks and ACPI device since it opened."""

    host: Host
    target: Target
    source: UeventSource | None = None
    events: list[Uevent] = field(default_factory=list)
    removed: set[int] = field(default_factory=set)  # blocks with a remove uevent
    added: set[int] = field(default_factory=set)  # blocks added after their remove
    device_removed: bool = False
    device_added: bool = False
    opened: float = field(default_factory=time.monotonic)
    removed_after_s: float | None = None
    added_after_s: float | None = None

    def __post_init__(self) -> None:
        if self.source is None:
            self.source = UeventSource(self.host, MODULE_SUBSYSTEMS)

    def close(self) -> None:
        if self.source is not None:
            self.source.close()

    # --- uevents ---------------------------------------------------------------------
    def feed(self, events: list[Uevent]) -> None:
        """Record uevents in arrival order (``add`` counts only after its ``remove``)."""
        blocks = set(self.target.blocks)
        bs = self.target.block_size or 1
        first = self.target.start // bs
        last = first + max(len(self.target.blocks), 1) - 1
        for event in events:
            event = Uevent(event.action, event.subsystem, event.name, len(self.events))
            self.events.append(event)
            if event.subsystem == "acpi" and event.name == self.target.acpi_device:
                if event.action == "remove":
                    self.device_removed = True
                elif event.action == "add" and self.device_removed:
                    self.device_added = True
                continue
            if event.subsystem != "memory" or not event.name.startswith("memory"):
                continue
            index = event.name[6:]
            if not index.isdigit():
                continue
            block = int(index)
            if event.action == "remove" and block in blocks:
                self.removed.add(block)
            elif event.action == "add" and first <= block <= last and (
                    block in self.removed or block not in blocks or self.gone_by_events):
                self.added.add(block)
        now = time.monotonic() - self.opened
        if self.removed_after_s is None and self.gone_by_events:
            self.removed_after_s = now
        if self.added_after_s is None and self.inserted_by_events:
            self.added_after_s = now

    def pump(self, timeout: float = 0.0) -> None:
        assert self.source is not None
        got = self.source.wait_events(timeout)
        if got:
            self.feed(got)

    @property
    def gone_by_events(self) -> bool:
        return self.device_removed or (bool(self.target.blocks)
                                       and self.removed >= set(self.target.blocks))

    @property
    def inserted_by_events(self) -> bool:
        return self.gone_by_events and (
            self.device_added or len(self.added) >= max(len(self.target.blocks), 1))

    # --- the facts, uevents first, sysfs as cross-check --------------------------------
    def gone(self) -> str | None:
        """How we know the old module is gone (None while it is not): the uevents that
        arrived so far first, then sysfs."""
        self.pump(0)
        if self.device_removed:
            return f"uevent: remove {self.target.acpi_device}"
        if self.gone_by_events:
            return f"uevents: remove {_span(tuple(sorted(self.removed)))}"
        if not old_blocks_present(self.host, self.target):
            present = [b for b in self.target.blocks if block_id(self.host, b) is not None]
            return ("sysfs: the blocks are absent" if not present else
                    f"sysfs: {_span(tuple(present))} are new kernel objects "
                    "(the old ones were removed)")
        return None

    def inserted(self) -> str | None:
        """How we know a new module is in (None while it is not)."""
        self.pump(0)
        expected = max(len(self.target.blocks), 1)
        new = new_blocks_present(self.host, self.target)
        if self.inserted_by_events and len(new) >= expected:
            return f"uevents: add {_span(tuple(sorted(self.added)))} after the removal"
        if self.gone() and len(new) >= expected:
            return f"sysfs: {_span(tuple(new))} present as new kernel objects"
        return None

    def wait_gone(self, *, timeout_s: float, cancel: threading.Event) -> str:
        how: list[str] = []

        def done() -> bool:
            got = self.gone()
            if got:
                how.append(got)
            return bool(got)

        wait_for(self.host, done, what=f"memory blocks {_span(self.target.blocks)} to be "
                 "removed", timeout_s=timeout_s, cancel=cancel, source=self.source,
                 on_events=self.feed)
        return how[-1]

    def wait_inserted(self, *, timeout_s: float, cancel: threading.Event) -> str:
        how: list[str] = []

        def done() -> bool:
            got = self.inserted()
            if got:
                how.append(got)
            return bool(got)

        wait_for(self.host, done, what=f"a new module at {self.target.start:#x} to be added",
                 timeout_s=timeout_s, cancel=cancel, source=self.source, on_events=self.feed)
        return how[-1]

    def observed(self) -> dict[str, Any]:
        """For the audit: what the kernel said (uevents of this module) and when."""
        mine = [str(e) for e in self.events if self._mine(e)]
        assert self.source is not None
        return {"uevent_source": self.source.kind, "uevents": mine[:64],
                "uevents_total": len(mine),
                "removed_after_s": _round(self.removed_after_s),
                "added_after_s": _round(self.added_after_s)}

    def _mine(self, event: Uevent) -> bool:
        if event.subsystem == "acpi":
            return event.name == self.target.acpi_device
        if not (event.name.startswith("memory") and event.name[6:].isdigit()):
            return False
        bs = self.target.block_size or 1
        first = self.target.start // bs
        return first <= int(event.name[6:]) < first + max(len(self.target.blocks), 1)


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def wait_blocks_gone(host: Host, blocks: tuple[int, ...], *, timeout_s: float,
                     cancel: threading.Event) -> None:
    wait_for(host, lambda: not (set(blocks) & present_blocks(host)),
             what=f"memory blocks {_span(blocks)} to be removed", timeout_s=timeout_s,
             cancel=cancel)


def wait_blocks_added(host: Host, start: int, size: int, *, timeout_s: float,
                      cancel: threading.Event) -> list[int]:
    """Wait until the kernel has added blocks covering the old module's range."""
    expected = size // host.memory.block_size() if size else 1
    wait_for(host, lambda: len(blocks_in_range(host, start, size)) >= expected,
             what=f"a new module at {start:#x} to be added", timeout_s=timeout_s,
             cancel=cancel)
    return blocks_in_range(host, start, size)


def _span(blocks: tuple[int, ...]) -> str:
    if not blocks:
        return "(none)"
    return f"memory{blocks[0]}" if len(blocks) == 1 else f"memory{blocks[0]}-{blocks[-1]}"
