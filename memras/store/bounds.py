"""What a record may say vs what a row can hold: values out of their domain are clamped
or blanked, and the row says so in ``memras_error.flags``.

Why: the kernel prints whatever its variables hold (``page:0xffffffffffffffff``,
``Memory failure: 0xffffffffffffffff``, a count read from a corrupt register), and a
copied log can hold anything. SQLite's INTEGER is a signed 64-bit; the sqlite3 driver
raises OverflowError binding a larger int, and that one value cost the whole batch
(up to 5,000 events) and, in the watcher, left the kmsg cursor before the line, so
every restart died on it again. A lone surrogate in a text does the same
(UnicodeEncodeError). This module is the one place such values are decided, before
the store hashes keys or builds rows, so memras_error, the rasdaemon mirror, the
per-DIMM counts and the health engine (which gets the stored records) all see the
same values. A parser's own notes (``Record.flags``: a rasdaemon row's unknown type or
unparsable time) join the row's flags here.

Domains are what a field can *mean*, not merely what SQLite holds:

    field                          domain                        out of it
    count                          0 .. 2^31-1                   clamped to the nearer bound
    address, normalized_address,   0 .. 2^64-1 (u64; stored      NULL: an address that cannot
      syndrome                       as int64, as rasdaemon)       exist names no page
    grain_bits                     0 .. 64                       NULL
    location fields (mc, layers…)  0 .. 2^31-1                   NULL
    uptime_s                       finite, 0 .. 2^64 ns          NULL
    timestamp                      years 1900 .. 9000            NULL: dated as an untimed record
    MCE registers                  u64, or u32/u8 as the         clamped
                                     mce_record tracepoint has them
    text (raw, message, label…)    encodable as UTF-8            lone surrogates escaped
    MemoryFailureEvent.pfn         0 .. 2^52-1 (a page of a      not stored: counted in
                                     52-bit physical address)      memras_skipped with the reason

The count's bound is rasdaemon's (``err_count`` is bound with ``sqlite3_bind_int``) and
memras_error.count's INTEGER on PostgreSQL (int4). Why NULL rather than clamp for
addresses: a clamped address is a real-looking page the health engine would count
and might offline; an unknown one is honest. A memory_failure record has nothing but
its page, so one whose page cannot exist is counted as skipped, not stored.

Cost: one chained comparison per numeric field and ``str.isascii`` per text, per
record; the location's check is cached per location object (parsers share them).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields, replace
from datetime import datetime
from typing import Any

from memras.records import DimmLocation, MceRegisters, MemoryErrorEvent, MemoryFailureEvent, Record

U64_MAX = (1 << 64) - 1
U32_MAX = (1 << 32) - 1
I32_MAX = (1 << 31) - 1
COUNT_MAX = I32_MAX
GRAIN_BITS_MAX = 64
PFN_MAX = (1 << (52 - 12)) - 1  # MAXPHYADDR 52 (x86-64, arm64 LPA), 4 KiB pages
UPTIME_MAX_S = U64_MAX / 1e9  # the printk/trace clock is u64 nanoseconds
YEAR_MIN, YEAR_MAX = 1900, 9000
# mce_record tracepoint fields narrower than u64 (include/trace/events/mce.h)
_REGISTER_MAX = {"cpu": U32_MAX, "cpuid": U32_MAX, "apicid": U32_MAX, "socketid": U32_MAX,
                 "microcode": U32_MAX, "cs": 0xFF, "bank": 0xFF, "cpuvendor": 0xFF}
_REGISTERS = tuple(f.name for f in fields(MceRegisters))
_LOCATION_INTS = tuple(f.name for f in fields(DimmLocation) if f.name != "label")
_ERROR_TEXTS = ("message", "driver", "driver_detail", "raw")
_FAILURE_TEXTS = ("page_type", "action_result", "raw")


@dataclass
class Checked:
    """A batch after :func:`check_batch`: records to store (values in their domains),
    the flags text of each changed one (by ``id()``: records are frozen, hash-free
    dataclasses of any content), and (record, reason) for those that cannot be stored."""

    records: list[Record] = field(default_factory=list)
    flags: dict[int, str] = field(default_factory=dict)
    rejected: list[tuple[Record, str]] = field(default_factory=list)


class BoundsChecker:
    """Checks records against their domains; keeps a bounded cache of checked locations."""

    MAX_LOCATIONS = 4096

    def __init__(self) -> None:
        self._locations: dict[int, tuple[DimmLocation, DimmLocation, list[str]]] = {}

    def check_batch(self, batch: list[Record]) -> Checked:
        out = Checked()
        checked: Record | None
        for record in batch:
            if type(record) is MemoryFailureEvent:
                checked, notes = self._failure(record)
            else:
                checked, notes = self._error(record)
            if checked is None:
                out.rejected.append((record, "; ".join(notes)))
                continue
            out.records.append(checked)
            if notes:
                out.flags[id(checked)] = ",".join(notes)
        return out

    def _error(self, r: MemoryErrorEvent) -> tuple[MemoryErrorEvent, list[str]]:
        a, n, s, g, u = r.address, r.normalized_address, r.syndrome, r.grain_bits, r.uptime_s
        loc = r.location
        entry = self._locations.get(id(loc))  # _location's cache, read inline (hot path)
        loc_ok = (entry[0] is loc and entry[1] is loc) if entry is not None \
            else self._location(loc)[1] is loc
        t = r.timestamp
        if (0 <= r.count <= COUNT_MAX and (a is None or 0 <= a <= U64_MAX)
                and (n is None or 0 <= n <= U64_MAX) and (s is None or 0 <= s <= U64_MAX)
                and (g is None or 0 <= g <= GRAIN_BITS_MAX)
                and (u is None or 0 <= u <= UPTIME_MAX_S) and loc_ok
                and (t is None or YEAR_MIN <= t.year <= YEAR_MAX)
                and (r.mce is None or _registers_ok(r.mce)) and not r.flags
                # kernel text is ASCII: four C calls; other text is checked in full
                and ((r.raw.isascii() and r.message.isascii() and r.driver.isascii()
                      and r.driver_detail.isascii()) or _texts_ok(r, _ERROR_TEXTS))):
            return r, []
        notes = list(r.flags)  # the parser's own (an unknown type, an unparsable time)
        changes: dict[str, Any] = {}
        if not 0 <= r.count <= COUNT_MAX:
            changes["count"] = min(max(r.count, 0), COUNT_MAX)
            notes.append(f"count:{_side(r.count)}")
        for name, value, top in (("address", a, U64_MAX), ("normalized_address", n, U64_MAX),
                                 ("syndrome", s, U64_MAX), ("grain_bits", g, GRAIN_BITS_MAX)):
            if value is not None and not 0 <= value <= top:
                changes[name] = None
                notes.append(f"{name}:{_side(value)}")
        if u is not None and not 0 <= u <= UPTIME_MAX_S:  # also NaN
            changes["uptime_s"] = None
            notes.append("uptime_s:" + ("invalid" if math.isnan(u) else _side(u)))
        if not _time_ok(r.timestamp):
            changes["timestamp"] = None
            notes.append("timestamp:out-of-range")
        location, _, location_notes = self._location(r.location)
        if location_notes:
            changes["location"] = location
            notes += location_notes
        if r.mce is not None:
            regs, register_notes = _registers(r.mce)
            if register_notes:
                changes["mce"] = regs
                notes += register_notes
        notes += _fix_texts(r, _ERROR_TEXTS, changes)
        return (replace(r, **changes) if changes else r), notes

    def _failure(self, r: MemoryFailureEvent) -> tuple[MemoryFailureEvent | None, list[str]]:
        if not 0 <= r.pfn <= PFN_MAX:
            return None, ["pfn beyond physical memory"]
        changes: dict[str, Any] = {}
        notes = list(r.flags)
        u = r.uptime_s
        if u is not None and not 0 <= u <= UPTIME_MAX_S:
            changes["uptime_s"] = None
            notes.append("uptime_s:" + ("invalid" if math.isnan(u) else _side(u)))
        if not _time_ok(r.timestamp):
            changes["timestamp"] = None
            notes.append("timestamp:out-of-range")
        notes += _fix_texts(r, _FAILURE_TEXTS, changes)
        return (replace(r, **changes) if changes else r), notes

    def _location(self, loc: DimmLocation) -> tuple[DimmLocation, DimmLocation, list[str]]:
        """(the location to store, the same object when it needs no change, notes)."""
        entry = self._locations.get(id(loc))
        if entry is not None and entry[0] is loc:
            return entry[1], entry[1], entry[2]
        changes: dict[str, Any] = {}
        notes: list[str] = []
        for name in _LOCATION_INTS:
            value = getattr(loc, name)
            if value is not None and not 0 <= value <= I32_MAX:
                changes[name] = None
                notes.append(f"{name}:{_side(value)}")
        label = loc.label
        if label is not None and not _text_ok(label):
            changes["label"] = _escaped(label)
            notes.append("label:invalid-unicode")
        fixed = replace(loc, **changes) if changes else loc
        if len(self._locations) >= self.MAX_LOCATIONS:
            self._locations.clear()
        self._locations[id(loc)] = (loc, fixed, notes)
        return fixed, fixed, notes


def _side(value: float) -> str:
    return "negative" if value < 0 else "too-large"


def _time_ok(when: datetime | None) -> bool:
    return when is None or YEAR_MIN <= when.year <= YEAR_MAX


def _text_ok(text: str) -> bool:
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _texts_ok(record: Record, names: tuple[str, ...]) -> bool:
    return all(_text_ok(getattr(record, name)) for name in names)


def _escaped(text: str) -> str:
    """Lone surrogates (from bytes decoded with surrogateescape) as visible ``\\udcxx``."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _fix_texts(record: Record, names: tuple[str, ...], changes: dict[str, Any]) -> list[str]:
    notes = []
    for name in names:
        text = getattr(record, name)
        if not _text_ok(text):
            changes[name] = _escaped(text)
            notes.append(f"{name}:invalid-unicode")
    return notes


def _registers_ok(regs: MceRegisters) -> bool:
    return all(0 <= getattr(regs, name) <= _REGISTER_MAX.get(name, U64_MAX)
               for name in _REGISTERS)


def _registers(regs: MceRegisters) -> tuple[MceRegisters, list[str]]:
    changes: dict[str, int] = {}
    for name in _REGISTERS:
        value = getattr(regs, name)
        top = _REGISTER_MAX.get(name, U64_MAX)
        if not 0 <= value <= top:
            changes[name] = min(max(value, 0), top)
    notes = [f"mce.{name}:{_side(getattr(regs, name))}" for name in changes]
    return (replace(regs, **changes) if changes else regs), notes
