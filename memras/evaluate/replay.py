"""Replay a labelled history through the health engine and the baseline rules.

What it decides
    For every DIMM of the history, the first moment (event time) each rule flagged it:
    each memras verdict level (the DIMM's verdict reached that level or a worse one),
    mcelog's per-DIMM leaky buckets (10 CEs / 24 h, or 1 UE / 24 h) and rasdaemon's
    per-page threshold (50 CEs / 24 h on one 4 KiB page). :mod:`.metrics` scores those
    times against the failure tickets.

Structure
    One :class:`~memras.health.engine.HealthEngine` per host, fed that host's events in
    their own time order, with no store and no Host: nothing is written; the config's
    page action is assumed to succeed (``assume_offlined``: the watcher's soft offline
    of a page with CEs), so CEs at offlined pages count as contained and a fault that
    keeps erring past its offlined pages is seen as such; ``[page] action = account``
    or ``off`` replays without it. DIMM ids are the engine's location keys, or, where
    the history says which DIMM id the host itself gave a location
    (``History.dimm_ids``: the central store's rows, memras.fleet.evaluate), that id,
    so the replay names a DIMM as its host does and a replacement's DIMM matches it.
    One engine per host because the engine's peer rules (another DIMM on the channel,
    "no other DIMM has CEs") look at the DIMMs of one machine. The baselines run beside
    it on the same events, with the same leaky bucket the engine uses
    (:class:`~memras.health.buckets.LeakyBucket`, mcelog's ``__bucket_account``).
    rasdaemon's page counter (ras-page-isolation.c ``page_record``) leaks the same way;
    it differs only in restarting its clock when it fires, after the first crossing,
    so the first flag time is the same.

Why replay instead of reading recorded verdicts
    Recorded verdicts come from whatever config the watcher ran with; tuning
    memras.toml means asking what *this* config would have said, at the time it
    would have said it.

Cost
    The engine's (O(window) per event of a busy DIMM, see engine.py) plus O(1) per
    event per baseline; the engine of a host is dropped once the host is replayed.
    A history of millions of events takes a while: :class:`ReplayWatch` hears of each
    batch (progress) and stops the replay between two batches (cancel).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime

from memras.evaluate.history import HistoryRecord
from memras.health.buckets import LeakyBucket, Threshold
from memras.health.config import Config
from memras.health.engine import ChangeKind, HealthEngine, is_soft_offline, ue_from_memory_failure
from memras.health.keys import DimmResolver, dimm_id_for, event_time_s, location_key, time_of
from memras.health.page_action import MemoryPageBook
from memras.health.verdict import VerdictState
from memras.records import ErrorType, MemoryErrorEvent, MemoryFailureEvent

# The verdict levels evaluated: a DIMM is flagged at a level once its verdict is at
# least that severe (ok is no flag).
LEVELS = (VerdictState.WATCH, VerdictState.REPAIR, VerdictState.REPLACE_LATER,
          VerdictState.REPLACE_NOW)
MCELOG_RULE = "mcelog-dimm"
RASDAEMON_RULE = "rasdaemon-page"
BATCH_EVENTS = 5000  # events handed to the engine at once: its changes are kept per batch


def level_rule(state: VerdictState) -> str:
    return f"memras-{state.value}"


@dataclass(frozen=True, slots=True)
class Baselines:
    """The other tools' defaults (mcelog.conf [dimm]; rasdaemon.env PAGE_CE_*)."""

    mcelog_ce: Threshold | None = Threshold(10, 86400)
    mcelog_ue: Threshold | None = Threshold(1, 86400)
    rasdaemon_page: Threshold | None = Threshold(50, 86400)

    def names(self) -> dict[str, str]:
        """Rule id -> what the table calls it."""
        mcelog = " | ".join(f"{t} {sev}" for t, sev in ((self.mcelog_ce, "CE"),
                                                      (self.mcelog_ue, "UE")) if t)
        out = {}
        if mcelog:
            out[MCELOG_RULE] = f"mcelog DIMM {mcelog}"
        if self.rasdaemon_page:
            out[RASDAEMON_RULE] = f"rasdaemon page {self.rasdaemon_page} CE"
        return out


def rule_names(baselines: Baselines) -> dict[str, str]:
    """Every rule evaluated, in table order: memras levels, then the baselines."""
    return {**{level_rule(s): f"memras {s.value}" for s in LEVELS}, **baselines.names()}


