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

from sqlalchemy import Connection, inspect, select

from memras.store import cxl, quick, rasdaemon_schema
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


def _page_state_per_module(conn: Connection) -> None:
    """``memras_page_state`` keyed by (page, module_id) instead of page alone.

    A module that replaced another sits at the same physical addresses; with the
    page alone as key its page states would be the old module's (and writing them
    would overwrite the old module's audit rows). SQLite cannot change a primary
    key, so the table is rebuilt: created under a new name in the v3 shape, the rows
    copied, each given the registry id of the module that held its slot at its time
    (0 when the registry does not know), the old table dropped, the new renamed.
    A database without the table (fresh) gets it in this shape from ``create_all``.
    """
    from sqlalchemy import (
        BigInteger,
        Column,
        DateTime,
        Integer,
        MetaData,
        String,
        Table,
        Text,
        inspect,
    )

    tables = set(inspect(conn).get_table_names())
    if "memras_page_state" not in tables:
        return
    if "module_id" in {c["name"] for c in inspect(conn).get_columns("memras_page_state")}:
        return
    new = Table(  # frozen: the table as migration 3 leaves it
        "memras_page_state_v3", MetaData(),
        Column("page", BigInteger, primary_key=True, autoincrement=False),
        Column("module_id", Integer, primary_key=True, autoincrement=False),
        Column("dimm_id", String(128)), Column("action", String(20), nullable=False),
        Column("outcome", String(20), nullable=False), Column("steps", Text),
        Column("attempts", Integer), Column("hw_corrupted_before", BigInteger),
        Column("hw_corrupted_after", BigInteger), Column("time", DateTime, nullable=False))
    new.create(conn)
    modules: dict[str, list[tuple[int, datetime | None]]] = {}
    if "memras_dimm_module" in tables:
        for mid, slot, removed in conn.exec_driver_sql(
                "SELECT id, slot_id, removed_at FROM memras_dimm_module "
                "ORDER BY installed_at, id"):
            modules.setdefault(slot, []).append((mid, _naive(removed)))
    columns = ("page", "dimm_id", "action", "outcome", "steps", "attempts",
               "hw_corrupted_before", "hw_corrupted_after", "time")
    rows = [dict(zip(columns, r, strict=True)) for r in conn.exec_driver_sql(
        f"SELECT {', '.join(columns)} FROM memras_page_state")]
    for row in rows:  # the registry's module_at: the first module not removed by then
        at = _naive(row["time"])
        row["time"] = at
        row["module_id"] = next((mid for mid, removed in modules.get(row["dimm_id"], [])
                                 if removed is None or at is None or at < removed), 0)
    if rows:
        conn.execute(new.insert(), rows)
    conn.exec_driver_sql("DROP TABLE memras_page_state")
    conn.exec_driver_sql("ALTER TABLE memras_page_state_v3 RENAME TO memras_page_state")


def _verdict_reached_at(conn: Connection) -> None:
    """``memras_health_verdict.reached_at``: when a verdict's state was reached (the
    event time), which SINCE shows; a row's ``time`` is when it was recorded. Rows
    written before have it NULL and are read as reached at their ``time``."""
    from sqlalchemy import inspect

    if "memras_health_verdict" not in set(inspect(conn).get_table_names()):
        return  # a fresh database: create_all makes the table with the column
    if "reached_at" in {c["name"] for c in inspect(conn).get_columns("memras_health_verdict")}:
        return
    conn.exec_driver_sql("ALTER TABLE memras_health_verdict ADD COLUMN reached_at DATETIME")


def _error_flags(conn: Connection) -> None:
    """``memras_error.flags``: the values a record had out of their domain, clamped or
    blanked (memras.store.bounds). Rows written before read as unflagged (NULL)."""
    from sqlalchemy import inspect

    if "flags" in {c["name"] for c in inspect(conn).get_columns("memras_error")}:
        return  # a fresh database: create_all (migration 1) made the column
    conn.exec_driver_sql("ALTER TABLE memras_error ADD COLUMN flags TEXT")


def _error_time_source(conn: Connection) -> None:
    """``memras_error.time_source``: where a row's time came from (records.TimeSource).
    Rows written before read as NULL: their clock was not recorded."""
    from sqlalchemy import inspect

    if "time_source" in {c["name"] for c in inspect(conn).get_columns("memras_error")}:
        return  # a fresh database: create_all (migration 1) made the column
    conn.exec_driver_sql("ALTER TABLE memras_error ADD COLUMN time_source VARCHAR(16)")


