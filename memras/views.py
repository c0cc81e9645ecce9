"""Read models for front ends: small aggregations the TUI shows, computed in the core.

The TUI holds no kernel or SQL logic; what its screens need beyond the plain core
calls lives here as pure functions over a ``Host`` and a ``Store`` returning frozen
dataclasses. Nothing here imports Textual (tests/unit/test_import_hygiene.py).

Every database read is bounded, so the dashboard's first paint costs the same with
an empty database and with a million events (bench/tui_first_paint.py):

- the 24 h counts and sparklines read only the last 24 h through the index on
  ``memras_error.time`` and group in SQL (``GROUP BY`` label, layers, hour);
- the live feed reads ``id > cursor ORDER BY id DESC LIMIT n`` on the primary key;
- a DIMM's detail reads at most ``DETAIL_EVENT_LIMIT`` of its newest events.

A CXL memdev's row is the exception: its verdict judges every record it has
(memras.health.cxl.memdev_verdicts) and its CE/UE count them all. The dashboard keeps
them in a :class:`MemdevCache` keyed by :func:`memdev_version` (newest ids and row
counts), so a reload with nothing new stored reads four aggregates, not the records;
a change judges again only the memdevs whose own rows changed, reading only their new
media errors.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import desc, func, or_, select

from memras.alerts.alert import AlertState
from memras.alerts.naming import inventory_namer, named_all
from memras.alerts.service import SqlAlertStore
from memras.errors import MemrasError
from memras.health.api import current_verdicts, verdict_history
from memras.health.classify import _bank_text
from memras.health.closing import Closing, read_closings
from memras.health.config import Config, load_config
from memras.health.cxl import (
    POISON_LISTED,
    CxlVerdict,
    MediaRecords,
    memdev_verdicts,
    poison_pages,
    poison_pages_replace,
)
from memras.health.dimm_names import DimmNames
from memras.health.models import HealthVerdictRow, PageStateRow
from memras.health.module_registry import module_history
from memras.health.verdict import Verdict
from memras.store.cxl import cxl_events, error_summary, memdev_marks, store_version
from memras.store.models import ErrorRow
from memras.topology.cxl import CxlUnit, cxl_units
from memras.topology.inventory import DimmInfo, dimm_inventory
from memras.topology.naming import display_names
from memras.topology.units import block_ranges
from memras.workflow.models import ReplacementRow

if TYPE_CHECKING:
    from memras.host import Host
    from memras.store import Store
    from memras.store.results import StoredError

RATE_HOURS = 24
DETAIL_EVENT_LIMIT = 5000
UNCORRECTED_TYPES = ("Uncorrected", "Fatal", "Deferred")
HEAT_ROW_LINES = 8  # heat map lines at most: the rows seen (min..max) in this many ranges
HEAT_BANK_COLUMNS = 16  # heat map columns at most (DDR4's 4 groups × 4 banks; fits 80)
HEAT_LEVELS = 4  # shades above "none", linear up to the busiest cell


def naive_utc(when: datetime) -> datetime:
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).astimezone(UTC).replace(
        tzinfo=None)


# --- host --------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class HostSummary:
    hostname: str
    total_bytes: int
    online_bytes: int
    offline_bytes: int
    hardware_corrupted_bytes: int
    block_count: int
    block_size: int


def host_summary(host: Host) -> HostSummary:
    """Memory totals from /proc/meminfo and the memory blocks."""
    info = host.meminfo.read()
    blocks = host.memory.all() if host.memory.present else []
    online = sum(b.size for b in blocks if b.online)
    return HostSummary(
        hostname=host.hostname(), total_bytes=info.total, online_bytes=online,
        offline_bytes=sum(b.size for b in blocks) - online,
        hardware_corrupted_bytes=info.hardware_corrupted, block_count=len(blocks),
        block_size=blocks[0].size if blocks else 0)


# --- errors by DIMM in the last 24 h -----------------------------------------------

@dataclass(frozen=True, slots=True)
class ErrorGroupKey:
    label: str
    mc: int | None
    layers: tuple[int | None, int | None, int | None]

    @property
    def edac_key(self) -> str | None:
        if self.mc is None or self.layers[0] is None:
            return None
        return ":".join(str(-1 if x is None else x) for x in (self.mc, *self.layers))


@dataclass(frozen=True, slots=True)
class RecentErrors:
    """Errors in the ``RATE_HOURS`` before ``now``: totals and hourly counts per DIMM key."""

    now: datetime
    ce: int = 0
    ue: int = 0
    hourly: dict[ErrorGroupKey, list[int]] = field(default_factory=dict)  # oldest hour first


def _hour_expr(store: Store) -> Any:
    col = ErrorRow.__table__.c.time
    if store.engine.dialect.name == "sqlite":
        return func.strftime("%Y-%m-%d %H", col)
    return func.to_char(func.date_trunc("hour", col), "YYYY-MM-DD HH24")


def recent_errors(store: Store, now: datetime, hours: int = RATE_HOURS) -> RecentErrors:
    """Counts of the last ``hours`` grouped in SQL by DIMM key, type and hour."""
    c = ErrorRow.__table__.c
    end = naive_utc(now)
    start = end - timedelta(hours=hours)
    hour = _hour_expr(store)
    query = (select(c.label, c.mc, c.top_layer, c.middle_layer, c.lower_layer, c.type, hour,
                    func.sum(c.count))
             .where(c.time >= start, c.time <= end)
             .group_by(c.label, c.mc, c.top_layer, c.middle_layer, c.lower_layer, c.type, hour))
    with store.engine.connect() as conn:
        rows = conn.execute(query).all()
    first_hour = end.replace(minute=0, second=0, microsecond=0) - timedelta(hours=hours - 1)
    ce = ue = 0
    hourly: dict[ErrorGroupKey, list[int]] = {}
    for label, mc, top, mid, low, type_, hour_text, n in rows:
        n = int(n or 0)
        if type_ in UNCORRECTED_TYPES:
            ue += n
        elif type_ == "Corrected":
            ce += n
        key = ErrorGroupKey(label or "", mc, (top, mid, low))
        slot = (datetime.strptime(hour_text, "%Y-%m-%d %H") - first_hour) // timedelta(hours=1)
        series = hourly.setdefault(key, [0] * hours)
        series[max(0, min(hours - 1, slot))] += n
    return RecentErrors(now=now, ce=ce, ue=ue, hourly=hourly)


def _matches(dimm: DimmInfo, key: ErrorGroupKey, names: set[str]) -> bool:
    if dimm.edac is not None and key.edac_key is not None:
        return key.edac_key == dimm.edac.key
    return bool(key.label) and key.label.strip().casefold() in names


def dimm_rate(dimm: DimmInfo, recent: RecentErrors) -> list[int]:
    """This DIMM's hourly error counts over the window (its EDAC key, else its names)."""
    names = {n.strip().casefold() for n in dimm.names()}
    total = [0] * max((len(s) for s in recent.hourly.values()), default=RATE_HOURS)
    for key, series in recent.hourly.items():
        if _matches(dimm, key, names):
            total = [a + b for a, b in zip(total, series, strict=False)]
    return total


