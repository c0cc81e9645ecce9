"""The health engine: replays events in their own time order into buckets, faults, verdicts.

What it decides
    For each event, in event-time order: which thresholds it pushed over, whether
    its page must be offlined (and does it, through Host, when given one), and the
    DIMM's new verdict. Every change comes out as a :class:`HealthChange` for the
    alerts layer; verdict changes are also written to ``memras_health_verdict``.

Structure
    per DIMM: a window of (time, WindowEvent) pairs (``[classify] window_h``, capped at
    ``[classify] window_events``), the active threshold crossings, the last verdict;
    per scope key: a leaky bucket (:mod:`.buckets`); per channel: its DIMMs.
    Events without a time are counted in ``skipped_untimed`` and not judged.

Module changes
    A slot's module can be replaced (:mod:`.modules`); the new module is a new DIMM.
    At each boundary (the time its predecessor was removed) the slot's state is cut:
    its DIMM/rank/bank/row buckets and the page buckets of its recorded events are
    dropped, the window, crossings and classification start empty, and the verdict
    (sticky replace-* included) becomes "ok" (rule ``replaced``). An engine with a
    store re-reads the boundaries once per :meth:`HealthEngine.process` batch, so a
    watcher notices a replacement made by ``memras replace`` in another process;
    events older than the slot's current module are counted in
    ``skipped_removed_module`` and not judged (their module's history is closed).
    A replay (``boundaries=`` given, no store) cuts at each boundary in event time,
    so judging as of a moment before a replacement still shows the old module.
    Page states are per module as well (:class:`~.page_action.StorePageBook`): a
    page the old module had offlined is, at the same address, a fresh page of the new.
    A closed verdict (``memras repaired``/``acquit``, :mod:`.closing`) is a cut too, at
    its own time and with its own rule (``repaired``/``acquitted``); the module and its
    page states stay, only the evidence before the closing stops counting.

Decay
    Buckets leak as mcelog's do; crossings stay active for their threshold's age
    time; the classifier window drops records older than ``window_h``.

Cost
    Classifying is O(window) per event of that DIMM. A DIMM with more than
    RECLASSIFY_EVERY_RECORDS records is reclassified only every
    max(RECLASSIFY_EVERY_RECORDS, window / RECLASSIFY_SPACING) records, or sooner
    for a new cell once window / RECLASSIFY_NEW_CELL_SPACING records have passed:
    geometric spacing keeps the amortised cost per event constant, so a storm of
    50,000 CEs is judged in seconds instead of a quarter of an hour. Rate trends
    and channel peers are running sums (SlidingSum), never re-summed.
"""

from __future__ import annotations

import enum
import heapq
import json
import logging
import math
from bisect import bisect_right
from collections import OrderedDict, deque
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from memras.errors import MemrasError
from memras.health.buckets import BucketSet, Crossing, Scope, Severity
from memras.health.classify import FaultClassification, _cell_of, classify_dimm
from memras.health.closing import (
    CLOSING_RULES,
    CUT_REASONS,
    Closing,
    cut_times,
    merged,
    read_closings,
)
from memras.health.config import Config
from memras.health.keys import (
    DimmResolver,
    channel_key,
    dimm_id_for,
    event_time_s,
    inventory_resolver,
    owned_by,
    scope_keys,
    time_of,
)
from memras.health.models import HealthVerdictRow
from memras.health.module_registry import module_boundaries, register_modules
from memras.health.page_action import (
    ALREADY_DONE,
    DONE,
    MemoryPageBook,
    PageAction,
    PageBook,
    PageOutcome,
    StorePageBook,
    act_on_page,
)
from memras.health.verdict import (
    REPLACED_RULE,
    TREND_WINDOWS_S,
    ActiveCrossing,
    DimmFacts,
    RateTrend,
    Verdict,
    VerdictState,
    decide,
    with_sticky_floor,
)
from memras.health.verdict_rows import current_verdicts
from memras.records import (
    DimmLocation,
    ErrorType,
    MemoryErrorEvent,
    MemoryFailureEvent,
    Record,
    event_evidence,
)
from memras.topology.inventory import DimmInfo, dimm_inventory

if TYPE_CHECKING:
    from memras.host import Host
    from memras.store.store import Store

log = logging.getLogger(__name__)

RECLASSIFY_EVERY_RECORDS = 64
RECLASSIFY_SPACING = 8  # at most 8 record-visits per event for periodic reclassification
CROSSINGS_REMEMBERED = 65536  # keys whose last reported crossing is kept (bounded)
RECLASSIFY_NEW_CELL_SPACING = 16  # a new cell may reclassify early, at most 16 visits/event
DAY_S = 86400
# A batch ends with each DIMM's evidence re-classified when it lags by this much event
# time (a window's worth of classifying per 500-event batch made a storm ~20 % dearer;
# a storm spans seconds per batch, so this refreshes every dozen batches there, and
# every batch when errors are minutes apart). The evidence says its age: last_seen.
REFRESH_AFTER_S = 60.0
# A UE reported twice, by the machine check (EDAC/GHES/MCE record) and by the kernel's
# memory_failure() for the same page, is one UE: the kernel handles the poison within
# milliseconds of the MCE, so a minute is ample and shorter than any UE rate rule.
UE_SAME_PAGE_S = 60.0


