"""The audit trail: append, list, show, export and verify hash-chained rows.

Every workflow step of every replacement calls :meth:`AuditTrail.append` with what
happened; the row records who (uid, user name, ``--operator``), when (UTC), on which
host, and the step's data (DIMM identities and serials, blocks, durations, verdict and
rules at decision time, outcome, errors). Rows are never updated or deleted by memras;
:meth:`AuditTrail.verify` proves it (see :mod:`memras.audit.chain`).

Appends from concurrent processes are serialised by the database: the new row's ``seq``
is the head's count + 1 and is the primary key, so a racing append fails on the key and
is retried against the new head.
"""

from __future__ import annotations

import csv
import io
import json
import os
import pwd
import socket
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session

from memras.audit.chain import (
    GENESIS_HASH,
    ChainProblem,
    ChainReport,
    ChainRow,
    canonical_json,
    row_hash,
    verify_chain,
)
from memras.audit.models import AuditHeadRow, AuditRow
from memras.errors import StoreError, UsageError

if TYPE_CHECKING:
    from memras.store.store import Store

EXPORT_FORMATS = ("json", "csv")
_APPEND_RETRIES = 8


@dataclass(frozen=True, slots=True)
class Actor:
    """Who did it: the Unix account, the name the engineer gave, the host."""

    uid: int
    user: str
    operator: str | None
    host: str

    @classmethod
    def current(cls, operator: str | None = None, host: str | None = None) -> Actor:
        uid = os.getuid()
        try:
            user = pwd.getpwuid(uid).pw_name
        except KeyError:
            user = os.environ.get("USER", str(uid))
        return cls(uid=uid, user=user, operator=operator, host=host or socket.gethostname())

    def as_dict(self) -> dict[str, Any]:
        return {"uid": self.uid, "user": self.user, "operator": self.operator,
                "host": self.host}


@dataclass(frozen=True, slots=True)
class AuditEntry:
    seq: int
    time: str
    replacement_id: int | None
    action: str
    actor: dict[str, Any]
    data: dict[str, Any]
    hash: str
    prev_hash: str

    def as_dict(self) -> dict[str, Any]:
        return {"seq": self.seq, "time": self.time, "replacement_id": self.replacement_id,
                "action": self.action, "actor": self.actor, "data": self.data,
                "hash": self.hash, "prev_hash": self.prev_hash}


@contextmanager
def store_session(store: Store) -> Iterator[Session]:
    """A session of ``store``, its SQLAlchemy errors told as a StoreError."""
    try:
        with store.session() as session:
            yield session
    except SQLAlchemyError as exc:
        raise StoreError(f"audit database error: {type(exc).__name__}: {exc}".splitlines()[0],
                         hint="check --db and that the database is writable") from None


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


def _entry(row: AuditRow) -> AuditEntry:
    try:
        payload = json.loads(row.payload)
    except ValueError:
        payload = {}
    return AuditEntry(seq=row.seq, time=row.time, replacement_id=row.replacement_id,
                      action=row.action, actor=payload.get("actor", {}),
                      data=payload.get("data", {}), hash=row.hash, prev_hash=row.prev_hash)


