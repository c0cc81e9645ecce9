"""Bytes in use inside one memory block: /proc/kpagecount and /proc/kpageflags.

Both files hold one little-endian u64 per PFN (fs/proc/page.c), so a 128 MiB block
is 32,768 entries, 256 KiB read with ``pread`` at ``pfn * 8``. A page counts as in
use when it is mapped (kpagecount > 0) or sits on an LRU list or in a slab
(kpageflags LRU, SLAB): free buddy pages and their tail pages have neither. It is
an estimate of what the kernel must migrate to offline the block (unmapped page
cache off the LRU is missed), taken just before the offline write. Reading needs
root and CONFIG_PROC_PAGE_MONITOR; without them (or on a simulated root) the
answer is None and the report says the throughput was not measured.
"""

from __future__ import annotations

import os
from array import array

from memras.host._fs import KernelFs

KPAGECOUNT = "/proc/kpagecount"
KPAGEFLAGS = "/proc/kpageflags"
KPF_LRU = 1 << 5  # include/uapi/linux/kernel-page-flags.h
KPF_SLAB = 1 << 7
PAGE = 4096


def _read_u64s(fs: KernelFs, rel: str, first_pfn: int, count: int) -> array | None:
    try:
        fd = os.open(fs.path(rel), os.O_RDONLY)
    except OSError:
        return None
    try:
        data = os.pread(fd, count * 8, first_pfn * 8)
    except OSError:
        return None
    finally:
        os.close(fd)
    if len(data) != count * 8:
        return None
    values = array("Q")
    values.frombytes(data)
    return values


def in_use_bytes(fs: KernelFs, start: int, size: int) -> int | None:
    """Bytes of pages in use in ``[start, start + size)``, or None when unmeasurable."""
    if fs.is_simulated:
        return None
    first, count = start // PAGE, size // PAGE
    counts = _read_u64s(fs, KPAGECOUNT, first, count)
    flags = _read_u64s(fs, KPAGEFLAGS, first, count)
    if counts is None or flags is None:
        return None
    used = sum(1 for c, f in zip(counts, flags, strict=True) if c or f & (KPF_LRU | KPF_SLAB))
    return used * PAGE