@dataclass
class DimmFlags:
    """One DIMM's history as the rules saw it."""

    host: str
    dimm: str
    ces: int = 0
    ues: int = 0
    first_error: datetime | None = None
    last_error: datetime | None = None
    flags: dict[str, datetime] = field(default_factory=dict)  # rule id -> first flag time
    why: dict[str, tuple[str, ...]] = field(default_factory=dict)  # memras rules that fired

    def flag(self, rule: str, at: datetime, why: tuple[str, ...] = ()) -> None:
        if rule not in self.flags:
            self.flags[rule] = at
            if why:
                self.why[rule] = why

    def to_dict(self) -> dict[str, object]:
        return {"host": self.host, "dimm": self.dimm, "ces": self.ces, "ues": self.ues,
                "first_error": self.first_error, "last_error": self.last_error,
                "flags": dict(self.flags), "why": {k: list(v) for k, v in self.why.items()}}


@dataclass
class _BaselineState:
    """The baselines' buckets for one host: per DIMM (mcelog) and per page (rasdaemon)."""

    baselines: Baselines
    dimm_ce: dict[str, LeakyBucket] = field(default_factory=dict)
    dimm_ue: dict[str, LeakyBucket] = field(default_factory=dict)
    pages: dict[int, LeakyBucket] = field(default_factory=dict)

    def account(self, t: float, e: MemoryErrorEvent, dimm: DimmFlags) -> None:
        b = self.baselines
        ue = e.error_type.is_uncorrected
        threshold, buckets = (b.mcelog_ue, self.dimm_ue) if ue else (b.mcelog_ce, self.dimm_ce)
        if threshold is not None and _fires(buckets, dimm.dimm, threshold, t, e.count):
            dimm.flag(MCELOG_RULE, time_of(t))
        page = e.page_address
        # rasdaemon counts Corrected mc_events per page only (ras-page-isolation.c)
        if (not ue and page is not None and b.rasdaemon_page is not None
                and _fires(self.pages, page, b.rasdaemon_page, t, e.count)):
            dimm.flag(RASDAEMON_RULE, time_of(t))


def _fires(buckets: dict, key: object, threshold: Threshold, t: float, count: int) -> bool:
    bucket = buckets.get(key)
    if bucket is None:
        bucket = buckets[key] = LeakyBucket(threshold)
    return bucket.account(t, count)


class ReplayCancelled(Exception):
    """The replay stopped at a cancel request, between two batches: how far it got."""

    def __init__(self, events: int, hosts: int) -> None:
        super().__init__(f"stopped after {events} events")
        self.events = events  # records of the history replayed
        self.hosts = hosts  # hosts replayed whole


@dataclass
class ReplayWatch:
    """Who follows a long replay: ``progress(events replayed so far)`` after every
    batch, and ``cancel`` (set by Ctrl-C, :class:`memras.cli.progress.ProgressDisplay`)
    checked there too, which ends the replay with :class:`ReplayCancelled`."""

    progress: Callable[[int], None] | None = None
    cancel: threading.Event | None = None
    events: int = 0
    hosts: int = 0

    def done(self, events: int) -> None:
        self.events += events
        if self.progress is not None:
            self.progress(self.events)
        if self.cancel is not None and self.cancel.is_set():
            raise ReplayCancelled(self.events, self.hosts)


@dataclass
class Replay:
    """Per DIMM flags, plus the events no rule could judge."""

    dimms: dict[tuple[str, str], DimmFlags] = field(default_factory=dict)
    events: int = 0
    untimed: int = 0  # no wall time: cannot be placed against a ticket
    unattributed: int = 0  # no DIMM in the location


def replay_config(config: Config | None) -> Config:
    """The config as given (the replay's engine assumes its page action succeeds)."""
    return config or Config()


