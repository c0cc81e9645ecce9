"""Dispatcher decisions: de-duplication, repeat interval, rate limit, retries, isolation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from memras.plugins.alerts.webhook import WebhookHook

from memras.alerts.alert import Alert, AlertKind, AlertState, Severity
from memras.alerts.config import AlertsConfig, HookConfig, RateLimit, RetryPolicy
from memras.alerts.dispatcher import FAILED, OK, RATE_LIMITED, Dispatcher, MemoryAlertStore
from memras.alerts.hooks import AlertHook, RecordingHook

from .conftest import HttpReceiver


class Clock:
    """Wall clock and monotonic time the test moves by hand."""

    def __init__(self) -> None:
        self.now = datetime(2025, 3, 1, tzinfo=UTC)
        self.mono = 1000.0
        self.slept: list[float] = []

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)
        self.mono += seconds

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.advance(seconds)


def _dispatcher(hooks: list[tuple[str, AlertHook]], clock: Clock, *,
                rate: RateLimit | None = None, retry: RetryPolicy | None = None,
                repeat_s: float = 3600) -> Dispatcher:
    config = AlertsConfig(repeat_interval_s=repeat_s, retry=retry or RetryPolicy(attempts=3,
                          backoff_s=0.5, max_backoff_s=4))
    pairs = [(HookConfig(name, {}, rate or RateLimit(per_minute=600, burst=100)), hook)
             for name, hook in hooks]
    return Dispatcher(MemoryAlertStore(), pairs, config, clock=lambda: clock.now,
                      sleep=clock.sleep, monotonic=lambda: clock.mono)


def _ce_alert(dimm: str = "d1", severity: Severity = Severity.WARNING) -> Alert:
    return Alert(kind=AlertKind.THRESHOLD_CROSSED, severity=severity, message="CE storm",
                 dimm_id=dimm, rule_ids=("ce-24h",), evidence={"ce_count": 11})


def test_second_identical_alert_is_folded_not_delivered() -> None:
    hook, clock = RecordingHook(), Clock()
    dispatcher = _dispatcher([("rec", hook)], clock)
    first = dispatcher.submit(_ce_alert())
    second = dispatcher.submit(_ce_alert())
    assert first.notified and not second.notified
    assert len(hook.sent) == 1
    assert second.alert.id == first.alert.id and second.alert.repeats == 1
    assert dispatcher.suppressed == 1


def test_resolved_alert_is_delivered_again() -> None:
    hook, clock = RecordingHook(), Clock()
    dispatcher = _dispatcher([("rec", hook)], clock)
    first = dispatcher.submit(_ce_alert())
    dispatcher.store.update(first.alert.replace(state=AlertState.RESOLVED))
    again = dispatcher.submit(_ce_alert())
    assert again.notified and again.alert.id != first.alert.id
    assert len(hook.sent) == 2


def test_open_alert_repeats_after_interval_but_acked_one_does_not() -> None:
    hook, clock = RecordingHook(), Clock()
    dispatcher = _dispatcher([("rec", hook)], clock, repeat_s=3600)
    dispatcher.submit(_ce_alert("open-dimm"))
    acked = dispatcher.submit(_ce_alert("acked-dimm")).alert
    dispatcher.store.update(acked.replace(state=AlertState.ACKED))
    clock.advance(3599)
    assert not dispatcher.submit(_ce_alert("open-dimm")).notified
    clock.advance(2)
    assert dispatcher.submit(_ce_alert("open-dimm")).notified
    assert not dispatcher.submit(_ce_alert("acked-dimm")).notified
    assert [a.dimm_id for a in hook.sent] == ["open-dimm", "acked-dimm", "open-dimm"]


def test_more_severe_repeat_notifies_at_once() -> None:
    hook, clock = RecordingHook(), Clock()
    dispatcher = _dispatcher([("rec", hook)], clock)
    dispatcher.submit(_ce_alert(severity=Severity.WARNING))
    result = dispatcher.submit(_ce_alert(severity=Severity.CRITICAL))
    assert result.notified and result.alert.severity is Severity.CRITICAL
    assert len(hook.sent) == 2


def test_rate_limit_is_per_hook_and_refills() -> None:
    limited, free, clock = RecordingHook(), RecordingHook(), Clock()
    config = AlertsConfig(retry=RetryPolicy(attempts=1))
    pairs = [(HookConfig("limited", {}, RateLimit(per_minute=2, burst=2)), limited),
             (HookConfig("free", {}, RateLimit(per_minute=600, burst=100)), free)]
    dispatcher = Dispatcher(MemoryAlertStore(), pairs, config, clock=lambda: clock.now,
                            sleep=clock.sleep, monotonic=lambda: clock.mono)
    results = [dispatcher.submit(_ce_alert(f"d{i}")) for i in range(4)]
    assert len(limited.sent) == 2 and len(free.sent) == 4
    assert [r.results[0].status for r in results] == [OK, OK, RATE_LIMITED, RATE_LIMITED]
    assert dispatcher.counters["limited"].rate_limited == 2
    deliveries = dispatcher.store.deliveries(results[3].alert.id)
    assert {(d.hook, d.status) for d in deliveries} == {("limited", RATE_LIMITED), ("free", OK)}
    clock.advance(30)  # one token back at 2/minute
    dispatcher.submit(_ce_alert("d9"))
    assert len(limited.sent) == 3


def test_webhook_failing_twice_is_retried_with_backoff(http_receiver: HttpReceiver) -> None:
    http_receiver.fail_first = 2
    clock = Clock()
    dispatcher = _dispatcher([("webhook", WebhookHook({"url": http_receiver.url}))], clock)
    result = dispatcher.submit(_ce_alert())
    assert result.results[0].status == OK and result.results[0].attempts == 3
    assert len(http_receiver.requests) == 3
    assert clock.slept == [0.5, 1.0]
    attempts = dispatcher.store.deliveries(result.alert.id)
    assert [(d.attempt, d.status) for d in attempts] == [(1, FAILED), (2, FAILED), (3, OK)]
    assert "HTTP 503" in attempts[0].error
    assert dispatcher.counters["webhook"].retries == 2


def test_hook_that_always_fails_is_bounded_and_others_still_deliver() -> None:
    class Exploding(AlertHook):
        name = "exploding"

        def send(self, alert: Alert) -> None:
            raise RuntimeError("boom")

    good, clock = RecordingHook(), Clock()
    dispatcher = _dispatcher([("bad", Exploding()), ("good", good)], clock,
                             retry=RetryPolicy(attempts=4, backoff_s=1, max_backoff_s=2))
    result = dispatcher.submit(_ce_alert())
    assert [r.status for r in result.results] == [FAILED, OK]
    assert result.results[0].error == "RuntimeError: boom"
    assert clock.slept == [1, 2, 2]
    assert dispatcher.counters["bad"].failed == 1 and len(good.sent) == 1


def test_send_test_bypasses_dedup_and_is_not_stored() -> None:
    hook, clock = RecordingHook(fail_times=1), Clock()
    dispatcher = _dispatcher([("rec", hook)], clock)
    results = dispatcher.send_test()
    dispatcher.send_test()
    assert results[0].status == OK and results[0].attempts == 2
    assert [a.kind for a in hook.sent] == [AlertKind.TEST, AlertKind.TEST]
    assert dispatcher.store.list() == []


def test_metric_hooks_get_a_snapshot_after_each_notice() -> None:
    hook, clock = RecordingHook(), Clock()
    dispatcher = _dispatcher([("rec", hook)], clock)
    dispatcher.submit(_ce_alert("d1").replace(verdict="suspect", dimm_label="A1"))
    dispatcher.submit(Alert(kind=AlertKind.UE, severity=Severity.CRITICAL, message="UE",
                            dimm_id="d1", evidence={"ue_count": 1}, verdict="failing"))
    snap = hook.snapshots[-1]
    assert snap.alerts_open == 2
    (dimm,) = snap.dimms
    assert (dimm.label, dimm.corrected, dimm.uncorrected, dimm.verdict) == ("A1", 11, 1,
                                                                           "failing")