# --- DIMM table rows -----------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class DimmRow:
    id: str
    label: str
    location: str
    size_bytes: int | None
    ce: int | None
    ue: int | None
    rate: tuple[int, ...]
    verdict: str | None  # a memras.health VerdictState value, None when never judged
    reasons: tuple[str, ...] = ()
    name: str = ""  # as people call it: memras.topology.naming.display_names
    kind: str = "dimm"  # or "cxl-memdev" (memdev_rows): its id is the memdev's name


def verdicts_for(store: Store | None, ids: list[str]) -> dict[str, Any]:
    if store is None:
        return {}

    return current_verdicts(store, ids)


def dimm_rows(dimms: list[DimmInfo], store: Store | None, now: datetime, *,
              recent: RecentErrors | None = None) -> list[DimmRow]:
    """The dashboard's DIMM table: inventory counters, 24 h rate, current verdict."""
    if recent is None:
        recent = recent_errors(store, now) if store is not None else RecentErrors(now=now)
    verdicts = verdicts_for(store, [d.id for d in dimms])
    shown = display_names(dimms)
    rows = []
    for d in dimms:
        v = verdicts.get(d.id)
        rows.append(DimmRow(
            id=d.id, label=d.label, location=d.location, size_bytes=d.size_bytes,
            ce=d.ce_count, ue=d.ue_count, rate=tuple(dimm_rate(d, recent)),
            verdict=str(v.state) if v is not None else None,
            reasons=tuple(v.reasons) if v is not None else (), name=shown[d.id]))
    return rows


