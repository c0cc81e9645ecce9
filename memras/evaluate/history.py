"""Labelled history for ``memras evaluate``: error events per host, and failure tickets.

What it reads
    * a CE CSV: one error per row (time, host, socket, channel, DIMM, rank, bank group,
      bank, row, column, error type, optional address and count), header names
      case-insensitive with the aliases of the public datasets (SmartHW's ``cpuid``,
      ``channelid``, ``dimmid``…; Alibaba SRDS'22's ``serial_number``, ``collect_time``);
    * a tickets CSV: host, DIMM, failure time (the DIMM as the CE CSV's socket/channel/
      DIMM columns, or a ``dimm`` column holding the DIMM id evaluate prints); with no
      DIMM (PAKDD'21's ``serial_number, failure_time``, SmartMem's ``sn_name,
      alarm_time``) the ticket is the host's, and the evaluation is per host;
    * a memras or rasdaemon database (one host, named by the caller).

Bad rows
    A row that cannot be read (no time, an unknown error type, a field that is not a
    number) is skipped and counted, with a one-line reason naming the file and line;
    a file that cannot be read at all, or lacks a required column, is a UsageError.

Memory
    A history is held whole (the replay sorts each host's events by time), up to ~460
    bytes an event as a MemoryErrorEvent with its DimmLocation and time. Rows that repeat a
    location or a time (a faulty cell erring for months, a burst stamped to the
    second) share one object of each (:class:`_Shared`), as real CE logs mostly do.

DIMM ids
    The same ids the health engine uses (:func:`memras.health.keys.location_key`):
    ``S<socket>:C<channel>:D<dimm>`` for a numeric DIMM column, ``label:<text>`` for a
    named one, EDAC's ``mc…`` key for rasdaemon rows. A ticket names a DIMM the same way.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Hashable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Generic, TypeVar

from memras.errors import UsageError
from memras.health.api import record_from_stored
from memras.health.keys import location_key
from memras.ingest.sources import RasdaemonSource
from memras.records import DimmLocation, ErrorType, MemoryErrorEvent, MemoryFailureEvent, Source
from memras.store import MEMORY_FAILURE_TYPE, Store
from memras.watcher.importing import check_rasdaemon_db

EPOCH_MS_FROM = 1e11  # epoch seconds of the year 5138
MAX_REASONS = 20  # skipped rows whose reason is kept for the report; all are counted
SHARED_MAX = 1 << 16  # distinct locations/times a reader remembers for sharing, at most

# canonical column -> accepted header names (lower case)
CE_COLUMNS: dict[str, tuple[str, ...]] = {
    "time": ("time", "timestamp", "log_time", "collect_time", "datetime"),
    "host": ("host", "hostname", "serial", "serial_number", "sn", "sn_name", "server"),
    "socket": ("socket", "cpu", "cpuid", "cpu_id", "socket_id"),
    "channel": ("channel", "channelid", "channel_id"),
    "dimm": ("dimm", "dimmid", "dimm_id", "slot", "memory", "memoryid", "memory_id"),
    "rank": ("rank", "rankid", "rank_id"),
    "bank_group": ("bank_group", "bankgroup", "bankgroupid", "bank_group_id"),
    "bank": ("bank", "bankid", "bank_id"),
    "row": ("row", "rowid", "row_id"),
    "column": ("column", "columnid", "column_id", "col"),
    "device": ("device", "deviceid", "device_id"),
    "type": ("type", "error_type", "err_type"),
    "address": ("address", "addr", "phys_addr", "physical_address"),
    "count": ("count", "err_count", "error_count"),
}
CE_REQUIRED = ("time", "host", "dimm")
TICKET_COLUMNS: dict[str, tuple[str, ...]] = {
    "time": ("failure_time", "fault_time", "alarm_time", "time", "timestamp", "failed_at"),
    "host": CE_COLUMNS["host"],
    "socket": CE_COLUMNS["socket"],
    "channel": CE_COLUMNS["channel"],
    "dimm": CE_COLUMNS["dimm"],
}
# a ticket naming no DIMM is a host's failure (PAKDD'21's and SmartMem's tickets name
# the server only): evaluate then scores hosts, see metrics.evaluate_flags
TICKET_REQUIRED = ("time", "host")
HOST_LEVEL = "*"  # Ticket.dimm of a ticket that names no DIMM

# error type words -> record type; SmartHW's read/scrub are both corrected errors
ERROR_TYPES: dict[str, ErrorType] = {
    **{w: ErrorType.CORRECTED for w in ("", "ce", "corrected", "c", "read", "scrub",
                                        "patrol", "correctable")},
    **{w: ErrorType.UNCORRECTED for w in ("ue", "uncorrected", "uc", "uncorrectable")},
    "fatal": ErrorType.FATAL,
    "deferred": ErrorType.DEFERRED,
}


HistoryRecord = MemoryErrorEvent | MemoryFailureEvent
K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class _Shared(Generic[K, V]):
    """Values read again are the object read first: ``shared(key, make)``. Bounded: at
    SHARED_MAX keys it starts afresh, which costs only sharing, never a wrong value
    (a CE log repeats a cell or a second in runs, so a recent memory catches most)."""

    def __init__(self) -> None:
        self._seen: dict[K, V] = {}

    def __call__(self, key: K, make: Callable[[K], V]) -> V:
        value = self._seen.get(key)
        if value is None:
            if len(self._seen) >= SHARED_MAX:
                self._seen.clear()
            value = self._seen[key] = make(key)
        return value


@dataclass
class _Reader:
    """What one CSV's rows share: equal locations and times (see "Memory" above)."""

    locations: _Shared[DimmLocation, DimmLocation] = field(default_factory=_Shared)
    times: _Shared[str, datetime] = field(default_factory=_Shared)


