"""The workflow's tables, on the shared :class:`memras.store.base.Base`.

- ``memras_replacement``: one row per replacement; ``state`` is the last state reached,
  ``current_step`` the step being performed (set before its action, cleared after), so
  a resumed engine knows whether to re-run a step or to go on.
- ``memras_replacement_block``: one row per memory block touched. ``status`` is written
  *before* each kernel write (``offlining``/``onlining``) and *after* it
  (``offline``/``online``), so after a crash at any instant no block can be offline
  without a row that says memras may have offlined it.
- ``memras_workflow_lock``: at most one row: the replacement in progress.

The audit trail's tables are the audit area's own (:mod:`memras.audit.models`).

Importing this module registers the tables; ``Store.open`` creates what is registered.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, DateTime, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from memras.store.base import Base


class ReplacementRow(Base):
    __tablename__ = "memras_replacement"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    dimm_id: Mapped[str] = mapped_column(String(128))
    dimm_label: Mapped[str] = mapped_column(String(256), default="")
    state: Mapped[str] = mapped_column(String(32), index=True)
    current_step: Mapped[str | None] = mapped_column(String(32))
    backend: Mapped[str] = mapped_column(String(64))
    on_failure: Mapped[str] = mapped_column(String(16), default="rollback")
    operator: Mapped[str | None] = mapped_column(String(128))
    uid: Mapped[int] = mapped_column(Integer)
    user: Mapped[str] = mapped_column(String(128))
    host: Mapped[str] = mapped_column(String(256))
    root: Mapped[str] = mapped_column(String(1024))
    options: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    target: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # old module
    new_identity: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    checks: Mapped[list[Any] | None] = mapped_column(JSON)
    verdict: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    updated_at: Mapped[datetime] = mapped_column(DateTime)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime)


class ReplacementBlockRow(Base):
    __tablename__ = "memras_replacement_block"
    __table_args__ = (UniqueConstraint("replacement_id", "role", "block"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    replacement_id: Mapped[int] = mapped_column(ForeignKey("memras_replacement.id"),
                                                index=True)
    role: Mapped[str] = mapped_column(String(8))  # "old" | "new"
    block: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))  # online|offlining|offline|onlining|gone
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(DateTime)


class WorkflowLockRow(Base):
    __tablename__ = "memras_workflow_lock"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    replacement_id: Mapped[int] = mapped_column(Integer)
    pid: Mapped[int] = mapped_column(Integer)
    host: Mapped[str] = mapped_column(String(256))
    acquired_at: Mapped[datetime] = mapped_column(DateTime)

