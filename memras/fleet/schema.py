"""The central schema: the local tables as they are, each row keyed by (host, local id).

One schema, two dialects: every central table is *derived* from the SQLAlchemy model a
host writes locally (:data:`SHIPPED` names them), column for column and type for type,
with two columns in front: ``host_id`` (the machine id, :mod:`.identity`) and
``local_id`` (the row's key on that host). ``(host_id, local_id)`` is the primary key,
which is what makes shipping idempotent: a row sent twice is an ``ON CONFLICT DO
NOTHING`` (or, for the few mutable tables, an update to the same values). A column added
to a local model appears in its central table with no second declaration to keep in step.

``fleet_host`` is the only table of the central store's own: one row per host, with
its name, memras version, last contact and backlog, rewritten by each shipping pass.

Migrations: the same numbered-migration mechanism as the local store
(:mod:`memras.store.migrations`, which says why not Alembic), recorded in
``fleet_schema``. Migration 1 creates the tables as first released; a later column is a
new numbered ``ALTER TABLE``. The shipper never migrates: ``memras fleet init`` does,
run once by the database's owner, so hosts can have insert-only roles.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    inspect,
    select,
)

import memras.alerts.models as alerts_models
import memras.audit.models as audit_models
import memras.health.models as health_models
import memras.store.models as store_models
import memras.workflow.models as workflow_models
from memras.store.migrations import Migration

METADATA = MetaData()


@dataclass(frozen=True)
class Shipped:
    """One local table the shipper copies. ``key``: its local primary key (ascending
    for new rows). ``mutable``: rows change after they are written (an alert acked, a
    replacement finishing, a module removed), so the whole (small) table is re-sent when
    its content changed and the central row updated; append-only tables are sent from
    a cursor on ``key`` and a re-sent row is a no-op."""

    local: Table
    key: str
    mutable: bool = False

    @property
    def name(self) -> str:
        return "fleet_" + self.local.name.removeprefix("memras_")


# In shipping order: the errors first (the bulk), then what refers to them.
SHIPPED: tuple[Shipped, ...] = (
    Shipped(store_models.ErrorRow.__table__, "id"),
    Shipped(health_models.DimmModuleRow.__table__, "id", mutable=True),
    Shipped(health_models.HealthVerdictRow.__table__, "id"),
    Shipped(alerts_models.AlertRow.__table__, "id", mutable=True),
    Shipped(workflow_models.ReplacementRow.__table__, "id", mutable=True),
    Shipped(audit_models.AuditRow.__table__, "seq"),
)
# Indexes the fleet's reads need, by central table (host_id, local_id is the key).
_INDEXES: dict[str, tuple[tuple[str, ...], ...]] = {
    "fleet_error": (("time",), ("host_id", "dimm_id")),
    "fleet_health_verdict": (("host_id", "dimm_id", "local_id"),),
    "fleet_dimm_module": (("host_id", "slot_id"),),
}


def _central_table(shipped: Shipped) -> Table:
    columns: list[Column[Any]] = [
        Column("host_id", String(64), primary_key=True),
        Column("local_id", BigInteger, primary_key=True, autoincrement=False)]
    columns += [Column(c.name, c.type, nullable=True) for c in shipped.local.columns
                if c.name != shipped.key]
    table = Table(shipped.name, METADATA, *columns)
    for n, cols in enumerate(_INDEXES.get(shipped.name, ())):
        Index(f"ix_{shipped.name}_{n}", *(table.c[c] for c in cols))
    return table


CENTRAL: dict[str, Table] = {s.local.name: _central_table(s) for s in SHIPPED}

HOSTS = Table(
    "fleet_host", METADATA,
    Column("host_id", String(64), primary_key=True),
    Column("hostname", Text, nullable=False),
    Column("memras_version", String(32), nullable=False),
    Column("first_contact", DateTime, nullable=False),  # naive UTC, as every memras time
    Column("last_contact", DateTime, nullable=False),
    Column("backlog", BigInteger, nullable=False),  # rows not yet shipped after the pass
    Column("dropped_errors", BigInteger, nullable=False),  # the backlog policy's losses
)

SCHEMA_TABLE = Table(
    "fleet_schema", METADATA,
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("description", Text, nullable=False),
    Column("applied", DateTime, nullable=False),
)


def _create_tables(conn: Connection) -> None:
    METADATA.create_all(conn, checkfirst=True)


MIGRATIONS: list[Migration] = [
    Migration(1, "fleet tables: host, and error, dimm_module, health_verdict, alert, "
                 "replacement, audit keyed by (host_id, local_id)", _create_tables),
]
LATEST_VERSION = MIGRATIONS[-1].version


def migrate(conn: Connection) -> list[int]:
    """Apply every central migration not yet recorded; the numbers applied now."""
    SCHEMA_TABLE.create(conn, checkfirst=True)
    done = set(conn.scalars(select(SCHEMA_TABLE.c.version)))
    newly = []
    for migration in MIGRATIONS:
        if migration.version in done:
            continue
        migration.apply(conn)
        conn.execute(SCHEMA_TABLE.insert().values(
            version=migration.version, description=migration.description,
            applied=datetime.now(UTC).replace(tzinfo=None)))
        newly.append(migration.version)
    return newly


def schema_problem(conn: Connection) -> str | None:
    """Why this memras cannot ship to / read this central database; None when it can."""
    if not inspect(conn).has_table(SCHEMA_TABLE.name):
        return "no fleet schema in this database"
    versions = set(conn.scalars(select(SCHEMA_TABLE.c.version)))
    if max(versions, default=0) > LATEST_VERSION:
        return (f"the fleet schema is newer (version {max(versions)}) than this memras knows "
                f"({LATEST_VERSION}): upgrade memras on this host")
    if LATEST_VERSION not in versions:
        return (f"the fleet schema is older (version {max(versions, default=0)}) than this "
                f"memras needs ({LATEST_VERSION}): run `memras fleet init` as its owner")
    return None