# --- CXL memdevs as rows of the same table ----------------------------------------

def _config(config_path: str | Path | None) -> Config | None:
    """The config's [classify] knobs as `memras dimms` reads them; None (the defaults)
    when the file cannot be read (the dashboard still shows the memdevs)."""
    try:
        return load_config(config_path)
    except MemrasError:
        return None


def _stored_counts(store: Store, label: str) -> tuple[int, int]:
    """(CE, UE) stored for a memdev, every time (it has no EDAC counter), as ``memras
    summary --dimm memN`` counts them: its media errors and its poison/AER records."""
    totals = error_summary(store, dimm=label).totals
    return (sum(t.errors for t in totals if t.type == "Corrected"),
            sum(t.errors for t in totals if t.type in UNCORRECTED_TYPES))


def _label_rate(label: str, recent: RecentErrors) -> list[int]:
    total = [0] * max((len(s) for s in recent.hourly.values()), default=RATE_HOURS)
    for key, series in recent.hourly.items():
        if key.label.strip().casefold() == label.casefold():
            total = [a + b for a, b in zip(total, series, strict=False)]
    return total


@dataclass
class MemdevCache:
    """What :func:`memdev_rows` read from the store last, kept between reloads: each
    memdev's verdict and CE/UE, judged again only when its own rows or verdict changed
    (its mark), and its media errors as judged (memras.health.cxl.MediaRecords: a
    change reads only the new ones). One per reader (the dashboard screen holds one);
    ``reads`` counts the reloads that read records, ``judged`` each memdev's."""

    version: tuple[Any, ...] | None = None
    marks: dict[str, tuple[Any, ...]] = field(default_factory=dict)
    verdicts: dict[str, CxlVerdict] = field(default_factory=dict)
    counts: dict[str, tuple[int, int]] = field(default_factory=dict)
    media: dict[str, MediaRecords] = field(default_factory=dict)
    reads: int = 0
    judged: Counter[str] = field(default_factory=Counter)


def memdev_version(store: Store, names: list[str], config: Config | None
                   ) -> tuple[Any, ...]:
    """Everything a memdev row's verdict and counts depend on, read cheaply in one
    query: the stored rows' version (memras.store.cxl.store_version), the newest
    recorded verdict (the engine's, merged in) and the memdevs and poison threshold
    asked about."""
    newest = select(func.max(HealthVerdictRow.__table__.c.id)).scalar_subquery()
    return (*store_version(store, newest), tuple(names), poison_pages_replace(config))


def _memdev_marks(store: Store, names: list[str], config: Config | None
                  ) -> dict[str, tuple[Any, ...]]:
    """Each memdev's own version: its rows' (memras.store.cxl.memdev_marks), its newest
    recorded verdict and the poison threshold; read when :func:`memdev_version` moved."""
    v = HealthVerdictRow.__table__.c
    query = (select(v.dimm_id, func.max(v.id))
             .where(v.dimm_id.in_([f"label:{n}" for n in names])).group_by(v.dimm_id))
    with store.session(write=False) as session:
        verdicts: dict[str, int] = {k: v for k, v in session.execute(query)}
    threshold = poison_pages_replace(config)
    return {name: (*rows, verdicts.get(f"label:{name}"), threshold)
            for name, rows in memdev_marks(store, names).items()}


