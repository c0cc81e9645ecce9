"""tracefs: memras's own trace instance (kernel/trace/trace.c, Documentation/trace/ftrace.rst).

memras reads RAS tracepoints through a private instance, ``instances/memras``, so it
never disturbs the global buffer or another tool's instance (rasdaemon uses
``instances/rasdaemon``). It enables whichever of these events the kernel has:

    ras:mc_event  mce:mce_record  ras:memory_failure_event  ras:extlog_mem_event

and reads the instance's ``trace_pipe`` as text. ``buffer_size_kb`` (the instance's ring
buffer, per CPU) is set from ``[watch] trace_buffer_kb`` (:data:`DEFAULT_BUFFER_KB`) when
it differs; it is written only in the instance memras created, never in the global
buffer or another tool's instance. ``buffer_percent`` is set to 0:
since 6.1, a poll() on the pipe otherwise wakes only when half the buffer is full
(commit 42fb0a1e84ff), which is why Debian's rasdaemon 0.6.8 stored 0 of 303 CEs
in the lab (shared/reference/lab-recipe.md). With 0, every event wakes the reader.

On a simulated root, ``.memras-sim/trace`` is a text file in trace_pipe format
that is tailed instead.

Lost events. The instance's ring buffer overwrites its oldest events when memras reads
slower than the kernel writes (a storm, a watcher that was stopped). The kernel says so
twice, and memras reads both (reading only): a consuming read of ``trace_pipe`` prints
``CPU:N [LOST M EVENTS]`` (``CPU:N [LOST EVENTS]`` when the count is unknown) before
the first event after a loss (print_trace_line), and ``per_cpu/cpuN/stats`` counts
``overrun`` (overwritten), ``commit overrun`` (nested writes that filled the buffer)
and ``dropped events`` (a full buffer in non-overwrite mode) since the buffer was
created (tracing_stats_read). The markers' counts are the same ``overrun`` counter, so
the watcher takes the counters where it can read them and the markers otherwise (a
tailed file, a capture).
"""

from __future__ import annotations

import logging
import os
import re
import select
import time
from dataclasses import dataclass, field

from memras.errors import KernelInterfaceError
from memras.host._fs import SIM_MARKER, KernelFs

log = logging.getLogger("memras.host.tracefs")

TRACEFS_MOUNTS = ("/sys/kernel/tracing", "/sys/kernel/debug/tracing")
INSTANCE_NAME = "memras"
RAS_EVENTS = (
    "ras/mc_event",
    "mce/mce_record",
    "ras/memory_failure_event",
    "ras/extlog_mem_event",
    # CXL memory devices (drivers/cxl/core/trace.h): enabled where the kernel has them
    "cxl/cxl_general_media",
    "cxl/cxl_dram",
    "cxl/cxl_memory_module",
    "cxl/cxl_poison",
    "cxl/cxl_aer_uncorrectable_error",
    "cxl/cxl_aer_correctable_error",
    "cxl/cxl_overflow",
    "cxl/cxl_generic_event",
)


@dataclass
class TraceSetup:
    pipe_path: str
    enabled: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    instance_dir: str | None = None  # relative kernel path, for removal
    buffer_kb: int | None = None  # the instance's buffer_size_kb after setup (None: unknown)


# The instance's ring buffer per CPU, in KiB, unless [watch] trace_buffer_kb says otherwise:
# the kernel's own size for a new instance (trace_buf_size, 1,441,792 bytes), so by
# default memras costs no more kernel memory than before. It holds ~7,000 mce_record
# events per CPU (~200 bytes each with the ring's headers: the lab's counter instance
# holds ~60,000 in 12 MiB; an mc_event, with its label and driver strings, takes more)
# that the watcher has not read yet; beyond that the oldest are overwritten, which is
# recorded as a gap. The cost is this much RAM per possible CPU while the instance exists.
DEFAULT_BUFFER_KB = 1408
MIN_BUFFER_KB = 64
MAX_BUFFER_KB = 1 << 18  # 256 MiB per CPU


