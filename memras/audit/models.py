"""The audit trail's tables, on the shared :class:`memras.store.base.Base`.

- ``memras_audit``: append-only, hash-chained (see :mod:`memras.audit.chain`); the
  canonical JSON that was hashed is stored verbatim in ``payload``.
- ``memras_audit_head``: one row with the count and the last hash.

Importing this module registers the tables; ``Store.open`` creates what is registered.
"""

from __future__ import annotations

from sqlalchemy import Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from memras.store.base import Base


class AuditRow(Base):
    __tablename__ = "memras_audit"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    time: Mapped[str] = mapped_column(String(40), index=True)  # ISO 8601 UTC, as hashed
    replacement_id: Mapped[int | None] = mapped_column(Integer, index=True)
    action: Mapped[str] = mapped_column(String(64))
    payload: Mapped[str] = mapped_column(Text)  # the canonical JSON that was hashed
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class AuditHeadRow(Base):
    __tablename__ = "memras_audit_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    count: Mapped[int] = mapped_column(Integer)
    last_hash: Mapped[str] = mapped_column(String(64))
