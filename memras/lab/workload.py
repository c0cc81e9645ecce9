"""A guest workload that must not notice a memory replacement: ``python3 workload.py``.

It fills a buffer with checksummed data and, until SIGTERM, walks it chunk by chunk:
verify the chunk against its CRC-32, rewrite it with the next generation's pattern,
record the new CRC. The gap between two consecutive chunk visits is the workload's
stall; the longest one (and when it happened) is what a "no downtime" claim rests on.
Every ``--interval`` seconds it writes a JSON status file atomically, including how
many of its pages the kernel has placed in ``--range`` (a DIMM's physical addresses,
read from /proc/self/pagemap: root in the guest), so a scenario can show the data
really sat in the module being pulled and was migrated out of it.

SIGUSR1 copies the data into a fresh buffer (new pages, which the allocator takes
from ZONE_MOVABLE first), so memory onlined again is refilled before a timed offline.
Standard library only: it runs from the read-only 9p share with the host's Python.

    python3 workload.py --mib 320 --status /tmp/wl.json --range 0x110000000-0x120000000
"""

from __future__ import annotations

import argparse
import ctypes
import hashlib
import json
import os
import signal
import struct
import time
import zlib
from typing import Any

PAGE = 4096
PFN_MASK = (1 << 55) - 1
PRESENT = 1 << 63


def pattern(chunk: int, generation: int, size: int) -> bytes:
    """The chunk's content for a generation: a 64-byte digest repeated."""
    seed = hashlib.blake2b(struct.pack("<QQ", chunk, generation)).digest()
    return seed * (size // len(seed))


class Workload:
    def __init__(self, mib: int, chunk_kib: int, phys_range: tuple[int, int] | None) -> None:
        self.chunk = chunk_kib << 10
        self.chunks = (mib << 20) // self.chunk
        self.range = phys_range
        self.buf = bytearray(self.chunks * self.chunk)
        self.generation = [0] * self.chunks
        self.crc = [0] * self.chunks
        for i in range(self.chunks):
            self._write(i)
        self.iterations = self.passes = self.errors = self.refills = 0
        self.max_stall_s = 0.0
        self.max_stall_at = 0.0
        self.first_error: dict[str, Any] | None = None
        self.started = time.time()
        self.pages_in_range_max = 0

    def _write(self, i: int) -> None:
        self.generation[i] += 1
        data = pattern(i, self.generation[i], self.chunk)
        self.buf[i * self.chunk:(i + 1) * self.chunk] = data
        self.crc[i] = zlib.crc32(data)

    def _verify(self, i: int) -> None:
        view = memoryview(self.buf)[i * self.chunk:(i + 1) * self.chunk]
        if zlib.crc32(view) != self.crc[i]:
            self.errors += 1
            if self.first_error is None:
                self.first_error = {"chunk": i, "generation": self.generation[i],
                                    "at": time.time()}

    def refill(self) -> None:
        """Move the data to newly allocated pages (the old buffer is freed)."""
        fresh = bytearray(len(self.buf))  # untouched: pages come on the first write
        fresh[:] = self.buf
        self.buf = fresh
        self.refills += 1

    def pages_in_range(self) -> int | None:
        """How many of the buffer's pages are in the physical range (None: unreadable)."""
        if self.range is None:
            return None
        start = ctypes.addressof((ctypes.c_char * len(self.buf)).from_buffer(self.buf))
        first = start // PAGE
        count = (start + len(self.buf) - 1) // PAGE - first + 1
        try:
            with open("/proc/self/pagemap", "rb") as fh:
                fh.seek(first * 8)
                raw = fh.read(count * 8)
        except OSError:
            return None
        low, high = self.range[0] // PAGE, self.range[1] // PAGE
        inside = 0
        for (entry,) in struct.iter_unpack("<Q", raw):
            if entry & PRESENT and low <= (entry & PFN_MASK) < high:
                inside += 1
        return inside

    def status(self, final: bool = False) -> dict[str, Any]:
        pages = self.pages_in_range()
        if pages is not None:
            self.pages_in_range_max = max(self.pages_in_range_max, pages)
        return {"pid": os.getpid(), "mib": len(self.buf) >> 20, "chunks": self.chunks,
                "iterations": self.iterations, "passes": self.passes, "errors": self.errors,
                "first_error": self.first_error, "refills": self.refills,
                "max_stall_ms": round(self.max_stall_s * 1000, 1),
                "max_stall_at": self.max_stall_at, "pages_in_range": pages,
                "pages_in_range_max": self.pages_in_range_max, "started": self.started,
                "updated": time.time(), "final": final}

    def run(self, status_path: str, interval_s: float, pause_s: float,
            stop: list[bool], refill: list[bool]) -> None:
        _write_status(status_path, self.status())
        last = time.monotonic()
        next_status = last + interval_s
        i = 0
        while not stop[0]:
            self._verify(i)
            self._write(i)
            self.iterations += 1
            i += 1
            if i == self.chunks:
                i, self.passes = 0, self.passes + 1
            if refill[0]:  # our own copy, not a stall: not timed
                refill[0] = False
                self.refill()
                last = time.monotonic()
            time.sleep(pause_s)
            now = time.monotonic()
            if now - last > self.max_stall_s:
                self.max_stall_s, self.max_stall_at = now - last, time.time()
            last = now
            if now >= next_status:
                _write_status(status_path, self.status())
                next_status = now + interval_s
                last = time.monotonic()  # the status write is ours, not a stall
        for j in range(self.chunks):  # a last full verification pass
            self._verify(j)
        _write_status(status_path, self.status(final=True))


def _write_status(path: str, data: dict[str, Any]) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "w") as fh:
        json.dump(data, fh)
    os.replace(tmp, path)


def _range(text: str) -> tuple[int, int]:
    start, _, end = text.partition("-")
    return int(start, 0), int(end, 0)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--mib", type=int, default=256, help="buffer size")
    p.add_argument("--chunk-kib", type=int, default=1024, help="verify/rewrite unit")
    p.add_argument("--status", required=True, help="JSON status file (rewritten atomically)")
    p.add_argument("--interval", type=float, default=0.5, help="seconds between status writes")
    p.add_argument("--pause", type=float, default=0.002, help="sleep after each chunk")
    p.add_argument("--range", type=_range, help="START-END physical range to count pages in")
    args = p.parse_args(argv)
    stop = [False]
    refill = [False]

    def on_term(*_: object) -> None:
        stop[0] = True

    def on_usr1(*_: object) -> None:
        refill[0] = True

    # Before the fill: under TCG filling a few hundred MiB takes tens of seconds, and a
    # SIGTERM then killed the process silently, with no status and no final pass (CI
    # 2026-12-07, capacity-policy: "the workload died: no output; last status {}").
    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    signal.signal(signal.SIGUSR1, on_usr1)
    workload = Workload(args.mib, args.chunk_kib, args.range)
    workload.run(args.status, args.interval, args.pause, stop, refill)
    return 0 if workload.errors == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