class BadRow(ValueError):
    """One row that cannot be read; its message is the reason, in one line."""


@dataclass(frozen=True, slots=True)
class Ticket:
    host: str
    dimm: str
    time: datetime


@dataclass
class Skipped:
    """Rows skipped while reading, counted, with the first MAX_REASONS reasons."""

    count: int = 0
    reasons: list[str] = field(default_factory=list)

    def add(self, reason: str) -> None:
        self.count += 1
        if len(self.reasons) < MAX_REASONS:
            self.reasons.append(reason)


@dataclass
class History:
    """Memory error events per host, and what was skipped reading them."""

    # memory errors, and the kernel's memory_failure records (a poisoned page: a UE)
    events: dict[str, list[HistoryRecord]] = field(default_factory=dict)
    skipped: Skipped = field(default_factory=Skipped)
    # per host: location key -> the DIMM id the host's own engine gave it (its inventory
    # id, memras.fleet.evaluate); the replay names those DIMMs so. Empty: location keys
    dimm_ids: dict[str, dict[str, str]] = field(default_factory=dict)

    def add(self, host: str, event: HistoryRecord) -> None:
        self.events.setdefault(host, []).append(event)

    @property
    def total(self) -> int:
        return sum(len(v) for v in self.events.values())


# ---- fields -----------------------------------------------------------------------

def parse_time(text: str) -> datetime:
    """ISO 8601 (naive = UTC, a space instead of ``T`` allowed) or epoch seconds; an
    epoch above EPOCH_MS_FROM is milliseconds (Java-style exports: seconds that large
    would be past the year 5000)."""
    value = text.strip()
    if not value:
        raise BadRow("no time")
    try:
        epoch = float(value)
        return datetime.fromtimestamp(epoch / 1000 if epoch > EPOCH_MS_FROM else epoch, tz=UTC)
    except ValueError:
        pass
    except (OverflowError, OSError):
        raise BadRow(f"time {value!r} is out of range") from None
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise BadRow(f"time {value!r} is not ISO 8601 or epoch seconds") from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _int(row: Mapping[str, str], name: str) -> int | None:
    """A decimal or 0x-hex field; empty, ``-1`` (rasdaemon's n/a) and ``-`` are None."""
    text = (row.get(name) or "").strip()
    if text in ("", "-", "-1", "na", "n/a", "none", "null"):
        return None
    try:
        value = int(text, 0) if text.lower().startswith("0x") else int(float(text))
    except ValueError:
        raise BadRow(f"{name} {text!r} is not a number") from None
    if value < 0:
        raise BadRow(f"{name} {text!r} is negative")
    return value


