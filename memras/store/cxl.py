"""``memras_cxl_event``: every CXL event memras read, with the fields only CXL has.

A CXL media error (general media, DRAM) is also a ``memras_error`` row, linked to
rasdaemon's ``cxl_general_media_event``/``cxl_dram_event`` mirror row: that is the
error the health engine counts. This table holds every CXL event, media ones
included, with what the device said about itself: its event log (the severity),
the record flags, DPA, HPA, region, the memory module's health information, poison
records, AER status and overflow counts (schema migration 9). The columns a query
filters or a rule reads are columns; the rest of the event's fields are a JSON text.

Same rules as every other source: the time is the record's wall clock, else boot +
uptime, else the time memras stored it (``time_source`` says which); one event
read twice (a trace line and rasdaemon's row of it, a file imported again) is stored
once. Its identity is the device's own: memdev serial (or name), event, record
handle and the device's timestamp, which every road copies; records without a
device timestamp (poison, AER, overflow) use the wall clock's 2-second bucket, as
memras.ingest.parsers.dedup does.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    BigInteger,
    DateTime,
    Float,
    Integer,
    String,
    Text,
    case,
    cast,
    distinct,
    func,
    literal,
    or_,
    select,
)
from sqlalchemy.orm import Mapped, mapped_column

from memras.ingest.parsers.cxl import (
    AER_CE,
    AER_UE,
    CXL_DRIVER,
    HDR_FLAGS,
    HEALTH_STATUS,
    MEDIA_EVENTS,
    MODULE_EVENT_TYPES,
    POISON_FLAGS,
    RASDAEMON_CXL_TABLES,
    error_type,
    flag_words,
    symbol_name,
)
from memras.ingest.parsers.dedup import DEFAULT_WINDOW_S
from memras.records import CxlEvent, Source, TimeSource
from memras.store.base import Base
from memras.store.dimm_ids import DimmFilter
from memras.store.models import ErrorCountRow, ErrorRow
from memras.store.quick import merge_groups, summary_group
from memras.store.rasdaemon_schema import (
    CXL_TABLE_COLUMNS,
    as_int64,
    cxl_row,
    format_timestamp,
    insert_sql,
)
from memras.store.results import StoredError, Summary, SummaryGroup

if TYPE_CHECKING:
    from memras.store.store import Store

TABLE = "memras_cxl_event"
# CxlEvent fields kept in their own columns (the rest go to ``fields``)
_COLUMNS = ("event", "memdev", "host", "serial", "log_type", "hdr_flags", "hdr_ts", "dpa",
            "hpa", "region", "health_status", "media_status", "life_used",
            "dirty_shutdown_cnt", "trace_type", "count")
_NOT_STORED = frozenset({"source", "timestamp", "uptime_s", "raw"})
_U64_FIELDS = frozenset({"serial", "hdr_ts", "dpa", "hpa", "hpa_alias0", "overflow_ts",
                         "first_ts", "last_ts"})


class CxlEventRow(Base):
    __tablename__ = TABLE

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    time: Mapped[datetime] = mapped_column(DateTime, index=True)  # naive UTC
    time_source: Mapped[str] = mapped_column(String(16))
    uptime: Mapped[float | None] = mapped_column(Float)
    source: Mapped[str] = mapped_column(String(32))
    error_type: Mapped[str] = mapped_column(String(16))
    event: Mapped[str] = mapped_column(String(32))
    memdev: Mapped[str] = mapped_column(String(64), index=True)
    host: Mapped[str] = mapped_column(String(64))
    serial: Mapped[int | None] = mapped_column(BigInteger)  # u64 stored as signed int64
    log_type: Mapped[str | None] = mapped_column(String(16))
    hdr_flags: Mapped[int | None] = mapped_column(Integer)
    hdr_ts: Mapped[int | None] = mapped_column(BigInteger)  # the device's clock, ns
    dpa: Mapped[int | None] = mapped_column(BigInteger)
    hpa: Mapped[int | None] = mapped_column(BigInteger)
    region: Mapped[str] = mapped_column(String(64), default="")
    health_status: Mapped[int | None] = mapped_column(Integer)
    media_status: Mapped[int | None] = mapped_column(Integer)
    life_used: Mapped[int | None] = mapped_column(Integer)
    dirty_shutdown_cnt: Mapped[int | None] = mapped_column(BigInteger)
    trace_type: Mapped[str | None] = mapped_column(String(16))
    count: Mapped[int | None] = mapped_column(Integer)
    fields: Mapped[str] = mapped_column(Text)  # the other CxlEvent fields, JSON
    dedup_key: Mapped[str] = mapped_column(String(255), unique=True)
    raw: Mapped[str] = mapped_column(Text, default="")


def _when(ev: CxlEvent, boot_time: datetime | None, now: datetime
          ) -> tuple[datetime, TimeSource]:
    if ev.timestamp is not None:
        when = ev.timestamp if ev.timestamp.tzinfo else ev.timestamp.replace(tzinfo=UTC)
        source = TimeSource.RASDAEMON if ev.source is Source.RASDAEMON else TimeSource.KERNEL
        return when.astimezone(UTC), source
    if ev.uptime_s is not None and boot_time is not None:
        return (boot_time + timedelta(seconds=ev.uptime_s)).astimezone(UTC), \
            TimeSource.UPTIME_BOOT
    return now, TimeSource.IMPORT


def dedup_key(ev: CxlEvent, when: datetime, time_source: TimeSource) -> str:
    """The event's identity across roads (see the module docstring)."""
    device = f"s{ev.serial}" if ev.serial else ev.memdev
    if ev.hdr_ts:  # the device's own clock, which every road copies (rasdaemon: seconds)
        clock = f"dev{ev.hdr_ts // 1_000_000_000}"
    elif time_source.is_real:
        clock = f"wall{math.floor(when.timestamp() / DEFAULT_WINDOW_S)}"
    elif ev.uptime_s is not None:
        clock = f"up{math.floor(ev.uptime_s / DEFAULT_WINDOW_S)}"
    else:
        clock = "raw" + hashlib.sha1(ev.raw.encode()).hexdigest()[:12]
    what = (ev.event, ev.hdr_handle, ev.dpa, ev.trace_type, ev.error_status, ev.count)
    return "|".join([device, clock, *("" if v is None else str(v) for v in what)])[:255]