def _memdev_judgement(store: Store, names: list[str], config: Config | None,
                      cache: MemdevCache | None
                      ) -> tuple[dict[str, CxlVerdict], dict[str, tuple[int, int]]]:
    """(verdicts, CE/UE) of the memdevs: the cache's for those unchanged since."""
    if cache is None:
        return (memdev_verdicts(store, names, config=config),
                {name: _stored_counts(store, name) for name in names})
    version = memdev_version(store, names, config)
    if cache.version == version:
        return cache.verdicts, cache.counts
    marks = _memdev_marks(store, names, config)  # read before the records they vouch for
    stale = [name for name in names if cache.marks.get(name) != marks[name]]
    if stale:
        cache.verdicts.update(memdev_verdicts(store, stale, config=config, media=cache.media))
        cache.counts.update({name: _stored_counts(store, name) for name in stale})
        cache.judged.update(stale)
        cache.reads += 1
    for kept in (cache.marks, cache.verdicts, cache.counts, cache.media):
        for gone in kept.keys() - set(names):  # memdevs no longer asked about
            del kept[gone]
    cache.version, cache.marks = version, marks
    return cache.verdicts, cache.counts


def memdev_rows(host: Host, store: Store | None, now: datetime, *,
                recent: RecentErrors | None = None, config: Config | None = None,
                units: list[CxlUnit] | None = None,
                cache: MemdevCache | None = None) -> list[DimmRow]:
    """Each CXL memdev (memras.topology.cxl.cxl_units) as a row of the dashboard's
    table, as `memras dimms` lists it: id and name ``memN`` (what `memras replace`
    takes), the verdict memras.health.cxl.memdev_verdicts gives (its media errors
    judged under ``label:memN`` merged with its own severity, health and poison),
    CE/UE as stored for ``memN`` (all time: a memdev has no EDAC counter), its PCI
    function as the label and region, DAX device, blocks and node as the location.
    ``cache``: reuse the last call's verdicts and counts while the store is unchanged."""
    units = cxl_units(host) if units is None else units
    if not units:
        return []
    if recent is None:
        recent = recent_errors(store, now) if store is not None else RecentErrors(now=now)
    names = [u.memdev.name for u in units]
    verdicts, counts = _memdev_judgement(store, names, config, cache) \
        if store is not None else ({}, {})
    rows = []
    for u in units:
        m = u.memdev
        v = verdicts.get(m.name)
        ce, ue = counts.get(m.name, (None, None))
        where = [",".join(u.regions) or "no region", ",".join(u.dax),
                 f"blocks {block_ranges(list(u.blocks))}" if u.blocks else "",
                 f"node {','.join(map(str, u.nodes))}" if u.nodes else ""]
        rows.append(DimmRow(
            id=m.name, label=m.host, location=" ".join(w for w in where if w),
            size_bytes=m.ram_size + m.pmem_size, ce=ce, ue=ue,
            rate=tuple(_label_rate(m.name, recent)),
            verdict=str(v.state) if v is not None else None,
            reasons=tuple(v.reasons) if v is not None else (), name=m.name,
            kind="cxl-memdev"))
    return rows


@dataclass(frozen=True, slots=True)
class MemdevDetail:
    """One CXL memdev for the detail screen: the unit (regions, DAX, blocks, nodes),
    its verdict (memdev_verdicts), its stored media errors as a DIMM's are shown
    (timeline, cells), the poison its list holds now and its past replacements."""

    unit: CxlUnit
    verdict: CxlVerdict | None
    ce: int
    ue: int
    timeline: list[tuple[str, int, int]]
    cells: FaultCells
    poison_records: int  # List/Inject records stored
    poison_pages: int  # distinct 4 KiB DPA pages listed now (a Clear takes them out)
    replacements: list[dict[str, Any]]
    events_read: int
    since: datetime | None = None  # as DimmDetail: the evidence is never split by module
    closings: list[Closing] = field(default_factory=list)
    history: list[Any] = field(default_factory=list)