def _error_type(row: Mapping[str, str]) -> ErrorType:
    text = (row.get("type") or "").strip().lower()
    if text not in ERROR_TYPES:
        raise BadRow(f"error type {text!r} is not CE or UE "
                     f"(allowed: {', '.join(w for w in ERROR_TYPES if w)})")
    return ERROR_TYPES[text]


def _host(row: Mapping[str, str]) -> str:
    host = (row.get("host") or "").strip()
    if not host:
        raise BadRow("no host")
    return host


def _location(row: Mapping[str, str]) -> DimmLocation:
    """The decoded location; a DIMM column that is not a number is the DIMM's label, and
    so is a number in a file with no channel column (PAKDD'21's address log numbers a
    server's DIMMs in its ``memory`` column): ``DIMM<n>`` of its host."""
    dimm_text = (row.get("dimm") or "").strip()
    if not dimm_text:
        raise BadRow("no DIMM")
    try:
        slot: int | None = _int(row, "dimm")
        label = None if "channel" in row else f"DIMM{slot}"
    except BadRow:
        slot, label = None, dimm_text
    return DimmLocation(
        socket=_int(row, "socket"), channel=_int(row, "channel"), slot=slot,
        rank=_int(row, "rank"), bank_group=_int(row, "bank_group"), bank=_int(row, "bank"),
        row=_int(row, "row"), column=_int(row, "column"), device=_int(row, "device"),
        label=label)


def event_from_row(row: Mapping[str, str], reader: _Reader | None = None
                   ) -> tuple[str, MemoryErrorEvent]:
    """(host, event) from one CE CSV row keyed by canonical column; raises BadRow.
    ``reader``: the file's shared locations and times (none shared without one)."""
    host = _host(row)
    text = row.get("time") or ""
    when = parse_time(text) if reader is None else reader.times(text, parse_time)
    location = _location(row)
    if reader is not None:
        location = reader.locations(location, _same)
    if location_key(location) is None:
        raise BadRow("the DIMM columns name no DIMM (need socket, channel and DIMM)")
    count = _int(row, "count")
    # Source only keys de-duplication in the store, which evaluation never uses; CSV
    # exports of the public datasets are mcelog/EDAC records, rasdaemon's kind.
    return host, MemoryErrorEvent(
        error_type=_error_type(row), source=Source.RASDAEMON, timestamp=when,
        count=1 if count is None else max(count, 1), address=_int(row, "address"),
        location=location)


def _same(value: DimmLocation) -> DimmLocation:
    return value


def ticket_from_row(row: Mapping[str, str]) -> Ticket:
    """A ticket from one tickets CSV row keyed by canonical column; raises BadRow."""
    host = _host(row)
    when = parse_time(row.get("time") or "")
    dimm_text = (row.get("dimm") or "").strip()
    if row.get("socket") or row.get("channel"):
        dimm = location_key(_location(row))
    else:
        dimm = dimm_text or None
    if not dimm and ("dimm" in row or "socket" in row or "channel" in row):
        raise BadRow("no DIMM")  # the file names DIMMs, this row does not
    return Ticket(host, dimm or HOST_LEVEL, when)


# ---- files ------------------------------------------------------------------------

