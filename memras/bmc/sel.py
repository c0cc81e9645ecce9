"""ipmitool's System Event Log text → memory error records (pure).

The BMC's SEL keeps what the platform firmware logged, across reboots: the
uncorrectable error that reset the machine, the DIMM the BIOS mapped out at POST.
ipmitool prints a SEL record in one of two shapes:

``sel list`` / ``sel elist`` (ipmitool lib/ipmi_sel.c, ``ipmi_sel_print_std_entry``)::

    ID | DATE | TIME [TZ] | SENSOR | EVENT [(SLOT)] | Asserted|Deasserted [| EXTRA]
      3a | 12/14/22 | 23:09:44 CET | Memory #0x88 | Correctable ECC (CPU0_G1) | Asserted
     300 | 08/26/2005 | 11:36:12 | Memory | Memory Device Disabled | CPU 0 DIMM 0

``DATE | TIME`` is ``Pre-Init | 0000022492`` when the BMC's clock was not set yet
(seconds since the BMC started; no wall time). ``elist`` puts the sensor's SDR name
after its type (``Memory DIMM_A1``); without an SDR it is ``Memory #0x88``.

``sel list -v`` (``ipmi_sel_print_std_entry_verbose``) prints blocks of
``Key : value`` lines (``SEL Record ID``, ``Timestamp``, ``Sensor Type``,
``Event Direction``, ``Event Data``, ``Description``).

What becomes a record (IPMI 2.0 table 42-3, sensor type 0Ch Memory, offsets 00h/01h/04h):

=========================  ==============  ===================================
event                      error_type      why
=========================  ==============  ===================================
Correctable ECC            Corrected       one corrected error (or a burst the
                                           firmware logged once)
Uncorrectable ECC          Uncorrected     the machine usually reset after it
Memory Device Disabled     Uncorrected     the BIOS mapped the module out; Sun's
                                           X4140 logs multi-bit ECC this way
=========================  ==============  ===================================

Everything else is not a memory error record and is counted as ignored: other
sensor types (a Processor's "Uncorrectable machine check exception" is the CPU's
report, which the kernel log and trace already carry), deassertions (the end of a
condition, not a new error), "Correctable ECC logging limit reached" (a counter
crossing, not an error of its own), Parity, Presence, Spare, Throttled.

The slot: the text in parentheses after the event (ipmitool's OEM decoders print
it, e.g. Quanta ``(CPU0_G1)``), or the column after the direction / in place of it
(Sun's ``CPU 0 DIMM 0``), kept verbatim as ``location.label``; ``()`` means the
firmware gave none. The label is the BMC's decode, which can be wrong (ipmitool
issue #385: ``CPU0_G1`` where the board's own web page says ``CPU0_E1``), so it is
only a label: memras joins it to a DIMM by name like an EDAC label, never by guess.

Time: ``MM/DD/YYYY`` or ``MM/DD/YY`` and ``HH:MM:SS`` with an optional zone
abbreviation. ipmitool prints the BMC's clock in the zone of the machine that ran it
(``-Z`` prints UTC; ``UTC``/``GMT`` are read as such); other abbreviations (``CET``)
are not offsets Python can trust, so those times are taken as the importing
machine's local time unless the caller says ``tz``. A record's time_source is
``bmc``: the BMC's own clock, which is often minutes off the host's, so dedup with
the host's own report of the same error is not attempted (the SEL has no address).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo

from memras.records import DimmLocation, ErrorType, MemoryErrorEvent, Source, TimeSource

# event text (lower case, before any "(slot)") -> (error type, message)
MEMORY_EVENTS: dict[str, tuple[ErrorType, str]] = {
    "correctable ecc": (ErrorType.CORRECTED, "correctable ECC (SEL)"),
    "uncorrectable ecc": (ErrorType.UNCORRECTED, "uncorrectable ECC (SEL)"),
    "memory device disabled": (ErrorType.UNCORRECTED, "memory device disabled (SEL)"),
}
ASSERTED, DEASSERTED = "asserted", "deasserted"
UTC_NAMES = frozenset({"utc", "gmt", "z", "uct"})
DRIVER = "bmc-sel"

_ID = re.compile(r"^[0-9a-fA-F]{1,8}$")
_DATE = re.compile(r"^(\d{1,2})/(\d{1,2})/(\d{2}|\d{4})$")
_TIME = re.compile(r"^(\d{1,2}):(\d{2}):(\d{2})(?:\s+([A-Za-z][A-Za-z0-9+\-]{0,9}))?$")
_SLOT = re.compile(r"^(.*?)\s*\(([^()]*)\)\s*$")
_VERBOSE_KEY = re.compile(r"^\s*([A-Za-z][A-Za-z ()/]*?)\s*:\s?(.*)$")


@dataclass
class SelStats:
    """What a parse saw: records made, lines that were SEL entries of another kind
    (ignored), and lines that were not SEL entries at all (malformed, with samples)."""

    records: int = 0
    ignored: int = 0
    malformed: int = 0
    malformed_samples: list[str] = field(default_factory=list)

    def bad(self, line: str) -> None:
        self.malformed += 1
        if len(self.malformed_samples) < 5:
            self.malformed_samples.append(line[:500])


@dataclass(frozen=True, slots=True)
class SelEntry:
    """One SEL record as ipmitool printed it (verbatim texts)."""

    record_id: int
    when: datetime | None  # None: Pre-Init or no date
    sensor: str  # "Memory #0x88", "Memory DIMM_A1", "Processor #0x40"
    event: str  # "Correctable ECC" (the slot cut off)
    direction: str  # "asserted" | "deasserted" | ""
    slot: str | None  # the firmware's slot text, or None
    raw: str

    @property
    def is_memory(self) -> bool:
        return self.sensor.lower().startswith("memory")


def _clock(date: str, time: str, tz: tzinfo | None) -> datetime | None:
    d, t = _DATE.match(date.strip()), _TIME.match(time.strip())
    if d is None or t is None:
        return None
    year = int(d[3]) + (2000 if len(d[3]) == 2 else 0)
    zone = UTC if (t[4] or "").lower() in UTC_NAMES else tz
    try:
        when = datetime(year, int(d[1]), int(d[2]), int(t[1]), int(t[2]), int(t[3]))
    except ValueError:
        return None
    return when.replace(tzinfo=zone) if zone is not None else when.astimezone()


def _split_slot(event: str) -> tuple[str, str | None]:
    match = _SLOT.match(event)
    if match is None:
        return event.strip(), None
    slot = match[2].strip()
    return match[1].strip(), slot or None


def parse_sel_line(line: str, *, tz: tzinfo | None = None) -> SelEntry | None:
    """One ``sel list``/``sel elist`` line, or None when it is not one (a header, a
    blank, an error message). ``tz``: the zone the times were printed in when the line
    does not say UTC (default: this machine's)."""
    parts = [p.strip() for p in line.rstrip("\r\n").split("|")]
    if len(parts) < 5 or not _ID.match(parts[0]):
        return None
    record_id = int(parts[0], 16)
    date, time, sensor, event = parts[1], parts[2], parts[3], parts[4]
    rest = [p for p in parts[5:] if p]
    direction, slot_extra = "", None
    if rest and rest[0].lower() in (ASSERTED, DEASSERTED):
        direction = rest[0].lower()
        rest = rest[1:]
    if rest:
        slot_extra = rest[0]
    if date.lower() == "pre-init":
        when = None
    else:
        when = _clock(date, time, tz)
        if when is None:
            return None
    event, slot = _split_slot(event)
    return SelEntry(record_id, when, sensor, event, direction, slot or slot_extra,
                    line.rstrip("\r\n"))


def _verbose_blocks(lines: Iterable[str]) -> Iterator[tuple[dict[str, str], str]]:
    block: dict[str, str] = {}
    raw: list[str] = []
    for line in lines:
        match = _VERBOSE_KEY.match(line)
        if match is None:
            if block:
                yield block, "\n".join(raw)
            block, raw = {}, []
            continue
        key = match[1].strip().lower()
        if key == "sel record id" and block:
            yield block, "\n".join(raw)
            block, raw = {}, []
        block[key] = match[2].strip()
        raw.append(line.rstrip("\r\n"))
    if block:
        yield block, "\n".join(raw)


def parse_verbose(lines: Iterable[str], *, tz: tzinfo | None = None,
                  stats: SelStats | None = None) -> Iterator[SelEntry]:
    """``sel list -v`` blocks as entries; a block without a record id is malformed."""
    for block, raw in _verbose_blocks(lines):
        rid = block.get("sel record id", "")
        if not _ID.match(rid):
            if stats is not None:
                stats.bad(raw)
            continue
        stamp = block.get("timestamp", "")
        pieces = stamp.split(None, 1)
        when = _clock(pieces[0], pieces[1], tz) if len(pieces) == 2 else None
        direction = block.get("event direction", "").lower()
        direction = (DEASSERTED if direction.startswith("deassert")
                     else ASSERTED if direction.startswith("assert") else "")
        event, slot = _split_slot(block.get("description", ""))
        yield SelEntry(int(rid, 16), when, block.get("sensor type", ""), event, direction,
                       slot, raw)


def to_record(entry: SelEntry) -> MemoryErrorEvent | None:
    """The memory error an entry reports, or None (see the module docstring)."""
    if not entry.is_memory or entry.direction == DEASSERTED:
        return None
    kind = MEMORY_EVENTS.get(entry.event.lower())
    if kind is None:
        return None
    error_type, message = kind
    return MemoryErrorEvent(
        error_type=error_type, source=Source.BMC, count=1, timestamp=entry.when,
        message=message, driver=DRIVER, driver_detail=f"{entry.sensor}: {entry.event}",
        location=DimmLocation(label=entry.slot), raw=entry.raw,
        time_source=TimeSource.BMC if entry.when is not None else None)


def is_verbose(text_head: str) -> bool:
    """Whether a capture is ``sel list -v`` output (its first record's first key)."""
    return "SEL Record ID" in text_head


def parse_sel(lines: Iterable[str], *, tz: tzinfo | None = None,
              stats: SelStats | None = None) -> Iterator[MemoryErrorEvent]:
    """Every memory error record of a ``sel list``/``elist`` capture, or of a
    ``sel list -v`` capture (detected from its first non-blank line)."""
    stats = stats if stats is not None else SelStats()
    it = iter(lines)
    head: list[str] = []
    for line in it:
        head.append(line)
        if line.strip():
            break

    def all_lines() -> Iterator[str]:
        yield from head
        yield from it

    if head and is_verbose(head[-1]):
        entries: Iterable[SelEntry | None] = parse_verbose(all_lines(), tz=tz, stats=stats)
        for entry in entries:
            assert entry is not None
            record = to_record(entry)
            if record is None:
                stats.ignored += 1
                continue
            stats.records += 1
            yield record
        return
    for line in all_lines():
        if not line.strip():
            continue
        if "|" not in line:  # ipmitool's chatter ("SDRR successfully erased"), no record
            stats.ignored += 1
            continue
        entry = parse_sel_line(line, tz=tz)
        if entry is None:
            stats.bad(line)
            continue
        record = to_record(entry)
        if record is None:
            stats.ignored += 1
            continue
        stats.records += 1
        yield record


__all__ = ["MEMORY_EVENTS", "SelEntry", "SelStats", "is_verbose", "parse_sel",
           "parse_sel_line", "parse_verbose", "to_record"]
