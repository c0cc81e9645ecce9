"""A memory workload whose every page can be proved intact after migration.

:class:`PatternWorkload` maps anonymous memory and writes each 4 KiB page with a
16-byte header (run seed, page number) followed by a fixed filler. Anonymous pages
are movable, so the kernel prefers ZONE_MOVABLE for them and has to migrate them
when a loaded block goes offline. :meth:`verify` compares every page with what
was written; a page that lost bytes, or that came back at another page's place,
is counted and the first few are named. Cost: one memcmp per MiB chunk, plus
building the expected chunk (256 small joins) in Python.

Its size is a share of free memory, but never more than what the machine *running
the test* has available: on a simulated root the simulated server may claim
hundreds of GiB while the process runs on a laptop.
"""

from __future__ import annotations

import mmap
import os
import struct
import time
from dataclasses import dataclass

PAGE = 4096
CHUNK = 1 << 20
_HEADER = struct.Struct("<QQ")
_FILLER = (bytes(range(256)) * (PAGE // 256))[: PAGE - _HEADER.size]
MAX_REPORTED = 8


def local_available_bytes() -> int:
    """Memory available to this process's machine (sysconf, a read, never a write)."""
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError):
        return 0


def workload_size(share: float, target_free: int, *, max_bytes: int | None = None,
                  local_free: int | None = None) -> int:
    """``share`` of the target's free memory, bounded by this machine's, in whole MiB."""
    if share <= 0:
        return 0
    local = local_available_bytes() if local_free is None else local_free
    size = int(share * min(target_free, local))
    if max_bytes is not None:
        size = min(size, max_bytes)
    return size // CHUNK * CHUNK


@dataclass(frozen=True, slots=True)
class Verification:
    ok: bool
    bad_pages: int
    first_bad: tuple[int, ...]  # page numbers
    seconds: float


class PatternWorkload:
    def __init__(self, size: int, seed: int | None = None) -> None:
        if size <= 0 or size % CHUNK:
            raise ValueError("size must be a positive multiple of 1 MiB")
        self.size = size
        self.seed = seed if seed is not None else int.from_bytes(os.urandom(8), "little")
        self._map: mmap.mmap | None = None

    def _expected(self, chunk: int) -> bytes:
        first = chunk * (CHUNK // PAGE)
        return b"".join(_HEADER.pack(self.seed, p) + _FILLER
                        for p in range(first, first + CHUNK // PAGE))

    def fill(self) -> float:
        """Map and write every page; seconds taken."""
        started = time.monotonic()
        self._map = mmap.mmap(-1, self.size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        for chunk in range(self.size // CHUNK):
            self._map[chunk * CHUNK:(chunk + 1) * CHUNK] = self._expected(chunk)
        return time.monotonic() - started

    def verify(self) -> Verification:
        if self._map is None:
            raise RuntimeError("fill() first")
        started = time.monotonic()
        bad: list[int] = []
        count = 0
        for chunk in range(self.size // CHUNK):
            want = self._expected(chunk)
            got = self._map[chunk * CHUNK:(chunk + 1) * CHUNK]
            if got == want:
                continue
            for i in range(CHUNK // PAGE):
                if got[i * PAGE:(i + 1) * PAGE] != want[i * PAGE:(i + 1) * PAGE]:
                    count += 1
                    if len(bad) < MAX_REPORTED:
                        bad.append(chunk * (CHUNK // PAGE) + i)
        return Verification(count == 0, count, tuple(bad), time.monotonic() - started)

    def corrupt(self, page: int) -> None:
        """Flip one byte of ``page`` (tests prove :meth:`verify` notices)."""
        if self._map is None:
            raise RuntimeError("fill() first")
        offset = page * PAGE + PAGE // 2
        self._map[offset] = self._map[offset] ^ 0xFF

    def release(self) -> None:
        if self._map is not None:
            self._map.close()
            self._map = None
