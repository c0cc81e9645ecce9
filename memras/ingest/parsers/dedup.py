"""The identity of an error across sources, so one fault seen twice is stored once.

The same fault reaches memras by several roads: the trace ``mce_record`` and the kmsg
``mce:`` lines; the trace ``mc_event`` and the kmsg ``EDAC MC`` line; a GHES block and
ghes_edac's EDAC line. :func:`dedup_key` is built only from facts every road reports
identically:

1. the record kind: ``"mem"`` (MemoryErrorEvent) or ``"mf"`` (MemoryFailureEvent);
2. the error class: ``"CE"`` or ``"UE"`` (Deferred/Uncorrected/Fatal are all "UE":
   the MCE decoder grades UCNA as Deferred where EDAC prints "UE");
3. *where*, the first that the record has: the 4 KiB page of the system address
   (``("page", addr & ~0xfff)``); else the normalized page (``("norm", …)``); else the
   decoded DIMM position ``("dimm", socket, mc, channel, slot, csrow, rank, bank, row,
   column)`` when any is known; else the MCE ``("mce", bank, status)``;
   for memory failures, the pfn;
4. a time bucket: the caller's ``time_bucket`` (e.g. its own arrival window), or
   ``floor(uptime_s / window_s)``, or the wall clock in ``window_s`` steps; ``None``
   when the record has no time, which then matches only other timeless records.

What matches: records of one fault carrying the same page (trace mce_record vs kmsg
mce lines; mc_event vs the EDAC line, whose page:offset give the same address).
What does not: a record with an address vs one without (an MCE with ADDRV clear vs
the EDAC line that located it); two different faults in the same page and bucket
(they collapse — for CEs the count is the unit of judgement, so the caller should
add ``count`` rather than drop the second); arrivals straddling a bucket edge —
use :func:`dedup_keys`, which also gives the previous bucket's key, and treat a hit
on either as a duplicate.
"""

from __future__ import annotations

import math

from memras.records import ErrorType, MemoryErrorEvent, MemoryFailureEvent, Record

DEFAULT_WINDOW_S = 2.0
Key = tuple[object, ...]


def _where(event: MemoryErrorEvent) -> tuple[object, ...]:
    if event.address is not None:
        return ("page", event.address & ~0xFFF)
    if event.normalized_address is not None:
        return ("norm", event.normalized_address & ~0xFFF)
    loc = event.location
    dimm = (loc.socket, loc.mc, loc.channel, loc.slot, loc.csrow, loc.rank, loc.bank, loc.row,
            loc.column)  # fmt: skip
    if any(v is not None for v in dimm):
        return ("dimm", *dimm)
    if event.mce is not None:
        return ("mce", event.mce.bank, event.mce.status)
    return ("none",)


def _bucket(record: Record, window_s: float) -> int | None:
    if record.uptime_s is not None and math.isfinite(record.uptime_s):
        return int(record.uptime_s // window_s)
    if record.timestamp is not None:
        return int(record.timestamp.timestamp() // window_s)
    return None


def dedup_key(
    record: Record, *, window_s: float = DEFAULT_WINDOW_S, time_bucket: int | None = None
) -> Key:
    bucket = time_bucket if time_bucket is not None else _bucket(record, window_s)
    if isinstance(record, MemoryErrorEvent):
        klass = "UE" if record.error_type.is_uncorrected else "CE"
        return ("mem", klass, _where(record), bucket)
    return ("mf", record.pfn, bucket)


def dedup_keys(record: Record, *, window_s: float = DEFAULT_WINDOW_S) -> tuple[Key, Key | None]:
    """This record's key and the key it would have had one bucket earlier."""
    key = dedup_key(record, window_s=window_s)
    bucket = key[-1]
    if not isinstance(bucket, int):
        return key, None
    return key, (*key[:-1], bucket - 1)


_UNCORRECTED = frozenset(t for t in ErrorType if t.is_uncorrected)


def dedup_key_parts(record: Record, *, window_s: float = DEFAULT_WINDOW_S
                    ) -> tuple[str, int] | None:
    """``(repr(key[:-1]), key[-1])`` of :func:`dedup_key` for the common case, built
    without the key tuple: a memory error with an address, or a memory failure, that has
    an uptime. None for anything else (the caller then uses :func:`dedup_keys`).

    The store hashes ``repr(key[:-1])`` and prefixes the bucket (memras.store); building
    that text directly saves tuple building and a generic ``repr`` on the ingest hot
    path. It must equal ``repr(dedup_key(record)[:-1])`` exactly (tested)."""
    uptime = record.uptime_s
    if uptime is None or not math.isfinite(uptime):
        return None
    if type(record) is MemoryErrorEvent:
        address = record.address
        if address is None:
            return None
        klass = "UE" if record.error_type in _UNCORRECTED else "CE"
        return f"('mem', '{klass}', ('page', {address & ~0xFFF}))", int(uptime // window_s)
    if type(record) is MemoryFailureEvent and type(record.pfn) is int:
        return f"('mf', {record.pfn})", int(uptime // window_s)
    return None
