"""Numbered schema migrations, applied in order inside one transaction at open.

Why not Alembic: memras opens its database from a CLI, a daemon and a TUI on machines
that may have no network and no writable site-packages; migrations must run by
themselves at ``Store.open`` with no separate tool, script directory or env.py. A
numbered list of small Python functions does that in ~60 lines. Each applied number
is recorded in ``memras_schema``; a migration is never edited once released — a
schema change is a new entry (``ALTER TABLE`` / new table), so an old database and a
fresh one end up identical. Migration 1 creates the tables as first released.

rasdaemon's own tables are not "ours" to migrate: they are created with rasdaemon's
literal DDL (``CREATE TABLE IF NOT EXISTS``), never altered, only on SQLite.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Connection, select

from memras.store import quick, rasdaemon_schema
from memras.store.models import STORE_TABLES, SchemaRow


@dataclass(frozen=True)
class Migration:
    version: int
    description: str
    apply: Callable[[Connection], None]


def _create_store_tables(conn: Connection) -> None:
    SchemaRow.metadata.create_all(conn, tables=STORE_TABLES, checkfirst=True)


def _create_rasdaemon_tables(conn: Connection) -> None:
    if conn.dialect.name != "sqlite":
        return  # rasdaemon's format is a SQLite file; other backends keep memras tables only
    for statement in rasdaemon_schema.all_create_statements():
        conn.exec_driver_sql(statement)


MIGRATIONS: list[Migration] = [
    Migration(1, "memras tables: error, error_count, cursor, gap, skipped, schema",
              _create_store_tables),
    Migration(2, f"rasdaemon v{rasdaemon_schema.RASDAEMON_SCHEMA_VERSION} tables "
                 "(literal DDL)", _create_rasdaemon_tables),
]

LATEST_VERSION = MIGRATIONS[-1].version
# memras.store.quick reads current databases without SQLAlchemy and must know the number.
assert LATEST_VERSION == quick.SCHEMA_VERSION, "update memras.store.quick.SCHEMA_VERSION"


def applied_versions(conn: Connection) -> set[int]:
    SchemaRow.__table__.create(conn, checkfirst=True)
    return set(conn.scalars(select(SchemaRow.version)))


def migrate(conn: Connection) -> list[int]:
    """Apply every migration not yet recorded; returns the numbers applied now."""
    done = applied_versions(conn)
    newly: list[int] = []
    for migration in MIGRATIONS:
        if migration.version in done:
            continue
        migration.apply(conn)
        conn.execute(SchemaRow.__table__.insert().values(
            version=migration.version, description=migration.description,
            applied=datetime.now(UTC).replace(tzinfo=None)))
        newly.append(migration.version)
    return newly
