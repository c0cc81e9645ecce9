"""Fault injection checks: the memory notifier error injector and soft-offlined pages.

``memory-notifier-error-inject`` (lib/memory-notifier-error-inject.c) makes a
memory notifier return the errno written to
``/sys/kernel/debug/notifier-error-inject/memory/actions/<ACTION>/error``. With
MEM_GOING_OFFLINE=-16 ``offline_pages`` stops at step 4 ("notifier failure") and
the write fails EBUSY with the block still online; with MEM_GOING_ONLINE=-12
``online_pages`` fails ENOMEM and the block stays offline. These are the selftest's
two expectations, except that here a broken one fails the run. The injector is
always cleared again (``finally``), since a left-over error would break every
later hotplug on the machine.

The hwpoison check soft-offlines one page in the middle of a block
(``soft_offline_page``: migrate, then poison and isolate) and then offlines the
block: ``offline_pages`` skips HWPoison pages, so the block must still go.
That page stays poisoned (4 KiB lost, HardwareCorrupted +4 kB), so it is opt-in.
"""

from __future__ import annotations

import errno
import threading
from typing import TYPE_CHECKING

from memras.hotplug_test.model import Report
from memras.workflow.offline import RetryPolicy, set_block_state

if TYPE_CHECKING:
    from memras.host import Host

NOTIFIER_ACTIONS = "/sys/kernel/debug/notifier-error-inject/memory/actions"
GOING_OFFLINE = f"{NOTIFIER_ACTIONS}/MEM_GOING_OFFLINE/error"
GOING_ONLINE = f"{NOTIFIER_ACTIONS}/MEM_GOING_ONLINE/error"
OFFLINE_ERRNO = -errno.EBUSY
ONLINE_ERRNO = -errno.ENOMEM


def notifier_available(host: Host) -> bool:
    return host.fs.exists(GOING_OFFLINE) and host.fs.exists(GOING_ONLINE)


def _errno(exc: OSError) -> str:
    return errno.errorcode.get(exc.errno or 0, str(exc.errno))


def notifier_checks(host: Host, report: Report, block: int, online_as: str) -> None:
    """Both injector expectations on ``block`` (online at the call, online at return)."""
    mem = host.memory
    try:
        host.fs.write(GOING_OFFLINE, str(OFFLINE_ERRNO))
        try:
            mem.set_state(block, "offline")
            report.add("notifier-offline", False, block=block,
                       detail="offline succeeded although MEM_GOING_OFFLINE was set to -16")
        except OSError as exc:
            state = mem.state(block)
            ok = exc.errno == errno.EBUSY and state == "online"
            report.add("notifier-offline", ok, block=block,
                       detail=f"offline failed {_errno(exc)}, block reads {state}")
    finally:
        host.fs.write(GOING_OFFLINE, "0")
    if mem.state(block) != "online":
        mem.set_state(block, online_as)  # the offline went through: undo it
        return
    mem.set_state(block, "offline")
    try:
        host.fs.write(GOING_ONLINE, str(ONLINE_ERRNO))
        try:
            mem.set_state(block, online_as)
            report.add("notifier-online", False, block=block,
                       detail="online succeeded although MEM_GOING_ONLINE was set to -12")
            return
        except OSError as exc:
            state = mem.state(block)
            stayed = state == "offline"
            detail = f"online failed {_errno(exc)}, block reads {state}"
    finally:
        host.fs.write(GOING_ONLINE, "0")
    try:
        mem.set_state(block, online_as)
        back = mem.read(block)
        recovered = back.state == "online"
        detail += f"; after clearing: {back.state} {back.zone or ''}".rstrip()
    except OSError as exc:
        recovered = False
        detail += f"; after clearing online failed {_errno(exc)}"
    report.add("notifier-online", stayed and recovered, block=block, detail=detail)


def hwpoison_check(host: Host, report: Report, block: int, online_as: str, policy: RetryPolicy,
                   cancel: threading.Event) -> None:
    """Soft-offline a page in ``block``, then the block must still offline and come back."""
    mem = host.memory
    b = mem.read(block)
    address = b.start + b.size // 2
    before = host.meminfo.read().hardware_corrupted
    try:
        mem.soft_offline_page(address)
    except OSError as exc:
        report.add("hwpoison", False, block=block,
                   detail=f"soft_offline_page {address:#x} failed {_errno(exc)}")
        return
    grew = host.meminfo.read().hardware_corrupted - before
    res = set_block_state(host, block, "offline", policy, cancel)
    detail = (f"soft-offlined {address:#x} (HardwareCorrupted +{grew // 1024} kB); "
              f"block offline {'ok' if res.ok else res.error} in {res.seconds:.3f}s")
    back = set_block_state(host, block, online_as, policy, cancel) \
        if res.ok else None
    if back is not None and not back.ok:
        detail += f"; re-online failed: {back.error}"
    report.add("hwpoison", res.ok and (back is None or back.ok), block=block, detail=detail)
