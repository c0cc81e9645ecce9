"""The alert tables, on the shared Base (created by ``Store.open``).

- ``memras_alert``: one row per alert (a repeat of the same ``dedup_key`` updates the
  row: ``repeats`` and ``last_notified_at``); state open → acked → resolved, with
  who/when/note of the ack. Times are naive UTC, like the rest of the store.
- ``memras_alert_delivery``: every attempt to hand an alert to a hook: hook name,
  attempt number, status (ok | failed | rate-limited) and the error text.

Evidence and rule ids are JSON columns (portable to PostgreSQL).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, DateTime, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from memras.store.base import Base


class AlertRow(Base):
    __tablename__ = "memras_alert"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    time: Mapped[datetime] = mapped_column(DateTime)
    kind: Mapped[str] = mapped_column(String(32))
    severity: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(16), index=True)
    dimm_id: Mapped[str | None] = mapped_column(String(128), index=True)
    dimm_label: Mapped[str | None] = mapped_column(Text)
    message: Mapped[str] = mapped_column(Text)
    verdict: Mapped[str | None] = mapped_column(String(64))
    rule_ids: Mapped[list[str]] = mapped_column(JSON, default=list)
    evidence: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    dedup_key: Mapped[str] = mapped_column(String(512))
    repeats: Mapped[int] = mapped_column(Integer, default=0)
    last_notified_at: Mapped[datetime | None] = mapped_column(DateTime)
    acked_by: Mapped[str | None] = mapped_column(String(128))
    acked_at: Mapped[datetime | None] = mapped_column(DateTime)
    ack_note: Mapped[str | None] = mapped_column(Text)
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime)

    __table_args__ = (Index("ix_memras_alert_key_state", "dedup_key", "state"),)


class DeliveryRow(Base):
    __tablename__ = "memras_alert_delivery"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    alert_id: Mapped[int | None] = mapped_column(ForeignKey("memras_alert.id"), index=True)
    hook: Mapped[str] = mapped_column(String(64))
    attempt: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))
    error: Mapped[str] = mapped_column(Text, default="")
    time: Mapped[datetime] = mapped_column(DateTime)