def memdev_detail(host: Host, store: Store | None, name: str, *,
                  config_path: str | Path | None = None) -> MemdevDetail | None:
    """The detail of memdev ``name``; None when no memdev here is called so."""
    unit = next((u for u in cxl_units(host) if u.memdev.name == name), None)
    if unit is None:
        return None
    if store is None:
        return MemdevDetail(unit, None, 0, 0, [], fault_cells([]), 0, 0, [], 0)
    verdict = memdev_verdicts(store, [name], config=_config(config_path)).get(name)
    events = store.errors(dimm=name, limit=DETAIL_EVENT_LIMIT)
    ce, ue = _stored_counts(store, name)
    listed: set[int] = set()
    records = 0
    for ev in cxl_events(store, memdev=name, event="poison"):
        if ev.trace_type == "Clear":
            listed.difference_update(poison_pages(ev))
        elif ev.trace_type in POISON_LISTED:
            records += 1
            listed.update(poison_pages(ev))
    replacements = _rows_as_dicts(
        store, ReplacementRow,
        or_(ReplacementRow.dimm_id == f"label:{name}", ReplacementRow.dimm_label == name),
        order=ReplacementRow.created_at)
    return MemdevDetail(unit=unit, verdict=verdict, ce=ce, ue=ue,
                        timeline=daily_timeline(events), cells=fault_cells(events),
                        poison_records=records, poison_pages=len(listed),
                        replacements=replacements, events_read=len(events))


# --- the live event feed -------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class FeedRow:
    id: int
    time: datetime
    type: str
    label: str
    address: int | None
    message: str
    time_source: str | None = None  # memras_error.time_source: import/inferred are no clock
    dimm_id: str | None = None  # None until the row is attributed (memras.health.dimm_names)


def events_after(store: Store, after_id: int | None, limit: int) -> list[FeedRow]:
    """The newest ``limit`` events with id > ``after_id``, newest first (primary key scan)."""
    c = ErrorRow.__table__.c
    query = select(c.id, c.time, c.type, c.label, c.address, c.message, c.time_source,
                   c.dimm_id)
    if after_id is not None:
        query = query.where(c.id > after_id)
    query = query.order_by(desc(c.id)).limit(limit)
    with store.engine.connect() as conn:
        rows = conn.execute(query).all()
    return [FeedRow(id=r[0], time=r[1].replace(tzinfo=UTC), type=r[2], label=r[3] or "",
                    address=None if r[4] is None else r[4] & 0xFFFFFFFFFFFFFFFF,
                    message=r[5] or "", time_source=r[6], dimm_id=r[7]) for r in rows]


# --- one DIMM in detail --------------------------------------------------------------

BankKey = tuple[int | None, int | None, int]  # rank, bank group, bank (as health.classify)


