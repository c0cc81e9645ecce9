"""Compare what memras made of a corpus log with what the log says.

Used by tests/unit/parsers/test_real_corpus.py (records straight from the parsers)
and by bench/real_log_recall.py (rows read back from a store filled by the import
path). Both reduce what they got to :class:`Observed` and call :func:`compare`.

Pairing: each expected record, in order, takes the unpaired observed record of the
same kind that agrees on the most stated fields, among those of the same class
(CE vs UE) or the same address (memory failures: the same pfn). An expected record
left unpaired is MISSED; a paired one whose stated fields differ has WRONG FIELDS; an
observed record left over is a DUPLICATE when it repeats a paired record's fault
(same kind, class and page, or pfn), else SPURIOUS. Fields a view cannot see (the
store keeps no raw line count, say) are not checked there.

Time as printed (:func:`time_rule`): ``[  12.345678]`` is an uptime; ISO 8601 is a
wall clock (aware when it has an offset); ``[Mon Jan 27 19:27:15 2020]`` (dmesg -T)
is a naive wall clock; ``TIME 1519356496`` is Unix seconds (UTC); a syslog stamp
without a year (``Feb  3 17:40:22``) only has to agree with the record's wall clock
when the record has one (no year, so none need be recorded).
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from memras.ingest.parsers import (
    KernelLogParser,
    dedup_keys,
    parse_mcelog,
    parse_ras_mc_ctl_error,
    parse_trace_line,
)
from memras.records import ErrorType, MemoryErrorEvent, MemoryFailureEvent, Record
from tests.corpus.loader import LOCATION_KEYS, CorpusLog, Expected

_UE = {ErrorType.UNCORRECTED.value, ErrorType.DEFERRED.value, ErrorType.FATAL.value}


# ---- what memras made of a log --------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Observed:
    """One record as a view (parser output or store row) shows it."""

    record: str  # "error" | "memory_failure"
    values: dict[str, Any]  # the fields this view can see
    uptime: float | None = None
    timestamp: datetime | None = None
    mce: dict[str, int] | None = None
    sees_mce: bool = True  # False: the view does not carry registers (store rows)
    sees_wall_clock: bool = True  # False: a missing wall clock was filled by the view
    raw: str = ""
    source: str = ""

    @property
    def klass(self) -> str | None:
        kind = self.values.get("error_type")
        return None if kind is None else ("UE" if kind in _UE else "CE")

    @property
    def fault(self) -> tuple[Any, ...]:
        """The identity of the fault: what makes a second record a duplicate."""
        if self.record == "memory_failure":
            return ("mf", self.values.get("pfn"))
        address = self.values.get("address")
        if address is not None:
            return ("mem", self.klass, "page", address >> 12)
        normalized = self.values.get("normalized_address")
        if normalized is not None:
            return ("mem", self.klass, "norm", normalized >> 12)
        return ("mem", self.klass, *(self.values.get(k) for k in LOCATION_KEYS))


def observed_record(record: Record) -> Observed:
    """A parser's record, every field visible."""
    raw_lines = len(record.raw.splitlines())
    if isinstance(record, MemoryFailureEvent):
        values: dict[str, Any] = {
            "pfn": record.pfn, "page_type": record.page_type,
            "action_result": record.action_result, "kmsg_seq": record.kmsg_seq,
            "raw_lines": raw_lines,
        }  # fmt: skip
        return Observed("memory_failure", values, record.uptime_s, record.timestamp,
                        raw=record.raw, source=str(record.source))  # fmt: skip
    values = {
        "error_type": record.error_type.value, "count": record.count,
        "address": record.address, "normalized_address": record.normalized_address,
        "page_shift": record.page_shift, "grain_bits": record.grain_bits,
        "syndrome": record.syndrome, "message": record.message, "driver": record.driver,
        "driver_detail": record.driver_detail, "kmsg_seq": record.kmsg_seq,
        "raw_lines": raw_lines,
    }  # fmt: skip
    values.update({k: getattr(record.location, k) for k in LOCATION_KEYS})
    mce = None if record.mce is None else dataclasses.asdict(record.mce)
    return Observed("error", values, record.uptime_s, record.timestamp, mce,
                    raw=record.raw, source=str(record.source))  # fmt: skip


