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
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from memras.health.api import event_from_stored
from memras.health.verdict import VerdictState
from memras.health.verdict_rows import current_verdicts
from memras.ingest.parsers.cxl import (
    CXL_DRIVER,
    HDR_FLAGS,
    HEALTH_STATUS,
    MEDIA_STATUS,
    cxl_event_of,
)
from memras.records import CxlEvent
from memras.store.cxl import cxl_events

if TYPE_CHECKING:
    from memras.store import Store

LIFE_USED_REPLACE = 90  # percent: the device's own "life used" past which to plan a swap
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


def judge_cxl(events: Iterable[CxlEvent], *,
              life_used_replace: int = LIFE_USED_REPLACE) -> dict[str, CxlVerdict]:
    """Each memdev's verdict from its events, oldest first; memdevs with none are absent."""
    verdicts: dict[str, CxlVerdict] = {}
    shutdowns: dict[str, int] = {}
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
        if ev.event == "poison" and ev.trace_type in ("List", "Inject"):
            v.raise_to(VerdictState.REPAIR, "cxl-poison",
                       f"{ev.memdev} holds poisoned media (DPA {ev.dpa or 0:#x})")
    return verdicts


def memdev_verdicts(store: Store, memdevs: Iterable[str]) -> dict[str, CxlVerdict]:
    """Each memdev's verdict: the worse of the engine's (its media errors, judged as a
    DIMM's under the id ``label:memN``: memras.health.keys.location_key) and the one
    its own severity and health records give (:func:`judge_cxl` over memras_cxl_event).
    Rules and reasons of both are kept."""
    names = list(memdevs)
    engine = current_verdicts(store, [f"label:{m}" for m in names])
    out: dict[str, CxlVerdict] = {}
    for m in names:
        judged = judge_cxl(_device_records(store, m)).get(m, CxlVerdict(m))
        media = engine.get(f"label:{m}")
        if media is not None:
            for rule, reason in zip(media.rules, media.reasons, strict=False):
                judged.raise_to(VerdictState.OK, rule, f"media errors: {reason}")
            judged.raise_to(media.state, "", "")  # the engine's state, its rules above
        out[m] = judged
    return out


def _device_records(store: Store, memdev: str) -> list[CxlEvent]:
    """Every record of the memdev in time order: its media errors' (the severity and flags
    they came with, re-read from the stored kernel text) and memras_cxl_event's."""
    media = []
    for stored in store.errors(dimm=memdev):
        if stored.driver == CXL_DRIVER:
            ev = cxl_event_of(event_from_stored(stored))
            if ev is not None:
                media.append(replace(ev, timestamp=stored.time))
    epoch = datetime.fromtimestamp(0, UTC)
    return sorted([*media, *cxl_events(store, memdev=memdev)],
                  key=lambda ev: ev.timestamp or epoch)