def _row(ev: CxlEvent, boot_time: datetime | None, now: datetime) -> dict[str, Any]:
    when, time_source = _when(ev, boot_time, now)
    values = asdict(ev)
    row: dict[str, Any] = {c: values[c] for c in _COLUMNS}
    for name in _U64_FIELDS & set(row):
        row[name] = as_int64(row[name])
    row["region"] = row["region"] or ""
    extra = {k: v for k, v in values.items()
             if k not in _COLUMNS and k not in _NOT_STORED and v not in (None, "")}
    row.update(time=when.replace(tzinfo=None), time_source=time_source.value,
               uptime=ev.uptime_s, source=str(ev.source), error_type=str(error_type(ev)),
               fields=json.dumps(extra, sort_keys=True),
               dedup_key=dedup_key(ev, when, time_source), raw=ev.raw)
    return row


def add_cxl_events(store: Store, events: Iterable[CxlEvent], *,
                   boot_time: datetime | None = None) -> tuple[int, int]:
    """Store CXL events once each; returns (inserted, duplicates)."""
    now = datetime.now(UTC)
    events_list = list(events)
    rows = [_row(ev, boot_time, now) for ev in events_list]
    if not rows:
        return 0, 0
    fresh: dict[str, dict[str, Any]] = {}
    for row in rows:
        fresh.setdefault(row["dedup_key"], row)
    by_key = {row["dedup_key"]: ev for row, ev in zip(rows, events_list, strict=True)}
    with store.session() as session:
        known = set(session.scalars(select(CxlEventRow.dedup_key).where(
            CxlEventRow.dedup_key.in_(list(fresh)))))
        new = [CxlEventRow(**row) for key, row in fresh.items() if key not in known]
        session.add_all(new)
        if session.get_bind().dialect.name == "sqlite":  # rasdaemon's format: SQLite only
            for added in new:
                _mirror(session, by_key[added.dedup_key], added.time)
    return len(new), len(rows) - len(new)


_TABLE_OF = {event: table for table, event in RASDAEMON_CXL_TABLES.items()}