# ---- reading a log the way `memras import` does -----------------------------------------


def parse_like_import(kind: str, text: str) -> list[Record]:
    """The records memras's importer would hand to the store for ``text`` of ``kind``
    (memras.store.importing: one KernelLogParser over the lines, parse_trace_line per
    line, parse_mcelog over the text; ``ras-mc-ctl`` lines, which ``memras import`` has
    no kind for, through parse_ras_mc_ctl_error)."""
    out: list[Record] = []
    if kind == "dmesg":
        parser = KernelLogParser()
        for line in text.splitlines():
            out += parser.feed(line)
        out += parser.flush()
    elif kind == "trace":
        for line in text.splitlines():
            result = parse_trace_line(line) if line.strip() else None
            if isinstance(result, MemoryErrorEvent | MemoryFailureEvent):
                out.append(result)
    elif kind == "mcelog":
        out += parse_mcelog(text)
    elif kind == "ras-mc-ctl":
        for line in text.splitlines():
            record = parse_ras_mc_ctl_error(line)
            if record is not None:
                out.append(record)
    else:
        raise ValueError(f"unknown corpus kind {kind!r}")
    return out


def collapse_like_store(records: Iterable[Record]) -> list[Record]:
    """Drop the records the store would drop as duplicates (memras.store.store
    ``_drop_known``): under the same dedup key, or the previous time bucket's, a record
    is dropped when one with the same source and raw text (and ``repeat`` number) is
    kept (read twice), or one from another source is (the same fault seen by two
    roads)."""
    kept: list[Record] = []
    seen: dict[tuple[object, ...], list[tuple[str, str]]] = {}
    for record in records:
        key, previous = dedup_keys(record)
        raw = record.raw or repr(record)
        repeat = getattr(record, "repeat", 0)  # identical lines printed again (store._identity)
        me = (str(record.source), f"{raw}\n#{repeat}" if repeat else raw)
        here = seen.get(key)
        if here is None and previous is not None:
            here = seen.get(previous)
        if here is not None and any(raw == me[1] or src != me[0] for src, raw in here):
            continue
        seen.setdefault(key, []).append(me)
        kept.append(record)
    return kept


# ---- time as printed ---------------------------------------------------------------------

_UPTIME = re.compile(r"^\[?\s*(\d+\.\d+)\]?$")
_DMESG_T = re.compile(r"^\[?([A-Z][a-z]{2} [A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d \d{4})\]?$")
_SYSLOG = re.compile(r"^([A-Za-z]{3}) ([ \d]\d) (\d\d):(\d\d):(\d\d)(?:\.\d+)?$")
_EPOCH = re.compile(r"^TIME (\d+)")
_ISO = re.compile(r"^\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d")
_MONTHS = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]


@dataclass(frozen=True, slots=True)
class TimeRule:
    kind: str  # uptime | wall | syslog
    uptime: float | None = None
    wall: datetime | None = None
    syslog: tuple[int, int, int, int, int] | None = None  # month, day, h, m, s


def _iso(text: str) -> datetime:
    text = text.replace(",", ".").replace(" ", "T", 1).replace("T+", "+").replace("T-", "-")
    text = re.sub(r"\s+([+-]\d\d):?(\d\d)$", r"\1:\2", text)
    text = re.sub(r"([+-]\d\d)(\d\d)$", r"\1:\2", text)
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def time_rule(printed: str) -> TimeRule:
    """What a printed time stamp obliges the record to carry (see the module doc)."""
    text = printed.strip()
    if m := _UPTIME.match(text):
        return TimeRule("uptime", uptime=float(m[1]))
    if m := _DMESG_T.match(text):
        return TimeRule("wall", wall=datetime.strptime(m[1], "%a %b %d %H:%M:%S %Y"))
    if m := _EPOCH.match(text):
        return TimeRule("wall", wall=datetime.fromtimestamp(int(m[1]), UTC))
    if _ISO.match(text):
        return TimeRule("wall", wall=_iso(text))
    if (m := _SYSLOG.match(text)) and m[1].lower() in _MONTHS:
        month = _MONTHS.index(m[1].lower()) + 1
        return TimeRule("syslog", syslog=(month, int(m[2]), int(m[3]), int(m[4]), int(m[5])))
    raise ValueError(f"unrecognised printed time {printed!r}")