def buffer_has_size(current: int | None, wanted: int) -> bool:
    """Whether a buffer that reads ``current`` KiB is ``wanted`` KiB as the kernel sizes
    it: it allocates whole pages of ~4080 data bytes (ring_buffer_resize rounds up) and
    reads back their total, so 16384 reads as 16387 and the default 1408 as 1410."""
    return current is not None and wanted <= current < wanted + 4


def parse_buffer_kb(text: str) -> int | None:
    """``buffer_size_kb`` as read: ``1408``, or ``7 (expanded: 1408)`` before the buffer
    was first used (the size it will have); None if not a size."""
    m = re.fullmatch(r"\s*(\d+)(?:\s*\(expanded:\s*(\d+)\))?\s*", text)
    if m is None:
        return None
    return int(m.group(2) or m.group(1))


# At most this much is read per read_lines() call. A storm (or a 1M-line capture being
# tailed) then reaches the watcher as a stream of ~200-line batches that the bounded
# queue can hold back, instead of one list of every line in memory at once.
MAX_READ_BYTES = 1 << 16
_CHUNK_BYTES = 1 << 16


# print_trace_line (kernel/trace/trace.c); newer kernels print "[LOST EVENTS]" when the
# ring buffer cannot say how many
_LOST_MARKER = re.compile(r"CPU:(\d+) \[LOST (?:(\d+) )?EVENTS\]")
# the counters of per_cpu/cpuN/stats that count events the buffer lost (tracing_stats_read)
LOST_STATS_FIELDS = ("overrun", "commit overrun", "dropped events")
_COUNT_MAX = (1 << 63) - 1  # a gap's count is stored as int64; the kernel prints %lu


@dataclass(frozen=True, slots=True)
class LostMarker:
    """A trace_pipe line saying the buffer lost events of one CPU before this read."""

    cpu: int
    count: int | None  # None: the kernel did not know how many ("[LOST EVENTS]")


def parse_lost_marker(line: str) -> LostMarker | None:
    """``CPU:3 [LOST 120 EVENTS]`` -> LostMarker(3, 120); any other line -> None.

    Only the whole line matches (an event's own text cannot pass for a marker); a count
    beyond what a gap row holds is capped at 2^63-1."""
    m = _LOST_MARKER.fullmatch(line.strip())
    if m is None:
        return None
    count = None if m.group(2) is None else min(int(m.group(2)), _COUNT_MAX)
    return LostMarker(cpu=min(int(m.group(1)), _COUNT_MAX), count=count)


def parse_lost_stats(text: str) -> int | None:
    """Events a ``per_cpu/cpuN/stats`` file counts as lost (the LOST_STATS_FIELDS summed),
    or None when it holds none of them (not a stats file)."""
    total: int | None = None
    for line in text.splitlines():
        name, sep, value = line.partition(":")
        if sep and name.strip() in LOST_STATS_FIELDS and value.strip().isdigit():
            total = (total or 0) + int(value.strip())
    return None if total is None else min(total, _COUNT_MAX)


class TracePipeReader:
    """Line reader over a trace_pipe (or a tailed file), non-blocking with a timeout."""

    def __init__(self, path: str, *, is_pipe: bool) -> None:
        self.path = path
        self.is_pipe = is_pipe
        self._fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        self._pending = b""
        self.last_bytes = 0  # bytes (lines + newlines) the last read_lines() returned

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def read_lines(self, timeout_s: float = 0.0) -> list[str]:
        """Complete lines available now (at most about MAX_READ_BYTES of them), waiting
        up to ``timeout_s`` for the first; a partial last line is kept for next time."""
        deadline = time.monotonic() + timeout_s
        chunks = [self._pending]
        size = len(self._pending)
        newline = b"\n" in self._pending
        while size < MAX_READ_BYTES:
            if self.is_pipe:
                remaining = max(0.0, deadline - time.monotonic())
                select.select([self._fd], [], [], remaining)
            try:
                chunk = os.read(self._fd, min(_CHUNK_BYTES, MAX_READ_BYTES - size))
            except BlockingIOError:
                chunk = b""
            if chunk:
                chunks.append(chunk)
                size += len(chunk)
                newline = newline or b"\n" in chunk
                continue  # keep reading while data flows, up to the cap
            if newline or time.monotonic() >= deadline:
                break
            if not self.is_pipe:
                time.sleep(min(0.05, max(0.0, deadline - time.monotonic())))
        complete, sep, self._pending = b"".join(chunks).rpartition(b"\n")
        self.last_bytes = len(complete) + len(sep)
        if not complete:
            return []
        return [ln for ln in complete.decode(errors="replace").split("\n") if ln]