def _mirror(session: Any, ev: CxlEvent, when: datetime) -> None:
    """rasdaemon's cxl_* row of ``ev`` (its own id, as rasdaemon's NULL id gives)."""
    table = _TABLE_OF.get(ev.event)
    if table is None:
        return
    stamp = format_timestamp(when.replace(tzinfo=UTC))
    values = cxl_row(table, None, stamp, ev)
    names = CXL_TABLE_COLUMNS[table]
    session.connection().exec_driver_sql(insert_sql(table, names), values)


def _u64(value: int | None) -> int | None:
    return None if value is None else value & ((1 << 64) - 1)


def _event_of(r: CxlEventRow) -> CxlEvent:
    """A stored row back as the CxlEvent it was (``timestamp`` = the stored time)."""
    values: dict[str, Any] = {c: getattr(r, c) for c in _COLUMNS}
    for name in _U64_FIELDS & set(values):
        values[name] = _u64(values[name])
    values.update(json.loads(r.fields or "{}"))
    return CxlEvent(**values, source=Source(r.source), timestamp=r.time.replace(tzinfo=UTC),
                    uptime_s=r.uptime, raw=r.raw or "")


def cxl_events(store: Store, *, memdev: str | None = None, event: str | None = None,
               since: datetime | None = None) -> list[CxlEvent]:
    """Stored CXL events, oldest first, as CxlEvents (``timestamp`` = the stored time)."""
    query = select(CxlEventRow).order_by(CxlEventRow.time, CxlEventRow.id)
    if memdev is not None:
        query = query.where(CxlEventRow.memdev == memdev)
    if event is not None:
        query = query.where(CxlEventRow.event == event)
    if since is not None:
        query = query.where(CxlEventRow.time >= since.astimezone(UTC).replace(tzinfo=None))
    with store.session(write=False) as session:
        return [_event_of(r) for r in session.scalars(query)]


def stored_memdevs(store: Store) -> list[str]:
    """The memdevs memras_cxl_event holds records of (its memdev index)."""
    with store.session(write=False) as session:
        return sorted(session.scalars(select(CxlEventRow.memdev).distinct()))


def store_version(store: Store, *extra: Any) -> tuple[int, ...]:
    """A cheap "has anything stored changed?" token: memras_error's newest id and its
    events counted (memras_error_count: retention's deletes change it), memras_cxl_event's
    newest id and rows. Four aggregates over primary keys and a small table; equal
    tokens, same rows (what a reader caches by, memras.views.MemdevCache). ``extra``:
    scalar subqueries of other tables read in the same query (one read, not two)."""
    e, n, c = ErrorRow.__table__.c, ErrorCountRow.__table__.c, CxlEventRow.__table__.c
    query = select(select(func.max(e.id)).scalar_subquery(),
                   select(func.sum(n.events)).scalar_subquery(),
                   select(func.max(c.id)).scalar_subquery(),
                   select(func.count()).select_from(CxlEventRow.__table__).scalar_subquery(),
                   *extra)
    with store.session(write=False) as session:
        row = session.execute(query).one()
    return tuple(int(v or 0) for v in row)


def _memdev_errors(names: Iterable[str]) -> Any:
    """memras_error rows of these memdevs, as ``Store.errors(dimm=name)`` selects a
    name's (its label or its id)."""
    e = ErrorRow.__table__.c
    wanted = sorted(set(names))
    return or_(e.label.in_(wanted), e.dimm_id.in_(wanted))


def memdev_marks(store: Store, names: Iterable[str]) -> dict[str, tuple[int, int, int, int]]:
    """Each memdev's own "has anything of it changed?" token (:func:`store_version` per
    memdev): its memras_error rows (label or id) counted and their newest id, the same
    of its memras_cxl_event rows. One scan of memras_error (``label`` has no index:
    ~50 ms at 50,000 rows), read when :func:`store_version` changed, so that a reader
    judges again only the memdevs whose rows changed."""
    wanted = sorted(set(names))
    e, c = ErrorRow.__table__.c, CxlEventRow.__table__.c
    errors = (select(e.label, e.dimm_id, func.count(), func.max(e.id))
              .where(_memdev_errors(wanted)).group_by(e.label, e.dimm_id))
    records = (select(c.memdev, func.count(), func.max(c.id))
               .where(c.memdev.in_(wanted)).group_by(c.memdev))
    marks = dict.fromkeys(wanted, (0, 0, 0, 0))
    with store.session(write=False) as session:
        for label, dimm_id, n, newest in session.execute(errors):
            for name in {label, dimm_id} & marks.keys():  # a row named twice counts once
                rows, top, *rest = marks[name]
                marks[name] = (rows + n, max(top, newest), *rest)
        for memdev, n, newest in session.execute(records):
            marks[memdev] = (*marks[memdev][:2], n, newest)
    return marks


