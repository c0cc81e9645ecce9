"""Leaky-bucket error thresholds, with mcelog's syntax and mcelog's algorithm.

What it decides
    Whether an error just pushed some scope (a DIMM, rank, bank, row, 4 KiB page,
    socket or the whole host) over its configured rate, e.g. "10 corrected errors
    in 24 hours on one DIMM". A crossing is a fact the verdict, the page action
    and the alerts act on.

Syntax (mcelog leaky-bucket.c ``bucket_conf_init``)
    ``COUNT[k|m|g] / AGETIME[m|h|d]``: the count may carry k, m or g (each x1000,
    so ``1m`` is 10^6), the age time is seconds when it has no unit, or minutes,
    hours, days. ``s`` is rejected, as mcelog rejects it, and so is 0. memras
    also accepts ``10/24h`` without spaces (mcelog's sscanf does too) and the word
    ``off`` for a disabled threshold. rasdaemon's PAGE_CE_REFRESH_CYCLE, where a
    bare number means *hours* and ``s`` is allowed, is a different grammar; the
    importer (:mod:`memras.health.config`) converts it, never this parser.

Algorithm (mcelog ``__bucket_account``), per bucket ``count, excess, tstamp``:
    1. age: if ``now - tstamp >= agetime``: ``count -= floor(diff/agetime*capacity)``
       (not below 0), ``tstamp = now``, ``excess = 0``;
    2. add the event's error count (mcelog adds 1 per record; an EDAC record that
       says "3 CE" counts 3, as rasdaemon's page accounting does);
    3. fire when ``count >= capacity``: ``excess += count; count = 0``.
    So it fires on every capacity-th error inside a window, and a slow trickle
    drains away. ``now`` is the *event's* own time, never the wall clock: replaying
    last year's log gives exactly the moments the thresholds would have tripped.
    The first event starts the bucket's clock (mcelog starts it at 0, which ages
    an empty bucket harmlessly; the result is the same).

Why not a sliding window
    A sliding window must keep every timestamp (unbounded per row/page); the
    bucket is three numbers per key and is what mcelog and rasdaemon users have
    tuned their sites against, so an imported config behaves the same here.

Cost
    O(1) per event and three integers per key. Keys are created on first error, at
    most MAX_BUCKETS_PER_SCOPE per scope (the least recently hit is replaced, as the
    kernel's CE collector and mcelog replace page counters);
    :meth:`BucketSet.prune` drops buckets that have fully drained.
"""

from __future__ import annotations

import enum
import math
import re
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from memras.errors import UsageError

COUNT_SUFFIX_FACTOR = {"": 1, "k": 1000, "m": 1000**2, "g": 1000**3}
AGE_UNIT_S = {"": 1, "m": 60, "h": 3600, "d": 86400}
_SYNTAX_RE = re.compile(r"^\s*(\d+)\s*([A-Za-z]?)\s*/\s*(\d+)\s*([A-Za-z]?)\s*$")
OFF_WORDS = frozenset({"off", "none", "disabled"})


class Scope(enum.StrEnum):
    """What a bucket counts over; keys are built by :func:`memras.health.keys`."""

    HOST = "host"
    SOCKET = "socket"
    DIMM = "dimm"
    RANK = "rank"
    BANK = "bank"
    ROW = "row"
    PAGE = "page"


class Severity(enum.StrEnum):
    CE = "ce"
    UE = "ue"


@dataclass(frozen=True, slots=True)
class Threshold:
    """``capacity`` errors per ``agetime_s`` seconds."""

    capacity: int
    agetime_s: int

    def __str__(self) -> str:
        return f"{self.capacity} / {_format_age(self.agetime_s)}"

    @property
    def rule_suffix(self) -> str:
        """``10/24h``: the compact form used inside rule ids."""
        return f"{self.capacity}/{_format_age(self.agetime_s)}"


def _format_age(seconds: int) -> str:
    """``24h`` as mcelog.conf writes it; days only from 2 days up, then m, then seconds."""
    if seconds % 86400 == 0 and seconds >= 2 * 86400:
        return f"{seconds // 86400}d"
    for unit in ("h", "m"):
        if seconds % AGE_UNIT_S[unit] == 0:
            return f"{seconds // AGE_UNIT_S[unit]}{unit}"
    return str(seconds)