def _same_wall(expected: datetime, actual: datetime) -> bool:
    if (expected.tzinfo is None) == (actual.tzinfo is None):
        return expected == actual
    if expected.tzinfo is None:  # a naive local stamp the view turned into UTC
        return expected.astimezone(UTC) == actual.astimezone(UTC)
    return False


def time_diff(printed: str, seen: Observed) -> Diff | None:
    rule = time_rule(printed)
    if rule.kind == "uptime":
        assert rule.uptime is not None
        ok = seen.uptime is not None and math.isclose(seen.uptime, rule.uptime, abs_tol=1e-6)
        return None if ok else Diff("time", printed, seen.uptime)
    if rule.kind == "wall":
        assert rule.wall is not None
        ok = seen.timestamp is not None and _same_wall(rule.wall, seen.timestamp)
        return None if ok else Diff("time", printed, seen.timestamp)
    if seen.timestamp is None or not seen.sees_wall_clock:
        return None  # no year was printed: no wall clock need be recorded
    t = seen.timestamp
    got = (t.month, t.day, t.hour, t.minute, t.second)
    return None if got == rule.syslog else Diff("time", printed, seen.timestamp)


# ---- comparing ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Diff:
    name: str
    expected: Any
    actual: Any

    def __str__(self) -> str:
        def show(v: Any) -> str:
            return hex(v) if isinstance(v, int) and not isinstance(v, bool) and v > 9 else repr(v)

        return f"{self.name}: expected {show(self.expected)}, got {show(self.actual)}"


@dataclass(slots=True)
class Pair:
    expected: Expected
    observed: Observed | None
    diffs: list[Diff] = field(default_factory=list)
    unchecked: int = 0  # stated fields this view cannot see


@dataclass(slots=True)
class Outcome:
    log: CorpusLog
    pairs: list[Pair]
    duplicates: list[Observed]
    spurious: list[Observed]
    decoys_stored: list[Observed] = field(default_factory=list)

    @property
    def missed(self) -> list[Pair]:
        return [p for p in self.pairs if p.observed is None]

    @property
    def wrong(self) -> list[Pair]:
        return [p for p in self.pairs if p.observed is not None and p.diffs]

    @property
    def ok(self) -> bool:
        return not (self.missed or self.wrong or self.duplicates or self.spurious
                    or self.decoys_stored)  # fmt: skip

    def problems(self) -> list[str]:
        """One line per problem, for a test failure or the bench's failing list."""
        out = []
        for n, p in enumerate(self.pairs):
            what = f"expected[{n}] {_describe(p.expected)}"
            if p.observed is None:
                out.append(f"MISSED {what}")
            for d in p.diffs:
                out.append(f"WRONG {what}: {d}")
        out += [f"DUPLICATE {_brief(o)}" for o in self.duplicates]
        out += [f"SPURIOUS {_brief(o)}" for o in self.spurious]
        out += [f"DECOY STORED {_brief(o)}" for o in self.decoys_stored]
        return out


def _describe(e: Expected) -> str:
    if e.record == "memory_failure":
        return f"memory_failure pfn {e.fields['pfn']:#x}"
    where = e.fields.get("address")
    return f"{e.fields['error_type']}" + ("" if where is None else f" at {where:#x}")


def _brief(o: Observed) -> str:
    if o.record == "memory_failure":
        return f"memory_failure pfn {o.values.get('pfn')!r}: {o.raw.splitlines()[:1]}"
    address = o.values.get("address")
    where = "" if address is None else f" at {address:#x}"
    return f"{o.values.get('error_type')}{where}: {o.raw.splitlines()[:1]}"


