"""Alert dispatch: de-duplicate, store, rate-limit, deliver with retries, record.

What it decides, in order, for each submitted alert:

1. **De-duplication.** Alerts share a key ``kind|dimm|rules``. While an alert with
   that key is unresolved, a new one is folded into it (``repeats`` += 1) and nobody
   is told again — unless ``repeat_interval`` has passed since the last notice and
   the alert is still *open* (an ack silences repeats until it is resolved), or the
   new one is more severe (severity escalation always notifies).
2. **Store** the alert (so it has an id hooks can quote) before any delivery.
3. **Rate limit** per hook: a token bucket (``burst`` tokens, refilled at
   ``per_minute``). With no token the delivery is recorded as ``rate-limited`` and
   counted, not queued: an alert storm must not become a pager storm, and the
   alerts are all in the store and the TUI anyway.
4. **Deliver** with bounded exponential backoff (``RetryPolicy``). Every attempt is
   recorded (hook, attempt, ok or the error text). Any exception from a hook counts
   as a failed attempt; nothing a hook does can stop the dispatcher.
5. **Say so.** A failed attempt is logged (a WARNING on ``memras.alerts``, an ERROR when
   the last attempt fails: ``memras watch`` writes them on stderr, the journal under
   systemd) and stored; ``memras alerts list`` shows each alert's failed attempts and
   last error, and metric hooks get every hook's failed and given-up counts from the
   store (``memras_alert_delivery_failures_total``). Error texts are redacted
   (:func:`memras.text.redact`, with the hook's own secrets) before they are stored,
   logged or shown: a webhook URL's credentials and tokens never reach the database.

Retries sleep in the calling thread; the watcher calls :meth:`Dispatcher.submit`
from its alert thread, so a slow hook delays later alerts, never event ingestion.
"""

from __future__ import annotations

import builtins
import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Protocol

from memras.alerts.alert import Alert, AlertKind, AlertState, utcnow
from memras.alerts.config import AlertsConfig, HookConfig, RateLimit
from memras.alerts.hooks import AlertHook, DimmMetrics, HookMetrics, MetricsSnapshot
from memras.errors import HookError
from memras.text import escape, redact

log = logging.getLogger("memras.alerts")

OK = "ok"
FAILED = "failed"
RATE_LIMITED = "rate-limited"


@dataclass(frozen=True, slots=True)
class Delivery:
    """One attempt to hand one alert to one hook."""

    alert_id: int | None
    hook: str
    attempt: int
    status: str  # ok | failed | rate-limited
    error: str = ""
    time: datetime = field(default_factory=utcnow)

    @property
    def ok(self) -> bool:
        return self.status == OK


@dataclass(frozen=True, slots=True)
class DeliverySummary:
    """How the deliveries of one alert went, over all its hooks and attempts."""

    ok: int = 0
    failed: int = 0  # failed attempts, retries included
    rate_limited: int = 0
    last_error: str = ""  # "hook: text" of the latest failed attempt (redacted when stored)
    undelivered: tuple[str, ...] = ()  # hooks whose latest attempt failed

    def to_json(self) -> dict[str, object]:
        return {"ok": self.ok, "failed": self.failed, "rate_limited": self.rate_limited,
                "last_error": self.last_error or None, "undelivered": list(self.undelivered)}


def summarize(deliveries: Iterable[Delivery]) -> dict[int, DeliverySummary]:
    """Per alert id, the :class:`DeliverySummary` of its delivery records (in order)."""
    counts: dict[int, dict[str, int]] = {}
    last_error: dict[int, str] = {}
    latest: dict[int, dict[str, str]] = {}
    for d in deliveries:
        if d.alert_id is None:
            continue
        counts.setdefault(d.alert_id, {}).setdefault(d.status, 0)
        counts[d.alert_id][d.status] += 1
        latest.setdefault(d.alert_id, {})[d.hook] = d.status
        if d.status == FAILED:  # named by its hook once ("webhook: cannot POST …")
            named = d.error.startswith(f"{d.hook}:") or d.error.startswith(f"{d.hook} ")
            last_error[d.alert_id] = d.error if named else f"{d.hook}: {d.error}"
    return {aid: DeliverySummary(
        ok=c.get(OK, 0), failed=c.get(FAILED, 0), rate_limited=c.get(RATE_LIMITED, 0),
        last_error=last_error.get(aid, ""),
        undelivered=tuple(sorted(h for h, st in latest[aid].items() if st == FAILED)))
        for aid, c in counts.items()}


