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
4. the clock and a time bucket of it: ``("wall", floor(wall_s / window_s))`` when the
   record's wall-clock time is real (the store passes it: rasdaemon's local times,
   boot + uptime, syslog stamps all meet there), else ``("up", floor(uptime_s /
   window_s))`` (a capture without a clock: it meets only the same boot's uptimes),
   else ``None`` (no time: matches only other timeless records). A caller may give its
   own ``time_bucket``.

Tolerance: the store looks a key up in its own bucket and both neighbours, so two
reports of one fault less than ``window_s`` (2 s) apart always meet, and reports
``2 * window_s`` or more apart never do. rasdaemon stamps whole seconds of its own
estimate of the boot time (uptime_diff), so it trails the kernel's clock by up to ~1 s.

What matches: records of one fault carrying the same page (trace mce_record vs kmsg
mce lines; mc_event vs the EDAC line, whose page:offset give the same address; the
kernel's report vs rasdaemon's row of it).
What does not: a record with an address vs one without (an MCE with ADDRV clear vs
the EDAC line that located it); arrivals further apart than the tolerance.

Which reports are two errors and which are one (see :func:`reporter`): the store counts
rows per *road* (source and reporter) under a key and *address* (the key names the
page; the store counts each full address apart, so CEs on other cache lines of one page
never pair across roads, whatever the roads' clock skew within the tolerance). Two
reports by one road are two errors the kernel printed separately (never merged: their
raw text, kmsg sequence number or trace timestamp differ); a report on another road is
the same error as long as that road has more rows under the key and address than this
one.
"""

from __future__ import annotations

import math

from memras.records import ErrorType, MemoryErrorEvent, MemoryFailureEvent, Record, Source

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


def clock_bucket(record: Record, window_s: float = DEFAULT_WINDOW_S,
                 wall_s: float | None = None) -> tuple[str, int] | None:
    """``("wall", n)`` from a real wall-clock time (``wall_s``, or the record's own
    timestamp when the caller passes none), else ``("up", n)`` from the uptime.

    A machine check's own ``walltime`` (the kernel's TIME, set once per MCE) comes
    first: every road copies it verbatim (trace, kmsg, rasdaemon's mce_record.walltime,
    mcelog), while rasdaemon's timestamp is its own estimate and a guest's trace clock
    can drift (the QEMU lab's ran ~30x slow)."""
    mce = record.mce if type(record) is MemoryErrorEvent else None
    if mce is not None and mce.walltime > 0:
        wall_s = float(mce.walltime)
    elif wall_s is None and record.timestamp is not None and (
            record.time_source is None or record.time_source.is_real):
        wall_s = record.timestamp.timestamp()
    if wall_s is not None and math.isfinite(wall_s):
        return "wall", int(wall_s // window_s)
    if record.uptime_s is not None and math.isfinite(record.uptime_s):
        return "up", int(record.uptime_s // window_s)
    return None


def dedup_key(record: Record, *, window_s: float = DEFAULT_WINDOW_S,
              time_bucket: int | None = None, wall_s: float | None = None) -> Key:
    clock: tuple[str | None, int | None] | None
    clock = (None, time_bucket) if time_bucket is not None else \
        clock_bucket(record, window_s, wall_s)
    tag, bucket = clock if clock is not None else (None, None)
    if isinstance(record, MemoryErrorEvent):
        klass = "UE" if record.error_type.is_uncorrected else "CE"
        return ("mem", klass, _where(record), tag, bucket)
    return ("mf", record.pfn, tag, bucket)


def dedup_keys(record: Record, *, window_s: float = DEFAULT_WINDOW_S,
               wall_s: float | None = None) -> tuple[Key, Key | None]:
    """This record's key and the key it would have had one bucket earlier."""
    key = dedup_key(record, window_s=window_s, wall_s=wall_s)
    bucket = key[-1]
    if not isinstance(bucket, int):
        return key, None
    return key, (*key[:-1], bucket - 1)


# Drivers that pass on what the platform firmware reported (APEI GHES and BERT, eMCA
# extlog): their report of a fault is a second road beside the CPU's and the EDAC driver's.
FIRMWARE_DRIVERS = frozenset({"ghes", "ghes_edac", "extlog", "bert"})
REPORTERS = {"firmware": "f", "edac": "e", "cpu": "c", "page": "p"}


def reporter(record: Record) -> str:
    """Who within a source reported the record: ``firmware`` (GHES/extlog, including
    ghes_edac's EDAC line: driver_detail "APEI location"), ``edac`` (an EDAC driver's
    own decode: a label or layers, no registers), ``cpu`` (machine-check registers) or
    ``page`` (memory_failure). One error reported by skx/i10nm_edac and by firmware
    arrives on two roads of one source; two errors of one reporter stay two."""
    if isinstance(record, MemoryFailureEvent):
        return "page"
    if (record.driver in FIRMWARE_DRIVERS or record.driver_detail.startswith("APEI location")
            or record.source in (Source.FIRMWARE, Source.BMC)):
        return "firmware"
    loc = record.location
    if record.mce is None and (loc.label or loc.top_layer is not None
                               or record.driver.endswith("_edac")):
        return "edac"
    return "cpu"


_UNCORRECTED = frozenset(t for t in ErrorType if t.is_uncorrected)


def dedup_key_parts(record: Record, *, window_s: float = DEFAULT_WINDOW_S,
                    wall_s: float | None = None) -> tuple[str, int] | None:
    """``(repr(key[:-1]), key[-1])`` of :func:`dedup_key` for the common case, built
    without the key tuple: a memory error with an address, or a memory failure, that has
    a time. None for anything else (the caller then uses :func:`dedup_keys`).

    The store hashes ``repr(key[:-1])`` and prefixes the bucket (memras.store); building
    that text directly saves tuple building and a generic ``repr`` on the ingest hot
    path. It must equal ``repr(dedup_key(record, wall_s=wall_s)[:-1])`` exactly (tested)."""
    clock = clock_bucket(record, window_s, wall_s)
    if clock is None:
        return None
    tag, bucket = clock
    if type(record) is MemoryErrorEvent:
        address = record.address
        if address is None:
            return None
        klass = "UE" if record.error_type in _UNCORRECTED else "CE"
        return f"('mem', '{klass}', ('page', {address & ~0xFFF}), '{tag}')", bucket
    if type(record) is MemoryFailureEvent and type(record.pfn) is int:
        return f"('mf', {record.pfn}, '{tag}')", bucket
    return None
