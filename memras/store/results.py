"""What the store hands back: small frozen dataclasses, JSON-friendly via asdict()."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from memras.records import DimmLocation, Record

MEMORY_FAILURE_TYPE = "MemoryFailure"  # memras_error.type of a MemoryFailureEvent


@dataclass(frozen=True, slots=True)
class AddResult:
    """What one ``add_events`` did with its batch: every record is inserted (some of
    them ``flagged``: stored with values clamped or blanked), a duplicate, or
    ``skipped`` (not storable; counted in memras_skipped, reasons here)."""

    inserted: int = 0
    duplicates: int = 0
    new_events: list[Record] = field(default_factory=list, repr=False)  # those inserted
    flagged: int = 0  # of the inserted
    skipped: int = 0
    skip_reasons: dict[str, int] = field(default_factory=dict)  # reason -> records
    flag_reasons: dict[str, int] = field(default_factory=dict)  # e.g. count:too-large -> rows
    # CXL events (not Records): memras_cxl_event rows added and seen before (memras.store.cxl)
    cxl_inserted: int = 0
    cxl_duplicates: int = 0

    def __add__(self, other: AddResult) -> AddResult:
        return AddResult(self.inserted + other.inserted, self.duplicates + other.duplicates,
                         self.new_events + other.new_events, self.flagged + other.flagged,
                         self.skipped + other.skipped,
                         add_counts(self.skip_reasons, other.skip_reasons),
                         add_counts(self.flag_reasons, other.flag_reasons),
                         self.cxl_inserted + other.cxl_inserted,
                         self.cxl_duplicates + other.cxl_duplicates)


def add_counts(a: dict[str, int], b: dict[str, int]) -> dict[str, int]:
    """Per-reason counts of ``a`` and ``b`` together (a new dict)."""
    out = dict(a)
    for reason, n in b.items():
        out[reason] = out.get(reason, 0) + n
    return out


@dataclass(frozen=True, slots=True)
class StoredError:
    """One row of ``memras_error`` as callers see it (time is aware UTC)."""

    id: int
    time: datetime
    uptime: float | None
    source: str
    type: str
    count: int
    address: int | None
    page: int | None
    normalized_address: int | None
    location: DimmLocation
    message: str
    driver: str
    driver_detail: str
    dimm_id: str | None
    raw: str
    rasdaemon_table: str | None
    rasdaemon_id: int | None
    flags: str | None = None  # values clamped or blanked on the way in (memras.store.bounds)
    # where ``time`` came from (memras.records.TimeSource value); None: not recorded
    time_source: str | None = None

    @property
    def label(self) -> str | None:
        return self.location.label


@dataclass(frozen=True, slots=True)
class SummaryGroup:
    """One line of ``ras-mc-ctl --summary``: events = count(*), errors = sum(err_count)."""

    type: str
    label: str | None
    mc: int | None
    top_layer: int | None
    middle_layer: int | None
    lower_layer: int | None
    events: int
    errors: int

    @property
    def location(self) -> str:
        """``mc:top:mid:low`` with -1 for unknown, as ras-mc-ctl prints it."""
        parts = (self.mc, self.top_layer, self.middle_layer, self.lower_layer)
        return ":".join(str(-1 if p is None else p) for p in parts)


@dataclass(frozen=True, slots=True)
class TypeTotal:
    type: str
    events: int
    errors: int


@dataclass(frozen=True, slots=True)
class Summary:
    groups: list[SummaryGroup] = field(default_factory=list)
    totals: list[TypeTotal] = field(default_factory=list)

    @classmethod
    def from_groups(cls, groups: list[SummaryGroup]) -> Summary:
        by_type: dict[str, list[int]] = {}
        for g in groups:
            acc = by_type.setdefault(g.type, [0, 0])
            acc[0] += g.events
            acc[1] += g.errors
        totals = [TypeTotal(t, e, n) for t, (e, n) in sorted(by_type.items())]
        return cls(groups=groups, totals=totals)