class AlertStore(Protocol):
    """Where alerts and delivery records live (the SQL store, or the in-memory fake)."""

    def add(self, alert: Alert) -> Alert: ...
    def update(self, alert: Alert) -> None: ...
    def get(self, alert_id: int) -> Alert | None: ...
    def find_unresolved(self, key: str) -> Alert | None: ...
    def list(self, state: AlertState | None = None) -> list[Alert]: ...
    def record_delivery(self, delivery: Delivery) -> None: ...
    def deliveries(self, alert_id: int) -> builtins.list[Delivery]: ...
    def delivery_summaries(self, alert_ids: Iterable[int]) -> dict[int, DeliverySummary]: ...
    def delivery_counts(self) -> dict[str, dict[str, int]]: ...


class MemoryAlertStore:
    """An :class:`AlertStore` in a list: for tests and for ``memras demo``."""

    def __init__(self) -> None:
        self._alerts: dict[int, Alert] = {}
        self._deliveries: list[Delivery] = []
        self._lock = threading.Lock()

    def add(self, alert: Alert) -> Alert:
        with self._lock:
            stored = alert.replace(id=len(self._alerts) + 1)
            self._alerts[stored.id] = stored  # type: ignore[index]  # id set just above
            return stored

    def update(self, alert: Alert) -> None:
        with self._lock:
            self._alerts[alert.id] = alert  # type: ignore[index]  # an update is of a stored alert

    def get(self, alert_id: int) -> Alert | None:
        return self._alerts.get(alert_id)

    def find_unresolved(self, key: str) -> Alert | None:
        found = [a for a in self._alerts.values()
                 if a.key == key and a.state is not AlertState.RESOLVED]
        return found[-1] if found else None

    def list(self, state: AlertState | None = None) -> list[Alert]:
        return [a for a in self._alerts.values() if state is None or a.state is state]

    def record_delivery(self, delivery: Delivery) -> None:
        with self._lock:
            self._deliveries.append(delivery)

    def deliveries(self, alert_id: int) -> builtins.list[Delivery]:
        return [d for d in self._deliveries if d.alert_id == alert_id]

    def delivery_summaries(self, alert_ids: Iterable[int]) -> dict[int, DeliverySummary]:
        wanted = set(alert_ids)
        return summarize(d for d in self._deliveries if d.alert_id in wanted)

    def delivery_counts(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        for d in self._deliveries:
            out.setdefault(d.hook, {}).setdefault(d.status, 0)
            out[d.hook][d.status] += 1
        return out


class TokenBucket:
    """``burst`` tokens, refilled continuously at ``per_minute``; one token per send."""

    def __init__(self, rate: RateLimit, clock: Callable[[], float] = time.monotonic) -> None:
        self.capacity = float(rate.burst)
        self.refill_per_s = rate.per_minute / 60.0
        self._clock = clock
        self._tokens = self.capacity
        self._stamp = clock()

    def take(self) -> bool:
        now = self._clock()
        self._tokens = min(self.capacity, self._tokens + (now - self._stamp) * self.refill_per_s)
        self._stamp = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False


@dataclass
class HookCounters:
    """This process's counts per hook (the store keeps every attempt across runs)."""

    delivered: int = 0
    failed: int = 0  # alerts given up on after the last attempt
    failed_attempts: int = 0  # every failed attempt, retries included
    retries: int = 0
    rate_limited: int = 0


@dataclass(frozen=True, slots=True)
class HookResult:
    """How one alert went for one hook (what ``memras alerts test`` prints)."""

    hook: str
    status: str
    attempts: int
    error: str = ""


@dataclass(frozen=True, slots=True)
class SubmitResult:
    alert: Alert
    notified: bool  # False when folded into an earlier alert by de-duplication
    results: tuple[HookResult, ...] = ()


SnapshotFn = Callable[[AlertStore], MetricsSnapshot]


class Dispatcher:
    """Takes alerts, decides whether to notify, and drives the hooks."""

    def __init__(self, store: AlertStore, hooks: Iterable[tuple[HookConfig, AlertHook]],
                 config: AlertsConfig | None = None, *,
                 clock: Callable[[], datetime] = utcnow,
                 sleep: Callable[[float], None] = time.sleep,
                 monotonic: Callable[[], float] = time.monotonic,
                 snapshot: SnapshotFn | None = None) -> None:
        self.store = store
        self.config = config or AlertsConfig()
        self.hooks = list(hooks)
        self._clock = clock
        self._sleep = sleep
        self._snapshot = snapshot or snapshot_from_alerts
        self._buckets = {hc.name: TokenBucket(hc.rate_limit, monotonic) for hc, _ in self.hooks}
        self.counters = {hc.name: HookCounters() for hc, _ in self.hooks}
        self.suppressed = 0
        self._lock = threading.RLock()

    @property
    def hook_names(self) -> list[str]:
        return [hc.name for hc, _ in self.hooks]

    def submit(self, alert: Alert) -> SubmitResult:
        """De-duplicate, store and (unless folded into an earlier alert) deliver."""
        with self._lock:
            now = self._clock()
            earlier = self.store.find_unresolved(alert.key)
            if earlier is not None and not self._should_renotify(earlier, alert, now):
                folded = earlier.replace(repeats=earlier.repeats + 1)
                self.store.update(folded)
                self.suppressed += 1
                return SubmitResult(folded, notified=False)
            stored = self._store_notice(earlier, alert, now)
            results = self._deliver_all(stored, respect_rate_limit=True)
            self._publish()
            return SubmitResult(stored, notified=True, results=results)

    def send_test(self, alert: Alert | None = None) -> list[HookResult]:
        """Send a test alert to every hook now: no de-duplication, no rate limit."""
        test = alert or Alert.test()
        return list(self._deliver_all(test, respect_rate_limit=False, record=False))

    def notify_state(self, alert: Alert) -> None:
        """Tell hooks that want it (``sends_resolved``) that an alert was acked/resolved."""
        with self._lock:
            for hook_config, hook in self.hooks:
                if hook.sends_resolved:
                    self._deliver(hook_config, hook, alert, record=True)
            self._publish()

    def publish_metrics(self, *, wait: bool = True) -> bool:
        """Publish a fresh snapshot to the metric hooks now, changed or not (the watcher
        does so every interval: a textfile's age then tells that the watcher runs).
        ``wait`` False: skip (False) while a delivery holds the dispatcher."""
        if not self._lock.acquire(blocking=wait):
            return False
        try:
            self._publish()
        finally:
            self._lock.release()
        return True

    def close(self) -> None:
        for hook_config, hook in self.hooks:
            try:
                hook.close()
            except (Exception, SystemExit) as exc:  # a broken hook must not stop the others
                log.warning("memras: alert hook %s: close failed: %s",
                            escape(hook_config.name), escape(_describe(exc, hook)))

    def _should_renotify(self, earlier: Alert, new: Alert, now: datetime) -> bool:
        if new.severity.rank > earlier.severity.rank:
            return True
        if earlier.state is not AlertState.OPEN:
            return False
        last = earlier.last_notified_at or earlier.time
        return (now - last).total_seconds() >= self.config.repeat_interval_s

    def _store_notice(self, earlier: Alert | None, alert: Alert, now: datetime) -> Alert:
        if earlier is None:
            return self.store.add(alert.replace(last_notified_at=now))
        renewed = earlier.replace(
            severity=max(earlier.severity, alert.severity, key=lambda s: s.rank),
            message=alert.message, evidence=alert.evidence, verdict=alert.verdict,
            dimm_label=alert.dimm_label or earlier.dimm_label,
            repeats=earlier.repeats + 1, last_notified_at=now,
            state=AlertState.OPEN if alert.severity.rank > earlier.severity.rank
            else earlier.state,
        )
        self.store.update(renewed)
        return renewed

    def _deliver_all(self, alert: Alert, *, respect_rate_limit: bool,
                     record: bool = True) -> tuple[HookResult, ...]:
        results = []
        for hook_config, hook in self.hooks:
            if respect_rate_limit and not self._buckets[hook_config.name].take():
                results.append(self._rate_limited(hook_config.name, alert))
                continue
            results.append(self._deliver(hook_config, hook, alert, record=record))
        return tuple(results)

    def _rate_limited(self, name: str, alert: Alert) -> HookResult:
        self.counters[name].rate_limited += 1
        self.store.record_delivery(Delivery(alert.id, name, 0, RATE_LIMITED,
                                            "token bucket empty", self._clock()))
        return HookResult(name, RATE_LIMITED, 0, "token bucket empty")

    def _deliver(self, hook_config: HookConfig, hook: AlertHook, alert: Alert, *,
                 record: bool) -> HookResult:
        name = hook_config.name
        policy = self.config.retry
        error = ""
        for attempt in range(1, policy.attempts + 1):
            if attempt > 1:
                self.counters[name].retries += 1
            delay = policy.delay_before(attempt)
            if delay:
                self._sleep(delay)
            error = _attempt(hook, alert)
            if record:
                self.store.record_delivery(Delivery(alert.id, name, attempt,
                                                    FAILED if error else OK, error, self._clock()))
            if not error:
                self.counters[name].delivered += 1
                return HookResult(name, OK, attempt)
            self.counters[name].failed_attempts += 1
            if record:  # `alerts test` shows its results itself
                _log_failure(alert, name, attempt, policy.attempts, error,
                             policy.delay_before(attempt + 1))
        self.counters[name].failed += 1
        return HookResult(name, FAILED, policy.attempts, error)

    def _publish(self) -> None:
        metric_hooks = [(hc, h) for hc, h in self.hooks if h.publishes_metrics]
        if not metric_hooks:
            return
        snapshot = self._snapshot(self.store)
        snapshot = replace(snapshot, hooks=hook_metrics(self.store, self.hook_names))
        for hook_config, hook in metric_hooks:
            try:
                hook.publish(snapshot)
            except (Exception, SystemExit) as exc:  # a metrics plugin cannot stop alerts
                error = f"publish: {_describe(exc, hook)}"
                self.counters[hook_config.name].failed += 1
                self.counters[hook_config.name].failed_attempts += 1
                log.warning("memras: alert hook %s: %s", escape(hook_config.name), escape(error))
                self.store.record_delivery(Delivery(None, hook_config.name, 1, FAILED,
                                                    error, self._clock()))


def _attempt(hook: AlertHook, alert: Alert) -> str:
    """'' when the hook accepted the alert, else the error text (redacted)."""
    try:
        hook.send(alert)
    except (Exception, SystemExit) as exc:  # any failure of a plugin is a failed attempt
        return _describe(exc, hook)
    return ""


def _describe(exc: BaseException, hook: AlertHook | None = None) -> str:
    """The error of one attempt, as stored: redacted of URL credentials, tokens and the
    hook's own secrets, at most 500 characters."""
    text = str(exc) if isinstance(exc, HookError) else f"{type(exc).__name__}: {exc}"
    secrets: list[str] = []
    if hook is not None:
        try:
            secrets = hook.secret_values()
        except Exception:  # a plugin overriding it badly still gets the generic redaction
            secrets = []
    return redact(text, secrets)[:500]


def _log_failure(alert: Alert, hook: str, attempt: int, attempts: int, error: str,
                 next_delay_s: float) -> None:
    what = f"alert {alert.id if alert.id is not None else '(test)'} ({alert.severity.value})"
    if attempt < attempts:
        log.warning("memras: %s: hook %s attempt %d/%d failed: %s; retrying in %gs", what,
                    escape(hook), attempt, attempts, escape(error), next_delay_s)
    else:
        log.error("memras: %s: hook %s failed all %d attempts, not delivered: %s "
                  "(see `memras alerts list`)", what, escape(hook), attempts, escape(error))


def hook_metrics(store: AlertStore, hooks: Iterable[str]) -> tuple[HookMetrics, ...]:
    """Delivery counts per hook, from every attempt the store holds (all runs)."""
    counts = store.delivery_counts()
    names = sorted(set(hooks) | set(counts))
    return tuple(HookMetrics(hook=name, delivered=counts.get(name, {}).get(OK, 0),
                             failed=counts.get(name, {}).get(FAILED, 0),
                             rate_limited=counts.get(name, {}).get(RATE_LIMITED, 0))
                 for name in names)


def snapshot_from_alerts(store: AlertStore) -> MetricsSnapshot:
    """Metrics derived from stored alerts: each DIMM's latest evidence counts/verdict."""
    alerts = store.list()
    latest: dict[str, Alert] = {}
    for alert in sorted(alerts, key=lambda a: (a.last_notified_at or a.time, a.id or 0)):
        if alert.dimm_id and alert.kind is not AlertKind.TEST:
            latest[alert.dimm_id] = _merge_latest(latest.get(alert.dimm_id), alert)
    dimms = tuple(_dimm_metrics(dimm_id, alert) for dimm_id, alert in sorted(latest.items()))
    open_count = sum(1 for a in alerts if a.state is AlertState.OPEN)
    return MetricsSnapshot(dimms=dimms, alerts_open=open_count)


def _merge_latest(previous: Alert | None, alert: Alert) -> Alert:
    if previous is None:
        return alert
    evidence = {**previous.evidence, **alert.evidence}
    return alert.replace(evidence=evidence, verdict=alert.verdict or previous.verdict,
                         dimm_label=alert.dimm_label or previous.dimm_label,
                         dimm_name=alert.dimm_name or previous.dimm_name)


def _dimm_metrics(dimm_id: str, alert: Alert) -> DimmMetrics:
    ev = alert.evidence
    return DimmMetrics(dimm_id=dimm_id, label=alert.dimm_label, slot=alert.dimm_name,
                       corrected=int(ev.get("ce_count") or 0),
                       uncorrected=int(ev.get("ue_count") or 0), verdict=alert.verdict)