def is_soft_offline(mf: MemoryFailureEvent) -> bool:
    """A CE-driven soft offline (kernel_log.py's ``soft offline (CE collector)``): the
    page migrated away for its corrected errors; no data was lost, so it is no UE."""
    return mf.page_type.startswith("soft offline")


def ue_from_memory_failure(mf: MemoryFailureEvent) -> MemoryErrorEvent:
    """The UE a ``memory_failure`` record reports: the kernel poisoned a page because
    hardware said its data was lost (an SRAR/SRAO machine check, GHES, or a consumed
    poison). Its page is all the location it has; the resolver maps it to a DIMM."""
    return MemoryErrorEvent(
        error_type=ErrorType.UNCORRECTED, source=mf.source, count=1, timestamp=mf.timestamp,
        uptime_s=mf.uptime_s, address=mf.address, location=DimmLocation(),
        message=f"memory_failure: {mf.page_type}: {mf.action_result}",
        driver="memory_failure", raw=mf.raw)


class ChangeKind(enum.StrEnum):
    VERDICT_CHANGED = "verdict-changed"
    THRESHOLD_CROSSED = "threshold-crossed"
    PAGE_OFFLINED = "page-offlined"
    UE = "ue"


VERDICT_SEVERITY = {VerdictState.OK: "info", VerdictState.WATCH: "info",
                    VerdictState.REPAIR: "warning", VerdictState.REPLACE_LATER: "warning",
                    VerdictState.REPLACE_NOW: "critical"}


@dataclass(frozen=True, slots=True)
class HealthChange:
    """What the alerts layer consumes (memras.alerts.Alert.from_change)."""

    kind: ChangeKind
    dimm_id: str | None
    time: datetime
    severity: str  # info | warning | critical
    message: str
    evidence: dict[str, Any] = field(default_factory=dict)
    rule_ids: tuple[str, ...] = ()
    verdict: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind.value, "dimm": self.dimm_id, "time": self.time.isoformat(),
                "severity": self.severity, "message": self.message,
                "rules": list(self.rule_ids), "verdict": self.verdict,
                "evidence": self.evidence}


SLIDING_SUM_SLOTS = 1024  # entries a SlidingSum keeps at most (see its docstring)


class SlidingSum:
    """Sum of error counts in the last ``span_s`` seconds, O(1) amortised per event and
    at most ~``SLIDING_SUM_SLOTS`` entries whatever the rate.

    Events arrive in time order (each batch is sorted); an older straggler from a
    later batch just expires a little late. Re-summing the window for every event
    instead made a 50k-event storm take a quarter of an hour to judge.

    Why entries are merged: one entry per event made a storm's memory grow with its
    length (five windows per DIMM, ~80 bytes an entry: a 1M-CE storm held ~400 MB). An
    event less than ``span_s / SLIDING_SUM_SLOTS`` after the newest entry (0.35 s for
    the 6-minute window, 84 s for 24 h) is added to that entry, which takes the newer
    time: those counts leave the window together, at most that much late — never
    early, so a sum may only over-count, briefly. Events further apart are exact.
    """

    __slots__ = ("span_s", "_items", "total", "_merge_s")

    def __init__(self, span_s: float) -> None:
        self.span_s = span_s
        # [time of its newest event, count, time of its first event], merged in place
        self._items: deque[list[float]] = deque()
        self.total = 0
        self._merge_s = span_s / SLIDING_SUM_SLOTS

    def add(self, t: float, count: int) -> None:
        self.total += count
        items = self._items
        if items:
            newest = items[-1]
            if 0 <= t - newest[2] < self._merge_s:  # an entry covers at most _merge_s
                newest[0] = t
                newest[1] += count
                return
        items.append([t, count, t])

    def at(self, t: float) -> int:
        """The sum of counts whose age at ``t`` is below the span."""
        while self._items and t - self._items[0][0] >= self.span_s:
            self.total -= int(self._items.popleft()[1])
        return self.total


def _trend_sums() -> dict[str, SlidingSum]:
    return {name: SlidingSum(span) for name, span in TREND_WINDOWS_S.items()}