def _rows(path: Path, columns: Mapping[str, tuple[str, ...]], required: tuple[str, ...]
          ) -> Iterator[tuple[int, dict[str, str]]]:
    """(line number, row keyed by canonical column) for each data row of a CSV."""
    try:
        handle = path.open(newline="", encoding="utf-8-sig")
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}") from None
    with handle:
        reader = csv.reader(handle)
        try:
            header = next(reader, None)
        except (csv.Error, UnicodeDecodeError) as exc:
            raise UsageError(f"{path}: cannot read the header: {exc}") from None
        if header is None:
            raise UsageError(f"{path} is empty", hint="the first line must be a header")
        index = _header_index(path, header, columns, required)
        try:
            for row in reader:
                if not row or all(not c.strip() for c in row):
                    continue
                yield reader.line_num, {name: row[i] if i < len(row) else ""
                                        for name, i in index.items()}
        except (csv.Error, UnicodeDecodeError) as exc:
            raise UsageError(f"{path}:{reader.line_num}: not CSV: {exc}") from None


def _header_index(path: Path, header: list[str], columns: Mapping[str, tuple[str, ...]],
                  required: tuple[str, ...]) -> dict[str, int]:
    names = [h.strip().lower() for h in header]
    index: dict[str, int] = {}
    for canonical, aliases in columns.items():
        for alias in aliases:
            if alias in names:
                index[canonical] = names.index(alias)
                break
    missing = [c for c in required if c not in index]
    if missing:
        wanted = "; ".join(f"{c} ({' or '.join(columns[c][:3])})" for c in missing)
        raise UsageError(f"{path}: no column for {wanted}",
                         hint="see `memras evaluate` in docs/user-guide.md for the format")
    return index


def read_events_csv(path: str | Path, into: History | None = None) -> History:
    """A CE CSV (see the module docstring) into a History; bad rows counted and skipped."""
    history = into if into is not None else History()
    p = Path(path)
    reader = _Reader()
    for line, row in _rows(p, CE_COLUMNS, CE_REQUIRED):
        try:
            host, event = event_from_row(row, reader)
        except BadRow as exc:
            history.skipped.add(f"{p.name}:{line}: {exc}")
            continue
        history.add(host, event)
    return history


def read_tickets_csv(path: str | Path, skipped: Skipped | None = None) -> list[Ticket]:
    """A tickets CSV; bad rows are counted in ``skipped`` and left out."""
    p = Path(path)
    skipped = skipped if skipped is not None else Skipped()
    tickets: list[Ticket] = []
    for line, row in _rows(p, TICKET_COLUMNS, TICKET_REQUIRED):
        try:
            tickets.append(ticket_from_row(row))
        except BadRow as exc:
            skipped.add(f"{p.name}:{line}: {exc}")
    return tickets


def read_rasdaemon_db(path: str | Path, host: str) -> History:
    """rasdaemon's ras-mc_event.db (read-only, through the watcher's reader)."""
    history = History()
    source = RasdaemonSource(str(check_rasdaemon_db(str(path))))
    source.start(None)
    while True:
        batch = source.poll(0)
        if batch.skipped and batch.skipped[0].startswith("cannot open rasdaemon DB"):
            raise UsageError(f"cannot read {path}: {batch.skipped[0]}")
        for sample in batch.skipped:
            history.skipped.add(f"{Path(path).name}: unreadable row: {sample[:120]}")
        if not batch.records and not batch.skipped:
            return history
        for record in batch.records:
            # Info rows are not errors; memory_failure rows are UEs the kernel handled
            # (the replay maps their page to a DIMM and keeps soft offlines out)
            if isinstance(record, MemoryFailureEvent) or (
                    isinstance(record, MemoryErrorEvent) and record.error_type != ErrorType.INFO):
                history.add(host, record)


def read_memras_db(url: str, host: str) -> History:
    """The memory errors a memras database holds (opened read-only, never created)."""
    history = History()
    memory_types = [t.value for t in ErrorType if t != ErrorType.INFO] + [MEMORY_FAILURE_TYPE]
    with Store.open_readonly(url) as store:
        for stored in store.errors(type=memory_types):
            record = record_from_stored(stored)  # a memory_failure row: MemoryFailureEvent
            if isinstance(record, MemoryFailureEvent) or record.error_type != ErrorType.INFO:
                history.add(host, record)
    return history