def parse_threshold(text: str, where: str = "threshold") -> Threshold | None:
    """``"10 / 24h"`` -> Threshold(10, 86400); ``"off"`` -> None.

    ``where`` names the setting in the error, e.g. ``memras.toml: [thresholds.dimm] ce``.
    """
    if not isinstance(text, str):
        raise UsageError(f"{where} = {text!r}: expected a string like '10 / 24h' or 'off'")
    if text.strip().lower() in OFF_WORDS:
        return None
    m = _SYNTAX_RE.match(text)
    if not m:
        raise UsageError(
            f"{where} = {text!r}: not a threshold (expected COUNT / TIME, e.g. '10 / 24h')"
        )
    count_text, suffix, age_text, unit = m.groups()
    suffix, unit = suffix.lower(), unit.lower()
    if suffix not in COUNT_SUFFIX_FACTOR:
        raise UsageError(f"{where} = {text!r}: count suffix {suffix!r} is not allowed "
                         "(use k, m or g, each x1000)")
    if unit not in AGE_UNIT_S:
        raise UsageError(f"{where} = {text!r}: unit {unit!r} is not allowed "
                         "(use m, h or d, or none for seconds)")
    capacity = int(count_text) * COUNT_SUFFIX_FACTOR[suffix]
    agetime_s = int(age_text) * AGE_UNIT_S[unit]
    if capacity == 0 or agetime_s == 0:
        raise UsageError(f"{where} = {text!r}: count and time must both be above 0 "
                         "(write 'off' to disable)")
    return Threshold(capacity, agetime_s)


@dataclass(slots=True)
class LeakyBucket:
    """One bucket's state; :meth:`account` is mcelog's ``__bucket_account``."""

    threshold: Threshold
    count: int = 0
    excess: int = 0
    tstamp_s: float | None = None

    def age(self, now_s: float) -> None:
        if self.tstamp_s is None:
            self.tstamp_s = now_s
            return
        diff = now_s - self.tstamp_s
        if diff >= self.threshold.agetime_s:
            drained = math.floor(diff / self.threshold.agetime_s * self.threshold.capacity)
            self.count = max(0, self.count - drained)
            self.tstamp_s = now_s
            self.excess = 0

    def drained_by(self, now_s: float) -> bool:
        """Whether aging at ``now_s`` would leave count 0 and excess 0 (no mutation)."""
        if self.tstamp_s is None:
            return True
        diff = now_s - self.tstamp_s
        if diff < self.threshold.agetime_s:
            return False
        drained = math.floor(diff / self.threshold.agetime_s * self.threshold.capacity)
        return self.count - drained <= 0

    def account(self, now_s: float, errors: int = 1) -> bool:
        """Add ``errors`` at ``now_s`` (event time, seconds); True when it fires."""
        self.age(now_s)
        self.count += max(errors, 1)
        if self.count >= self.threshold.capacity:
            self.excess += self.count
            self.count = 0
            return True
        return False

    @property
    def total_in_window(self) -> int:
        """mcelog's THRESHOLD count: ``count + excess`` since the last aging."""
        return self.count + self.excess


@dataclass(frozen=True, slots=True)
class Crossing:
    """A bucket fired: ``scope``/``key`` reached ``threshold`` at ``time_s``."""

    scope: Scope
    severity: Severity
    key: str
    threshold: Threshold
    time_s: float
    total_in_window: int

    @property
    def rule_id(self) -> str:
        """e.g. ``mcelog-dimm-ce-10/24h`` (the threshold names its origin by shape)."""
        return threshold_rule_id(self.scope, self.severity, self.threshold)


# Where each default comes from. memras picks, per scope:
#  dimm ce 10/24h, ue 1/24h   mcelog.conf [dimm]
#  socket ce/ue 100/24h       mcelog.conf [socket]
#  page ce 2/24h              mcelog.conf [page] since c75cd42e (2022, PR #122), and
#                             Tony Luck's 2022 cec.c proposal (Intel+Samsung MRT study).
#                             rasdaemon ships 50/24h. memras takes 2: a 4 KiB page is
#                             0.0000002 % of a 16 GiB DIMM, and retiring erring pages early
#                             avoided ~90 % of errors (Hwang et al. ASPLOS'12).
#  row ce 50/24h              rasdaemon ROW_CE_THRESHOLD (action off by default there too)
#  rank ce 10/24h             Intel server boards' per-rank CE threshold default (10);
#                             the BIOS gives no window, memras uses mcelog's 24 h
#  bank, host                 no published default: off until a site sets one
DEFAULT_THRESHOLDS: dict[tuple[Scope, Severity], Threshold | None] = {
    (Scope.DIMM, Severity.CE): Threshold(10, 86400),
    (Scope.DIMM, Severity.UE): Threshold(1, 86400),
    (Scope.SOCKET, Severity.CE): Threshold(100, 86400),
    (Scope.SOCKET, Severity.UE): Threshold(100, 86400),
    (Scope.PAGE, Severity.CE): Threshold(2, 86400),
    (Scope.ROW, Severity.CE): Threshold(50, 86400),
    (Scope.RANK, Severity.CE): Threshold(10, 86400),
    (Scope.BANK, Severity.CE): None,
    (Scope.HOST, Severity.CE): None,
}

