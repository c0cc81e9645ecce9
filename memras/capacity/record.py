"""Audit and alert every capacity, VM and partition action, in one place.

Every change memras makes to how much memory a machine or guest has appends a row
to the hash-chained audit trail (:class:`memras.audit.service.AuditTrail`) with
action names ``capacity.*``, ``vm.*`` and ``partition.*``; the ones an operator
should hear about (the policy moving standby memory, failures, partial results)
are also raised as workflow alerts (:meth:`memras.alerts.alert.Alert.from_workflow`).
A :class:`Recorder` without a store records nothing: the dry-run and unit paths.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from memras.alerts.alert import Alert, Severity

if TYPE_CHECKING:
    from memras.alerts.service import AlertService
    from memras.store.store import Store


@dataclass
class Recorder:
    """Audit rows (and optional alerts) for capacity actions; inert without a store."""

    store: Store | None = None
    operator: str | None = None
    alerts: AlertService | None = None  # None: audit only
    entries: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    @classmethod
    def open(cls, db: str | None, *, operator: str | None = None,
             alerts: bool = False) -> Recorder:
        """Over the memras database at ``db`` (None: record in memory only)."""
        if db is None:
            return cls(operator=operator)
        # lazy, here and below: SQLAlchemy only once there is a database to record to;
        # `memras capacity|partition|vm` import this module also to plan and dry-run
        from memras.store import Store

        store = Store.open(db)
        service = None
        if alerts:
            from memras.alerts.service import AlertService  # lazy: SQLAlchemy (above)

            service = AlertService.open(store)
        return cls(store=store, operator=operator, alerts=service)

    def audit(self, action: str, data: Mapping[str, Any]) -> None:
        """Append one audit row (and keep it in :attr:`entries`)."""
        self.entries.append((action, dict(data)))
        if self.store is None:
            return
        from memras.audit.service import Actor, AuditTrail  # lazy: SQLAlchemy (open)

        AuditTrail(self.store).append(action, data, actor=Actor.current(self.operator))

    def alert(self, message: str, *, step: str, severity: Severity = Severity.INFO,
              evidence: Mapping[str, Any] | None = None) -> None:
        """Raise a workflow alert named ``step`` (de-duplicated by the alert service)."""
        self.entries.append((f"alert:{step}", {"message": message, **(evidence or {})}))
        if self.alerts is None:
            return
        self.alerts.raise_alert(Alert.from_workflow(message, dimm_id=None, step=step,
                                                    severity=severity, evidence=evidence))

    def actions(self) -> list[str]:
        return [name for name, _ in self.entries]

    def close(self) -> None:
        if self.alerts is not None:
            self.alerts.close()
        if self.store is not None:
            self.store.close()
