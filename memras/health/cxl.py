"""Health of a CXL memdev from what the device itself reports.

A CXL memory device grades its own events (the event log a record came from:
Informational, Warning, Failure, Fatal; the record header's flags MAINTENANCE_NEEDED,
PERFORMANCE_DEGRADED, HARDWARE_REPLACEMENT_NEEDED) and keeps its own health
information (CXL 3.1 r8.2.9.9.3.1: health status, media status, life used, dirty
shutdown count), which it sends as memory module records. Those are the reasons a
memdev's verdict cites here; its media errors (general media and DRAM records) are
memory errors located at the memdev and go through the same engine as a DIMM's
(memras.health.engine), bank, row and column included. The rule ids are in
memras.health.rules.RULES.

Poison (the device's poison list, ``cxl_poison`` records of type List or Inject) is
data already lost in the media: one poisoned area is ``cxl-poison`` (repair: its pages
are taken out of service, memras.health.cxl_poison); poison at ``[classify]
offlined_pages_min + spread_min`` distinct 4 KiB pages of DPA or more (4 by default:
the memras-erring-after-offline reasoning, after Hwang et al. ASPLOS'12 — retiring
pages works while errors stay in a few of them, and poison that keeps appearing at
new pages is not contained by it) is ``cxl-poison-spread``, and a poison list the
device marked Overflow (it lost track of poison memras can therefore not act on) is
``cxl-poison-overflow``: both replace-at-next-maintenance. A Clear record takes its
pages out of the count (the media was rewritten; the kernel's page stays poisoned).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from memras.health.api import event_from_stored
from memras.health.classify import CLASSIFY_TUNABLES
from memras.health.verdict import Verdict, VerdictState
from memras.health.verdict_rows import current_verdicts
from memras.ingest.parsers.cxl import (
    CXL_DRIVER,
    HDR_FLAGS,
    HEALTH_STATUS,
    MEDIA_STATUS,
    POISON_FLAGS,
    cxl_event_of,
)
from memras.records import CxlEvent
from memras.store.cxl import cxl_events, memdev_media_errors

if TYPE_CHECKING:
    from memras.health.config import Config
    from memras.store import Store, StoredError

LIFE_USED_REPLACE = 90  # percent: the device's own "life used" past which to plan a swap
# distinct poisoned 4 KiB pages of DPA from which retiring pages is not enough (see above)
POISON_PAGES_REPLACE = (CLASSIFY_TUNABLES["offlined_pages_min"].default
                        + CLASSIFY_TUNABLES["spread_min"].default)
POISON_PAGE = 4096
POISON_LISTED = ("List", "Inject")  # trace types that say the media holds poison
_POISON_PAGES_PER_RECORD = 1 << 16  # a record's pages counted at most (256 MiB of DPA)
_DATA_LOST = frozenset(v for k, v in MEDIA_STATUS.items() if "Lost" in k or "Loss" in k)


@dataclass
class CxlVerdict:
    memdev: str
    state: VerdictState = VerdictState.OK
    rules: list[str] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)

    def raise_to(self, state: VerdictState, rule: str, reason: str) -> None:
        if state.rank > self.state.rank:
            self.state = state
        if rule and rule not in self.rules:
            self.rules.append(rule)
            self.reasons.append(reason)


def _flags(ev: CxlEvent, verdict: CxlVerdict) -> None:
    flags = ev.hdr_flags or 0
    health = ev.health_status or 0
    if flags & HDR_FLAGS["HARDWARE_REPLACEMENT_NEEDED"] or health & HEALTH_STATUS[
            "REPLACEMENT_NEEDED"]:
        verdict.raise_to(VerdictState.REPLACE_NOW, "cxl-replacement-needed",
                         f"{ev.memdev} says its hardware needs replacement ({ev.event})")
    if flags & HDR_FLAGS["MAINTENANCE_NEEDED"] or health & HEALTH_STATUS["MAINTENANCE_NEEDED"]:
        verdict.raise_to(VerdictState.WATCH, "cxl-maintenance-needed",
                         f"{ev.memdev} says it needs maintenance ({ev.event})")
    if flags & HDR_FLAGS["PERFORMANCE_DEGRADED"] or health & HEALTH_STATUS[
            "PERFORMANCE_DEGRADED"]:
        verdict.raise_to(VerdictState.WATCH, "cxl-performance-degraded",
                         f"{ev.memdev} reports degraded performance ({ev.event})")


def poison_pages(ev: CxlEvent) -> range:
    """The 4 KiB pages of DPA (their page numbers) a poison record covers."""
    if ev.dpa is None:
        return range(0)
    first = ev.dpa // POISON_PAGE
    last = (ev.dpa + max(ev.dpa_length or 1, 1) - 1) // POISON_PAGE
    return range(first, min(last + 1, first + _POISON_PAGES_PER_RECORD))


def poison_pages_replace(config: Config | None = None) -> int:
    """The cxl-poison-spread threshold under ``config`` (its ``[classify]`` knobs)."""
    if config is None:
        return POISON_PAGES_REPLACE
    return config.classify.offlined_pages_min + config.classify.spread_min


def _poison(ev: CxlEvent, v: CxlVerdict, poisoned: dict[str, set[int]]) -> None:
    pages = poisoned.setdefault(ev.memdev, set())
    if ev.trace_type == "Clear":
        pages.difference_update(poison_pages(ev))
        return
    if ev.trace_type not in POISON_LISTED:
        return
    pages.update(poison_pages(ev))
    where = f"DPA {ev.dpa or 0:#x}" + (f", HPA {ev.hpa:#x}" if ev.hpa is not None else "")
    v.raise_to(VerdictState.REPAIR, "cxl-poison",
               f"{ev.memdev} holds poisoned media ({where})")
    if (ev.poison_flags or 0) & POISON_FLAGS["Overflow"]:
        v.raise_to(VerdictState.REPLACE_LATER, "cxl-poison-overflow",
                   f"{ev.memdev}'s poison list overflowed: poison it no longer lists "
                   "cannot be taken out of service")


def judge_cxl(events: Iterable[CxlEvent], *,
              life_used_replace: int = LIFE_USED_REPLACE,
              poison_replace: int = POISON_PAGES_REPLACE) -> dict[str, CxlVerdict]:
    """Each memdev's verdict from its events, oldest first; memdevs with none are absent."""
    verdicts: dict[str, CxlVerdict] = {}
    shutdowns: dict[str, int] = {}
    poisoned: dict[str, set[int]] = {}  # memdev -> DPA pages its poison list holds now
    for ev in events:
        v = verdicts.setdefault(ev.memdev, CxlVerdict(ev.memdev))
        if ev.log_type == "Fatal":
            v.raise_to(VerdictState.REPLACE_NOW, "cxl-fatal-log",
                       f"{ev.memdev} logged a {ev.event} record in its Fatal event log")
        elif ev.log_type == "Failure":
            v.raise_to(VerdictState.REPLACE_LATER, "cxl-failure-log",
                       f"{ev.memdev} logged a {ev.event} record in its Failure event log")
        _flags(ev, v)
        if ev.life_used is not None and ev.life_used >= life_used_replace:
            v.raise_to(VerdictState.REPLACE_LATER, f"cxl-life-used-{life_used_replace}",
                       f"{ev.memdev} has used {ev.life_used}% of its life")
        if ev.media_status in _DATA_LOST:
            v.raise_to(VerdictState.REPLACE_NOW, "cxl-media-data-lost",
                       f"{ev.memdev} media status: data or persistence lost")
        if ev.dirty_shutdown_cnt is not None:
            before = shutdowns.get(ev.memdev)
            if before is not None and ev.dirty_shutdown_cnt > before:
                v.raise_to(VerdictState.WATCH, "cxl-dirty-shutdown",
                           f"{ev.memdev}'s dirty shutdown count rose "
                           f"{before} -> {ev.dirty_shutdown_cnt}")
            shutdowns[ev.memdev] = ev.dirty_shutdown_cnt
        if ev.event == "poison":
            _poison(ev, v, poisoned)
    for memdev, pages in poisoned.items():
        if len(pages) >= poison_replace:
            verdicts[memdev].raise_to(
                VerdictState.REPLACE_LATER, "cxl-poison-spread",
                f"{memdev} lists poison at {len(pages)} pages of its media "
                f"(replace from {poison_replace}): retiring pages does not contain it")
    return verdicts