def _type_ok(expected: str, actual: Any) -> bool:
    if expected == "CE":
        return bool(actual == ErrorType.CORRECTED.value)
    if expected == "UE":
        return actual in _UE
    return bool(expected == actual)


def _page_shift(log: CorpusLog) -> int:
    return (log.page_size or 4096).bit_length() - 1


def field_diffs(log: CorpusLog, e: Expected, o: Observed) -> tuple[list[Diff], int]:
    """The stated fields ``o`` gets wrong, and how many it cannot show."""
    diffs: list[Diff] = []
    unchecked = 0
    for name, want in e.fields.items():
        if name == "page":
            address = o.values.get("address")
            got = None if address is None else address >> _page_shift(log)
        elif name in o.values:
            got = o.values[name]
        else:
            unchecked += 1
            continue
        ok = _type_ok(want, got) if name == "error_type" else got == want
        if not ok:
            diffs.append(Diff(name, want, got))
    if e.mce:
        if not o.sees_mce:
            unchecked += len(e.mce)
        elif o.mce is None:
            diffs.append(Diff("mce", e.mce, None))
        else:
            diffs += [Diff(f"mce.{k}", v, o.mce.get(k)) for k, v in e.mce.items()
                      if o.mce.get(k) != v]  # fmt: skip
    for name in e.absent:
        if name == "mce":
            if o.sees_mce and o.mce is not None:
                diffs.append(Diff("mce", None, "present"))
        elif name == "uptime":
            if o.uptime is not None:
                diffs.append(Diff("uptime", None, o.uptime))
        elif name == "timestamp":
            # a year-less stamp gets its wall clock from the year the source states
            # (--year); the printed day and time are then checked below
            if o.sees_wall_clock and o.timestamp is not None and log.year is None:
                diffs.append(Diff("timestamp", None, o.timestamp))
        elif name in o.values and o.values[name] is not None:
            diffs.append(Diff(name, None, o.values[name]))
    for printed in e.time:
        d = time_diff(printed, o)
        if d is not None:
            diffs.append(d)
    return diffs, unchecked


def _eligible(e: Expected, o: Observed) -> bool:
    if e.record != o.record:
        return False
    if e.record == "memory_failure":
        return bool(o.values.get("pfn") == e.fields["pfn"])
    if "address" in e.fields and o.values.get("address") == e.fields["address"]:
        return True
    return _type_ok(e.fields["error_type"], o.values.get("error_type"))


def compare(log: CorpusLog, observed: list[Observed],
            decoys_observed: list[Observed] | None = None) -> Outcome:  # fmt: skip
    """Pair the log's expected records with what memras made of it (module doc)."""
    left = list(observed)
    pairs: list[Pair] = []
    for e in log.expected:
        best: tuple[int, int, Observed, list[Diff], int] | None = None
        for i, o in enumerate(left):
            if not _eligible(e, o):
                continue
            diffs, unchecked = field_diffs(log, e, o)
            score = -len(diffs)
            if best is None or score > best[0]:
                best = (score, i, o, diffs, unchecked)
        if best is None:
            pairs.append(Pair(e, None))
            continue
        _, i, o, diffs, unchecked = best
        del left[i]
        pairs.append(Pair(e, o, diffs, unchecked))
    faults = {p.observed.fault for p in pairs if p.observed is not None}
    duplicates = [o for o in left if o.fault in faults]
    spurious = [o for o in left if o.fault not in faults]
    return Outcome(log, pairs, duplicates, spurious, list(decoys_observed or []))


def check_parsers(log: CorpusLog) -> Outcome:
    """The log through the parsers as ``memras import`` runs them, duplicates dropped
    as the store drops them; its decoys, on their own, must give nothing."""
    records = collapse_like_store(parse_like_import(log.kind, log.text))
    decoys = parse_like_import(log.kind, "\n".join(log.decoys)) if log.decoys else []
    return compare(log, [observed_record(r) for r in records],
                   [observed_record(r) for r in decoys])  # fmt: skip
