"""memras's own tables, next to rasdaemon's (which live in :mod:`.rasdaemon_schema`).

- ``memras_error``: every memory error event, normalised (UTC time, one column per
  :class:`memras.records.DimmLocation` field), deduplicated by ``dedup_key`` and linked to
  the rasdaemon-format row written beside it (``rasdaemon_table``/``rasdaemon_id``).
  Its long texts (message, driver detail, raw input) are packed into one compressed
  ``texts`` value when that is smaller (:mod:`.packed_texts`; schema migration 7).
- ``memras_error_count``: per (type, label, mc, layers) counts kept up to date in the
  same transaction as each insert batch, so ``memras summary`` does not scan 1M rows.
  Unknown layers are -1 and an unknown label '' here (NULLs never compare equal in a
  unique key); :class:`memras.store.Summary` turns them back into None.
- ``memras_source_cursor``: how far each source has been read (kmsg seq, row id...).
- ``memras_gap``: errors the kernel counted that no event reported.
- ``memras_skipped``: malformed input, counted per source, one sample kept.
- ``memras_schema``: applied migration numbers (see :mod:`.migrations`).

Only portable types are used: the same models run on PostgreSQL.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, DateTime, Float, Index, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from memras.store.base import Base


class ErrorRow(Base):
    __tablename__ = "memras_error"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    time: Mapped[datetime] = mapped_column(DateTime, index=True)  # naive UTC
    uptime: Mapped[float | None] = mapped_column(Float)
    source: Mapped[str] = mapped_column(String(32))
    type: Mapped[str] = mapped_column(String(32))
    count: Mapped[int] = mapped_column(Integer, default=1)
    address: Mapped[int | None] = mapped_column(BigInteger)  # stored as signed int64
    page: Mapped[int | None] = mapped_column(BigInteger)
    normalized_address: Mapped[int | None] = mapped_column(BigInteger)
    grain_bits: Mapped[int | None] = mapped_column(Integer)
    syndrome: Mapped[int | None] = mapped_column(BigInteger)
    socket: Mapped[int | None] = mapped_column(Integer)
    mc: Mapped[int | None] = mapped_column(Integer)
    channel: Mapped[int | None] = mapped_column(Integer)
    slot: Mapped[int | None] = mapped_column(Integer)
    csrow: Mapped[int | None] = mapped_column(Integer)
    rank: Mapped[int | None] = mapped_column(Integer)
    bank_group: Mapped[int | None] = mapped_column(Integer)
    bank: Mapped[int | None] = mapped_column(Integer)
    row: Mapped[int | None] = mapped_column(Integer)
    column: Mapped[int | None] = mapped_column(Integer)
    device: Mapped[int | None] = mapped_column(Integer)
    label: Mapped[str | None] = mapped_column(Text)  # no index: summary reads the counts
    top_layer: Mapped[int | None] = mapped_column(Integer)
    middle_layer: Mapped[int | None] = mapped_column(Integer)
    lower_layer: Mapped[int | None] = mapped_column(Integer)
    message: Mapped[str] = mapped_column(Text, default="")
    driver: Mapped[str] = mapped_column(String(64), default="")
    driver_detail: Mapped[str] = mapped_column(Text, default="")
    dimm_id: Mapped[str | None] = mapped_column(String(128))  # filled by the health engine
    # The parsers' dedup_key (hashed) deliberately collapses one fault seen by several
    # sources; `identity` (source + raw) tells a re-read record from a second fault on
    # the same page reported by the same source, which must be kept (see store.py).
    dedup_key: Mapped[str] = mapped_column(String(32), index=True)
    # "<reporter code>:<digest>" (memras.store.store._identity): the code tells which
    # road of a source reported the row (firmware, EDAC driver, CPU registers, page)
    identity: Mapped[str] = mapped_column(String(32))
    raw: Mapped[str] = mapped_column(Text, default="")
    # message, driver_detail and raw packed and compressed (memras.store.packed_texts)
    # when that is smaller: those three columns are then ''. NULL: they are as stored.
    texts: Mapped[bytes | None] = mapped_column(LargeBinary)
    # Where `time` came from (memras.records.TimeSource: kernel, rasdaemon, syslog,
    # uptime+boot, inferred, import); NULL for rows stored before memras recorded it
    time_source: Mapped[str | None] = mapped_column(String(16))
    rasdaemon_table: Mapped[str | None] = mapped_column(String(32))
    rasdaemon_id: Mapped[int | None] = mapped_column(Integer)
    # The mce_record row written beside the linked mc_event when an EDAC decode came with
    # its machine-check registers (sb_edac, skx): retention deletes both. Migration 8;
    # NULL for other rows and rows from before it.
    rasdaemon_mce_id: Mapped[int | None] = mapped_column(Integer)
    # Values the record had out of their domain, clamped or blanked (memras.store.bounds):
    # "count:too-large,address:too-large"; NULL when the row is as the source said
    flags: Mapped[str | None] = mapped_column(Text)


class ErrorCountRow(Base):
    __tablename__ = "memras_error_count"
    __table_args__ = (
        Index("ix_memras_error_count_key", "type", "label", "mc", "top_layer",
              "middle_layer", "lower_layer", unique=True),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    type: Mapped[str] = mapped_column(String(32))
    label: Mapped[str] = mapped_column(Text)
    mc: Mapped[int] = mapped_column(Integer)
    top_layer: Mapped[int] = mapped_column(Integer)
    middle_layer: Mapped[int] = mapped_column(Integer)
    lower_layer: Mapped[int] = mapped_column(Integer)
    events: Mapped[int] = mapped_column(BigInteger)  # count(*) rows, as ras-mc-ctl
    errors: Mapped[int] = mapped_column(BigInteger)  # sum(err_count)


class SourceCursorRow(Base):
    __tablename__ = "memras_source_cursor"

    name: Mapped[str] = mapped_column(String(255), primary_key=True)
    position: Mapped[str] = mapped_column(Text)
    updated: Mapped[datetime] = mapped_column(DateTime)


class GapRow(Base):
    __tablename__ = "memras_gap"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    time: Mapped[datetime] = mapped_column(DateTime, index=True)
    source: Mapped[str] = mapped_column(String(32))
    subject: Mapped[str] = mapped_column(Text)  # DIMM key (mc:top:mid:low / label) or "kmsg"
    error_type: Mapped[str] = mapped_column(String(32))  # Corrected | Uncorrected | records
    count: Mapped[int] = mapped_column(Integer)
    message: Mapped[str] = mapped_column(Text, default="")


class SkippedRow(Base):
    __tablename__ = "memras_skipped"

    source: Mapped[str] = mapped_column(String(64), primary_key=True)
    count: Mapped[int] = mapped_column(BigInteger)
    sample: Mapped[str] = mapped_column(Text)  # the latest malformed input, verbatim
    reason: Mapped[str] = mapped_column(Text, default="")
    updated: Mapped[datetime] = mapped_column(DateTime)


class SchemaRow(Base):
    __tablename__ = "memras_schema"

    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    description: Mapped[str] = mapped_column(Text)
    applied: Mapped[datetime] = mapped_column(DateTime)


STORE_TABLES = [m.__table__ for m in (ErrorRow, ErrorCountRow, SourceCursorRow, GapRow,
                                       SkippedRow, SchemaRow)]
