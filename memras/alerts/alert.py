"""The alert: what memras tells a person (or a pager) about a DIMM, declared once.

An :class:`Alert` is made from one of three inputs, each by a constructor that only
reads attributes, so the producers need not import this module:

- :meth:`Alert.from_change` — a health ``HealthChange`` (verdict-changed,
  threshold-crossed, page-offlined, ue);
- :meth:`Alert.from_gap` — a gap in the error record (lost events, counter jumps);
- :meth:`Alert.from_workflow` — a replacement-workflow event (step failed, DIMM swapped).

Evidence keys the plugins read (all optional; absent means unknown):

``last_event``   the most recent error, as :func:`event_evidence` builds it from a
                 :class:`memras.records.MemoryErrorEvent` (rasdaemon's field names);
``ce_count`` / ``ue_count``   the DIMM's corrected / uncorrected totals;
``threshold``    ``{"count": N, "window_s": S, "observed": M}`` of the rule that tripped;
``bank_locator`` the SMBIOS type-17 bank locator (mcelog's ``DMI_LOCATION``).

Text from the kernel or firmware (labels, messages) is kept verbatim here and in
:meth:`Alert.to_payload`; front ends escape it when they show it.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from memras.records import (
    event_evidence,  # noqa: F401 - re-exported
)

PAYLOAD_SCHEMA = "memras.alert/v1"
"""The version tag of :meth:`Alert.to_payload`; bumped on any incompatible change."""


class AlertKind(enum.StrEnum):
    VERDICT_CHANGED = "verdict-changed"
    THRESHOLD_CROSSED = "threshold-crossed"
    UE = "ue"
    PAGE_OFFLINE = "page-offline"
    GAP = "gap"
    WORKFLOW = "workflow"
    TEST = "test"

    @classmethod
    def from_change_kind(cls, kind: object) -> AlertKind:
        """Map a HealthChange kind (``page-offlined`` is spelt as health spells it)."""
        text = str(getattr(kind, "value", kind))
        return cls.PAGE_OFFLINE if text == "page-offlined" else cls(text)


class Severity(enum.StrEnum):
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        return [Severity.INFO, Severity.WARNING, Severity.CRITICAL].index(self)

    @classmethod
    def coerce(cls, value: object) -> Severity:
        """Accept an enum of any class or a string; unknown text is a warning."""
        text = str(getattr(value, "value", value)).lower()
        aliases = {"crit": "critical", "error": "critical", "warn": "warning"}
        try:
            return cls(aliases.get(text, text))
        except ValueError:
            return cls.WARNING


class AlertState(enum.StrEnum):
    OPEN = "open"
    ACKED = "acked"
    RESOLVED = "resolved"


def utcnow() -> datetime:
    return datetime.now(UTC)


def dedup_key(kind: AlertKind, dimm_id: str | None, rule_ids: Iterable[str]) -> str:
    """``kind|dimm|rule,rule``: alerts with the same key are one alert, repeated."""
    return f"{kind.value}|{dimm_id or '-'}|{','.join(sorted(rule_ids)) or '-'}"


@dataclass(frozen=True, slots=True)
class Alert:
    """One alert. ``id`` is None until a store has saved it."""

    kind: AlertKind
    severity: Severity
    message: str
    time: datetime = field(default_factory=utcnow)
    dimm_id: str | None = None
    dimm_label: str | None = None
    evidence: Mapping[str, Any] = field(default_factory=dict)
    verdict: str | None = None
    rule_ids: tuple[str, ...] = ()
    state: AlertState = AlertState.OPEN
    id: int | None = None
    acked_by: str | None = None
    acked_at: datetime | None = None
    ack_note: str | None = None
    resolved_at: datetime | None = None
    last_notified_at: datetime | None = None
    repeats: int = 0  # occurrences suppressed by de-duplication since the last notice
    key: str = ""
    # The DIMM as people name it now (the slot label, memras.topology.naming), filled
    # when the alert is read or raised with a host (memras.alerts.naming); not stored:
    # dimm_label is the label the error printed when the alert was raised.
    dimm_name: str | None = None

    def __post_init__(self) -> None:
        if not self.key:
            object.__setattr__(self, "key", dedup_key(self.kind, self.dimm_id, self.rule_ids))

    @classmethod
    def from_change(cls, change: Any) -> Alert:
        """From a ``memras.health`` HealthChange (read by attribute name only)."""
        evidence = dict(getattr(change, "evidence", None) or {})
        verdict = getattr(change, "verdict", None) or evidence.get("verdict")
        label = getattr(change, "dimm_label", None) or evidence.get("dimm_label")
        return cls(
            kind=AlertKind.from_change_kind(change.kind),
            severity=Severity.coerce(change.severity),
            message=str(change.message),
            time=getattr(change, "time", None) or utcnow(),
            dimm_id=_opt_str(getattr(change, "dimm_id", None)),
            dimm_label=_opt_str(label),
            evidence=evidence,
            verdict=_opt_str(getattr(verdict, "value", verdict)),
            rule_ids=_rule_ids(change),
        )

    @classmethod
    def from_gap(cls, message: str, *, dimm_id: str | None = None, source: str = "",
                 evidence: Mapping[str, Any] | None = None,
                 severity: Severity = Severity.WARNING) -> Alert:
        """Events were lost or counters jumped without events (a gap record)."""
        rules = (f"gap:{source}",) if source else ("gap",)
        return cls(kind=AlertKind.GAP, severity=severity, message=message, dimm_id=dimm_id,
                   evidence=dict(evidence or {}), rule_ids=rules)

    @classmethod
    def from_workflow(cls, message: str, *, dimm_id: str | None, step: str,
                      severity: Severity = Severity.INFO,
                      evidence: Mapping[str, Any] | None = None) -> Alert:
        """A replacement-workflow event; ``step`` names it for de-duplication."""
        return cls(kind=AlertKind.WORKFLOW, severity=severity, message=message,
                   dimm_id=dimm_id, evidence=dict(evidence or {}), rule_ids=(f"workflow:{step}",))

    @classmethod
    def test(cls, message: str = "memras test alert: alert delivery works") -> Alert:
        """The alert ``memras alerts test`` sends; never de-duplicated or stored."""
        return cls(kind=AlertKind.TEST, severity=Severity.INFO, message=message,
                   dimm_id="test", dimm_label="TEST_DIMM", rule_ids=("test",),
                   evidence={"test": True})

    def replace(self, **changes: Any) -> Alert:
        return dataclasses.replace(self, **changes)

    @property
    def dimm_shown(self) -> str:
        """How the DIMM is shown: slot label, else the stored label, else the id, else "-"."""
        return self.dimm_name or self.dimm_label or self.dimm_id or "-"

    def to_payload(self) -> dict[str, Any]:
        """The versioned JSON document (schema ``memras.alert/v1``) hooks send."""
        return {
            "schema": PAYLOAD_SCHEMA,
            "id": self.id,
            "time": _iso(self.time),
            "kind": self.kind.value,
            "severity": self.severity.value,
            "state": self.state.value,
            "dimm": {"id": self.dimm_id, "label": self.dimm_label, "name": self.dimm_name},
            "message": self.message,
            "verdict": self.verdict,
            "rule_ids": list(self.rule_ids),
            "evidence": _jsonable(self.evidence),
            "dedup_key": self.key,
            "repeats": self.repeats,
            "ack": {"by": self.acked_by, "at": _iso(self.acked_at), "note": self.ack_note},
            "resolved_at": _iso(self.resolved_at),
            "test": self.kind is AlertKind.TEST,
        }


def _rule_ids(change: Any) -> tuple[str, ...]:
    rules = getattr(change, "rule_ids", None) or getattr(change, "rules", None) or ()
    if isinstance(rules, str):
        return (rules,)
    return tuple(str(r) for r in rules)


def _opt_str(value: object) -> str | None:
    return None if value is None else str(value)


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _jsonable(value: Any) -> Any:
    """Evidence made JSON-safe: enums by value, datetimes ISO, tuples as lists."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_jsonable(v) for v in value]
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, datetime):
        return value.isoformat()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _jsonable(dataclasses.asdict(value))
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


def alert_from_payload(payload: Mapping[str, Any]) -> Alert:
    """Rebuild an alert from :meth:`Alert.to_payload` (used by the store)."""
    ack = payload.get("ack") or {}
    dimm = payload.get("dimm") or {}
    return Alert(
        kind=AlertKind(payload["kind"]),
        severity=Severity(payload["severity"]),
        message=payload["message"],
        time=datetime.fromisoformat(payload["time"]),
        dimm_id=dimm.get("id"),
        dimm_label=dimm.get("label"),
        dimm_name=dimm.get("name"),
        evidence=payload.get("evidence") or {},
        verdict=payload.get("verdict"),
        rule_ids=tuple(payload.get("rule_ids") or ()),
        state=AlertState(payload.get("state", "open")),
        id=payload.get("id"),
        acked_by=ack.get("by"),
        acked_at=_parse_time(ack.get("at")),
        ack_note=ack.get("note"),
        resolved_at=_parse_time(payload.get("resolved_at")),
        repeats=int(payload.get("repeats") or 0),
        key=payload.get("dedup_key") or "",
    )


def _parse_time(text: str | None) -> datetime | None:
    return None if not text else datetime.fromisoformat(text)