class Tracefs:
    def __init__(self, fs: KernelFs) -> None:
        self.fs = fs

    def mount_point(self) -> str | None:
        for mount in TRACEFS_MOUNTS:
            if self.fs.exists(f"{mount}/instances"):
                return mount
        return None

    def available(self) -> bool:
        return self.fs.is_simulated or self.mount_point() is not None

    def setup(self, name: str = INSTANCE_NAME, *, buffer_kb: int | None = None) -> TraceSetup:
        """Create/reuse the instance, size its buffer (``buffer_kb`` per CPU, when given
        and different), enable the RAS events present, return the pipe."""
        if self.fs.is_simulated:
            sim_trace = self.fs.path(f"{SIM_MARKER}/trace")
            sim_trace.touch(exist_ok=True)
            return TraceSetup(pipe_path=str(sim_trace), enabled=list(RAS_EVENTS))
        mount = self.mount_point()
        if mount is None:
            raise KernelInterfaceError(
                "tracefs is not mounted",
                hint="mount -t tracefs nodev /sys/kernel/tracing, or run without the trace source",
            )
        inst = f"{mount}/instances/{name}"
        self.fs.mkdir(inst)
        setup = TraceSetup(pipe_path=str(self.fs.path(f"{inst}/trace_pipe")), instance_dir=inst)
        setup.buffer_kb = self._size_buffer(inst, buffer_kb)
        if self.fs.exists(f"{inst}/buffer_percent"):
            self.fs.write(f"{inst}/buffer_percent", "0")
        for event in RAS_EVENTS:
            enable = f"{inst}/events/{event}/enable"
            if self.fs.exists(enable):
                self.fs.write(enable, "1")
                setup.enabled.append(event)
            else:
                setup.missing.append(event)
        return setup

    def _size_buffer(self, inst: str, buffer_kb: int | None) -> int | None:
        """Write ``buffer_kb`` to the instance's buffer_size_kb unless it already has that
        size (a restart then leaves the buffer, and its unread events, as they are);
        the size it has after."""
        path = f"{inst}/buffer_size_kb"
        if not self.fs.exists(path):
            return None
        current = parse_buffer_kb(self.fs.read(path, default=""))
        if buffer_kb is not None and not buffer_has_size(current, buffer_kb):
            try:
                self.fs.write(path, str(buffer_kb))
            except OSError as exc:  # ENOMEM: the kernel keeps the old size, and so do we
                log.warning("cannot size the trace buffer to %d KiB per CPU (%s); it stays "
                            "at %s KiB: lower [watch] trace_buffer_kb", buffer_kb,
                            exc.strerror or exc, current)
                return current
            current = parse_buffer_kb(self.fs.read(path, default="")) or buffer_kb
        return current

    def lost_events(self, setup: TraceSetup) -> int | None:
        """Events the instance's buffer lost since it was created, summed over its CPUs
        (``per_cpu/cpuN/stats``, read only); None when no stats file is readable (a
        simulated root, a kernel without them): then the pipe's markers are the record."""
        if setup.instance_dir is None:
            return None
        per_cpu = f"{setup.instance_dir}/per_cpu"
        total: int | None = None
        for cpu in self.fs.listdir(per_cpu):
            if not cpu.startswith("cpu"):
                continue
            lost = parse_lost_stats(self.fs.read(f"{per_cpu}/{cpu}/stats", default=""))
            if lost is not None:
                total = (total or 0) + lost
        return None if total is None else min(total, _COUNT_MAX)

    def open_pipe(self, setup: TraceSetup) -> TracePipeReader:
        return TracePipeReader(setup.pipe_path, is_pipe=not self.fs.is_simulated)