def memdev_verdicts(store: Store, memdevs: Iterable[str], *,
                    config: Config | None = None,
                    media: dict[str, MediaRecords] | None = None) -> dict[str, CxlVerdict]:
    """Each memdev's verdict: the worse of the engine's (its media errors, judged as a
    DIMM's under the id ``label:memN``: memras.health.keys.location_key) and the one
    its own severity and health records give (:func:`judge_cxl` over memras_cxl_event).
    Rules and reasons of both are kept. ``media``: each memdev's :class:`MediaRecords`
    from an earlier call (updated here; a memdev without one gets it), so that only the
    media errors stored since are read."""
    names = list(memdevs)
    engine = current_verdicts(store, [f"label:{m}" for m in names])
    kept = {} if media is None else media
    out: dict[str, CxlVerdict] = {}
    for m in names:
        records = kept.setdefault(m, MediaRecords(m))
        records.update(store)
        judged = judge_cxl(_in_time_order(records.records(), cxl_events(store, memdev=m)),
                           poison_replace=poison_pages_replace(config)).get(m, CxlVerdict(m))
        media_verdict = engine.get(f"label:{m}")
        if media_verdict is not None:
            for rule, reason in zip(media_verdict.rules, media_verdict.reasons, strict=False):
                judged.raise_to(VerdictState.OK, rule, f"media errors: {reason}")
            judged.raise_to(media_verdict.state, "", "")  # the engine's state, its rules above
        out[m] = judged
    return out


