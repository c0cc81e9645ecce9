"""The hotplug test run: preflight, cycles, injections, eject, restore.

Order of a run (each step records :class:`~memras.hotplug_test.model.Check` results):

1. select the blocks (:mod:`memras.hotplug_test.select`) and describe the machine;
2. fill the pressure workload, if asked (:mod:`memras.hotplug_test.pressure`);
3. N cycles (or until ``duration_s``): each selected block in turn is offlined
   (through :func:`memras.workflow.offline.set_block_state`: EBUSY/EAGAIN retried
   with backoff, a per-block deadline, cancel) and onlined back into its zone,
   each write timed and followed by its state, zone and uevent checks; the
   workload is verified after every cycle;
4. the notifier-injection checks, then hwpoison, then eject/re-add, when asked;
5. restore: every tested block that is not online is onlined again.

One block is offline at a time, so the machine never lacks more than one block of
memory. A failure is recorded and the run goes on to the next block (a broken block
must not hide the others' results); cancel stops after the current write and still
restores. The caller turns ``Report.ok`` into the exit status.
"""

from __future__ import annotations

import contextlib
import os
import platform
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from memras import __version__
from memras.errors import WorkflowError
from memras.hotplug_test import inject
from memras.hotplug_test.model import Config, Op, Report, Want
from memras.hotplug_test.pressure import PatternWorkload, local_available_bytes, workload_size
from memras.hotplug_test.select import Selection, select_blocks
from memras.hotplug_test.uevents import UeventWatch
from memras.hotplug_test.usage import KPAGEFLAGS, in_use_bytes
from memras.workflow.detect import wait_blocks_added, wait_blocks_gone, wait_for
from memras.workflow.offline import set_block_state

if TYPE_CHECKING:
    from memras.host import Host

ProgressFn = Callable[[str], None]
AUTO_ONLINE_WAIT_S = 5.0


def online_target(zone: str) -> str:
    """The state write that brings a block back into ``zone``; never a kernel zone for Movable."""
    return "online_movable" if zone == "Movable" else "online_kernel"


def plan(host: Host, config: Config) -> Selection:
    return select_blocks(host.memory.all(), only=config.blocks,
                         include_kernel_zones=config.include_kernel_zones,
                         max_blocks=config.max_blocks)


def environment(host: Host) -> dict[str, object]:
    fs = host.fs
    kernel = fs.read("/proc/sys/kernel/osrelease", default="")
    if not kernel and host.is_real:
        kernel = platform.release()
    return {
        "hostname": host.hostname(),
        "kernel": kernel or "unknown",
        "root": str(host.root),
        "simulated": host.is_simulated,
        "block_size": host.memory.block_size() if host.memory.present else None,
        "auto_online_blocks": host.memory.auto_online_blocks(),
        "online_policy": fs.read("/sys/module/memory_hotplug/parameters/online_policy",
                                 default="") or None,
        "memmap_on_memory": fs.read("/sys/module/memory_hotplug/parameters/memmap_on_memory",
                                    default="") or None,
        "mem_total": host.meminfo.read().total,
        "notifier_inject": inject.notifier_available(host),
        "soft_offline_page": host.memory.has_soft_offline(),
        "kpageflags": fs.exists(KPAGEFLAGS) and not host.is_simulated,
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "memras": __version__,
    }


