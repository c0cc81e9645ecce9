"""Asserting the uevents of each state change, over :class:`memras.workflow.detect.UeventSource`.

The kernel emits one ``online``/``offline`` uevent (SUBSYSTEM=memory) from inside
the sysfs write that changed the block (drivers/base/memory.c
``memory_block_change_state`` → ``kobject_uevent``), so by the time the write
returns the event is already queued on the netlink socket (or in the simulator's
uevents file). After each write the watcher waits up to ``timeout_s`` for the
expected event, then a short grace period for duplicates; anything but exactly one
expected event, for that block, is a failure.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from memras.workflow.detect import UeventSource

if TYPE_CHECKING:
    from memras.host import Host

GRACE_S = 0.05
DRAIN_S = 0.01
# The simulator appends a write's uevents to its file inside the write itself, so once
# the expected one is read every duplicate is already there: one read, no waiting.
SIMULATOR_GRACE_S = 0.0


class UeventWatch:
    def __init__(self, host: Host, timeout_s: float) -> None:
        self.source = UeventSource(host)
        self.timeout_s = timeout_s
        # None: no netlink monitor and no simulator file (UeventSource then only
        # sleeps), so there is nothing to assert
        self.kind = self.source.kind

    @property
    def available(self) -> bool:
        return self.kind is not None

    def drain(self) -> list[tuple[str, str]]:
        """Forget events queued so far (from before the write being checked)."""
        seen: list[tuple[str, str]] = []
        while batch := self.source.wait(DRAIN_S):
            seen.extend(batch)
        return seen

    def expect(self, events: list[tuple[str, str]]) -> tuple[bool, str]:
        """Wait for ``events`` (action, device) in any order; no others may arrive."""
        deadline = time.monotonic() + self.timeout_s
        seen: list[tuple[str, str]] = []
        while not _covers(seen, events) and time.monotonic() < deadline:
            seen.extend(self.source.wait(min(0.2, max(0.0, deadline - time.monotonic()))))
        grace = SIMULATOR_GRACE_S if self.kind == "simulator" else GRACE_S
        grace_end = time.monotonic() + grace
        seen.extend(self.source.wait(0.0))  # what is queued now, even with no grace
        while time.monotonic() < grace_end:
            seen.extend(self.source.wait(grace))
        ok = sorted(seen) == sorted(events)
        want = ", ".join(f"{a} {d}" for a, d in events)
        got = ", ".join(f"{a} {d}" for a, d in seen) or "none"
        return ok, f"expected [{want}], got [{got}]"


def _covers(seen: list[tuple[str, str]], wanted: list[tuple[str, str]]) -> bool:
    pool = list(seen)
    for event in wanted:
        if event not in pool:
            return False
        pool.remove(event)
    return True