THRESHOLD_ORIGIN: dict[tuple[Scope, Severity], str] = {
    (Scope.DIMM, Severity.CE): "mcelog",
    (Scope.DIMM, Severity.UE): "mcelog",
    (Scope.SOCKET, Severity.CE): "mcelog",
    (Scope.SOCKET, Severity.UE): "mcelog",
    (Scope.PAGE, Severity.CE): "mcelog",
    (Scope.ROW, Severity.CE): "rasdaemon",
    (Scope.RANK, Severity.CE): "intel",
}


def threshold_rule_id(scope: Scope, severity: Severity, threshold: Threshold) -> str:
    """``mcelog-dimm-ce-10/24h`` for a shipped default, ``site-dimm-ce-5/24h`` otherwise."""
    default = DEFAULT_THRESHOLDS.get((scope, severity))
    origin = THRESHOLD_ORIGIN.get((scope, severity), "memras") if threshold == default else "site"
    return f"{origin}-{scope}-{severity}-{threshold.rule_suffix}"


# Buckets kept per scope at most; past it the least recently hit one is replaced. The
# kernel's CE collector keeps 512 page counters and mcelog a fixed number of page
# counters it replaces the same way (its memory-ce-counter-replacement-threshold counts
# the replacements); without a bound a storm over distinct pages grew the watcher by
# ~400 bytes a page (bucket, key, recency entry) for as long as the 24 h buckets took to
# drain. 4096 is eight times the kernel's array, ~1.6 MiB per scope when full; a page
# missed because 4096 others erred between its two CEs sits on a DIMM that crossed its
# own threshold long before.
MAX_BUCKETS_PER_SCOPE = 4096

BucketKey = tuple[Scope, Severity, str]


@dataclass
class BucketSet:
    """Buckets for every (scope, severity, key), created on first error, at most
    ``max_per_scope`` per scope (least recently hit replaced; counted in ``replaced``).

    A replaced bucket starts again empty on its key's next error: what a drained bucket
    would do, only sooner. Only fine scopes (pages, rows) ever have that many keys, and
    a DIMM with thousands of erring pages in a day has crossed its DIMM threshold long
    before."""

    thresholds: dict[tuple[Scope, Severity], Threshold | None]
    max_per_scope: int = MAX_BUCKETS_PER_SCOPE
    replaced: dict[Scope, int] = field(default_factory=dict)
    # per scope, its buckets from least to most recently hit
    _recency: dict[Scope, OrderedDict[BucketKey, LeakyBucket]] = field(default_factory=dict)

    @property
    def buckets(self) -> dict[BucketKey, LeakyBucket]:
        """Every bucket, keyed (scope, severity, key): a new dict, for inspection."""
        return {k: b for order in self._recency.values() for k, b in order.items()}

    def account(self, scope: Scope, severity: Severity, key: str | None,
                now_s: float, errors: int = 1) -> Crossing | None:
        threshold = self.thresholds.get((scope, severity))
        if threshold is None or key is None:
            return None
        k = (scope, severity, key)
        order = self._recency.get(scope)
        if order is None:
            order = self._recency[scope] = OrderedDict()
        bucket = order.get(k)
        if bucket is None:
            bucket = order[k] = LeakyBucket(threshold)
            if len(order) > self.max_per_scope:
                order.popitem(last=False)
                self.replaced[scope] = self.replaced.get(scope, 0) + 1
        else:
            order.move_to_end(k)
        if not bucket.account(now_s, errors):
            return None
        return Crossing(scope, severity, key, threshold, now_s, bucket.total_in_window)

    def _drop(self, dead: list[BucketKey]) -> int:
        for k in dead:
            del self._recency[k[0]][k]
        return len(dead)

    def forget(self, owned: Callable[[Scope, str], bool]) -> int:
        """Drop the buckets whose (scope, key) ``owned`` selects; returns how many.

        For a replaced module: its successor starts with empty buckets. O(buckets),
        and it happens once per replacement.
        """
        return self._drop([k for order in self._recency.values() for k in order
                           if owned(k[0], k[2])])

    def prune(self, now_s: float) -> int:
        """Drop buckets that would drain to nothing by ``now_s``; returns how many.

        A dropped bucket is re-created empty on its next error, which is exactly
        the state aging would have left, so pruning never changes a result.
        """
        return self._drop([k for order in self._recency.values() for k, b in order.items()
                           if b.drained_by(now_s)])