class AgedSum:
    """Counts added at their own (past, any-order) times, each leaving after ``span_s``:
    the CEs of an offlined page, subtracted from a rate window until they would have
    aged out of it. A heap, since pages are offlined in any order of their CEs' times;
    one entry per CE remembered of the page (at most PAGE_LOG_CES a page)."""

    __slots__ = ("span_s", "_heap", "total")

    def __init__(self, span_s: float) -> None:
        self.span_s = span_s
        self._heap: list[tuple[float, int]] = []
        self.total = 0

    def add(self, t: float, count: int) -> None:
        heapq.heappush(self._heap, (t, count))
        self.total += count

    def at(self, t: float) -> int:
        while self._heap and t - self._heap[0][0] >= self.span_s:
            self.total -= heapq.heappop(self._heap)[1]
        return self.total


def _aged_sums() -> dict[str, AgedSum]:
    return {name: AgedSum(span) for name, span in TREND_WINDOWS_S.items()}


@dataclass
class _Dimm:
    records: deque[tuple[float, WindowEvent]] = field(default_factory=deque)
    trend: dict[str, SlidingSum] = field(default_factory=_trend_sums)  # CEs, SmartHW windows
    window_ces: SlidingSum | None = None  # CEs in the classifier window, for channel peers
    # the window's cells -> their records in it: a cell is new when the window has none
    # (kept to the window, so a storm over new pages does not grow it without end)
    cells: dict[object, int] = field(default_factory=dict)
    crossings: dict[tuple[Scope, str], tuple[ActiveCrossing, float, float]] = field(
        default_factory=dict)
    channel: str | None = None
    last_ce_s: float | None = None
    pages_offlined: int = 0
    classification: FaultClassification | None = None
    since_classified: int = 0
    classified_s: float = -math.inf  # event time of the last classification
    verdict: Verdict | None = None
    ce_total: int = 0  # every error seen since the engine started (mcelog's CECOUNT)
    ue_total: int = 0
    label: str | None = None
    # pages offlined (done) -> when: their errors are repaired, not an active fault
    repaired_pages: dict[int, float] = field(default_factory=dict)
    # the CEs of repaired pages still inside each trend window (subtracted from it)
    repaired: dict[str, AgedSum] = field(default_factory=_aged_sums)
    page_ces: OrderedDict[int, deque[tuple[float, int]]] = field(default_factory=OrderedDict)
    module_since: float = -math.inf  # the boundary this state started at (seconds)
    next_expiry_s: float = -math.inf  # when the earliest active crossing expires
    # (scope, rule) -> (keys crossed, the worst crossing): what verdicts look at
    groups: dict[tuple[Scope, str], tuple[int, ActiveCrossing]] = field(default_factory=dict)
    active: tuple[ActiveCrossing, ...] | None = None  # groups as judged; None: changed since


