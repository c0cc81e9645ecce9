"""The verdict on one DIMM, with the rules that fired and the evidence behind them.

What it decides
    ok / watch / repair-by-page-offlining / replace-at-next-maintenance /
    replace-now, from what the engine knows about a DIMM at one moment (its fault
    classification, the thresholds crossed in their current windows, UE count,
    CE rate trend, how many other DIMMs err). :func:`decide` is pure.

Structure: every rule that fires contributes (state, rule id, reason); the
verdict is the most severe state, and carries every rule, most severe first.
    ue                       any uncorrected error                -> replace-now
                             (Google, Jaguar, Cielo, Cisco replace on a UE)
    memras-multi-bank /      a wide (multi-bank, rank) fault whose errors span more
      memras-device ...      than a day: the [verdict.modes] state of its mode (repair
                             by default: stable, it is replaced when it grows; set
                             replace-at-next-maintenance to replace each one, Sridharan
                             SC12: such faults cause most UEs under chipkill/SDDC)
    memras-fault-growing     new places next to an established fault, or a second
                             device (classify.growth)            -> replace-at-next-maintenance
    memras-rate-growing      its erring hours rose >= 4x, far beyond chance -> watch
    memras-erring-after-offline  a cell/row fault erring past its offlined pages
                                                                 -> replace-at-next-maintenance
    sun-x4140-24/24h         > sun_ce_per_24h CEs in 24 h on this DIMM while no
                             other DIMM has CEs: a count         -> watch
    <threshold rule>         a DIMM CE threshold crossed (e.g. mcelog-dimm-ce-10/24h):
                             the fault mode picks the state from MODE_VERDICT_POLICY
                             (repair for a cell/row/column/bank fault, replace for a
                             wide one, watch otherwise)
    srds22-row / -cell ...   a contained fault (cell, row)      -> repair-by-page-offlining
    storm                    a SmartHW CE storm                 -> policy ``storm``
    <row/page/bank rule>     other scopes' crossings: SCOPE_CROSSING_VERDICT
    ce-seen                  any CE in the window               -> watch
    no-errors                nothing                             -> ok
A replace-* verdict is sticky by default (``[verdict] sticky``): a DIMM judged
failing stays judged until it is replaced, because CEs cluster in time (a month
with a CE is 13x to >90x likelier to have more, Schroeder CACM'11).

Why not one CE-count threshold
    Counts are access-driven and Pareto-skewed (mean ~55x median, Meza DSN'15): a
    stable fault with many CEs is not a UE on its way, and a count rule flags hundreds
    of them per UE it catches (bench/verdict_truth.py). UEs come from faults that
    progress (Sridharan SC12: > 83 % of nodes with a UE first had CEs from the same
    fault), so replace is earned by growth, by a fault offlining cannot contain, or by a
    fault wide enough to beat chipkill; counts give watch or repair with that reason.
    Several DIMMs erring on one channel point at the controller or board (Sun X4140).

Cost
    Pure, O(rules); the engine calls it once per event of the DIMM.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from memras.config import choice
from memras.errors import UsageError
from memras.health.buckets import Scope
from memras.health.classify import FaultClassification, FaultMode
from memras.health.tunables import Tunable, check_tunables

# The rule of the "ok" verdict a slot gets when its module is replaced (health.modules):
# it ends the old module's history, sticky replace-* verdicts included.
REPLACED_RULE = "replaced"


class VerdictState(enum.StrEnum):
    OK = "ok"
    WATCH = "watch"
    REPAIR = "repair-by-page-offlining"
    REPLACE_LATER = "replace-at-next-maintenance"
    REPLACE_NOW = "replace-now"

    @property
    def rank(self) -> int:
        return _STATE_RANK[self]

    @property
    def is_replace(self) -> bool:
        return self in (VerdictState.REPLACE_LATER, VerdictState.REPLACE_NOW)


# Severity order, computed once: rank is asked for every finding of every event.
_STATE_RANK: dict[VerdictState, int] = {state: i for i, state in enumerate(VerdictState)}


# Site policy: the state a fault mode earns once a DIMM CE threshold has been crossed.
MODE_VERDICT_POLICY: dict[FaultMode, VerdictState] = {
    FaultMode.CELL: VerdictState.REPAIR,
    FaultMode.ROW: VerdictState.REPAIR,
    # A stable column or bank fault with many CEs is not a UE on its way: counts are
    # Pareto-skewed and access-driven (Meza DSN'15); its erring pages are offlined, and
    # it is replaced when it grows (memras-fault-growing) or spreads over banks.
    FaultMode.COLUMN: VerdictState.REPAIR,
    FaultMode.BANK: VerdictState.REPAIR,
    # A stable wide fault too: in the verdict-truth bench about one in ten permanent
    # multi-bank/rank faults fails within two years, so replacing each one was right
    # about one time in five (docs/performance.md); one that grows is replaced. A site
    # that would rather replace every recurring wide fault sets [verdict.modes]
    # multi-bank / rank = "replace-at-next-maintenance" (both paths follow it).
    FaultMode.MULTI_BANK: VerdictState.REPAIR,
    FaultMode.RANK: VerdictState.REPAIR,
    FaultMode.CHANNEL: VerdictState.WATCH,  # rule out the controller/board first (Sun)
    FaultMode.CONTROLLER: VerdictState.WATCH,
    FaultMode.RANDOM: VerdictState.WATCH,
    FaultMode.NONE: VerdictState.WATCH,
}

# Said of every count-only finding that stops short of replace.
COUNT_ONLY = ("a CE count alone does not predict a UE: counts are Pareto-skewed and "
              "access-driven, Meza DSN'15")
# The classifier rules that name a wide (multi-bank, rank) fault from its pattern: a
# local set of banks, or SRDS'22's errors over > 1 (rank, bank) by volume.
WIDE_RULES = ("memras-multi-bank", "memras-device", "srds22-channel")
# Said of a stable wide fault below replace.
STABLE_WIDE = ("new places beside it, a second device, a rising rate; [verdict.modes] "
               "can replace every recurring one")
# A wide fault is judged permanent (and replace-worthy, where [verdict.modes] says so)
# once its errors span more than a day: a patrol scrub (24 h by default, Dell) has
# rewritten its cells since, and they erred again. A transient burst (Sridharan SC12:
# 29 % of faults) is one moment.
RECUR_S = 86400.0

# The state a crossing of another scope's threshold earns on its own.
SCOPE_CROSSING_VERDICT: dict[Scope, VerdictState] = {
    Scope.PAGE: VerdictState.REPAIR,
    Scope.ROW: VerdictState.REPAIR,
    Scope.BANK: VerdictState.REPLACE_LATER,
    Scope.RANK: VerdictState.WATCH,
    Scope.SOCKET: VerdictState.WATCH,
    Scope.HOST: VerdictState.WATCH,
}

VERDICT_TUNABLES: dict[str, Tunable] = {
    "sun_ce_per_24h": Tunable(1, 24, 10**9, "Sun X4140: more CEs than this in 24 h"),
}


@dataclass(frozen=True, slots=True)
class VerdictPolicy:
    sun_ce_per_24h: int = VERDICT_TUNABLES["sun_ce_per_24h"].default
    storm: VerdictState = VerdictState.REPLACE_LATER
    sticky: bool = True
    modes: Mapping[FaultMode, VerdictState] = field(
        default_factory=lambda: dict(MODE_VERDICT_POLICY))

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any], where: str) -> VerdictPolicy:
        values = dict(values)
        storm = _state(values.pop("storm", VerdictState.REPLACE_LATER.value), f"{where} storm")
        sticky = values.pop("sticky", True)
        if not isinstance(sticky, bool):
            raise UsageError(f"{where} sticky = {sticky!r}: expected true or false")
        modes = dict(MODE_VERDICT_POLICY)
        for name, state in dict(values.pop("modes", {})).items():
            mode = choice(FaultMode, name, f"{where}.modes unknown fault mode {name!r}")
            modes[mode] = _state(state, f"{where}.modes {name}")
        tunables = check_tunables(VERDICT_TUNABLES, values, where)
        return cls(storm=storm, sticky=sticky, modes=modes, **tunables)


def _state(value: object, where: str) -> VerdictState:
    try:
        return VerdictState(str(value))
    except ValueError:
        allowed = ", ".join(s.value for s in VerdictState)
        raise UsageError(f"{where} = {value!r}: not a verdict (allowed: {allowed})") from None


@dataclass(frozen=True, slots=True)
class RateTrend:
    """CEs (sum of error counts) in the windows SmartHW uses, ending at the verdict time."""

    last_6m: int = 0
    last_3h: int = 0
    last_24h: int = 0
    last_120h: int = 0


TREND_WINDOWS_S = {"last_6m": 360, "last_3h": 3 * 3600, "last_24h": 86400,
                   "last_120h": 120 * 3600}


@dataclass(frozen=True, slots=True)
class ActiveCrossing:
    scope: Scope
    rule: str
    key: str  # the worst key when ``keys`` > 1
    total_in_window: int
    keys: int = 1  # how many rows/pages/… of this scope crossed this rule


@dataclass(frozen=True, slots=True)
class DimmFacts:
    """What the engine knows about one DIMM at ``at``: the input of :func:`decide`."""

    dimm_id: str
    at: datetime
    classification: FaultClassification
    crossings: tuple[ActiveCrossing, ...] = ()
    ue_count: int = 0
    trend: RateTrend = RateTrend()
    other_dimms_with_ce_24h: int = 0
    pages_offlined: int = 0


@dataclass(frozen=True, slots=True)
class Verdict:
    dimm_id: str
    state: VerdictState
    rules: tuple[str, ...]
    reasons: tuple[str, ...]
    evidence: dict[str, Any]  # as of ``at``; its counts are the ones the reasons quote
    at: datetime  # the (event) time of the latest judgement: reasons and evidence are as of it
    # The event time at which this state was reached (what SINCE shows: the lead time of a
    # replace verdict is measured from it), and the evidence as of then.
    reached_at: datetime | None = None
    reached_evidence: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        if self.reached_at is None:  # a verdict judged afresh is reached when judged
            object.__setattr__(self, "reached_at", self.at)
        if self.reached_evidence is None:
            object.__setattr__(self, "reached_evidence", self.evidence)

    @property
    def since(self) -> datetime:
        """When this state was reached (``reached_at``, always set after construction)."""
        return self.reached_at or self.at

    def __str__(self) -> str:
        return self.state.value

    def to_dict(self) -> dict[str, Any]:
        return {"dimm": self.dimm_id, "verdict": self.state.value, "rules": list(self.rules),
                "reasons": list(self.reasons), "at": self.at.isoformat(),
                "reached_at": self.since.isoformat(), "evidence": self.evidence,
                "reached_evidence": self.reached_evidence}

    def continuing(self, previous: Verdict | None) -> Verdict:
        """This verdict, reached when ``previous`` reached it if the state is unchanged."""
        if previous is None or previous.state != self.state:
            return self
        # built directly: dataclasses.replace per judged event was a tenth of a storm's cost
        return Verdict(self.dimm_id, self.state, self.rules, self.reasons, self.evidence,
                       self.at, previous.since, previous.reached_evidence)


Finding = tuple[VerdictState, str, str]  # state, rule id, reason


def _findings(f: DimmFacts, policy: VerdictPolicy) -> list[Finding]:
    c = f.classification
    out: list[Finding] = []
    if f.ue_count > 0:
        out.append((VerdictState.REPLACE_NOW, "ue", f"{f.ue_count} uncorrected error(s)"))
    if f.trend.last_24h > policy.sun_ce_per_24h and f.other_dimms_with_ce_24h == 0:
        out.append((VerdictState.WATCH, f"sun-x4140-{policy.sun_ce_per_24h}/24h",
                    f"{f.trend.last_24h} CEs in 24 h and no other DIMM has CEs ({COUNT_ONLY})"))
    for x in f.crossings:
        if x.scope == Scope.DIMM:
            state = policy.modes.get(c.mode, VerdictState.WATCH)
            why = "" if state.is_replace else f" ({COUNT_ONLY})"
            out.append((state, x.rule, f"{x.total_in_window} CEs crossed the DIMM threshold; "
                        f"fault mode {c.mode} -> {state}{why}"))
            out.append((state, c.rule, f"{c.mode} fault: {c.evidence.detail}"))
    out += _scope_findings(f.crossings)
    out += _predictive_findings(c, policy)
    if c.mode.contained:
        out.append((VerdictState.REPAIR, c.rule, f"contained {c.mode} fault: {c.evidence.detail}"))
    elif c.mode in (FaultMode.CHANNEL, FaultMode.CONTROLLER):
        out.append((VerdictState.WATCH, c.rule, c.evidence.detail))
    if c.evidence.repaired:
        out.append((VerdictState.REPAIR, "memras-page-offlined",
                    f"{c.evidence.repaired} CE record(s) at {f.pages_offlined} offlined "
                    "page(s): contained, no longer counted in rates or storms"))
    if c.storm:
        state = VerdictState.REPAIR if c.mode.contained else policy.storm
        out.append((state, "storm", f"CE storm: {c.evidence.longest_storm_run} CEs in a row "
                    "each within the storm gap"))
    if c.evidence.ce_records and not out:
        out.append((VerdictState.WATCH, "ce-seen", f"{c.evidence.ce_count} CE(s) in the window"))
        out.append((VerdictState.WATCH, c.rule, f"{c.mode} pattern: {c.evidence.detail}"))
    return out


def _predictive_findings(c: FaultClassification, policy: VerdictPolicy) -> list[Finding]:
    """Evidence that a fault is on its way to a UE, whatever its CE count: it keeps
    growing (new places beside it, a rising rate), offlining its pages did not contain
    it, or (if the site's ``[verdict.modes]`` say so) it spans banks or ranks."""
    ev = c.evidence
    out: list[Finding] = []
    if c.mode.wide and c.rule in WIDE_RULES:
        recurs = (ev.first_seen is not None and ev.last_seen is not None
                  and (ev.last_seen - ev.first_seen).total_seconds() > RECUR_S)
        state = policy.modes.get(c.mode, VerdictState.WATCH)
        if not recurs:
            out.append((VerdictState.WATCH, c.rule,
                        f"{c.mode} pattern: {ev.detail}; within a day: could be one "
                        "transient burst"))
        elif state.is_replace:
            out.append((state, c.rule,
                        f"{c.mode} fault: {ev.detail}; faults across banks or ranks cause "
                        "most UEs under chipkill/SDDC (Sridharan SC12)"))
        else:
            out.append((state, c.rule,
                        f"stable {c.mode} fault: {ev.detail}; replace when it grows "
                        f"({STABLE_WIDE})"))
    if ev.growing:
        out.append((VerdictState.REPLACE_LATER, "memras-fault-growing",
                    f"{c.mode} fault growing: {ev.spread_detail}"))
    if ev.rate_growing:  # watch: on the verdict-truth fleets it flagged no failing DIMM
        # before growth did, and stable faults now and then (docs/performance.md)
        out.append((VerdictState.WATCH, "memras-rate-growing",
                    f"{c.mode} fault erring faster: {ev.recent_hours} erring hours in the "
                    f"recent window, {ev.expected_hours:g} at its rate before (chance "
                    f"10^-{ev.rate_strength:g})"))
    if ev.erring_after_offline:
        out.append((VerdictState.REPLACE_LATER, "memras-erring-after-offline",
                    f"{c.mode} fault still erring: {ev.after_offline} CE record(s) at pages "
                    "not offlined since its pages were: offlining does not contain it"))
    return out


def _scope_findings(crossings: tuple[ActiveCrossing, ...]) -> list[Finding]:
    """One finding per (scope, rule), however many rows or pages crossed it.

    A storm over thousands of pages keeps thousands of page crossings active; one
    finding each made every event sort them all, and the reason list unreadable.
    """
    groups: dict[tuple[Scope, str], list[ActiveCrossing]] = {}
    for x in crossings:
        if x.scope in SCOPE_CROSSING_VERDICT:
            groups.setdefault((x.scope, x.rule), []).append(x)
    out: list[Finding] = []
    for (scope, rule), xs in groups.items():
        worst = max(xs, key=lambda x: x.total_in_window)
        n = sum(x.keys for x in xs)
        if n == 1:
            reason = f"{scope} {worst.key}: {worst.total_in_window} CEs crossed its threshold"
        else:
            reason = (f"{n} {scope}s crossed the threshold (e.g. {scope} {worst.key}: "
                      f"{worst.total_in_window} CEs)")
        out.append((SCOPE_CROSSING_VERDICT[scope], rule, reason))
    return out


def decide(facts: DimmFacts, policy: VerdictPolicy = VerdictPolicy()) -> Verdict:
    """The verdict for ``facts``: the most severe finding, citing every rule that fired."""
    findings = sorted(_findings(facts, policy), key=lambda x: -x[0].rank)
    if not findings:
        findings = [(VerdictState.OK, "no-errors", "no errors in the window")]
    rules: list[str] = []
    reasons: list[str] = []
    for _, rule, reason in findings:
        if rule not in rules:
            rules.append(rule)
            reasons.append(reason)
    return Verdict(facts.dimm_id, findings[0][0], tuple(rules), tuple(reasons),
                   evidence_dict(facts), facts.at)


def evidence_dict(f: DimmFacts) -> dict[str, Any]:
    """The verdict's evidence: the classification's part (the same object between two
    classifications, so built once for it) and what changes with every event."""
    head, middle, tail = _classification_evidence(f.classification)
    return {  # in EVIDENCE_ORDER, the order JSON and screens show, built in one go
        **head, "ue_count": f.ue_count, **middle,
        "trend": {"last_6m": f.trend.last_6m, "last_3h": f.trend.last_3h,
                  "last_24h": f.trend.last_24h, "last_120h": f.trend.last_120h},
        "thresholds_crossed": list(dict.fromkeys(x.rule for x in f.crossings)),
        "crossings": [{"scope": x.scope.value, "rule": x.rule, "key": x.key, "keys": x.keys,
                       "total_in_window": x.total_in_window} for x in f.crossings],
        **tail,
        "other_dimms_with_ce_24h": f.other_dimms_with_ce_24h,
        "pages_offlined": f.pages_offlined,
    }


EVIDENCE_ORDER = (
    "fault_mode", "fault_rule", "detail", "ce_records", "ce_count", "ue_count", "rows",
    "columns", "banks", "ranks", "devices", "pages", "undecoded", "first_seen",
    "last_seen", "storm", "longest_storm_run", "trend", "thresholds_crossed", "crossings",
    "explained", "strength", "runner_up", "tie", "repaired", "spread", "spread_places",
    "spread_detail", "growing", "after_offline", "erring_after_offline", "recent_hours",
    "expected_hours", "rate_strength", "rate_growing", "other_dimms_with_ce_24h",
    "pages_offlined")


# classification -> its evidence part, the newest EVIDENCE_KEPT. Every event of a DIMM
# is judged, but it is reclassified only now and then (memras.health.engine, "Cost");
# re-listing a bank fault's thousands of rows in hex for every event was most of the
# health engine's time in a storm (1.4 ms of its 1.4 ms per CE at 1,000 CEs/s).
_Parts = tuple[dict[str, Any], dict[str, Any], dict[str, Any]]
_EVIDENCE: dict[int, tuple[FaultClassification, _Parts]] = {}
EVIDENCE_KEPT = 256


def _classification_evidence(c: FaultClassification) -> _Parts:
    """The classification's evidence fields, split where EVIDENCE_ORDER puts the
    per-event ones between them (so evidence_dict builds its dict once, in order)."""
    hit = _EVIDENCE.get(id(c))
    if hit is not None and hit[0] is c:
        return hit[1]
    ev = c.evidence
    part = {
        "fault_mode": c.mode.value,
        "fault_rule": c.rule,
        "detail": ev.detail,
        "ce_records": ev.ce_records, "ce_count": ev.ce_count,
        "rows": [hex(r) for r in ev.rows], "columns": [hex(c) for c in ev.columns],
        "banks": list(ev.banks), "ranks": list(ev.ranks), "devices": list(ev.devices),
        "pages": ev.pages, "undecoded": ev.undecoded,
        "first_seen": ev.first_seen.isoformat() if ev.first_seen else None,
        "last_seen": ev.last_seen.isoformat() if ev.last_seen else None,
        "storm": c.storm, "longest_storm_run": ev.longest_storm_run,
        "explained": ev.explained, "strength": ev.strength, "runner_up": ev.runner_up,
        "tie": ev.tie, "repaired": ev.repaired,
        "spread": ev.spread, "spread_places": ev.spread_places,
        "spread_detail": ev.spread_detail, "growing": ev.growing,
        "after_offline": ev.after_offline, "erring_after_offline": ev.erring_after_offline,
        "recent_hours": ev.recent_hours, "expected_hours": ev.expected_hours,
        "rate_strength": ev.rate_strength, "rate_growing": ev.rate_growing,
    }
    parts = (_slice(part, "fault_mode", "ue_count"), _slice(part, "rows", "trend"),
             _slice(part, "explained", "other_dimms_with_ce_24h"))
    if len(_EVIDENCE) >= EVIDENCE_KEPT:
        del _EVIDENCE[next(iter(_EVIDENCE))]  # the oldest (dicts keep insertion order)
    _EVIDENCE[id(c)] = (c, parts)
    return parts


def _slice(part: dict[str, Any], first: str, stop: str) -> dict[str, Any]:
    """``part``'s fields from EVIDENCE_ORDER's ``first`` up to (without) ``stop``."""
    keys = EVIDENCE_ORDER[EVIDENCE_ORDER.index(first):EVIDENCE_ORDER.index(stop)]
    return {k: part[k] for k in keys}


def _settles(new: Verdict, previous: Verdict) -> bool:
    """A contained fault judged replace only by its rate (no UE), whose pages are now
    offlined and whose new judgement is repair: the offlining was the repair."""
    contained = {m.value for m in FaultMode if m.contained}
    then = previous.reached_evidence or previous.evidence
    return (new.state == VerdictState.REPAIR and "ue" not in previous.rules
            and not then.get("ue_count") and then.get("fault_mode") in contained
            and new.evidence.get("fault_mode") in contained
            and bool(new.evidence.get("repaired")))


def with_sticky_floor(new: Verdict, previous: Verdict | None, policy: VerdictPolicy) -> Verdict:
    """Keep a previous replace-* verdict when the new one is milder (if policy.sticky),
    unless a contained fault judged replace by its rate alone settles at repair once its
    pages are offlined (:func:`_settles`).

    The rules and reasons are the new judgement's, which agree with its evidence, plus
    ``sticky``, whose reason says what was judged when; the state, ``reached_at`` and
    ``reached_evidence`` stay the previous verdict's.
    """
    if (previous is None or not policy.sticky or not previous.state.is_replace
            or new.state.rank >= previous.state.rank or _settles(new, previous)):
        return new.continuing(previous)
    then = previous.reached_evidence or previous.evidence
    mode = then.get("fault_mode")
    why = (f"judged {previous.state} at {previous.since:%Y-%m-%d %H:%M:%S}"
           + (f" on a {mode} fault" if mode else "")
           + "; a replace verdict stays until the DIMM is replaced")
    kept = [(r, reason) for r, reason in zip(new.rules, new.reasons, strict=True)
            if r != "sticky"]
    kept.insert(0, ("sticky", why))
    return Verdict(new.dimm_id, previous.state, tuple(r for r, _ in kept),
                   tuple(reason for _, reason in kept), new.evidence, new.at,
                   previous.since, previous.reached_evidence)