class HotplugTest:
    def __init__(self, host: Host, config: Config, *, cancel: threading.Event | None = None,
                 progress: ProgressFn | None = None) -> None:
        self.host = host
        self.config = config
        self.cancel = cancel or threading.Event()
        self.progress = progress or (lambda _msg: None)
        self.report = Report()
        self.selection: Selection | None = None
        self.watch: UeventWatch | None = None
        self.workload: PatternWorkload | None = None

    # --- the run -------------------------------------------------------------------
    def run(self) -> Report:
        started = time.monotonic()
        report, config = self.report, self.config
        self.selection = sel = plan(self.host, config)
        report.environment = environment(self.host)
        report.plan = {**sel.as_dict(), "cycles": config.cycles, "duration_s": config.duration_s,
                       "pressure_share": config.pressure_share, "uevents": config.uevents.value,
                       "inject": config.inject.value, "hwpoison": config.hwpoison,
                       "eject": config.eject}
        if not sel.blocks:
            report.add("offline", False, detail="no hot-pluggable block to test: "
                       + "; ".join(f"memory{b}: {r}" for b, r in sel.skipped[:4]))
            return self._finish(started)
        self._setup_uevents()
        try:
            self._start_pressure()
            self._cycles()
            if not self.cancel.is_set():
                self._injections()
            if not self.cancel.is_set() and config.eject:
                self._eject_cycle()
        finally:
            self._restore()
            self._stop_pressure()
        return self._finish(started)

    def _finish(self, started: float) -> Report:
        self.report.cancelled = self.cancel.is_set()
        self.report.seconds = time.monotonic() - started
        return self.report

    def _setup_uevents(self) -> None:
        want = self.config.uevents
        if want is Want.OFF:
            return
        watch = UeventWatch(self.host, self.config.uevent_timeout_s)
        if watch.available:
            self.watch = watch
        elif want is Want.ON:
            self.report.add("uevent", False, detail="uevent checks required but no source: "
                            "pyudev netlink unavailable (root? pyudev installed?)")
        else:
            self.report.add("uevent", None, detail="no uevent source (pyudev netlink)")
        self.report.environment["uevent_source"] = watch.kind

    def _start_pressure(self) -> None:
        config = self.config
        if config.pressure_share <= 0:
            return
        free = self.host.meminfo.read().free
        size = workload_size(config.pressure_share, free, max_bytes=config.pressure_max_bytes)
        self.report.pressure = {"bytes": size, "share": config.pressure_share,
                                "target_free": free, "local_available": local_available_bytes()}
        if size <= 0:
            self.report.add("data", False, detail="pressure asked for but no memory to fill")
            return
        self.progress(f"filling {size >> 20} MiB with patterned data")
        self.workload = PatternWorkload(size)
        self.report.pressure["fill_seconds"] = round(self.workload.fill(), 3)

    def _verify_pressure(self, cycle: int | None) -> None:
        if self.workload is None:
            return
        v = self.workload.verify()
        self.report.pressure.setdefault("verify_seconds", []).append(round(v.seconds, 3))
        detail = (f"{self.workload.size >> 20} MiB intact" if v.ok else
                  f"{v.bad_pages} pages differ, first at page(s) "
                  + ", ".join(str(p) for p in v.first_bad))
        self.report.add("data", v.ok, cycle=cycle, detail=detail)

    def _stop_pressure(self) -> None:
        if self.workload is not None:
            self._verify_pressure(None)
            self.workload.release()
            self.workload = None

    def _cycles(self) -> None:
        config, sel = self.config, self.selection
        assert sel is not None
        deadline = time.monotonic() + config.duration_s if config.duration_s else None
        cycle = 0
        while not self.cancel.is_set():
            if deadline is None and cycle >= config.cycles:
                break
            if deadline is not None and cycle and time.monotonic() >= deadline:
                break
            cycle += 1
            for n, block in enumerate(sel.blocks):
                if self.cancel.is_set():
                    break
                self.progress(f"cycle {cycle}: memory{block} ({n + 1}/{len(sel.blocks)})")
                self._cycle_block(block, cycle)
            if self.cancel.is_set():
                break
            self._verify_pressure(cycle)
            self.report.cycles_done = cycle

    # --- one block -----------------------------------------------------------------
    def _cycle_block(self, block: int, cycle: int) -> None:
        host, report, sel = self.host, self.report, self.selection
        assert sel is not None
        name = f"memory{block}"
        before = host.memory.read(block)
        if before.state != "online":
            report.add("offline", False, block=block, cycle=cycle,
                       detail=f"block reads {before.state} before the cycle")
            return
        used = in_use_bytes(host.fs, before.start, before.size)
        if self.watch:
            self.watch.drain()
        res = set_block_state(host, block, "offline", self.config.policy, self.cancel)
        report.ops.append(Op("offline", block, cycle, res.seconds, res.ok, res.attempts, used))
        after = host.memory.state(block)
        if not res.ok:
            if self.cancel.is_set():
                return
            report.add("offline", False, block=block, cycle=cycle,
                       detail=f"{res.error} after {res.attempts} attempt(s); block reads {after}")
            return
        report.add("offline", after == "offline", block=block, cycle=cycle,
                   detail=f"{res.seconds * 1000:.1f} ms, {res.attempts} attempt(s); "
                          f"block reads {after}")
        if self.watch:
            ok, detail = self.watch.expect([("offline", name)])
            report.add("uevent", ok, block=block, cycle=cycle, detail=detail)
        self._online(block, cycle)

    def _online(self, block: int, cycle: int | None) -> bool:
        host, report, sel = self.host, self.report, self.selection
        assert sel is not None
        zone = sel.zones[block]
        res = set_block_state(host, block, online_target(zone), self.config.policy, self.cancel)
        report.ops.append(Op("online", block, cycle, res.seconds, res.ok, res.attempts))
        now = host.memory.read(block)
        if not res.ok:
            report.add("online", False, block=block, cycle=cycle,
                       detail=f"{res.error}; block reads {now.state}")
            return False
        report.add("online", now.state == "online", block=block, cycle=cycle,
                   detail=f"{res.seconds * 1000:.1f} ms; block reads {now.state}")
        report.add("zone", now.zone == zone, block=block, cycle=cycle,
                   detail=f"{now.zone or 'no zone'} (was {zone})")
        if self.watch:
            ok, detail = self.watch.expect([("online", f"memory{block}")])
            report.add("uevent", ok, block=block, cycle=cycle, detail=detail)
        return True

    # --- injections ----------------------------------------------------------------
    def _injections(self) -> None:
        host, report, config, sel = self.host, self.report, self.config, self.selection
        assert sel is not None
        online = [b for b in sel.blocks if host.memory.state(b) == "online"]
        if config.inject is not Want.OFF:
            if not inject.notifier_available(host):
                detail = ("memory-notifier-error-inject not loaded or debugfs not mounted "
                          f"({inject.NOTIFIER_ACTIONS})")
                for name in ("notifier-offline", "notifier-online"):
                    report.add(name, False if config.inject is Want.ON else None, detail=detail)
            elif not online:
                report.add("notifier-offline", False, detail="no tested block is online")
            else:
                self.progress(f"notifier injection on memory{online[0]}")
                inject.notifier_checks(host, report, online[0],
                                       online_target(sel.zones[online[0]]))
        if config.hwpoison:
            if not host.memory.has_soft_offline():
                report.add("hwpoison", False, detail="no soft_offline_page "
                           "(CONFIG_MEMORY_FAILURE off)")
            elif online:
                block = online[-1]
                self.progress(f"hwpoison: soft-offline a page in memory{block}")
                inject.hwpoison_check(host, report, block, online_target(sel.zones[block]),
                                      config.policy, self.cancel)

    # --- eject and re-add -------------------------------------------------------------
    def _eject_cycle(self) -> None:
        host, report, sel = self.host, self.report, self.selection
        assert sel is not None
        if self.config.eject != "acpi":
            report.add("eject", False, detail=f"unknown eject backend {self.config.eject!r}")
            return
        tested = set(sel.blocks)
        devices = [d for d in host.acpi.all()
                   if d.present and d.blocks and set(d.blocks) <= tested and d.ejectable]
        if not devices:
            report.add("eject", False, detail="no present PNP0C80 device whose blocks are all "
                       "tested blocks")
            return
        device = devices[0]
        bs = host.memory.block_size()
        start, size = device.blocks[0] * bs, len(device.blocks) * bs
        if self.watch:
            self.watch.drain()
        self.progress(f"ejecting {device.name} (memory{device.blocks[0]}-{device.blocks[-1]})")
        t0 = time.monotonic()
        try:
            host.acpi.eject(device.name)
            removed = self._wait_removed(device.blocks)
        except OSError as exc:
            report.add("eject", False, detail=f"{device.name}: eject failed: {exc.strerror}")
            return
        except Exception as exc:  # WorkflowError: timeout or cancel
            report.add("eject", False, detail=f"{device.name}: {exc}")
            return
        secs = time.monotonic() - t0
        report.ops.append(Op("eject", None, None, secs, True))
        detail = f"{device.name}: {len(device.blocks)} blocks removed in {secs:.3f}s"
        if self.watch:
            missing = {f"memory{b}" for b in device.blocks} - removed
            detail += "; remove uevents " + ("all seen" if not missing else
                                             f"missing for {', '.join(sorted(missing))}")
            report.add("eject", not missing, detail=detail)
        else:
            report.add("eject", True, detail=detail)
        self.progress(f"waiting up to {self.config.readd_timeout_s:g}s for a module to be "
                      f"inserted at {start:#x}")
        t1 = time.monotonic()
        try:
            blocks = wait_blocks_added(host, start, size, timeout_s=self.config.readd_timeout_s,
                                       cancel=self.cancel)
        except Exception as exc:
            report.add("readd", False, detail=str(exc))
            return
        report.ops.append(Op("readd", None, None, time.monotonic() - t1, True))
        if host.memory.auto_online_blocks() not in (None, "offline"):
            # the kernel onlines added blocks itself, just after adding them: let it
            with contextlib.suppress(Exception):
                wait_for(host, lambda: all(host.memory.state(b) == "online"
                                           for b in blocks),
                         what="auto-online", timeout_s=AUTO_ONLINE_WAIT_S, cancel=self.cancel)
        bad = []
        for block in blocks:
            b = host.memory.read(block)
            if b.state == "offline":
                try:
                    host.memory.set_state(block, "online_movable")
                except OSError as exc:
                    b = host.memory.read(block)
                    if b.state != "online":  # EINVAL: onlined meanwhile by someone else
                        bad.append(f"memory{block}: online_movable failed {exc.strerror}")
                        continue
                b = host.memory.read(block)
            if b.zone != "Movable":
                bad.append(f"memory{block}: {b.state} {b.zone or ''}".rstrip())
        report.add("readd", not bad, detail="; ".join(bad) or
                   f"{len(blocks)} blocks back online Movable")

    def _wait_removed(self, blocks: tuple[int, ...]) -> set[str]:
        """Wait until the blocks are gone; the devices whose ``remove`` uevent was seen.

        With a uevent source the ``remove`` events decide: a quick re-insertion (QEMU's
        device_add right after DEVICE_DELETED) can bring the blocks back before a
        sysfs poll ever sees them missing.
        """
        if self.watch is None:
            wait_blocks_gone(self.host, blocks, timeout_s=self.config.readd_timeout_s,
                             cancel=self.cancel)
            return set()
        wanted = {f"memory{b}" for b in blocks}
        removed: set[str] = set()
        deadline = time.monotonic() + self.config.readd_timeout_s
        while not wanted <= removed:
            if set(blocks).isdisjoint(self.host.memory.indexes()):
                removed |= {d for a, d in self.watch.drain() if a == "remove"}
                break
            if self.cancel.is_set() or time.monotonic() > deadline:
                raise WorkflowError(f"memory blocks {sorted(wanted - removed)} were not "
                                    f"removed within {self.config.readd_timeout_s:g}s")
            removed |= {d for a, d in self.watch.source.wait(0.2) if a == "remove"}
        return removed

    # --- restore -------------------------------------------------------------------
    def _restore(self) -> None:
        sel = self.selection
        if sel is None:
            return
        present = set(self.host.memory.indexes())
        for block in sel.blocks:
            if block not in present:
                self.report.add("restore", False, block=block,
                                detail="block is gone (ejected and not re-added)")
                continue
            state = self.host.memory.state(block)
            if state == "online":
                continue
            self.progress(f"restoring memory{block}")
            try:
                self.host.memory.set_state(block, online_target(sel.zones[block]))
                self.report.add("restore", True, block=block, detail=f"was {state}, onlined")
            except OSError as exc:
                self.report.add("restore", False, block=block,
                                detail=f"left {state}: online failed {exc.strerror}")
        if not any(c.name == "restore" for c in self.report.checks):
            self.report.add("restore", True, detail=f"all {len(sel.blocks)} blocks online")