def memdev_media_errors(store: Store, memdev: str, *, after_id: int = 0
                        ) -> tuple[int, list[StoredError]]:
    """(rows, errors): the memdev's CXL media errors (memras_error rows of the CXL
    driver, as ``Store.errors(dimm=memdev)`` selects them) with an id above
    ``after_id``, oldest first, and how many such rows it has in all: a reader that
    keeps what it read (memras.health.cxl.MediaRecords) reads only the new ones, and
    all again when fewer are left than it read (retention deleted some)."""
    from memras.store.store import stored_error  # store.py imports this module

    t = ErrorRow.__table__
    mine = (_memdev_errors([memdev]), t.c.driver == CXL_DRIVER)
    query = select(t).where(*mine, t.c.id > after_id).order_by(t.c.time, t.c.id)
    with store.session(write=False) as session:
        rows = session.execute(query).mappings().all()
        total = session.scalar(select(func.count()).select_from(t).where(*mine)) or 0
    return int(total), [stored_error(r) for r in rows]


# --- the records `memras errors` and `memras summary` show beside memras_error ------

@dataclass(frozen=True, slots=True)
class StoredCxlRecord:
    """A memras_cxl_event row that is not a media error (those are memras_error rows):
    poison, memory module, AER, overflow, generic. ``type`` is its ErrorType as
    :func:`memras.ingest.parsers.cxl.error_type` says (poison List/Inject and AER
    uncorrectable: Uncorrected; health records: Info); ``time`` is aware UTC."""

    id: int
    time: datetime
    time_source: str
    type: str
    event: CxlEvent

    @property
    def dimm_id(self) -> str:
        """The memdev's identity as health judges it (memras.health.keys: ``label:memN``)."""
        return f"label:{self.event.memdev}"

    @property
    def flags(self) -> str:
        """The record's flags in the kernel's words: a poison record's, else its header's."""
        ev = self.event
        if ev.event == "poison":
            return flag_words(ev.poison_flags, POISON_FLAGS)
        return flag_words(ev.hdr_flags, HDR_FLAGS)

    @property
    def message(self) -> str:
        return record_message(self.event)


def record_message(ev: CxlEvent) -> str:
    """One line for a non-media CXL record: what it is, in the kernel's words."""
    if ev.event == "poison":
        size = f", {ev.dpa_length} bytes" if ev.dpa_length else ""
        source = f", source {ev.source_text}" if ev.source_text else ""
        flags = flag_words(ev.poison_flags, POISON_FLAGS, sep=",")
        return f"CXL poison {ev.trace_type or '?'}{size}{source}" + (
            f", flags {flags}" if flags else "")
    if ev.event == "memory_module":
        what = symbol_name(ev.event_type, MODULE_EVENT_TYPES) or "memory module"
        health = flag_words(ev.health_status, HEALTH_STATUS, sep=",")
        life = f", life used {ev.life_used}%" if ev.life_used is not None else ""
        return f"CXL {what}" + (f": {health}" if health else "") + life
    if ev.event.startswith("aer_"):
        table = AER_UE if ev.event == "aer_uncorrectable_error" else AER_CE
        kind = "uncorrectable" if ev.event == "aer_uncorrectable_error" else "correctable"
        status = flag_words(ev.error_status, table, sep=", ")
        return f"CXL AER {kind} error" + (f": {status}" if status else "")
    if ev.event == "overflow":
        lost = f": {ev.count} records lost" if ev.count is not None else ""
        return f"CXL {ev.log_type or ''} event log overflow{lost}".replace("  ", " ")
    return f"CXL {ev.event.replace('_', ' ')}" + (f" ({ev.log_type})" if ev.log_type else "")