def replay_host(host: str, events: Iterable[HistoryRecord], config: Config,
                baselines: Baselines = Baselines(), into: Replay | None = None,
                dimm_ids: Mapping[str, str] | None = None,
                watch: ReplayWatch | None = None) -> Replay:
    """Replay one host's records (any order) into ``into`` (a new Replay by default).

    A memory_failure record (the kernel poisoned a page: a UE) names no DIMM; it is
    the DIMM's whose located errors of this history were at the same page, for the
    engine and for mcelog's UE bucket alike. A soft offline of the CE collector is a
    page action, not an error: the engine takes it, the baselines do not.
    ``dimm_ids``: location key -> the DIMM id this host gave it (the key otherwise).
    ``watch`` hears of every batch, and may stop the replay there."""
    out = into if into is not None else Replay()
    timed: list[tuple[float, HistoryRecord, MemoryErrorEvent]] = []
    untimed = out.untimed
    for record in events:
        out.events += 1
        e = _as_error(record)
        t = event_time_s(e) if e.timestamp is not None else None
        if t is None:
            out.untimed += 1
        else:
            timed.append((t, record, e))
    timed.sort(key=lambda te: te[0])
    resolver = page_resolver((e for _, _, e in timed), host_ids(dimm_ids))
    engine = HealthEngine(config, None, None, record=False, page_book=MemoryPageBook(),
                          resolver=resolver, assume_offlined=True)
    state = _BaselineState(baselines)
    for start in range(0, len(timed), BATCH_EVENTS):
        batch = timed[start:start + BATCH_EVENTS]
        for t, _, e in batch:
            if e.error_type == ErrorType.INFO:
                continue
            dimm_id = dimm_id_for(e, resolver)
            if dimm_id is None:
                out.unattributed += 1
                continue
            dimm = _dimm(out, host, dimm_id)
            _count(dimm, e, time_of(t))
            state.account(t, e, dimm)
        for change in engine.process([record for _, record, _ in batch]):
            if change.kind == ChangeKind.VERDICT_CHANGED and change.dimm_id is not None:
                _flag_levels(_dimm(out, host, change.dimm_id), change.verdict,
                             change.time, change.rule_ids)
        if watch is not None:
            watch.done(len(batch))
    if watch is not None:
        watch.hosts += 1
        watch.done(out.untimed - untimed)  # read, never replayable
    return out


def _as_error(record: HistoryRecord) -> MemoryErrorEvent:
    """A memory error as it is; a memory_failure record as the UE it reports (Info for a
    CE collector's soft offline), as the engine reads it."""
    if not isinstance(record, MemoryFailureEvent):
        return record
    e = ue_from_memory_failure(record)
    return replace(e, error_type=ErrorType.INFO) if is_soft_offline(record) else e


def host_ids(dimm_ids: Mapping[str, str] | None) -> DimmResolver | None:
    """A located event -> the id its host gave its location key; None without one."""
    if not dimm_ids:
        return None

    def resolve(e: MemoryErrorEvent) -> str | None:
        key = location_key(e.location)
        return None if key is None else dimm_ids.get(key)

    return resolve


def page_resolver(events: Iterable[MemoryErrorEvent],
                  located: DimmResolver | None = None) -> DimmResolver:
    """Map an event that names no DIMM (a memory_failure page) to the DIMM whose located
    errors were at its page; located events keep their own key, or the id ``located``
    gives them."""
    pages: dict[int, str] = {}
    for e in events:
        key = location_key(e.location)
        if key is not None and e.page_address is not None:
            pages.setdefault(e.page_address, dimm_id_for(e, located) or key)

    def resolve(e: MemoryErrorEvent) -> str | None:
        if location_key(e.location) is not None:
            return located(e) if located is not None else None
        return None if e.page_address is None else pages.get(e.page_address)

    return resolve


def replay(events_by_host: dict[str, list[HistoryRecord]], config: Config | None = None,
           baselines: Baselines = Baselines(),
           dimm_ids: Mapping[str, Mapping[str, str]] | None = None,
           watch: ReplayWatch | None = None) -> Replay:
    """Every host of a history, one engine each, in host order (``dimm_ids``: per host,
    as :func:`replay_host` takes them; ``watch``: progress and cancel, per batch)."""
    effective = replay_config(config)
    out = Replay()
    for host in sorted(events_by_host):
        replay_host(host, events_by_host[host], effective, baselines, out,
                    (dimm_ids or {}).get(host), watch)
    return out


def _dimm(out: Replay, host: str, dimm_id: str) -> DimmFlags:
    key = (host, dimm_id)
    dimm = out.dimms.get(key)
    if dimm is None:
        dimm = out.dimms[key] = DimmFlags(host, dimm_id)
    return dimm


def _count(dimm: DimmFlags, e: MemoryErrorEvent, when: datetime) -> None:
    if e.error_type.is_uncorrected:
        dimm.ues += e.count
    else:
        dimm.ces += e.count
    dimm.first_error = dimm.first_error or when
    dimm.last_error = when


def _flag_levels(dimm: DimmFlags, verdict: str | None, when: datetime,
                 rules: tuple[str, ...]) -> None:
    if verdict is None:
        return
    rank = VerdictState(verdict).rank
    for level in LEVELS:
        if rank >= level.rank:
            dimm.flag(level_rule(level), when, rules)
