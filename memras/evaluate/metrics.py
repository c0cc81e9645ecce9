"""Score each rule's flags against the failure tickets: precision, recall, lead time.

What it decides, per rule (a memras verdict level or a baseline)
    TP  a DIMM that failed, flagged before its failure (and, with a horizon, at most
        that long before it): the flag would have let someone act;
    FP  a DIMM flagged that never failed;
    FN  a DIMM that failed and was not flagged in time: never, only at or after the
        failure (``late``), or longer than the horizon before it (``early``);
    precision TP / (TP + FP), recall TP / failed DIMMs, and the lead time (failure
    time minus first flag) of the TPs: median, p10, p90.
A failed DIMM is one with a ticket; its failure time is its earliest ticket. A ticket
for a DIMM with no events still counts as a failure (no CE-based rule can catch it:
Baeg et al. saw many UEs with no CE before them), so recall is against all tickets.

Why the first flag
    An operator acts on the first alert; a later, louder verdict does not make the
    first one earlier or later. Verdicts at replace level are sticky, so the first
    flag is also the one still standing at the failure.

Per host
    When no ticket names a DIMM (public datasets' tickets name the server only) every
    count above is of hosts: a host is flagged by a rule when the first of its DIMMs
    was, and it failed at its earliest ticket. When only some tickets name no DIMM (a
    fleet's replacements, some of which cannot be laid on a DIMM: memras.fleet.evaluate)
    the scoring is mixed: a host with such a ticket is one unit as above (its DIMM-level
    tickets count for it too), every other host's DIMMs are units of their own, so a
    flagged DIMM that was not the one replaced is a false positive where it can be told.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from memras.evaluate.history import HOST_LEVEL, Ticket
from memras.evaluate.replay import DimmFlags

HOUR_S = 3600.0


def quantile(values: Sequence[float], q: float) -> float | None:
    """The ``q`` quantile with linear interpolation between order statistics (NumPy's
    default), None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    pos = q * (len(ordered) - 1)
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


@dataclass(frozen=True, slots=True)
class RuleScore:
    rule: str
    name: str
    flagged: int
    tp: int
    fp: int
    fn: int
    late: int  # failed DIMMs flagged only at or after the failure (part of fn)
    early: int  # failed DIMMs flagged longer than the horizon before it (part of fn)
    leads_s: tuple[float, ...] = ()

    @property
    def precision(self) -> float | None:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else None

    @property
    def recall(self) -> float | None:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else None

    def lead_h(self, q: float) -> float | None:
        value = quantile(self.leads_s, q)
        return None if value is None else value / HOUR_S

    def to_dict(self) -> dict[str, Any]:
        return {"rule": self.rule, "name": self.name, "flagged": self.flagged, "tp": self.tp,
                "fp": self.fp, "fn": self.fn, "late": self.late, "early": self.early,
                "precision": self.precision, "recall": self.recall,
                "lead_h": {"median": self.lead_h(0.5), "p10": self.lead_h(0.1),
                           "p90": self.lead_h(0.9)}}


@dataclass
class Evaluation:
    scores: list[RuleScore]
    dimms: int  # DIMMs with at least one event
    hosts: int
    failures: int  # units (DIMMs, or hosts when scored per host) with a ticket
    failures_without_events: int
    horizon_s: float | None = None
    # what was scored: "dimm"; "host" when no ticket names a DIMM; "mixed" when some do
    unit: str = "dimm"
    host_level_tickets: int = 0  # tickets naming no DIMM
    host_units: int = 0  # hosts scored as one unit (a ticket of theirs names no DIMM)
    extra: dict[str, Any] = field(default_factory=dict)  # input counts for the report

    def score(self, rule: str) -> RuleScore:
        return next(s for s in self.scores if s.rule == rule)

    def to_dict(self) -> dict[str, Any]:
        return {"dimms": self.dimms, "hosts": self.hosts, "unit": self.unit,
                "host_level_tickets": self.host_level_tickets,
                "host_units": self.host_units, "failures": self.failures,
                "failures_without_events": self.failures_without_events,
                "horizon_h": None if self.horizon_s is None else self.horizon_s / HOUR_S,
                **self.extra, "rules": [s.to_dict() for s in self.scores]}


def failure_times(tickets: Iterable[Ticket]) -> dict[tuple[str, str], datetime]:
    """(host, DIMM) -> its earliest failure."""
    out: dict[tuple[str, str], datetime] = {}
    for t in tickets:
        key = (t.host, t.dimm)
        if key not in out or t.time < out[key]:
            out[key] = t.time
    return out


def score_rule(rule: str, name: str, dimms: Iterable[DimmFlags],
               failures: Mapping[tuple[str, str], datetime],
               horizon_s: float | None = None) -> RuleScore:
    tp = fp = late = early = flagged = 0
    leads: list[float] = []
    for d in dimms:
        at = d.flags.get(rule)
        if at is None:
            continue
        flagged += 1
        failed = failures.get((d.host, d.dimm))
        if failed is None:
            fp += 1
            continue
        lead = (failed - at).total_seconds()
        if lead <= 0:
            late += 1
        elif horizon_s is not None and lead > horizon_s:
            early += 1
        else:
            tp += 1
            leads.append(lead)
    return RuleScore(rule, name, flagged, tp, fp, len(failures) - tp, late, early,
                     tuple(sorted(leads)))


def evaluate_flags(dimms: Mapping[tuple[str, str], DimmFlags], tickets: Iterable[Ticket],
                   rules: Mapping[str, str], horizon_s: float | None = None) -> Evaluation:
    """Score every rule in ``rules`` (id -> name) over the replayed DIMMs; per host for
    the hosts with a ticket naming no DIMM (their failure cannot be laid on one of their
    DIMMs), and for every host when no ticket names a DIMM."""
    tickets = list(tickets)
    host_level = {t.host for t in tickets if t.dimm == HOST_LEVEL}
    if not host_level:
        unit = "dimm"
    elif all(t.dimm == HOST_LEVEL for t in tickets):
        unit, host_level = "host", {host for host, _ in dimms} | host_level
    else:
        unit = "mixed"
    units = {k: d for k, d in dimms.items() if k[0] not in host_level}
    units.update(per_host(d for k, d in dimms.items() if k[0] in host_level))
    failures = failure_times(Ticket(t.host, HOST_LEVEL, t.time) if t.host in host_level
                             else t for t in tickets)
    scores = [score_rule(rule, name, units.values(), failures, horizon_s)
              for rule, name in rules.items()]
    return Evaluation(scores=scores, dimms=len(dimms),
                      hosts=len({host for host, _ in dimms}), failures=len(failures),
                      failures_without_events=sum(1 for k in failures if k not in units),
                      horizon_s=horizon_s, unit=unit,
                      host_level_tickets=sum(1 for t in tickets if t.dimm == HOST_LEVEL),
                      host_units=len({h for h, d in units if d == HOST_LEVEL}
                                     | {h for h, d in failures if d == HOST_LEVEL}))


def per_host(dimms: Iterable[DimmFlags]) -> dict[tuple[str, str], DimmFlags]:
    """Each host as one unit: flagged by a rule when its first DIMM was."""
    hosts: dict[tuple[str, str], DimmFlags] = {}
    for d in dimms:
        host = hosts.setdefault((d.host, HOST_LEVEL), DimmFlags(d.host, HOST_LEVEL))
        host.ces += d.ces
        host.ues += d.ues
        for rule, at in d.flags.items():
            if rule not in host.flags or at < host.flags[rule]:
                host.flags[rule] = at
    return hosts