def _error_texts(conn: Connection) -> None:
    """``memras_error.texts``: message, driver detail and raw packed and compressed
    (memras.store.packed_texts). Rows written before keep their plain columns (NULL
    here) and read as before; they are not rewritten (a long write lock on a big
    database, for bytes that retention or a VACUUM after it reclaims anyway)."""
    from sqlalchemy import inspect

    if "texts" in {c["name"] for c in inspect(conn).get_columns("memras_error")}:
        return  # a fresh database: create_all (migration 1) made the column
    conn.exec_driver_sql("ALTER TABLE memras_error ADD COLUMN texts BLOB")


def _error_mce_companion(conn: Connection) -> None:
    """``memras_error.rasdaemon_mce_id``: the mce_record row written beside a linked
    mc_event (an EDAC decode with its MCE registers), so retention deletes it with the
    row. Rows from before have it NULL: their companions are not known and stay."""
    from sqlalchemy import inspect

    if "rasdaemon_mce_id" in {c["name"] for c in inspect(conn).get_columns("memras_error")}:
        return  # a fresh database: create_all (migration 1) made the column
    conn.exec_driver_sql("ALTER TABLE memras_error ADD COLUMN rasdaemon_mce_id INTEGER")


def _naive(value: object) -> datetime | None:
    """A DateTime column read through the driver (SQLite returns text) as naive UTC."""
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value)).replace(tzinfo=None)


MIGRATIONS: list[Migration] = [
    Migration(1, "memras tables: error, error_count, cursor, gap, skipped, schema",
              _create_store_tables),
    Migration(2, f"rasdaemon v{rasdaemon_schema.RASDAEMON_SCHEMA_VERSION} tables "
                 "(literal DDL)", _create_rasdaemon_tables),
    Migration(3, "memras_page_state per module: primary key (page, module_id)",
              _page_state_per_module),
    Migration(4, "memras_health_verdict.reached_at", _verdict_reached_at),
    Migration(5, "memras_error.flags: values clamped or blanked", _error_flags),
    Migration(6, "memras_error.time_source: where a row's time came from",
              _error_time_source),
    Migration(7, "memras_error.texts: message, detail and raw packed, compressed",
              _error_texts),
    Migration(8, "memras_error.rasdaemon_mce_id: an mc_event's mce_record companion",
              _error_mce_companion),
    Migration(9, "memras_cxl_event: CXL events with the device's own fields",
              cxl.create_table),
]

LATEST_VERSION = MIGRATIONS[-1].version
# memras.store.quick reads current databases without SQLAlchemy and must know the number.
assert LATEST_VERSION == quick.SCHEMA_VERSION, "update memras.store.quick.SCHEMA_VERSION"


def applied_versions(conn: Connection) -> set[int]:
    SchemaRow.__table__.create(conn, checkfirst=True)
    return set(conn.scalars(select(SchemaRow.version)))


def recorded_versions(conn: Connection) -> set[int] | None:
    """The migrations recorded in the database, or None when it has no ``memras_schema``
    (not a memras database, or never opened by a writer). Reads only: for read-only opens."""
    if not inspect(conn).has_table(SchemaRow.__tablename__):
        return None
    return set(conn.scalars(select(SchemaRow.version)))


def schema_problem(versions: set[int] | None) -> tuple[str, str] | None:
    """Why a reader of this memras cannot use a database with these migrations recorded,
    as (message, what to do); None when it is current."""
    known = {m.version for m in MIGRATIONS}
    if versions is None:
        return ("not a memras database yet (no memras_schema table)",
                "run `memras import` or `memras watch` once to create it, or pass --db")
    newer = sorted(versions - known)
    if newer:
        return (f"written by a newer memras (schema version {max(versions)}; this memras "
                f"knows up to {LATEST_VERSION})",
                "upgrade memras on this machine to read it")
    missing = sorted(known - versions)
    if missing:
        return (f"written by an older memras (schema version {max(versions, default=0)}, "
                f"this memras needs {LATEST_VERSION})",
                "run `memras watch --once` (or any `memras import`) once as the database's "
                "owner to upgrade it; readers never change the database")
    return None


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