class HealthEngine:
    """``HealthEngine(config, store, host=None).process(events) -> [HealthChange]``.

    ``store`` may be None (pure replay, nothing written). ``host`` is needed for
    page actions and for inventory DIMM ids; without one, pages are only accounted.
    With both (the watcher), the host's modules are registered at start.
    ``boundaries`` (slot -> times its module changed) are for a replay without a
    store; with a store they are read from its module registry.
    """

    def __init__(self, config: Config | None = None, store: Store | None = None,
                 host: Host | None = None, *,
                 resolver: DimmResolver | None = None, page_book: PageBook | None = None,
                 record: bool = True, assume_offlined: bool = False,
                 boundaries: dict[str, list[datetime]] | None = None,
                 closings: list[Closing] | None = None) -> None:
        self.config = config or Config()
        # a replay without a Host (memras evaluate): judge as the watcher would have, its
        # page action succeeding, so CEs at offlined pages count as contained
        self.assume_offlined = assume_offlined
        self.store = store
        self.host = host
        self.record = record and store is not None
        inventory = _inventory_of(host) if resolver is None or self.record else None
        self.resolver = resolver if resolver is not None else _resolver_for(host, inventory)
        if page_book is None:
            page_book = StorePageBook(store) if store is not None else MemoryPageBook()
        self.page_book = page_book
        self.buckets = BucketSet(dict(self.config.thresholds),
                                 max_per_scope=self.config.page_counters)
        self._replaced_noted: dict[Scope, int] = {}  # scope -> replacements to log at next
        # (scope, severity, key) -> the count its last reported crossing had
        self._crossing_reported: dict[tuple[Scope, Severity, str], int] = {}
        self.dimms: dict[str, _Dimm] = {}
        self.skipped_untimed = 0
        self.skipped_removed_module = 0
        self.skipped_duplicate_ue = 0  # memory_failure and machine check of one UE
        self._ue_pages: dict[int, tuple[float, bool]] = {}  # page -> (time, memory_failure?)
        self._touched: dict[str, float] = {}
        self.boundaries: dict[str, list[float]] = {}
        self._cut_why: dict[tuple[str, float], tuple[str, str]] = {}  # closings' rule, reason
        if self.record and store is not None:  # record implies a store
            if inventory:
                register_modules(store, inventory)
            for dimm_id, verdict in current_verdicts(store).items():
                self._dimm(dimm_id).verdict = verdict
        self._set_boundaries(boundaries, closings)
        for dimm_id, cuts in self.boundaries.items():  # loaded verdicts are the new module's
            if dimm_id in self.dimms:
                self.dimms[dimm_id].module_since = cuts[-1]

    # ---- public ---------------------------------------------------------------
    def process(self, events: Iterable[Record]) -> list[HealthChange]:
        timed: list[tuple[float, MemoryErrorEvent]] = []
        for record in events:
            if isinstance(record, MemoryFailureEvent):
                if self._own_hard_offline(record.address):
                    continue  # memras's own hard page action, not a hardware UE
                e = ue_from_memory_failure(record)
                if is_soft_offline(record):  # the kernel offlined a page for its CEs
                    e = replace(e, error_type=ErrorType.INFO)
            else:
                e = record
            t = event_time_s(e)
            if t is None:
                self.skipped_untimed += 1
            else:
                timed.append((t, e))
        timed.sort(key=lambda te: te[0])
        if self.store is not None:  # a replacement in another process: cut at once
            self._set_boundaries(None, None)
            self.cut_modules()
        changes: list[HealthChange] = []
        self._touched = {}  # DIMM -> its last event time in this batch
        for t, e in timed:
            if e.error_type == ErrorType.INFO:
                self._kernel_offlined(t, e)
            elif not self._duplicate_ue(t, e):
                changes += self._one(t, e)
        for dimm_id, t in self._touched.items():  # evidence as of the batch's end
            change = self._refresh(dimm_id, t)
            if change is not None:
                changes.append(change)
        self._note_replaced_buckets()
        if self.record:
            self._save([c for c in changes if c.kind == ChangeKind.VERDICT_CHANGED])
        return changes

    def _newsworthy(self, crossing: Crossing) -> bool:
        """Whether a bucket's crossing is worth a change (an alert update): its first, and
        then each time its count has doubled, or again after the bucket drained. A
        leaky bucket re-fires every ``capacity`` errors (mcelog's semantics, kept for
        the verdicts): in a storm of 1,000 CEs/s the DIMM and rank buckets fired 200
        times a second each, and updating their alerts was most of what health cost
        the watcher beside the engine itself."""
        key = (crossing.scope, crossing.severity, crossing.key)
        total = crossing.total_in_window
        last = self._crossing_reported.get(key)
        if last is not None and last <= total < 2 * last:
            return False
        if len(self._crossing_reported) >= CROSSINGS_REMEMBERED:
            self._crossing_reported.clear()  # rare: at worst one extra report a key
        self._crossing_reported[key] = total
        return True

    def _note_replaced_buckets(self) -> None:
        """Tell the operator, once per scope and again at every tenfold, that a storm
        touches more keys than ``[page] counters`` keeps (mcelog's counter-replacement
        signal): errors spread that wide are a DIMM-level problem, not a page one."""
        for scope, replaced in self.buckets.replaced.items():
            if replaced >= self._replaced_noted.get(scope, 1):
                log.warning("health: more %s keys are erring than [page] counters = %d keeps; "
                            "%d least recently hit %s counters replaced so far", scope,
                            self.buckets.max_per_scope, replaced, scope)
                self._replaced_noted[scope] = replaced * 10

    def _kernel_offlined(self, t: float, e: MemoryErrorEvent) -> None:
        """A page the kernel's CE collector soft-offlined: a page action like memras's
        own, so the DIMM's CEs there are contained (when the page maps to a DIMM)."""
        dimm_id = dimm_id_for(e, self.resolver)
        dimm = self.dimms.get(dimm_id) if dimm_id is not None else None
        if dimm is not None and e.message.endswith((": Recovered", ": Ignored")):
            _repair_page(dimm, e.page_address, t)

    def _own_hard_offline(self, page: int) -> bool:
        """Whether memras hard-offlined ``page`` itself (its memory_failure is ours)."""
        done = self.page_book.get(page)
        return done is not None and any(method == "hard" for method, _ in done.steps)

    def _duplicate_ue(self, t: float, e: MemoryErrorEvent) -> bool:
        """A UE already counted from the other kind of report of the same page."""
        page = e.page_address
        if not e.error_type.is_uncorrected or page is None:
            return False
        by_failure = e.driver == "memory_failure"
        seen = self._ue_pages.get(page)
        self._ue_pages[page] = (t, by_failure)
        if len(self._ue_pages) > self.buckets.max_per_scope:  # bounded like the buckets
            self._ue_pages.pop(next(iter(self._ue_pages)))
        if seen is not None and seen[1] != by_failure and abs(t - seen[0]) <= UE_SAME_PAGE_S:
            self.skipped_duplicate_ue += 1
            return True
        return False

    def verdicts(self) -> dict[str, Verdict]:
        return {d: s.verdict for d, s in self.dimms.items() if s.verdict is not None}

    def cut_modules(self, until: datetime | None = None) -> None:
        """Start every slot whose module changed by ``until`` (default: ever) afresh."""
        until_s = math.inf if until is None else until.timestamp()
        for dimm_id in self.boundaries:
            self._cut_upto(dimm_id, until_s)

    # ---- module boundaries -----------------------------------------------------------
    def _set_boundaries(self, given: dict[str, list[datetime]] | None,
                        closings: list[Closing] | None) -> None:
        """Module changes and closed verdicts (:mod:`.closing`) are both cuts."""
        if given is None and self.store is not None:
            given = module_boundaries(self.store)
            closings = read_closings(self.store)
        closings = closings or []
        self._cut_why = {(c.dimm_id, c.at.timestamp()): (CLOSING_RULES[c.kind],
                                                         f"{CUT_REASONS[c.kind]} ({c.reason})")
                         for c in closings if c.cuts}
        cuts = merged(given or {}, cut_times(closings))
        self.boundaries = {k: sorted(t.timestamp() for t in v) for k, v in cuts.items()}

    def _cut_upto(self, dimm_id: str, until_s: float) -> None:
        cuts = self.boundaries.get(dimm_id, [])
        i = bisect_right(cuts, until_s)
        old = self.dimms.get(dimm_id)
        if not i or cuts[i - 1] <= (old.module_since if old else -math.inf):
            return
        since = cuts[i - 1]
        pages: set[str] = set()
        if old is not None:  # page keys are addresses: the old module's are in its window
            pages = {k for _, e in old.records
                     if (k := scope_keys(e, dimm_id)[Scope.PAGE]) is not None}
        self.buckets.forget(lambda scope, key: owned_by(scope, key, dimm_id, pages))
        rule, why = self._cut_why.get(
            (dimm_id, since),
            (REPLACED_RULE, "the module was replaced; the new one starts with no history"))
        self.dimms[dimm_id] = _Dimm(
            channel=old.channel if old else None, label=old.label if old else None,
            module_since=since, verdict=Verdict(dimm_id, VerdictState.OK, (rule,), (why,), {},
                                                time_of(since)))

    # ---- one event ---------------------------------------------------------------
    def _dimm(self, dimm_id: str) -> _Dimm:
        dimm = self.dimms.get(dimm_id)  # not setdefault: a _Dimm() per event is not free
        if dimm is None:
            dimm = self.dimms[dimm_id] = _Dimm()
        return dimm

    def _one(self, t: float, e: MemoryErrorEvent) -> list[HealthChange]:
        dimm_id = dimm_id_for(e, self.resolver)
        if dimm_id is not None and dimm_id in self.boundaries:
            current = self.dimms.get(dimm_id)
            if current is not None and t < current.module_since:
                self.skipped_removed_module += 1
                return []
            self._cut_upto(dimm_id, t)
        severity = Severity.UE if e.error_type.is_uncorrected else Severity.CE
        when = time_of(t)
        changes: list[HealthChange] = []
        if severity == Severity.UE:
            changes.append(HealthChange(
                ChangeKind.UE, dimm_id, when, "critical",
                f"uncorrected memory error on {dimm_id or 'unknown DIMM'}"
                + (f" at {e.address:#x}" if e.address is not None else ""),
                {"address": e.address, "count": e.count, "label": e.location.label},
                ("ue",)))
        dimm = self._dimm(dimm_id) if dimm_id is not None else None
        # A row without a real clock (time_source import/inferred: stored at import time,
        # or placed by a guessed boot) is history: counted, never a rate or a storm.
        clocked = e.time_source is None or e.time_source.is_real
        for scope, key in (scope_keys(e, dimm_id).items() if clocked else ()):
            crossing = self.buckets.account(scope, severity, key, t, e.count)
            if crossing is None:
                continue
            if self._newsworthy(crossing):
                changes.append(_crossing_change(crossing, dimm_id, when))
            if dimm is not None and scope != Scope.HOST:
                _add_crossing(dimm, ActiveCrossing(scope, crossing.rule_id, crossing.key,
                                                   crossing.total_in_window),
                              t, crossing.threshold.agetime_s)
            if scope == Scope.PAGE and e.page_address is not None:
                outcome = self._page(e.page_address, dimm_id, when)
                if outcome is not None:
                    changes.append(_page_change(outcome, crossing))
                    if outcome.done and dimm is not None:
                        dimm.pages_offlined += outcome.outcome == "done"
                        _repair_page(dimm, e.page_address, t)
        if dimm is not None:
            self._touched[dimm_id] = t  # type: ignore[index]  # dimm is set only with an id
            dimm.ce_total += e.count if severity == Severity.CE else 0
            dimm.ue_total += e.count if severity == Severity.UE else 0
            dimm.label = e.location.label or dimm.label
            # dimm is only set when dimm_id is (mypy cannot tie the two)
            change = (self._judge(dimm_id, dimm, t, e, severity)  # type: ignore[arg-type]
                      if clocked or severity == Severity.UE else None)
            if change is not None:
                changes.append(change)
        return [_with_event_context(c, e, dimm) for c in changes]

    def _page(self, page: int, dimm_id: str | None, when: datetime) -> PageOutcome | None:
        action = self.config.page_action
        if action == PageAction.OFF:
            return None
        if self.assume_offlined and self.host is None and action != PageAction.ACCOUNT:
            return _assumed_offline(page, action, self.page_book, when, dimm_id)
        return act_on_page(self.host, page, action, self.page_book, time=when, dimm_id=dimm_id)

    def _judge(self, dimm_id: str, dimm: _Dimm, t: float, e: MemoryErrorEvent,
               severity: Severity) -> HealthChange | None:
        params = self.config.classify
        self._remember(dimm, t, e, severity)
        horizon = t - params.window_h * 3600
        cells = dimm.cells
        while dimm.records and (dimm.records[0][0] < horizon
                                or len(dimm.records) > params.window_events):
            gone = _cell_of(dimm.records.popleft()[1])
            if gone is not None:
                if cells[gone] <= 1:
                    del cells[gone]
                else:
                    cells[gone] -= 1
        cell = _cell_of(e)
        new_cell = cell is not None and cell not in cells
        if cell is not None:
            cells[cell] = cells.get(cell, 0) + 1
        # an event away from the classified fault contradicts it: re-evaluate early
        surprise = new_cell or (dimm.classification is not None
                                and not dimm.classification.fits(e))
        dimm.since_classified += 1
        if (dimm.classification is None or len(dimm.records) <= RECLASSIFY_EVERY_RECORDS
                or severity == Severity.UE
                or (surprise and dimm.since_classified
                    >= len(dimm.records) // RECLASSIFY_NEW_CELL_SPACING)
                or dimm.since_classified >= max(RECLASSIFY_EVERY_RECORDS,
                                                len(dimm.records) // RECLASSIFY_SPACING)):
            self._classify(dimm_id, dimm, t)
        return self._decide(dimm_id, dimm, t)

    def _classify(self, dimm_id: str, dimm: _Dimm, t: float) -> FaultClassification:
        params = self.config.classify
        dimm.classification = classify_dimm(
            [r for _, r in dimm.records], params,
            peer_ces_on_channel=self._peer_ces(dimm_id, dimm, t - params.window_h * 3600),
            repaired_pages=dimm.repaired_pages)
        dimm.since_classified = 0
        dimm.classified_s = t
        return dimm.classification

    def _refresh(self, dimm_id: str, t: float) -> HealthChange | None:
        """Re-judge a DIMM whose classification lags its window (the end of a batch)."""
        dimm = self.dimms[dimm_id]
        if (dimm.since_classified == 0 or dimm.verdict is None or not dimm.records
                or t - dimm.classified_s < REFRESH_AFTER_S):
            return None
        self._classify(dimm_id, dimm, t)
        return self._decide(dimm_id, dimm, t)

    def _decide(self, dimm_id: str, dimm: _Dimm, t: float) -> HealthChange | None:
        previous = dimm.verdict
        verdict = self._verdict(dimm_id, dimm, t)
        if (previous is None or previous.state != verdict.state) and dimm.since_classified:
            # a verdict is reached on evidence as of its own event, never a lagging one
            self._classify(dimm_id, dimm, t)
            verdict = self._verdict(dimm_id, dimm, t)
        dimm.verdict = verdict
        if previous is not None and previous.state == verdict.state:
            return None
        if previous is None and verdict.state == VerdictState.OK:
            return None
        return HealthChange(
            ChangeKind.VERDICT_CHANGED, dimm_id, verdict.at, VERDICT_SEVERITY[verdict.state],
            f"{dimm_id}: {previous.state if previous else 'ok'} -> {verdict.state} "
            f"({verdict.reasons[0]})",
            {**verdict.evidence, "verdict": verdict.state.value,
             "previous": previous.state.value if previous else None,
             "reasons": list(verdict.reasons), "reached_at": verdict.since.isoformat()},
            verdict.rules, verdict.state.value)

    def _verdict(self, dimm_id: str, dimm: _Dimm, t: float) -> Verdict:
        assert dimm.classification is not None  # _judge classifies before deciding
        facts = DimmFacts(
            dimm_id=dimm_id, at=time_of(t), classification=dimm.classification,
            crossings=self._active(dimm, t), ue_count=dimm.classification.evidence.ue_count,
            trend=_trend(dimm, t), other_dimms_with_ce_24h=self._others_with_ce(dimm_id, t),
            pages_offlined=dimm.pages_offlined)
        return with_sticky_floor(decide(facts, self.config.verdict), dimm.verdict,
                                 self.config.verdict)

    def _remember(self, dimm: _Dimm, t: float, e: MemoryErrorEvent, severity: Severity) -> None:
        dimm.records.append((t, WindowEvent(e, t)))
        channel = channel_key(e.location)
        if channel is not None:
            dimm.channel = channel
        if severity == Severity.CE:
            dimm.last_ce_s = t
            count = max(e.count, 1)
            if dimm.window_ces is None:
                dimm.window_ces = SlidingSum(self.config.classify.window_h * 3600)
            dimm.window_ces.add(t, count)
            page = e.page_address
            if page is not None and page in dimm.repaired_pages:
                return  # a CE at an offlined page (patrol scrub): contained, not active
            for window in dimm.trend.values():
                window.add(t, count)
            if page is not None:
                _log_page_ce(dimm, page, t, count, self.config.page_counters)

    def _active(self, dimm: _Dimm, t: float) -> tuple[ActiveCrossing, ...]:
        """One summary per (scope, rule): a storm over thousands of pages keeps thousands
        of page crossings active, and judging each event against all of them was the
        quadratic part of a storm. Expired ones are dropped once the earliest can be."""
        if t >= dimm.next_expiry_s:
            for key, (_, at, age) in list(dimm.crossings.items()):
                if t - at >= age:
                    del dimm.crossings[key]
            dimm.next_expiry_s = min((at + age for _, at, age in dimm.crossings.values()),
                                     default=math.inf)
            dimm.groups = {}
            dimm.active = None
            for x, _, _ in dimm.crossings.values():
                _group(dimm, x, new_key=True)
        if dimm.active is None:  # built again only when a crossing came or went
            dimm.active = tuple(replace(worst, keys=n) for n, worst in dimm.groups.values())
        return dimm.active

    def _peer_ces(self, dimm_id: str, dimm: _Dimm, horizon: float) -> int:
        if dimm.channel is None:
            return 0
        best = 0
        now = horizon + self.config.classify.window_h * 3600
        for other_id, other in self.dimms.items():
            if other_id == dimm_id or other.channel != dimm.channel or other.window_ces is None:
                continue
            best = max(best, other.window_ces.at(now))
        return best

    def _others_with_ce(self, dimm_id: str, t: float) -> int:
        return sum(1 for other_id, other in self.dimms.items()
                   if other_id != dimm_id and other.last_ce_s is not None
                   and t - other.last_ce_s < DAY_S)

    def _save(self, changes: list[HealthChange]) -> None:
        if not changes or self.store is None:
            return
        with self.store.session() as s:
            for c in changes:
                s.add(HealthVerdictRow(
                    dimm_id=c.dimm_id, time=c.time.astimezone(UTC).replace(tzinfo=None),
                    state=c.verdict, previous_state=c.evidence.get("previous"),
                    rules=json.dumps(list(c.rule_ids)),
                    reasons=json.dumps(c.evidence.get("reasons", [])),
                    reached_at=_reached_at(c),
                    evidence=json.dumps({k: v for k, v in c.evidence.items()
                                         if k not in ("reasons", "previous", "verdict",
                                                      "reached_at")})))


class WindowEvent:
    """What the classifier window keeps of an event (a records.LocatedError): its type,
    count, address, decoded location (shared: the parsers hand out one per DIMM) and its
    own time in seconds. The window holds up to ``[classify] window_events`` of these per
    DIMM; whole events, with their raw line, message and detail, were most of what a
    storm made the watcher hold (~360 bytes each without the text, ~190 for these)."""

    __slots__ = ("error_type", "count", "address", "page_address", "location", "uptime_s")
    # event_time_s() reads uptime_s when there is no timestamp: here it holds the
    # event's own time as the engine computed it (epoch seconds, or uptime without one).
    timestamp = None

    def __init__(self, e: MemoryErrorEvent, t: float) -> None:
        self.error_type = e.error_type
        self.count = e.count
        self.address = e.address
        self.page_address = e.page_address  # the event's own rule, not a second copy
        self.location = e.location
        self.uptime_s = t


def _reached_at(change: HealthChange) -> datetime:
    """A verdict change's reached_at as health's tables store it (naive UTC)."""
    text = change.evidence.get("reached_at")
    at = datetime.fromisoformat(text) if isinstance(text, str) else change.time
    return at.astimezone(UTC).replace(tzinfo=None)


def _add_crossing(dimm: _Dimm, x: ActiveCrossing, t: float, age_s: float) -> None:
    new_key = (x.scope, x.key) not in dimm.crossings
    dimm.crossings[(x.scope, x.key)] = (x, t, age_s)
    dimm.next_expiry_s = min(dimm.next_expiry_s, t + age_s)
    _group(dimm, x, new_key=new_key)


def _group(dimm: _Dimm, x: ActiveCrossing, *, new_key: bool) -> None:
    n, worst = dimm.groups.get((x.scope, x.rule), (0, x))
    if x.total_in_window >= worst.total_in_window:
        worst = x
    dimm.groups[(x.scope, x.rule)] = (n + new_key, worst)
    dimm.active = None


def _trend(dimm: _Dimm, t: float) -> RateTrend:
    """CEs per SmartHW window, less those at pages offlined since (contained)."""
    return RateTrend(**{name: max(0, window.at(t) - dimm.repaired[name].at(t))
                        for name, window in dimm.trend.items()})


PAGE_LOG_CES = 64  # CEs remembered per page until it is offlined (older ones stay active)


def _log_page_ce(dimm: _Dimm, page: int, t: float, count: int, max_pages: int) -> None:
    """Remember a page's recent CEs, so offlining it can take them out of the rates.
    Bounded as the buckets are: ``[page] counters`` pages, least recently hit dropped."""
    log_ = dimm.page_ces.get(page)
    if log_ is None:
        log_ = dimm.page_ces[page] = deque(maxlen=PAGE_LOG_CES)
        if len(dimm.page_ces) > max_pages:
            dimm.page_ces.popitem(last=False)
    else:
        dimm.page_ces.move_to_end(page)
    log_.append((t, count))


def _repair_page(dimm: _Dimm, page: int | None, t: float) -> None:
    """The page is offlined at ``t``: its CEs so far stop counting as an active fault
    (the rate windows subtract them as they would have aged out), and later CEs there
    (patrol scrub still reads the page) never count. A fault that moves on to other
    cells is counted as usual, and escalates."""
    if page is None or page in dimm.repaired_pages:
        return
    dimm.repaired_pages[page] = t
    for when, count in dimm.page_ces.pop(page, ()):
        for window in dimm.repaired.values():
            window.add(when, count)


def _assumed_offline(page: int, action: PageAction, book: PageBook, when: datetime,
                     dimm_id: str | None) -> PageOutcome:
    """The outcome a replay assumes for ``action`` on ``page``: done, nothing written."""
    page &= ~0xFFF
    previous = book.get(page)
    if previous is not None and previous.done:
        return replace(previous, outcome=ALREADY_DONE, time=when, steps=())
    method = "hard" if action == PageAction.HARD else "soft"  # soft-then-hard: soft did it
    outcome = PageOutcome(page, action, DONE, when, dimm_id, steps=((method, DONE),))
    book.put(outcome)
    return outcome


def _with_event_context(change: HealthChange, e: MemoryErrorEvent,
                        dimm: _Dimm | None) -> HealthChange:
    """Attach the triggering event and the DIMM's totals, which alert hooks pass on
    (rasdaemon's trigger variables; mcelog's CECOUNT/UCCOUNT and DIMM label)."""
    extra: dict[str, Any] = {"last_event": event_evidence(e)}
    if dimm is not None:
        extra.update(ce_count=dimm.ce_total, ue_count=dimm.ue_total, dimm_label=dimm.label)
    return replace(change, evidence={**extra, **change.evidence})


def _crossing_change(c: Crossing, dimm_id: str | None, when: datetime) -> HealthChange:
    severity = "critical" if c.severity == Severity.UE else "warning"
    return HealthChange(
        ChangeKind.THRESHOLD_CROSSED, dimm_id, when, severity,
        f"{c.scope} {c.key}: {c.total_in_window} {c.severity.value.upper()}s crossed "
        f"{c.threshold} ({c.rule_id})",
        {"scope": c.scope.value, "key": c.key, "threshold": str(c.threshold),
         "total_in_window": c.total_in_window}, (c.rule_id,))


def _page_change(o: PageOutcome, c: Crossing) -> HealthChange:
    severity = "info" if o.done or o.outcome in ("accounted", "off") else "warning"
    return HealthChange(
        ChangeKind.PAGE_OFFLINED, o.dimm_id, o.time, severity,
        f"page {o.page:#x}: {o.action} -> {o.outcome}", o.to_dict(), (c.rule_id,))


def _inventory_of(host: Host | None) -> list[DimmInfo] | None:
    if host is None:
        return None

    try:
        return dimm_inventory(host)
    except (MemrasError, OSError):
        return None  # no inventory data: location keys only


def _resolver_for(host: Host | None, inventory: list[DimmInfo] | None) -> DimmResolver | None:
    if host is None or inventory is None:
        return None

    try:
        return inventory_resolver(host, inventory)
    except (MemrasError, OSError):
        return None  # no memory map: location keys only
