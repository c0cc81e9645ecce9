"""The ``[alerts]`` config table, validated once at load.

::

    [alerts]
    repeat_interval = "24h"        # re-notify an unresolved, unacked alert after this
    gap_grace = "30s"              # an EDAC count waits this long for its event before
                                   # it is a gap (memras.ingest.edac_ledger)
    [alerts.retry]
    attempts = 3                   # tries per hook per alert (1..MAX_ATTEMPTS)
    backoff = "2s"                 # first wait; doubles each retry, capped by max_backoff
    max_backoff = "60s"
    [alerts.rate_limit]            # default token bucket for every hook
    per_minute = 20                # refill rate
    burst = 10                     # bucket size
    [alerts.hooks.webhook]         # one table per hook, named as its entry point
    url = "https://example.net/memras"
    rate_limit = { per_minute = 5, burst = 5 }   # optional per-hook override
    # enabled = false              # keep the table but switch the hook off

Durations are seconds (a number) or text with a unit: ``90s``, ``30m``, ``24h``, ``7d``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from memras.config import parse_duration as _parse_duration
from memras.errors import UsageError
from memras.ingest.edac_ledger import DEFAULT_GAP_GRACE_S, MAX_GAP_GRACE_S, MIN_GAP_GRACE_S

MIN_REPEAT_INTERVAL_S = 60.0
DEFAULT_REPEAT_INTERVAL_S = 24 * 3600.0
MAX_REPEAT_INTERVAL_S = 30 * 24 * 3600.0
MAX_ATTEMPTS = 10
DEFAULT_ATTEMPTS = 3
DEFAULT_BACKOFF_S = 2.0
DEFAULT_MAX_BACKOFF_S = 60.0
DEFAULT_PER_MINUTE = 20.0
DEFAULT_BURST = 10


def parse_duration(value: object, *, what: str) -> float:
    """Seconds from ``30``, ``"30s"``, ``"5m"``, ``"24h"`` or ``"7d"`` (memras.config's)."""
    return _parse_duration(value, what=what, table="alerts")


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Bounded exponential backoff: waits ``backoff_s * 2**n`` capped at max_backoff_s."""

    attempts: int = DEFAULT_ATTEMPTS
    backoff_s: float = DEFAULT_BACKOFF_S
    max_backoff_s: float = DEFAULT_MAX_BACKOFF_S

    def delay_before(self, attempt: int) -> float:
        """Seconds to wait before ``attempt`` (1-based; the first waits nothing)."""
        if attempt <= 1:
            return 0.0
        return min(self.backoff_s * 2 ** (attempt - 2), self.max_backoff_s)


@dataclass(frozen=True, slots=True)
class RateLimit:
    per_minute: float = DEFAULT_PER_MINUTE
    burst: int = DEFAULT_BURST


@dataclass(frozen=True, slots=True)
class HookConfig:
    name: str
    options: Mapping[str, Any]
    rate_limit: RateLimit


@dataclass(frozen=True, slots=True)
class AlertsConfig:
    repeat_interval_s: float = DEFAULT_REPEAT_INTERVAL_S
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    hooks: tuple[HookConfig, ...] = ()
    gap_grace_s: float = DEFAULT_GAP_GRACE_S

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any] | None) -> AlertsConfig:
        """Validate the ``[alerts]`` table; raises UsageError naming the bad key."""
        raw = dict(raw or {})
        repeat = parse_duration(raw.pop("repeat_interval", DEFAULT_REPEAT_INTERVAL_S),
                                what="repeat_interval")
        if not MIN_REPEAT_INTERVAL_S <= repeat <= MAX_REPEAT_INTERVAL_S:
            raise UsageError(f"alerts config: repeat_interval {repeat:g}s is out of range",
                             hint=f"use {MIN_REPEAT_INTERVAL_S:g}s .. {MAX_REPEAT_INTERVAL_S:g}s")
        grace = parse_duration(raw.pop("gap_grace", DEFAULT_GAP_GRACE_S), what="gap_grace")
        if not MIN_GAP_GRACE_S <= grace <= MAX_GAP_GRACE_S:
            raise UsageError(f"alerts config: gap_grace {grace:g}s is out of range",
                             hint=f"use {MIN_GAP_GRACE_S:g}s .. {MAX_GAP_GRACE_S:g}s")
        retry = _retry(raw.pop("retry", {}))
        default_rate = _rate(raw.pop("rate_limit", {}), RateLimit(), "rate_limit")
        hooks = _hooks(raw.pop("hooks", {}), default_rate)
        if raw:
            raise UsageError(f"alerts config: unknown key(s) {', '.join(sorted(raw))}",
                             hint="hook options go under [alerts.hooks.NAME]")
        return cls(repeat_interval_s=repeat, retry=retry, hooks=hooks, gap_grace_s=grace)

    def hook(self, name: str) -> HookConfig | None:
        return next((h for h in self.hooks if h.name == name), None)


def _retry(raw: Mapping[str, Any]) -> RetryPolicy:
    attempts = int(raw.get("attempts", DEFAULT_ATTEMPTS))
    if not 1 <= attempts <= MAX_ATTEMPTS:
        raise UsageError(f"alerts config: retry.attempts {attempts} is out of range",
                         hint=f"use 1 .. {MAX_ATTEMPTS}")
    return RetryPolicy(
        attempts=attempts,
        backoff_s=parse_duration(raw.get("backoff", DEFAULT_BACKOFF_S), what="retry.backoff"),
        max_backoff_s=parse_duration(raw.get("max_backoff", DEFAULT_MAX_BACKOFF_S),
                                     what="retry.max_backoff"),
    )


def _rate(raw: Mapping[str, Any], default: RateLimit, what: str) -> RateLimit:
    per_minute = float(raw.get("per_minute", default.per_minute))
    burst = int(raw.get("burst", default.burst))
    if per_minute <= 0 or burst < 1:
        raise UsageError(f"alerts config: {what} needs per_minute > 0 and burst >= 1")
    return RateLimit(per_minute=per_minute, burst=burst)


def _hooks(raw: Mapping[str, Any], default_rate: RateLimit) -> tuple[HookConfig, ...]:
    hooks = []
    for name, table in raw.items():
        if not isinstance(table, Mapping):
            raise UsageError(f"alerts config: [alerts.hooks.{name}] must be a table")
        options = dict(table)
        if not options.pop("enabled", True):
            continue
        rate = _rate(options.pop("rate_limit", {}), default_rate, f"hooks.{name}.rate_limit")
        hooks.append(HookConfig(name=name, options=options, rate_limit=rate))
    return tuple(hooks)