def with_device_verdicts(store: Store, verdicts: dict[str, Verdict], *,
                         until: datetime | None = None,
                         config: Config | None = None) -> dict[str, Verdict]:
    """``verdicts`` (the engine's, by DIMM id) with each CXL memdev's own judgement
    (:func:`judge_cxl` over its records before ``until``) merged into ``label:memN``:
    the worse state, the engine's rules and then the device's. What ``memras verdicts``
    shows, so a memdev judged by its poison list or health records has a row there too.
    A state the device's records decide is dated by the memdev's latest record."""
    out = dict(verdicts)
    cut = None if until is None else until.astimezone(UTC)
    memdevs = sorted({ev.memdev for ev in cxl_events(store)} | {
        k.removeprefix("label:") for k in verdicts if k.startswith("label:mem")})
    for m in memdevs:
        records = [ev for ev in _device_records(store, m)
                   if cut is None or ev.timestamp is None or ev.timestamp < cut]
        judged = judge_cxl(records, poison_replace=poison_pages_replace(config)).get(m)
        if judged is None or not judged.rules:
            continue
        key = f"label:{m}"
        base = out.get(key)
        last = max((ev.timestamp for ev in records if ev.timestamp is not None),
                   default=datetime.now(UTC))
        rules = [*(base.rules if base else ()), *(r for r in judged.rules
                                                  if not base or r not in base.rules)]
        reasons = [*(base.reasons if base else ()),
                   *(why for r, why in zip(judged.rules, judged.reasons, strict=True)
                     if not base or r not in base.rules)]
        evidence = {**(base.evidence if base else {}), "cxl_rules": list(judged.rules)}
        if base is not None and judged.state.rank <= base.state.rank:
            out[key] = Verdict(key, base.state, tuple(rules), tuple(reasons), evidence,
                               at=max(last, base.at), reached_at=base.since)
            continue
        first = judged.reasons[0]  # the device's reason first: it is what set the state
        reasons = [first, *(r for r in reasons if r != first)]
        out[key] = Verdict(key, judged.state, tuple(rules), tuple(reasons), evidence,
                           at=max(last, base.at) if base else last, reached_at=last)
    return out