class AuditTrail:
    """The append-only, hash-chained audit table of one memras database."""

    def __init__(self, store: Store) -> None:
        self.store = store

    # --- writing ------------------------------------------------------------------
    def append(self, action: str, data: Mapping[str, Any], *, actor: Actor,
               replacement_id: int | None = None) -> AuditEntry:
        """Add one row chained to the last; returns it. Retries if another writer won."""
        for _attempt in range(_APPEND_RETRIES):
            try:
                return self._append_once(action, data, actor, replacement_id)
            except (IntegrityError, StoreError):  # another writer took this seq: re-read
                continue
        raise StoreError("could not append to the audit trail: too many concurrent writers")

    def _append_once(self, action: str, data: Mapping[str, Any], actor: Actor,
                     replacement_id: int | None) -> AuditEntry:
        with store_session(self.store) as session:
            head = session.get(AuditHeadRow, 1)
            count, prev = (head.count, head.last_hash) if head else (0, GENESIS_HASH)
            payload = {"time": _now_iso(), "replacement_id": replacement_id,
                       "action": action, "actor": actor.as_dict(),
                       "data": json.loads(canonical_json(data))}
            digest = row_hash(prev, payload)
            row = AuditRow(seq=count + 1, time=payload["time"], replacement_id=replacement_id,
                           action=action, payload=canonical_json(payload), prev_hash=prev,
                           hash=digest)
            session.add(row)
            if head is None:
                session.add(AuditHeadRow(id=1, count=1, last_hash=digest))
            else:
                head.count, head.last_hash = count + 1, digest
            session.commit()
            return _entry(row)

    # --- reading ------------------------------------------------------------------
    def list(self, *, replacement_id: int | None = None,
             limit: int | None = None) -> list[AuditEntry]:
        with store_session(self.store) as session:
            query = select(AuditRow).order_by(AuditRow.seq)
            if replacement_id is not None:
                query = query.where(AuditRow.replacement_id == replacement_id)
            rows = [_entry(r) for r in session.scalars(query)]
        return rows[-limit:] if limit else rows

    def show(self, seq: int) -> AuditEntry:
        with store_session(self.store) as session:
            row = session.get(AuditRow, seq)
            if row is None:
                raise UsageError(f"no audit entry {seq}",
                                 hint="`memras audit list` shows the entries")
            return _entry(row)

    def export(self, fmt: str, *, replacement_id: int | None = None) -> str:
        """The entries as JSON (a list) or CSV (one row per entry, data as JSON)."""
        if fmt not in EXPORT_FORMATS:
            raise UsageError(f"unknown export format {fmt!r}",
                             hint=f"use one of: {', '.join(EXPORT_FORMATS)}")
        entries = self.list(replacement_id=replacement_id)
        if fmt == "json":
            return json.dumps([e.as_dict() for e in entries], indent=2, ensure_ascii=False)
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(["seq", "time", "replacement_id", "action", "uid", "user", "operator",
                         "host", "data", "prev_hash", "hash"])
        for e in entries:
            writer.writerow([e.seq, e.time, e.replacement_id or "", e.action,
                             e.actor.get("uid", ""), e.actor.get("user", ""),
                             e.actor.get("operator") or "", e.actor.get("host", ""),
                             canonical_json(e.data), e.prev_hash, e.hash])
        return out.getvalue()

    # --- verification -------------------------------------------------------------
    def verify(self, *, expect_head: str | None = None) -> ChainReport:
        """Check the whole chain and the head; every problem names its row."""
        with store_session(self.store) as session:
            rows = list(session.scalars(select(AuditRow).order_by(AuditRow.seq)))
            head = session.get(AuditHeadRow, 1)
            chain_rows, column_problems = [], []
            for row in rows:
                payload, problem = _decode(row)
                if problem is not None:
                    column_problems.append(problem)
                chain_rows.append(ChainRow(row.seq, row.prev_hash, row.hash, payload))
            report = verify_chain(chain_rows, head_count=head.count if head else None,
                                  head_hash=head.last_hash if head else None,
                                  expect_head=expect_head)
        if not column_problems:
            return report
        return ChainReport(rows=report.rows, last_hash=report.last_hash,
                           problems=tuple(column_problems) + report.problems)


def _decode(row: AuditRow) -> tuple[dict[str, Any], ChainProblem | None]:
    """The hashed payload, and a problem when the indexed columns disagree with it."""
    try:
        payload = json.loads(row.payload)
    except ValueError:
        return {"unreadable": row.payload}, ChainProblem("edited", row.seq,
                                                         "its payload is not JSON")
    if not isinstance(payload, dict):
        return {"unreadable": row.payload}, ChainProblem("edited", row.seq,
                                                         "its payload is not an object")
    for column in ("time", "replacement_id", "action"):
        if payload.get(column) != getattr(row, column):
            return payload, ChainProblem("edited", row.seq,
                                         f"its {column} column differs from the hashed content")
    return payload, None
