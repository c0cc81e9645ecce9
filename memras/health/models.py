"""health's tables on the shared Base (created by ``Store.open``).

- ``memras_health_verdict``: every verdict *change* per DIMM, at the event time that
  caused it, with its rules, reasons and evidence (JSON text), and ``reached_at``, when
  the state was reached (schema migration 4). The latest row at or
  before a moment is the verdict as of that moment: auditors ask why a module was
  replaced, post-mortems ask when it could have been.
- ``memras_page_state``: one row per 4 KiB page health acted on *per module*
  (``module_id``, the registry row that held the page's slot; 0 when unknown):
  action, outcome (done, EBUSY, ENXIO…), attempts, HardwareCorrupted before/after.
  It survives a restart, so a done page is never offlined twice (rasdaemon keeps
  this in RAM). A replacement module has the old one's physical addresses, so the
  key includes the module: the new module starts with no page state, and the old
  module's rows stay for audit (schema migration 3 added the column).
- ``memras_dimm_module``: the module registry (:mod:`.modules`). One row per physical
  module that sat in a slot (an inventory id): its identity, when it was installed
  (first seen, or put in by a replacement) and removed, and which row replaced it.
  A slot's verdicts are the verdicts of its modules in turn; the boundaries between
  them are the ``removed_at`` times.
- ``memras_verdict_closing``: verdicts closed by the operator (``memras repaired`` /
  ``acquit``) and module swaps recorded (:mod:`.closing`); the slot's evidence counts
  from the latest closing on, as from a module boundary.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, DateTime, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from memras.store.base import Base


class HealthVerdictRow(Base):
    __tablename__ = "memras_health_verdict"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    dimm_id: Mapped[str] = mapped_column(String(128))
    time: Mapped[datetime] = mapped_column(DateTime)  # naive UTC, the event's time
    state: Mapped[str] = mapped_column(String(40))
    previous_state: Mapped[str | None] = mapped_column(String(40))
    rules: Mapped[str] = mapped_column(Text, default="[]")  # JSON list
    reasons: Mapped[str] = mapped_column(Text, default="[]")  # JSON list
    evidence: Mapped[str] = mapped_column(Text, default="{}")  # JSON object
    # naive UTC event time the state was reached (migration 4; NULL in older rows: time)
    reached_at: Mapped[datetime | None] = mapped_column(DateTime)

    __table_args__ = (Index("ix_memras_health_verdict_dimm_time", "dimm_id", "time"),)


class DimmModuleRow(Base):
    __tablename__ = "memras_dimm_module"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    slot_id: Mapped[str] = mapped_column(String(128))  # the inventory id: mc0/dimm2, PNP0C80:00
    identity: Mapped[str] = mapped_column(String(256))  # smbios:MFR:PART:SERIAL | location:SLOT
    serial: Mapped[str] = mapped_column(String(64), default="")
    part: Mapped[str] = mapped_column(String(64), default="")
    manufacturer: Mapped[str] = mapped_column(String(64), default="")
    installed_at: Mapped[datetime] = mapped_column(DateTime)  # naive UTC
    removed_at: Mapped[datetime | None] = mapped_column(DateTime)  # None: in the slot now
    replaced_by: Mapped[int | None] = mapped_column(Integer)  # the successor's row id
    source: Mapped[str] = mapped_column(String(16))  # inventory | replacement
    replacement_id: Mapped[int | None] = mapped_column(Integer)  # memras_replacement.id

    __table_args__ = (Index("ix_memras_dimm_module_slot", "slot_id", "removed_at"),)


class PageStateRow(Base):
    __tablename__ = "memras_page_state"

    page: Mapped[int] = mapped_column(BigInteger, primary_key=True)  # signed int64
    # memras_dimm_module.id of the module that held the page (0: unknown/unregistered)
    module_id: Mapped[int] = mapped_column(Integer, primary_key=True, default=0,
                                           autoincrement=False)
    dimm_id: Mapped[str | None] = mapped_column(String(128))
    action: Mapped[str] = mapped_column(String(20))
    outcome: Mapped[str] = mapped_column(String(20))
    steps: Mapped[str] = mapped_column(Text, default="[]")  # JSON [[method, outcome], ...]
    attempts: Mapped[int] = mapped_column(Integer, default=1)
    hw_corrupted_before: Mapped[int | None] = mapped_column(BigInteger)
    hw_corrupted_after: Mapped[int | None] = mapped_column(BigInteger)
    time: Mapped[datetime] = mapped_column(DateTime)  # naive UTC, the triggering event


class VerdictClosingRow(Base):
    """``memras_verdict_closing``: an operator closed a DIMM's verdict (``memras repaired``,
    ``memras acquit``), or a module swap seen in the inventory was recorded (audited, its
    alerts resolved). Evidence before ``time`` no longer counts (:mod:`.closing`)."""

    __tablename__ = "memras_verdict_closing"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    dimm_id: Mapped[str] = mapped_column(String(128))  # the slot (inventory id)
    time: Mapped[datetime] = mapped_column(DateTime)  # naive UTC
    kind: Mapped[str] = mapped_column(String(16))  # repaired | acquitted | replaced
    reason: Mapped[str] = mapped_column(Text, default="")
    operator: Mapped[str | None] = mapped_column(String(128))
    previous_state: Mapped[str | None] = mapped_column(String(40))
    module_id: Mapped[int | None] = mapped_column(Integer)  # memras_dimm_module.id then