def _media_event(stored: StoredError) -> CxlEvent | None:
    """A stored CXL media error as the CxlEvent it came from (the severity and flags it
    came with, re-read from the stored kernel text), dated by the stored time."""
    if stored.driver != CXL_DRIVER:
        return None
    ev = cxl_event_of(event_from_stored(stored))
    return None if ev is None else replace(ev, timestamp=stored.time)


def _in_time_order(media: Iterable[CxlEvent], others: Iterable[CxlEvent]) -> list[CxlEvent]:
    """A memdev's records in time order, its media errors first at equal times."""
    epoch = datetime.fromtimestamp(0, UTC)
    return sorted([*media, *others], key=lambda ev: ev.timestamp or epoch)


def _device_records(store: Store, memdev: str) -> list[CxlEvent]:
    """Every record of the memdev in time order: its media errors' and
    memras_cxl_event's."""
    media = (_media_event(stored) for stored in store.errors(dimm=memdev))
    return _in_time_order([ev for ev in media if ev is not None],
                          cxl_events(store, memdev=memdev))


def _judged_kind(ev: CxlEvent) -> tuple[object, ...] | None:
    """Everything :func:`judge_cxl` reads of a record whose rules do not depend on the
    records before it: after the first record of a kind, the others add nothing (the
    same rules, already raised, with the same reasons). None for a record judged with
    those before it (poison pages listed and cleared, a dirty shutdown count that
    rises), which counts each time. Keep in step with judge_cxl."""
    if ev.event == "poison" or ev.dirty_shutdown_cnt is not None:
        return None
    return (ev.memdev, ev.event, ev.log_type, ev.hdr_flags, ev.health_status, ev.life_used,
            ev.media_status)


@dataclass
class MediaRecords:
    """One memdev's media errors as :func:`judge_cxl` needs them, kept between reads:
    the oldest of each kind (:func:`_judged_kind`; 50,000 errors of one device are a
    handful of kinds). Judging these gives what judging all of them gives. ``update``
    reads only the rows stored since the last read, and all of them again when rows
    went (retention). ``parsed`` counts the stored errors read back (tests, bench)."""

    memdev: str
    newest_id: int = 0
    rows: int = 0  # the memdev's media error rows read so far
    parsed: int = 0
    kept: dict[object, tuple[datetime, int, CxlEvent]] = field(default_factory=dict)

    def update(self, store: Store) -> None:
        total, new = memdev_media_errors(store, self.memdev, after_id=self.newest_id)
        if total != self.rows + len(new):  # some rows read before are gone: read all
            self.newest_id, self.rows, self.kept = 0, 0, {}
            total, new = memdev_media_errors(store, self.memdev)
        for stored in new:
            self._add(stored)
        self.rows += len(new)

    def _add(self, stored: StoredError) -> None:
        self.newest_id = max(self.newest_id, stored.id)
        self.parsed += 1
        ev = _media_event(stored)
        if ev is None:
            return
        kind = _judged_kind(ev)
        key = ("row", stored.id) if kind is None else kind
        known = self.kept.get(key)
        if known is None or (stored.time, stored.id) < known[:2]:
            self.kept[key] = (stored.time, stored.id, ev)

    def records(self) -> list[CxlEvent]:
        """The records kept, oldest first (as the store orders them: time, id)."""
        return [ev for _, _, ev in sorted(self.kept.values(), key=lambda k: k[:2])]
