"""Alert construction from health changes, gaps and workflow events; the v1 payload."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest

from memras.alerts.alert import (
    PAYLOAD_SCHEMA,
    Alert,
    AlertKind,
    AlertState,
    Severity,
    alert_from_payload,
    event_evidence,
)
from memras.alerts.config import AlertsConfig, RetryPolicy, parse_duration
from memras.errors import UsageError
from memras.records import DimmLocation, ErrorType, MemoryErrorEvent, Source


@dataclass
class FakeChange:
    """Shaped like memras.health's HealthChange (attributes only)."""

    kind: str
    dimm_id: str
    severity: str
    message: str
    time: datetime = field(default_factory=lambda: datetime(2025, 3, 1, 12, 0, tzinfo=UTC))
    evidence: dict[str, Any] = field(default_factory=dict)
    rule_ids: tuple[str, ...] = ()
    verdict: str | None = None


@pytest.mark.parametrize(("kind", "expected"), [
    ("verdict-changed", AlertKind.VERDICT_CHANGED),
    ("threshold-crossed", AlertKind.THRESHOLD_CROSSED),
    ("page-offlined", AlertKind.PAGE_OFFLINE),
    ("ue", AlertKind.UE),
])
def test_from_change_maps_every_health_kind(kind: str, expected: AlertKind) -> None:
    alert = Alert.from_change(FakeChange(kind, "mc0-dimm1", "critical", "m", rule_ids=("r2",)))
    assert alert.kind is expected
    assert alert.key == f"{expected.value}|mc0-dimm1|r2"


def test_from_change_keeps_evidence_verdict_and_label_verbatim() -> None:
    label = "CPU0_DIMM\x1b[2J_A1"
    change = FakeChange("threshold-crossed", "d1", "warning", "10 CE in 24h",
                        evidence={"dimm_label": label, "ce_count": 12}, rule_ids=("ce-24h",),
                        verdict="suspect")
    alert = Alert.from_change(change)
    assert alert.dimm_label == label
    assert alert.verdict == "suspect"
    assert alert.severity is Severity.WARNING
    payload = alert.to_payload()
    assert payload["dimm"]["label"] == label  # structured payloads stay verbatim
    assert payload["evidence"]["ce_count"] == 12


def test_gap_and_workflow_alerts_have_distinct_keys() -> None:
    gap = Alert.from_gap("EDAC counted 3 CEs no event reported", dimm_id="d1", source="edac")
    flow = Alert.from_workflow("offline failed: EBUSY", dimm_id="d1", step="offline",
                               severity=Severity.WARNING)
    assert gap.kind is AlertKind.GAP and flow.kind is AlertKind.WORKFLOW
    assert gap.key != flow.key


def test_payload_round_trips_through_json() -> None:
    event = MemoryErrorEvent(
        error_type=ErrorType.CORRECTED, source=Source.TRACE, count=2,
        timestamp=datetime(2025, 3, 1, 11, 59, tzinfo=UTC), address=0x12345000,
        grain_bits=5, syndrome=0, message="memory read error", driver_detail="area:DRAM",
        location=DimmLocation(mc=0, top_layer=0, middle_layer=0, label="DIMM_A1"),
    )
    alert = Alert(kind=AlertKind.UE, severity=Severity.CRITICAL, message="UE",
                  dimm_id="d1", evidence={"last_event": event_evidence(event)}, id=7,
                  state=AlertState.ACKED, acked_by="ana", rule_ids=("ue",))
    payload = json.loads(json.dumps(alert.to_payload()))
    assert payload["schema"] == PAYLOAD_SCHEMA
    assert payload["evidence"]["last_event"]["address"] == 0x12345000
    back = alert_from_payload(payload)
    assert back.replace(last_notified_at=None) == alert


def test_severity_coercion_accepts_enums_and_aliases() -> None:
    class Other:
        value = "crit"

    assert Severity.coerce(Other()) is Severity.CRITICAL
    assert Severity.coerce("INFO") is Severity.INFO


def test_config_parses_durations_and_hook_tables() -> None:
    config = AlertsConfig.from_dict({
        "repeat_interval": "12h",
        "retry": {"attempts": 4, "backoff": "1s", "max_backoff": "3s"},
        "rate_limit": {"per_minute": 6, "burst": 2},
        "hooks": {"webhook": {"url": "http://x", "rate_limit": {"burst": 1}},
                  "email": {"enabled": False, "host": "h"}},
    })
    assert config.repeat_interval_s == 12 * 3600
    assert [h.name for h in config.hooks] == ["webhook"]
    assert config.hook("webhook").rate_limit.burst == 1
    assert config.hook("webhook").rate_limit.per_minute == 6
    assert "rate_limit" not in config.hook("webhook").options
    assert [config.retry.delay_before(n) for n in (1, 2, 3, 4)] == [0, 1, 2, 3]


@pytest.mark.parametrize("raw", [
    {"repeat_interval": "soon"},
    {"repeat_interval": 1},
    {"retry": {"attempts": 0}},
    {"rate_limit": {"per_minute": 0}},
    {"hooks": {"webhook": "yes"}},
    {"webhok": {}},
])
def test_config_rejects_bad_values_with_usage_error(raw: dict) -> None:
    with pytest.raises(UsageError):
        AlertsConfig.from_dict(raw)


def test_parse_duration_units() -> None:
    assert parse_duration("90s", what="x") == 90
    assert parse_duration("2d", what="x") == 172800
    assert RetryPolicy(attempts=5, backoff_s=2, max_backoff_s=5).delay_before(5) == 5
