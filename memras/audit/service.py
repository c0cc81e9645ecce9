"""The audit trail: append, list, show, export and verify hash-chained rows.

Every workflow step of every replacement calls :meth:`AuditTrail.append` with what
happened; the row records who (uid, user name, ``--operator``), when (UTC), on which
host, and the step's data (DIMM identities and serials, blocks, durations, verdict and
rules at decision time, outcome, errors). Rows are never updated or deleted by memras;
:meth:`AuditTrail.verify` proves it (see :mod:`memras.audit.chain`).

Appends from concurrent processes are serialised by the database: the new row's ``seq``
is the head's count + 1 and is the primary key, so a racing append fails on the key and
is retried against the new head. After the commit the new head is anchored outside the
database (:mod:`memras.audit.anchor`), under a file lock so the anchor never goes back.

Reading (list, show, export, verify) never creates or changes anything: it reads through
a plain connection and treats a missing table as "no rows", which :meth:`AuditTrail.verify`
then weighs against the anchor file, the head table and the replacements recorded.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import os
import pwd
import socket
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, inspect, select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session

from memras.audit.anchor import (
    AnchorUnreadable,
    AuditSettings,
    ChainKey,
    Head,
    anchor_lock,
    load_key,
    publish,
    read_anchor,
)
from memras.audit.chain import (
    ALG_HMAC,
    ALG_SHA256,
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
from memras.store.store import database_url

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
    chain: dict[str, Any] = field(default_factory=dict)  # {} on rows before anchors/keys

    def as_dict(self) -> dict[str, Any]:
        """Everything the row's hash covers (``chain`` only when the row has it), so an
        export can be re-verified elsewhere."""
        out = {"seq": self.seq, "time": self.time, "replacement_id": self.replacement_id,
               "action": self.action, "actor": self.actor, "data": self.data,
               "hash": self.hash, "prev_hash": self.prev_hash}
        if self.chain:
            out["chain"] = self.chain
        return out


@dataclass(frozen=True, slots=True)
class RecordedReplacement:
    """What ``memras_replacement`` says of one replacement (read by the workflow)."""

    id: int
    state: str
    current_step: str | None
    dimm_id: str


@dataclass(frozen=True, slots=True)
class RecordedReplacements:
    """The replacements the trail must account for; ``table_exists`` False: dropped."""

    table_exists: bool
    rows: tuple[RecordedReplacement, ...] = ()


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


def _entry(row: Any) -> AuditEntry:
    """An entry from an ORM row or a plain result row of ``memras_audit``."""
    try:
        payload = json.loads(row.payload)
    except ValueError:
        payload = {}
    if not isinstance(payload, dict):
        payload = {}
    chain = payload.get("chain")
    return AuditEntry(seq=row.seq, time=row.time, replacement_id=row.replacement_id,
                      action=row.action, actor=payload.get("actor", {}),
                      data=payload.get("data", {}), hash=row.hash, prev_hash=row.prev_hash,
                      chain=dict(chain) if isinstance(chain, dict) else {})


def database_file(url_or_path: str | Path) -> Path | None:
    """The SQLite file a --db path or URL names (None: in memory, or another database)."""
    url = database_url(url_or_path)
    if not url.startswith("sqlite:///") or url.endswith(":memory:"):
        return None
    return Path(url.removeprefix("sqlite:///").split("?", 1)[0]).absolute()


def _database_path(store: Store) -> Path | None:
    """The database file (None: in memory, or not SQLite). A read-only store's engine
    has no path in its URL (it connects through a creator), so SQLite is asked."""
    if store.engine.url.get_backend_name() != "sqlite":
        return None
    try:
        with store.engine.connect() as conn:
            for _seq, name, file in conn.exec_driver_sql("PRAGMA database_list"):
                if name == "main":
                    return Path(file).absolute() if file else None
    except SQLAlchemyError:
        pass  # the first read reports it
    return None


class AuditTrail:
    """The append-only, hash-chained audit table of one memras database.

    ``settings`` is memras.toml's ``[audit]`` table (None: read /etc/memras/memras.toml
    if it exists); :meth:`configured` reads it from a ``--config`` path."""

    def __init__(self, store: Store, settings: AuditSettings | None = None, *,
                 database: Path | None = None) -> None:
        self.store = store
        self.settings = settings if settings is not None else AuditSettings.load(None)
        self.database = database or _database_path(store)
        self.anchor_file = self.settings.anchor_path(self.database)
        self._key: ChainKey | None = None

    @classmethod
    def configured(cls, store: Store, config_path: str | Path | None, *,
                   database: str | Path | None = None, journal: bool = True) -> AuditTrail:
        """With ``--config``'s ``[audit]``; ``database`` (a --db path or URL) names the
        file if the store cannot; ``journal=False`` (a simulated server's trail) sends
        no line to syslog whatever ``[audit] syslog`` says."""
        settings = AuditSettings.load(config_path)
        if not journal:
            settings = dataclasses.replace(settings, syslog=False)
        return cls(store, settings,
                   database=database_file(database) if database is not None else None)

    # --- writing ------------------------------------------------------------------
    def check_can_append(self) -> None:
        """Raise UsageError now if an append would fail on the key (bad permissions,
        missing file), before a caller records anything an audit row should follow."""
        self._chain_key()

    def _chain_key(self) -> ChainKey | None:
        if self.settings.key_file is None:
            return None
        if self._key is None:
            self._key = load_key(self.settings.key_file)
        return self._key

    def append(self, action: str, data: Mapping[str, Any], *, actor: Actor,
               replacement_id: int | None = None) -> AuditEntry:
        """Add one row chained to the last and anchor the new head; returns the row.
        Retries if another writer won. An anchor that cannot be written is logged as a
        warning (the row is in; `verify` reports the lagging anchor)."""
        key = self._chain_key()
        with anchor_lock(self.anchor_file):
            for _attempt in range(_APPEND_RETRIES):
                try:
                    entry, count = self._append_once(action, data, actor, replacement_id, key)
                    break
                except (IntegrityError, StoreError):  # another writer took this seq
                    continue
            else:
                raise StoreError(
                    "could not append to the audit trail: too many concurrent writers")
            head = Head(count=count, hash=entry.hash, time=entry.time,
                        alg=ALG_HMAC if key else ALG_SHA256,
                        database=str(self.database) if self.database else
                        self.store.engine.url.render_as_string(hide_password=True))
            publish(head, anchor=self.anchor_file, settings=self.settings,
                    database=self.database)
        return entry

    def _append_once(self, action: str, data: Mapping[str, Any], actor: Actor,
                     replacement_id: int | None, key: ChainKey | None
                     ) -> tuple[AuditEntry, int]:
        chain: dict[str, Any] = {"alg": ALG_HMAC if key else ALG_SHA256,
                                 "anchored": self.anchor_file is not None}
        if key is not None:
            chain["key"] = key.id
        with store_session(self.store) as session:
            head = session.get(AuditHeadRow, 1)
            count, prev = (head.count, head.last_hash) if head else (0, GENESIS_HASH)
            payload = {"time": _now_iso(), "replacement_id": replacement_id,
                       "action": action, "actor": actor.as_dict(),
                       "data": json.loads(canonical_json(data)), "chain": chain}
            digest = row_hash(prev, payload, key.secret if key else None)
            row = AuditRow(seq=count + 1, time=payload["time"], replacement_id=replacement_id,
                           action=action, payload=canonical_json(payload), prev_hash=prev,
                           hash=digest)
            session.add(row)
            if head is None:
                session.add(AuditHeadRow(id=1, count=1, last_hash=digest))
            else:
                head.count, head.last_hash = count + 1, digest
            session.commit()
            return _entry(row), count + 1

    # --- reading (never creates a table) -------------------------------------------
    @contextmanager
    def _reading(self) -> Iterator[Connection]:
        try:
            with self.store.engine.connect() as conn:
                yield conn
        except SQLAlchemyError as exc:
            raise StoreError(
                f"audit database error: {type(exc).__name__}: {exc}".splitlines()[0],
                hint="check --db, and `memras doctor` for the database") from None

    @staticmethod
    def _tables(conn: Connection) -> set[str]:
        names = {AuditRow.__tablename__, AuditHeadRow.__tablename__}
        return {name for name in names if inspect(conn).has_table(name)}

    def _rows(self, conn: Connection, replacement_id: int | None = None) -> list[Any]:
        if AuditRow.__tablename__ not in self._tables(conn):
            return []
        table = AuditRow.__table__
        query = select(table).order_by(table.c.seq)
        if replacement_id is not None:
            query = query.where(table.c.replacement_id == replacement_id)
        return list(conn.execute(query))

    def list(self, *, replacement_id: int | None = None,
             limit: int | None = None) -> list[AuditEntry]:
        with self._reading() as conn:
            rows = [_entry(r) for r in self._rows(conn, replacement_id)]
        return rows[-limit:] if limit else rows

    def show(self, seq: int) -> AuditEntry:
        with self._reading() as conn:
            row = next((r for r in self._rows(conn) if r.seq == seq), None)
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
    def verify(self, *, expect_head: str | None = None,
               replacements: RecordedReplacements | None = None,
               anchor_file: Path | None = None) -> ChainReport:
        """Check the chain, the head table, the anchor file (``anchor_file`` overrides the
        configured one) and, given ``replacements``, that each has its audit rows.
        Every problem names its row; warnings say what could not be checked."""
        path = anchor_file or self.anchor_file
        chain_rows, problems, warnings = [], [], []
        # shared lock: no append lands between reading the rows and reading the anchor
        with anchor_lock(path, shared=True), self._reading() as conn:
            tables = self._tables(conn)
            rows = self._rows(conn)
            head: tuple[int, str] | None = None  # the head table's (count, last hash)
            if AuditHeadRow.__tablename__ in tables:
                head_table = AuditHeadRow.__table__
                found = conn.execute(select(head_table.c["count"], head_table.c.last_hash)
                                     .where(head_table.c.id == 1)).first()
                head = (found[0], found[1]) if found else None
            for row in rows:
                payload, problem = _decode(row)
                if problem is not None:
                    problems.append(problem)
                chain_rows.append(ChainRow(row.seq, row.prev_hash, row.hash, payload))
            anchored, anchor_problems, anchor_warnings = _check_anchor(
                path, chain_rows, self.database, explicit=anchor_file is not None)
        key, key_note = self._verify_key()
        report = verify_chain(chain_rows, head_count=head[0] if head else None,
                              head_hash=head[1] if head else None,
                              expect_head=expect_head, key=key.secret if key else None,
                              key_id=key.id if key else None,
                              keyed=self.settings.key_file is not None)
        problems.extend(report.problems)
        if key_note and any(p.kind == "unverifiable" for p in problems):
            warnings.append(key_note)
        problems.extend(anchor_problems)
        warnings.extend(anchor_warnings)
        problems[:0] = _missing_tables(tables, head, anchored, replacements)
        if replacements is not None:
            problems.extend(_replacement_problems([_entry(r) for r in rows], replacements))
        return ChainReport(rows=report.rows, last_hash=report.last_hash,
                           problems=tuple(problems), warnings=tuple(warnings),
                           algorithms=report.algorithms,
                           anchor=anchored.note if anchored else None)

    def _verify_key(self) -> tuple[ChainKey | None, str | None]:
        if self.settings.key_file is None:
            return None, None
        try:
            return self._chain_key(), None
        except UsageError as exc:
            return None, f"{exc.msg}: HMAC rows cannot be checked without it"


@dataclass(frozen=True, slots=True)
class _Anchored:
    head: Head
    note: str


def _check_anchor(path: Path | None, rows: list[ChainRow], database: Path | None, *,
                  explicit: bool) -> tuple[_Anchored | None, list[ChainProblem], list[str]]:
    """Compare the rows with the anchor file: (what matched, problems, warnings)."""
    anchored_rows = [r.seq for r in rows if _anchored(r.payload)]
    if path is None:
        return None, [], (["this database has no anchor file (not a file database): set "
                           "[audit] anchor_file to anchor its head"] if rows else [])
    try:
        head = read_anchor(path)
    except AnchorUnreadable as exc:
        if exc.tampered:
            return None, [ChainProblem("anchor", None, f"{exc.reason}: edited?")], []
        return None, [], [f"{exc.reason}: not checked against the anchor (run as root or "
                          "group memras)"]
    if head is None:
        if anchored_rows or explicit:
            why = (f"row {anchored_rows[-1]} was anchored to it" if anchored_rows
                   else "you named it")
            return None, [ChainProblem(
                "missing", None, f"the anchor file {path} does not exist, but {why}: deleted? "
                "(`journalctl -t memras-audit` lists every head)")], []
        return None, [], ([f"no anchor file {path} yet: the {len(rows)} row(s) predate "
                           "anchoring; the next append writes it"] if rows else [])
    by_seq = {r.seq: r.hash for r in rows}
    stamp = f"{head.hash[:12]}… at {head.time}"
    problems: list[ChainProblem] = []
    if head.count > len(rows):
        problems.append(ChainProblem(
            "anchor", None,
            f"the anchor file records {head.count} rows ending in {stamp}, the database "
            f"holds {len(rows)}: rows were deleted or the database restored from an older "
            "copy"))
    elif by_seq.get(head.count) != head.hash:
        problems.append(ChainProblem(
            "anchor", head.count,
            f"not the row the anchor file recorded ({stamp}): the chain was rewritten, or "
            "the anchor file edited"))
    elif head.count < len(rows):
        problems.append(ChainProblem(
            "anchor", head.count + 1,
            f"{len(rows) - head.count} row(s) from here were never anchored: forged, or "
            "memras stopped between its commit and the anchor (the next append re-anchors)"))
    warnings = []
    if database is not None and head.database != str(database):
        warnings.append(f"the anchor file {path} was written for {head.database}, "
                        f"not {database}")
    return _Anchored(head, f"{path} ({head.count} rows, {stamp})"), problems, warnings


def _anchored(payload: Mapping[str, Any]) -> bool:
    """Whether the row says its head was written to an anchor file (False: rows from
    before anchors, or a database with no anchor file). A flag, not the path, so a
    row's hash does not depend on where the database lives."""
    chain = payload.get("chain")
    return isinstance(chain, Mapping) and chain.get("anchored") is True


def _missing_tables(tables: set[str], head: tuple[int, str] | None, anchored: _Anchored | None,
                    replacements: RecordedReplacements | None) -> list[ChainProblem]:
    """A missing audit table is only a problem when something says rows existed."""
    if AuditRow.__tablename__ in tables:
        return []
    evidence = []
    if anchored is not None and anchored.head.count:
        evidence.append(f"the anchor file records {anchored.head.count} rows")
    if head is not None and head[0]:
        evidence.append(f"the head table records {head[0]} rows")
    if replacements is not None and replacements.rows:
        evidence.append(f"{len(replacements.rows)} replacement(s) are recorded")
    if not evidence:
        return []
    return [ChainProblem("missing", None, f"the audit table {AuditRow.__tablename__} does "
                         f"not exist (dropped?), but {' and '.join(evidence)}")]


def _replacement_problems(entries: list[AuditEntry],
                          recorded: RecordedReplacements) -> list[ChainProblem]:
    """Each replacement has its select row, its DIMM and its last state audited; each
    replacement the trail names still exists."""
    by_id: dict[int, list[AuditEntry]] = {}
    for entry in entries:
        if entry.replacement_id is not None:
            by_id.setdefault(entry.replacement_id, []).append(entry)
    problems: list[ChainProblem] = []
    if not recorded.table_exists:
        if by_id:
            problems.append(ChainProblem(
                "replacement", None, f"the audit trail names {len(by_id)} replacement(s) but "
                "the table memras_replacement does not exist (dropped?)"))
        return problems
    known = {r.id for r in recorded.rows}
    for rep in recorded.rows:
        problems.extend(_one_replacement(rep, by_id.get(rep.id, [])))
    for rid in sorted(set(by_id) - known):
        problems.append(ChainProblem(
            "replacement", by_id[rid][0].seq,
            f"it records replacement #{rid}, which memras_replacement no longer holds "
            "(deleted?)"))
    return problems


def _one_replacement(rep: RecordedReplacement,
                     entries: list[AuditEntry]) -> list[ChainProblem]:
    name = f"replacement #{rep.id} ({rep.state})"
    if not entries:
        return [ChainProblem("missing", None, f"{name} has no audit rows: deleted, or memras "
                             "stopped between recording it and auditing it")]
    select_row = next((e for e in entries if e.action == "select"), None)
    if select_row is None:
        return [ChainProblem("missing", None, f"{name}: its select row is missing")]
    problems = []
    audited_dimm = (select_row.data.get("target") or {}).get("dimm_id")
    if audited_dimm is not None and audited_dimm != rep.dimm_id:
        problems.append(ChainProblem(
            "replacement", select_row.seq,
            f"{name} is of DIMM {rep.dimm_id!r}, but it audited {audited_dimm!r}"))
    state, before, last_step = "new", "new", None
    for entry in entries:
        if entry.data.get("outcome") == "ok" and "state" in entry.data:
            before, state, last_step = state, str(entry.data["state"]), entry.action
    # memras audits a step before it records the new state: a crash in between leaves
    # the row one state behind with that step still current (resume finishes it)
    crashed = rep.current_step == last_step and rep.state == before
    if rep.state != state and not crashed:
        problems.append(ChainProblem(
            "replacement", entries[-1].seq,
            f"replacement #{rep.id} is recorded as {rep.state!r}, but its audit rows end "
            f"in {state!r}"))
    return problems


def _decode(row: Any) -> tuple[dict[str, Any], ChainProblem | None]:
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
