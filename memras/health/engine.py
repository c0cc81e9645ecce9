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
import json
import logging
import math
from bisect import bisect_right
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from memras.health.buckets import BucketSet, Crossing, Scope, Severity
from memras.health.classify import FaultClassification, _cell_of, classify_dimm
from memras.health.config import Config
from memras.health.keys import (
    DimmResolver,
    channel_key,
    dimm_id_for,
    event_time_s,
    owned_by,
    scope_keys,
    time_of,
)
from memras.health.page_action import (
    MemoryPageBook,
    PageAction,
    PageBook,
    PageOutcome,
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
from memras.records import MemoryErrorEvent, Record, event_evidence

log = logging.getLogger(__name__)

RECLASSIFY_EVERY_RECORDS = 64
RECLASSIFY_SPACING = 8  # at most 8 record-visits per event for periodic reclassification
RECLASSIFY_NEW_CELL_SPACING = 64  # a new cell may reclassify early, at most 64 visits/event
DAY_S = 86400


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


@dataclass
class _Dimm:
    records: deque[tuple[float, WindowEvent]] = field(default_factory=deque)
    trend: dict[str, SlidingSum] = field(default_factory=_trend_sums)  # CEs, SmartHW windows
    window_ces: SlidingSum | None = None  # CEs in the classifier window, for channel peers
    cells: set[object] = field(default_factory=set)
    crossings: dict[tuple[Scope, str], tuple[ActiveCrossing, float, float]] = field(
        default_factory=dict)
    channel: str | None = None
    last_ce_s: float | None = None
    pages_offlined: int = 0
    classification: FaultClassification | None = None
    since_classified: int = 0
    verdict: Verdict | None = None
    ce_total: int = 0  # every error seen since the engine started (mcelog's CECOUNT)
    ue_total: int = 0
    label: str | None = None
    module_since: float = -math.inf  # the boundary this state started at (seconds)
    next_expiry_s: float = -math.inf  # when the earliest active crossing expires
    # (scope, rule) -> (keys crossed, the worst crossing): what verdicts look at
    groups: dict[tuple[Scope, str], tuple[int, ActiveCrossing]] = field(default_factory=dict)


class HealthEngine:
    """``HealthEngine(config, store, host=None).process(events) -> [HealthChange]``.

    ``store`` may be None (pure replay, nothing written). ``host`` is needed for
    page actions and for inventory DIMM ids; without one, pages are only accounted.
    With both (the watcher), the host's modules are registered at start.
    ``boundaries`` (slot -> times its module changed) are for a replay without a
    store; with a store they are read from its module registry.
    """

    def __init__(self, config: Config | None = None, store: Any = None, host: Any = None, *,
                 resolver: DimmResolver | None = None, page_book: PageBook | None = None,
                 record: bool = True,
                 boundaries: dict[str, list[datetime]] | None = None) -> None:
        self.config = config or Config()
        self.store = store
        self.host = host
        self.record = record and store is not None
        inventory = _inventory_of(host) if resolver is None or self.record else None
        self.resolver = resolver if resolver is not None else _resolver_for(host, inventory)
        if page_book is None:
            if store is not None:
                from memras.health.page_action import StorePageBook

                page_book = StorePageBook(store)
            else:
                page_book = MemoryPageBook()
        self.page_book = page_book
        self.buckets = BucketSet(dict(self.config.thresholds),
                                 max_per_scope=self.config.page_counters)
        self._replaced_noted: dict[Scope, int] = {}  # scope -> replacements to log at next
        self.dimms: dict[str, _Dimm] = {}
        self.skipped_untimed = 0
        self.skipped_removed_module = 0
        self.boundaries: dict[str, list[float]] = {}
        if self.record:
            from memras.health.api import current_verdicts
            from memras.health.modules import register_modules

            if inventory:
                register_modules(store, inventory)
            for dimm_id, verdict in current_verdicts(store).items():
                self._dimm(dimm_id).verdict = verdict
        self._set_boundaries(boundaries)
        for dimm_id, cuts in self.boundaries.items():  # loaded verdicts are the new module's
            if dimm_id in self.dimms:
                self.dimms[dimm_id].module_since = cuts[-1]

    # ---- public ---------------------------------------------------------------
    def process(self, events: Iterable[Record]) -> list[HealthChange]:
        timed: list[tuple[float, MemoryErrorEvent]] = []
        for e in events:
            if not isinstance(e, MemoryErrorEvent):
                continue  # memory_failure_event records are the kernel's own action
            t = event_time_s(e)
            if t is None:
                self.skipped_untimed += 1
            else:
                timed.append((t, e))
        timed.sort(key=lambda te: te[0])
        if self.store is not None:  # a replacement in another process: cut at once
            self._set_boundaries(None)
            self.cut_modules()
        changes: list[HealthChange] = []
        for t, e in timed:
            changes += self._one(t, e)
        self._note_replaced_buckets()
        if self.record:
            self._save([c for c in changes if c.kind == ChangeKind.VERDICT_CHANGED])
        return changes

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

    def verdicts(self) -> dict[str, Verdict]:
        return {d: s.verdict for d, s in self.dimms.items() if s.verdict is not None}

    def cut_modules(self, until: datetime | None = None) -> None:
        """Start every slot whose module changed by ``until`` (default: ever) afresh."""
        until_s = math.inf if until is None else until.timestamp()
        for dimm_id in self.boundaries:
            self._cut_upto(dimm_id, until_s)

    # ---- module boundaries -----------------------------------------------------------
    def _set_boundaries(self, given: dict[str, list[datetime]] | None) -> None:
        if given is None and self.store is not None:
            from memras.health.modules import module_boundaries

            given = module_boundaries(self.store)
        self.boundaries = {k: sorted(t.timestamp() for t in v) for k, v in (given or {}).items()}

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
        self.dimms[dimm_id] = _Dimm(
            channel=old.channel if old else None, label=old.label if old else None,
            module_since=since, verdict=Verdict(
                dimm_id, VerdictState.OK, (REPLACED_RULE,),
                ("the module was replaced; the new one starts with no history",), {},
                time_of(since)))

    # ---- one event ---------------------------------------------------------------
    def _dimm(self, dimm_id: str) -> _Dimm:
        return self.dimms.setdefault(dimm_id, _Dimm())

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
        for scope, key in scope_keys(e, dimm_id).items():
            crossing = self.buckets.account(scope, severity, key, t, e.count)
            if crossing is None:
                continue
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
        if dimm is not None:
            dimm.ce_total += e.count if severity == Severity.CE else 0
            dimm.ue_total += e.count if severity == Severity.UE else 0
            dimm.label = e.location.label or dimm.label
            # dimm is only set when dimm_id is (mypy cannot tie the two)
            change = self._judge(dimm_id, dimm, t, e, severity)  # type: ignore[arg-type]
            if change is not None:
                changes.append(change)
        return [_with_event_context(c, e, dimm) for c in changes]

    def _page(self, page: int, dimm_id: str | None, when: datetime) -> PageOutcome | None:
        action = self.config.page_action
        if action == PageAction.OFF:
            return None
        return act_on_page(self.host, page, action, self.page_book, time=when, dimm_id=dimm_id)

    def _judge(self, dimm_id: str, dimm: _Dimm, t: float, e: MemoryErrorEvent,
               severity: Severity) -> HealthChange | None:
        params = self.config.classify
        self._remember(dimm, t, e, severity)
        horizon = t - params.window_h * 3600
        while dimm.records and (dimm.records[0][0] < horizon
                                or len(dimm.records) > params.window_events):
            dimm.records.popleft()
        cell = _cell_of(e)
        new_cell = cell is not None and cell not in dimm.cells
        if cell is not None:
            dimm.cells.add(cell)
        dimm.since_classified += 1
        if (dimm.classification is None or len(dimm.records) <= RECLASSIFY_EVERY_RECORDS
                or severity == Severity.UE
                or (new_cell and dimm.since_classified
                    >= len(dimm.records) // RECLASSIFY_NEW_CELL_SPACING)
                or dimm.since_classified >= max(RECLASSIFY_EVERY_RECORDS,
                                                len(dimm.records) // RECLASSIFY_SPACING)):
            dimm.classification = classify_dimm(
                [r for _, r in dimm.records], params,
                peer_ces_on_channel=self._peer_ces(dimm_id, dimm, horizon))
            dimm.since_classified = 0
        facts = DimmFacts(
            dimm_id=dimm_id, at=time_of(t), classification=dimm.classification,
            crossings=self._active(dimm, t), ue_count=dimm.classification.evidence.ue_count,
            trend=_trend(dimm, t), other_dimms_with_ce_24h=self._others_with_ce(dimm_id, t),
            pages_offlined=dimm.pages_offlined)
        verdict = with_sticky_floor(decide(facts, self.config.verdict), dimm.verdict,
                                    self.config.verdict)
        previous = dimm.verdict
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
             "reasons": list(verdict.reasons)},
            verdict.rules, verdict.state.value)

    def _remember(self, dimm: _Dimm, t: float, e: MemoryErrorEvent, severity: Severity) -> None:
        dimm.records.append((t, WindowEvent(e, t)))
        if severity == Severity.CE:
            dimm.last_ce_s = t
            count = max(e.count, 1)
            for window in dimm.trend.values():
                window.add(t, count)
            if dimm.window_ces is None:
                dimm.window_ces = SlidingSum(self.config.classify.window_h * 3600)
            dimm.window_ces.add(t, count)
        channel = channel_key(e.location)
        if channel is not None:
            dimm.channel = channel

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
            for x, _, _ in dimm.crossings.values():
                _group(dimm, x, new_key=True)
        return tuple(replace(worst, keys=n) for n, worst in dimm.groups.values())

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
        if not changes:
            return
        from memras.health.models import HealthVerdictRow

        with self.store.session() as s:
            for c in changes:
                s.add(HealthVerdictRow(
                    dimm_id=c.dimm_id, time=c.time.astimezone(UTC).replace(tzinfo=None),
                    state=c.verdict, previous_state=c.evidence.get("previous"),
                    rules=json.dumps(list(c.rule_ids)),
                    reasons=json.dumps(c.evidence.get("reasons", [])),
                    evidence=json.dumps({k: v for k, v in c.evidence.items()
                                         if k not in ("reasons", "previous", "verdict")})))


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


def _trend(dimm: _Dimm, t: float) -> RateTrend:
    return RateTrend(**{name: window.at(t) for name, window in dimm.trend.items()})


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


def _inventory_of(host: Any) -> list[Any] | None:
    if host is None:
        return None
    from memras.errors import MemrasError

    try:
        from memras.inventory import dimm_inventory

        return dimm_inventory(host)
    except (ImportError, MemrasError, OSError):
        return None  # no inventory (module or data): location keys only


def _resolver_for(host: Any, inventory: list[Any] | None) -> DimmResolver | None:
    if host is None or inventory is None:
        return None
    from memras.errors import MemrasError
    from memras.health.keys import inventory_resolver

    try:
        return inventory_resolver(host, inventory)
    except (ImportError, MemrasError, OSError):
        return None  # no memory map: location keys only