def _memdev_clause(dimm: str | DimmFilter) -> Any:
    """The memdevs ``dimm`` names, as ``memras errors --dimm`` resolved it: a DimmFilter's
    ``memdevs`` (memras.health.dimm_names), or a text as the store takes one (a memdev's
    name or its id ``label:memN``)."""
    if isinstance(dimm, DimmFilter):
        return CxlEventRow.memdev.in_(dimm.memdevs)
    return CxlEventRow.memdev.in_({dimm, dimm.removeprefix("label:")})


def _record_filters(since: datetime | None, until: datetime | None,
                    dimm: str | DimmFilter | None,
                    type: str | Iterable[str] | None) -> list[Any]:
    """The ``errors``/``summary`` filters (Store.errors' own) over memras_cxl_event."""
    clauses: list[Any] = [CxlEventRow.event.not_in(sorted(MEDIA_EVENTS))]
    if since is not None:
        clauses.append(CxlEventRow.time >= naive(since))
    if until is not None:
        clauses.append(CxlEventRow.time < naive(until))
    if dimm is not None:
        clauses.append(_memdev_clause(dimm))
    if type is not None:
        clauses.append(CxlEventRow.error_type.in_([type] if isinstance(type, str)
                                                  else list(type)))
    return clauses


def naive(when: datetime) -> datetime:
    """Naive UTC, as the table stores times (a naive input is local time)."""
    return when.astimezone(UTC).replace(tzinfo=None)


def cxl_records(store: Store, since: datetime | None = None, until: datetime | None = None,
                dimm: str | DimmFilter | None = None, type: str | Iterable[str] | None = None,
                limit: int | None = None) -> list[StoredCxlRecord]:
    """The non-media CXL records :meth:`Store.errors` would select with these filters,
    oldest first; ``limit`` keeps the newest ``limit``."""
    query = (select(CxlEventRow).where(*_record_filters(since, until, dimm, type))
             .order_by(CxlEventRow.time.desc(), CxlEventRow.id.desc()))
    if limit is not None:
        query = query.limit(limit)
    with store.session(write=False) as session:
        rows = list(session.scalars(query))
        return [StoredCxlRecord(r.id, r.time.replace(tzinfo=UTC), r.time_source,
                                r.error_type, _event_of(r)) for r in reversed(rows)]


def cxl_summary_groups(store: Store, since: datetime | None = None,
                       until: datetime | None = None, dimm: str | DimmFilter | None = None,
                       type: str | Iterable[str] | None = None) -> list[SummaryGroup]:
    """:func:`cxl_records` counted as ``memras summary`` counts: by type and memdev (its
    label; no EDAC location), events = records, errors = one a record but poison, one a
    poisoned DPA: every read of the device's poison list prints each entry again, and
    an entry read twice is one error (memras.store.quick reads the same in SQL)."""
    t = CxlEventRow.__table__.c
    error = case((t.event == "poison",
                  literal("p").concat(func.coalesce(cast(t.dpa, String), ""))),
                 else_=literal("r").concat(cast(t.id, String)))
    query = (select(t.error_type, t.memdev, func.count(), func.count(distinct(error)))
             .where(*_record_filters(since, until, dimm, type))
             .group_by(t.error_type, t.memdev))
    with store.session(write=False) as session:
        rows = session.execute(query).all()
    return [summary_group(kind, memdev, -1, -1, -1, -1, n, errors)
            for kind, memdev, n, errors in rows]


def error_summary(store: Store, since: datetime | None = None, until: datetime | None = None,
                  dimm: str | DimmFilter | None = None,
                  type: str | Iterable[str] | None = None) -> Summary:
    """:meth:`Store.summary` with the CXL records counted too: what ``memras summary``
    prints and a memdev's CE/UE (memras.views) are."""
    base = store.summary(since=since, until=until, dimm=dimm, type=type)
    extra = cxl_summary_groups(store, since, until, dimm, type)
    if not extra:
        return base
    return Summary.from_groups(merge_groups([*base.groups, *extra]))


def create_table(conn: Any) -> None:
    """Migration 9: the table (a fresh database already has it from create_all)."""
    Base.metadata.create_all(conn, tables=[CxlEventRow.__table__], checkfirst=True)
