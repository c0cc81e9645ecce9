"""The kernel log ring buffer: /dev/kmsg (kernel/printk/printk.c, devkmsg_read).

Each read(2) of /dev/kmsg returns exactly one record, ``pri,seq,ts_usec,flags;text``
followed by optional continuation lines (`` KEY=VALUE``). The sequence number only
grows, so a reader that remembers the last ``seq`` it stored resumes after a
restart without loss or duplication, as long as the ring buffer still holds the
record; when it does not, the first ``seq`` read is larger than expected and the
difference is reported as lost (a gap), never silently skipped. A read that
returns EPIPE means records were overwritten while we were reading: the kernel
moves us to the oldest record it still has, and that loss is counted too.

On a simulated root (memras.sim) or a captured tree, ``dev/kmsg`` or
``.memras-sim/kmsg`` is a regular file with one record per line; it is tailed.
"""

from __future__ import annotations

import errno
import os
import select
import stat
import time
from dataclasses import dataclass

from memras.host._fs import SIM_MARKER, KernelFs

KMSG_PATH = "/dev/kmsg"
_READ_SIZE = 8192  # CONSOLE_EXT_LOG_MAX: one record never exceeds this
_FILE_SLICE = 256 * 1024  # bytes read per poll when tailing a file


@dataclass
class KmsgRead:
    records: list[str]  # raw records, "pri,seq,ts,flags;text" (continuations kept)
    lost: int = 0  # records the kernel overwrote before we read them (EPIPE)


def record_seq(record: str) -> int | None:
    """The sequence number of a raw /dev/kmsg record, or None if it is not one."""
    head, sep, _ = record.partition(";")
    if not sep:
        return None
    fields = head.split(",")
    if len(fields) < 3 or not fields[1].isdigit():
        return None
    return int(fields[1])


class KmsgReader:
    """Non-blocking reader of one /dev/kmsg-style source (character device or file)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        self.is_device = stat.S_ISCHR(os.fstat(self._fd).st_mode)
        self._pending = b""

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> KmsgReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def read(self, timeout_s: float = 0.0, max_records: int = 10_000) -> KmsgRead:
        """Records available now, waiting up to ``timeout_s`` for the first one."""
        if self.is_device:
            return self._read_device(timeout_s, max_records)
        return self._read_file(timeout_s, max_records)

    def _read_device(self, timeout_s: float, max_records: int) -> KmsgRead:
        out = KmsgRead(records=[])
        if timeout_s > 0:
            select.select([self._fd], [], [], timeout_s)
        while len(out.records) < max_records:
            try:
                data = os.read(self._fd, _READ_SIZE)
            except BlockingIOError:
                break
            except OSError as exc:
                if exc.errno == errno.EPIPE:
                    out.lost += 1  # exact count is recovered from the seq jump
                    continue
                if exc.errno == errno.EINVAL:  # record larger than our buffer
                    continue
                raise
            if not data:
                break
            out.records.append(data.decode(errors="replace").rstrip("\n"))
        return out

    def _read_file(self, timeout_s: float, max_records: int) -> KmsgRead:
        # A tailed file has no per-record reads: everything complete is returned.
        del max_records
        deadline = time.monotonic() + timeout_s
        while True:
            # One bounded slice per poll: a large captured log is consumed over several
            # polls instead of being read (and held) whole.
            chunk = os.read(self._fd, _FILE_SLICE)
            if chunk:
                self._pending += chunk
            if b"\n" in self._pending or (not chunk and time.monotonic() >= deadline):
                break  # (a record longer than a slice is read on, up to its newline)
            if not chunk:
                time.sleep(min(0.05, max(0.0, deadline - time.monotonic())))
        complete, _, self._pending = self._pending.rpartition(b"\n")
        if not complete:
            return KmsgRead(records=[])
        records: list[str] = []
        for line in complete.decode(errors="replace").split("\n"):
            if line.startswith(" ") and records:
                records[-1] += "\n" + line  # continuation (KEY=VALUE) of the last record
            elif line:
                records.append(line)
        return KmsgRead(records=records)


class Kmsg:
    """Locates the kernel log for a Host root."""

    def __init__(self, fs: KernelFs) -> None:
        self.fs = fs

    def path(self) -> str:
        sim = self.fs.path(f"{SIM_MARKER}/kmsg")
        if self.fs.is_simulated:
            return str(sim)
        return str(self.fs.path(KMSG_PATH))

    def available(self) -> bool:
        return os.path.exists(self.path())

    def open(self) -> KmsgReader:
        return KmsgReader(self.path())