@dataclass(frozen=True, slots=True)
class HeatMap:
    """The bank × row heat map of one DIMM's errors: banks as columns, the rows the
    errors were seen in (lowest to highest) as lines, errors per cell.

    Columns are every bank from 0 to the highest seen in each (rank, bank group) that
    erred, so quiet banks show beside the busy ones; when that is more than
    ``HEAT_BANK_COLUMNS``, only the banks that erred, the busiest first. Lines split
    the rows seen into at most ``HEAT_ROW_LINES`` equal ranges (one row a line when
    fewer rows are spanned): no DIMM source memras reads (EDAC, SMBIOS type 17) gives
    a device's row count, so the axis is the rows seen, not the device's. A cell's
    shade ``level`` is 1..HEAT_LEVELS, linear in its count up to ``peak``.
    """

    columns: tuple[BankKey, ...]
    groups: tuple[str, ...]  # per column: its rank/bank group ("bg 1", "r0 bg 1", "")
    row_ranges: tuple[tuple[int, int], ...]  # per line: (first row, last row)
    counts: dict[tuple[int, int], int]  # (line, column) -> errors
    peak: int
    total: int  # errors in the map: decoded with a bank and a row
    hidden_banks: int = 0  # banks with errors left out (more than HEAT_BANK_COLUMNS)
    hidden_errors: int = 0

    def level(self, count: int) -> int:
        """0 for none, else 1..HEAT_LEVELS: ceil(count / peak × HEAT_LEVELS)."""
        return 0 if count <= 0 else max(1, -(-count * HEAT_LEVELS // self.peak))

    def legend(self) -> list[tuple[int, int, int]]:
        """(level, least, most errors it stands for), for the levels that can occur."""
        out = []
        for k in range(1, HEAT_LEVELS + 1):
            low, high = (k - 1) * self.peak // HEAT_LEVELS + 1, k * self.peak // HEAT_LEVELS
            if low <= high:
                out.append((k, low, high))
        return out

    def row_of(self, row: int) -> int | None:
        """The line ``row`` falls in (None: outside the rows seen)."""
        return next((i for i, (lo, hi) in enumerate(self.row_ranges) if lo <= row <= hi),
                    None)


@dataclass(frozen=True, slots=True)
class FaultCells:
    """Which rows, columns and banks this DIMM's decoded errors touched."""

    rows: Counter[int]
    columns: Counter[int]
    banks: Counter[str]  # by "rank.bank group.bank", as the verdict's evidence names them
    heat: HeatMap | None  # None: no error with both a bank and a row
    decoded: int  # events with a bank/row/column
    undecoded: int


@dataclass(frozen=True, slots=True)
class DimmDetail:
    dimm: DimmInfo
    verdict: Verdict | None
    history: list[Any]
    timeline: list[tuple[str, int, int]]  # (day, CE, UE), oldest first
    cells: FaultCells
    addresses: list[tuple[int, int | None, int]]  # (page address, block, errors)
    pages: list[dict[str, Any]]  # pages health acted on, of the module in the slot now
    replacements: list[dict[str, Any]]  # past replacements in this slot
    events_read: int
    # After a replacement the evidence above is the new module's only; what its
    # predecessors left in the slot is counted here, not mixed into its evidence.
    module: Any = None  # memras.health.module_registry.ModuleRecord in the slot now, if registered
    since: datetime | None = None  # when the previous module left the slot (aware UTC)
    earlier_events: int = 0  # of the events read, those of removed modules
    earlier_pages: list[dict[str, Any]] = field(default_factory=list)
    # verdicts closed in this slot (memras repaired/acquit, swaps seen): health.closing
    closings: list[Closing] = field(default_factory=list)


def dimm_events(store: Store, dimm: DimmInfo, limit: int = DETAIL_EVENT_LIMIT, *,
                names: DimmNames | None = None) -> list[StoredError]:
    """The newest ``limit`` events of ``dimm``, oldest first: the rows ``memras errors
    --dimm`` selects (one filter, :meth:`DimmNames.error_filter`: attributed to it, or
    stored before attribution at a location the host's inventory resolves to it).
    ``names``: the host's (:meth:`DimmNames.of`); without it only ``dimm`` is known."""
    names = names if names is not None else DimmNames([dimm], store)
    return store.errors(dimm=names.error_filter(dimm.id), limit=limit)


def fault_cells(events: list[StoredError]) -> FaultCells:
    rows: Counter[int] = Counter()
    columns: Counter[int] = Counter()
    banks: Counter[str] = Counter()
    cells: Counter[tuple[BankKey, int]] = Counter()  # (bank, row) -> errors
    decoded = 0
    for e in events:
        loc = e.location
        if loc.row is None and loc.column is None and loc.bank is None:
            continue
        decoded += 1
        n = e.count or 1
        if loc.row is not None:
            rows[loc.row] += n
        if loc.column is not None:
            columns[loc.column] += n
        if loc.bank is not None:
            key = (loc.rank, loc.bank_group, loc.bank)
            banks[bank_text(key)] += n
            if loc.row is not None:
                cells[(key, loc.row)] += n
    return FaultCells(rows, columns, banks, heat_map(cells), decoded, len(events) - decoded)


def bank_text(key: BankKey) -> str:
    """``0.1.3`` (rank, bank group, bank; ``-`` unknown): the verdict evidence's words."""
    return _bank_text(key)


def heat_map(cells: Counter[tuple[BankKey, int]]) -> HeatMap | None:
    """:class:`HeatMap` of errors per (bank, row)."""
    if not cells:
        return None
    per_bank: Counter[BankKey] = Counter()
    for (bank, _), n in cells.items():
        per_bank[bank] += n
    groups = sorted({(r, g) for r, g, _ in per_bank}, key=_none_first)
    top = max(b for _, _, b in per_bank)
    columns = [(r, g, b) for r, g in groups for b in range(top + 1)]
    if len(columns) > HEAT_BANK_COLUMNS:  # only the banks that erred, the busiest kept
        kept = sorted(per_bank, key=lambda k: (-per_bank[k], _none_first(k)))
        columns = sorted(kept[:HEAT_BANK_COLUMNS], key=_none_first)
    ranks = {r for r, _ in groups}
    names = tuple(" ".join(([f"r{r}"] if len(ranks) > 1 else []) +
                           ([f"bg {g}"] if g is not None else [])) for r, g, _ in columns)
    low, high = min(r for _, r in cells), max(r for _, r in cells)
    span = -(-(high - low + 1) // HEAT_ROW_LINES)
    lines = tuple((lo, min(high, lo + span - 1)) for lo in range(low, high + 1, span))
    where = {bank: i for i, bank in enumerate(columns)}
    counts: Counter[tuple[int, int]] = Counter()
    for (bank, row), n in cells.items():
        if bank in where:
            counts[((row - low) // span, where[bank])] += n
    hidden = [b for b in per_bank if b not in where]
    return HeatMap(columns=tuple(columns), groups=names, row_ranges=lines, counts=dict(counts),
                   peak=max(counts.values()), total=sum(counts.values()),
                   hidden_banks=len(hidden), hidden_errors=sum(per_bank[b] for b in hidden))


def _none_first(key: tuple[int | None, ...]) -> tuple[tuple[bool, int], ...]:
    """Sort key for tuples with None (unknown first)."""
    return tuple((x is not None, x or 0) for x in key)


def daily_timeline(events: list[StoredError]) -> list[tuple[str, int, int]]:
    days: dict[str, list[int]] = {}
    for e in events:
        acc = days.setdefault(e.time.strftime("%Y-%m-%d"), [0, 0])
        acc[1 if e.type in UNCORRECTED_TYPES else 0] += e.count or 1
    return [(day, ce, ue) for day, (ce, ue) in sorted(days.items())]


def address_blocks(events: list[StoredError], block_size: int
                   ) -> list[tuple[int, int | None, int]]:
    pages: Counter[int] = Counter()
    for e in events:
        if e.address is not None:
            pages[e.address & ~0xFFF] += e.count or 1
    return [(page, page // block_size if block_size else None, n)
            for page, n in sorted(pages.items())]


def _rows_as_dicts(store: Store, model: Any, *where: Any, order: Any) -> list[dict[str, Any]]:
    with store.engine.connect() as conn:
        return [dict(r) for r in conn.execute(
            select(model.__table__).where(*where).order_by(order)).mappings().all()]


def dimm_detail(host: Host, store: Store | None, dimm: DimmInfo) -> DimmDetail:
    """Everything the DIMM detail screen shows, read once. The evidence (timeline,
    cells, addresses, pages) is the current module's: a replaced module's errors are
    not the new one's (memras.health.module_registry)."""
    events = dimm_events(store, dimm, names=DimmNames.of(host, store)
                         ) if store is not None else []
    pages: list[dict[str, Any]]
    verdict, history, pages, replacements = None, [], [], []
    module, since = None, None
    earlier: list[StoredError] = []
    earlier_pages: list[dict[str, Any]] = []
    closings: list[Closing] = []
    if store is not None:
        history = verdict_history(store, dimm.id)
        closings = read_closings(store, dimm.id)
        verdict = history[-1] if history else None
        modules = module_history(store, dimm.id)
        module = next((m for m in modules if m.removed_at is None), None)
        since = max((m.removed_at for m in modules if m.removed_at is not None), default=None)
        if since is not None:
            earlier = [e for e in events if e.time < since]
            events = [e for e in events if e.time >= since]
        pages, earlier_pages = _current_module_pages(
            _rows_as_dicts(store, PageStateRow, PageStateRow.dimm_id == dimm.id,
                           order=PageStateRow.time), module, since)
        replacements = _rows_as_dicts(
            store, ReplacementRow,
            or_(ReplacementRow.dimm_id == dimm.id, ReplacementRow.dimm_label == dimm.label),
            order=ReplacementRow.created_at)
    block_size = host.memory.block_size() if host.memory.present else 0
    return DimmDetail(dimm=dimm, verdict=verdict, history=history,
                      timeline=daily_timeline(events), cells=fault_cells(events),
                      addresses=address_blocks(events, block_size), pages=pages,
                      replacements=replacements, events_read=len(events), module=module,
                      since=since, earlier_events=len(earlier), earlier_pages=earlier_pages,
                      closings=closings)


def _current_module_pages(rows: list[dict[str, Any]], module: Any, since: datetime | None
                          ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Page states split into the current module's and its predecessors'. A row names
    its module (module_id); one of an unregistered module (0) goes by its time."""
    if since is None:
        return rows, []
    current: list[dict[str, Any]]
    earlier: list[dict[str, Any]]
    current, earlier = [], []
    for row in rows:
        if module is not None and row["module_id"] == module.id:
            mine = True
        elif row["module_id"] == 0:
            mine = row["time"].replace(tzinfo=UTC) >= since
        else:
            mine = False
        (current if mine else earlier).append(row)
    return current, earlier


# --- memory map ----------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class BlockCell:
    index: int
    start: int
    state: str
    zone: str | None
    node: int | None
    dimm_id: str | None
    # the CXL memdevs whose region covers the block (memras.topology.cxl.cxl_units: all
    # of an interleaved region's memdevs back each of its blocks); () for DRAM
    memdevs: tuple[str, ...] = ()

    def belongs_to(self, unit: str) -> bool:
        """Whether the DIMM id or memdev name ``unit`` backs this block."""
        return self.dimm_id == unit or unit in self.memdevs


def block_cells(host: Host, dimms: list[DimmInfo], *,
                units: list[CxlUnit] | None = None) -> list[BlockCell]:
    """Every memory block with its state, zone, node and owning DIMM (when one owns it),
    and the CXL memdevs backing it (``units``: cxl_units(host) when not given)."""
    owner: dict[int, str] = {}
    for d in dimms:
        for b in d.blocks:
            owner.setdefault(b, d.id)
    cxl: dict[int, tuple[str, ...]] = {}
    for u in cxl_units(host) if units is None else units:
        for b in u.blocks:
            cxl[b] = (*cxl.get(b, ()), u.memdev.name)
    return [BlockCell(b.index, b.start, b.state, b.zone, b.node, owner.get(b.index),
                      cxl.get(b.index, ())) for b in host.memory.all()]


# --- audit ---------------------------------------------------------------------------

def audit_summary(entry: Any) -> str:
    """One line for an audit entry: outcome, message or error."""
    data = entry.data or {}
    text = data.get("message") or data.get("error") or data.get("outcome") or ""
    return text if isinstance(text, str) else json.dumps(text)


# --- the dashboard in one call -------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Dashboard:
    summary: HostSummary
    recent: RecentErrors | None
    dimms: list[DimmRow]
    alerts: list[Any]  # open memras.alerts.alert.Alert, oldest first


def dashboard(host: Host, store: Store | None, now: datetime, *,
              config_path: str | Path | None = None,
              memdev_cache: MemdevCache | None = None) -> Dashboard:
    """Host totals, the DIMM table (then the CXL memdevs: memdev_rows) and the open
    alerts: every read bounded or indexed but a memdev's, which reads its own rows
    (only when the store changed, given a ``memdev_cache``)."""
    summary = host_summary(host)
    inventory = dimm_inventory(host) if summary.block_count else []
    alerts: list[Any] = []
    recent = None
    if store is not None:
        alerts = SqlAlertStore(store).list(AlertState.OPEN)
        recent = recent_errors(store, now)
    rows = dimm_rows(inventory, store, now, recent=recent)
    units = cxl_units(host)
    if units:
        rows += memdev_rows(host, store, now, recent=recent, config=_config(config_path),
                            units=units, cache=memdev_cache)
    # each alert's DIMM by the name its row shows (the slot label): no second read;
    # a memdev's alerts are about label:memN
    names = {r.id: r.name for r in rows} | {
        f"label:{r.id}": r.name for r in rows if r.kind == "cxl-memdev"}
    alerts = named_all(alerts, inventory_namer(names))
    return Dashboard(summary=summary, recent=recent, dimms=rows, alerts=alerts)
