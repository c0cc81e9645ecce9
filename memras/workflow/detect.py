"""Seeing the kernel add and remove memory: uevents first, sysfs polling as a fallback.

On a real machine a pyudev ``Monitor.from_netlink(context, source='kernel')`` filtered on
subsystem ``memory`` wakes us on ``add``/``remove``/``online``/``offline`` (kernel
uevents arrive without udevd). On a simulated root the simulator appends the same
events to ``<root>/.memras-sim/uevents``, which we tail. Either way the truth is read
from sysfs after each wake-up and every ``poll_s`` seconds, so a lost event only costs
latency, never correctness.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from memras.errors import WorkflowError
from memras.host._fs import SIM_MARKER

if TYPE_CHECKING:
    from memras.host import Host

DEFAULT_POLL_S = 0.5


class UeventSource:
    """Blocks until a memory uevent arrives or ``timeout`` passes; never required."""

    def __init__(self, host: Host) -> None:
        self.host = host
        self._monitor = None
        self._sim_file: Path | None = None
        self._sim_offset = 0
        if host.is_simulated:
            self._sim_file = Path(host.root) / SIM_MARKER / "uevents"
            self._sim_offset = self._size()
        elif host.is_real:
            self._monitor = _netlink_monitor()

    def _size(self) -> int:
        try:
            return self._sim_file.stat().st_size if self._sim_file else 0
        except OSError:
            return 0

    def wait(self, timeout: float) -> list[tuple[str, str]]:
        """(action, device) pairs that arrived; [] on timeout or without a source."""
        if self._monitor is not None:
            device = self._monitor.poll(timeout=timeout)
            return [] if device is None else [(device.action or "", device.sys_name)]
        if self._sim_file is not None:
            end = time.monotonic() + timeout
            while time.monotonic() < end:
                if self._size() > self._sim_offset:
                    return self._read_sim()
                time.sleep(min(0.05, timeout))
            return []
        time.sleep(timeout)
        return []

    def _read_sim(self) -> list[tuple[str, str]]:
        # only called when _sim_file is set (a simulated host)
        with open(self._sim_file, "rb") as fh:  # type: ignore[arg-type]
            fh.seek(self._sim_offset)
            data = fh.read()
        self._sim_offset += len(data)
        out = []
        for line in data.decode(errors="replace").splitlines():
            action, _, devpath = line.partition(" ")
            out.append((action, devpath.rsplit("/", 1)[-1]))
        return out


def _netlink_monitor():
    try:
        import pyudev

        monitor = pyudev.Monitor.from_netlink(pyudev.Context(), source="kernel")
        monitor.filter_by(subsystem="memory")
        monitor.start()
        return monitor
    except Exception:  # no netlink permission or no pyudev: poll sysfs instead
        return None


def wait_for(host: Host, condition: Callable[[], bool], *, what: str, timeout_s: float,
             cancel: threading.Event, poll_s: float = DEFAULT_POLL_S,
             source: UeventSource | None = None) -> None:
    """Return once ``condition()`` holds; WorkflowError on timeout or cancel."""
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
        events.wait(min(poll_s, remaining))


def present_blocks(host: Host) -> set[int]:
    return set(host.memory.indexes())


def blocks_in_range(host: Host, start: int, size: int) -> list[int]:
    """Blocks present whose range lies inside ``[start, start + size)``."""
    if size <= 0:
        return []
    bs = host.memory.block_size()
    first, last = start // bs, (start + size - 1) // bs
    return [b for b in host.memory.indexes() if first <= b <= last]


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
