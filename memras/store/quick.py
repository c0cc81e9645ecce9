"""The unfiltered summary read straight from a SQLite file, without SQLAlchemy.

``memras summary`` is mostly process start-up: the counts it prints are a few dozen
rows of ``memras_error_count``, but :meth:`Store.open` first imports SQLAlchemy
(~0.3 s), creates the engine and runs the migration check in a write transaction.
For a read of a database that is already current none of that is needed, so on a
SQLite file this module opens it read-only with the standard ``sqlite3`` module and
reads the counts table directly.

It answers only when that is certainly right: a SQLite path or ``sqlite:///`` URL
whose file exists and whose ``memras_schema`` lists every migration this memras
knows (so the tables have the shape the query expects). Otherwise it returns None and
the caller takes the generic path (:meth:`Store.summary`), which works on any
backend and migrates an old database first.
"""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from pathlib import Path

from memras.store.results import Summary, SummaryGroup

# Must equal migrations.LATEST_VERSION (checked where migrations.py is imported, and in
# tests); kept here so this module needs no SQLAlchemy import.
SCHEMA_VERSION = 9

_COUNTS = ("SELECT type, label, mc, top_layer, middle_layer, lower_layer, events, errors "
           "FROM memras_error_count")
# The CXL records that are not media errors (those are memras_error rows) by type and
# memdev, one error a record but poison, one a poisoned DPA (a list read again prints
# every entry again): memras.store.cxl.cxl_summary_groups in SQL (a test keeps the two
# equal).
_CXL_COUNTS = ("SELECT error_type, memdev, -1, -1, -1, -1, count(*), count(DISTINCT CASE "
               "WHEN event = 'poison' THEN 'p' || coalesce(CAST(dpa AS VARCHAR), '') "
               "ELSE 'r' || CAST(id AS VARCHAR) END) "
               "FROM memras_cxl_event WHERE event NOT IN ('general_media', 'dram') "
               "GROUP BY error_type, memdev")


def sqlite_path(url_or_path: str) -> Path | None:
    """The file of a SQLite database URL or bare path; None for anything else."""
    text = str(url_or_path)
    if "://" in text:
        if not text.startswith("sqlite:///") or "?" in text:
            return None
        text = text.removeprefix("sqlite:///")
    if not text or text == ":memory:":
        return None
    return Path(text).expanduser().absolute()


def readonly_uri(path: Path) -> str:
    """The SQLite URI that opens ``path`` for reading only, creating no file beside it.

    ``mode=ro`` alone is not enough for a WAL database (memras's): its readers need the
    ``-shm`` index. While a writer has the database open its ``-wal`` and ``-shm`` exist
    and a ``mode=ro`` reader uses them, read-only if it may not write them (SQLite
    >= 3.22), so it sees the writer's commits. When no connection has it open, SQLite
    has removed both, and a ``mode=ro`` reader would have to create them: it fails for a
    user who cannot write the directory ("attempt to write a readonly database"), and
    leaves the two files behind for one who can. Then — a WAL database with no ``-wal``
    file, so every commit is in the main file — the URI adds ``immutable=1``: SQLite
    reads the file without locks or side files. The cost: a writer starting during that
    one read is not seen, and a checkpoint into the file during it could fail the read
    ("malformed"); re-running the command reads it through the writer's files. A
    read-only Store opens a connection per read (NullPool), so a long-lived reader (the
    TUI) decides again on each read. A database in rollback-journal mode is read with
    ``mode=ro`` alone (its readers create nothing).
    """
    query = "mode=ro"
    if not Path(f"{path}-wal").exists() and _is_wal_database(path):
        query += "&immutable=1"
    return f"{path.as_uri()}?{query}"


def _is_wal_database(path: Path) -> bool:
    """The file's header says WAL (bytes 18 and 19 are 2: SQLite's file format)."""
    try:
        with path.open("rb") as f:
            header = f.read(20)
    except OSError:
        return False  # the connection's own open reports it
    return len(header) == 20 and header[18] == 2 and header[19] == 2


def read_summary(url_or_path: str) -> Summary | None:
    """Per-DIMM counts like :meth:`Store.summary` (no filters), or None: use the Store."""
    path = sqlite_path(url_or_path)
    if path is None or not path.is_file():
        return None
    try:
        conn = sqlite3.connect(readonly_uri(path), uri=True)
    except sqlite3.Error:
        return None
    try:
        conn.execute("PRAGMA busy_timeout=5000")
        versions = {v for (v,) in conn.execute("SELECT version FROM memras_schema")}
        if not set(range(1, SCHEMA_VERSION + 1)) <= versions:
            return None  # an older database: the Store says what to do
        rows = conn.execute(_COUNTS).fetchall() + conn.execute(_CXL_COUNTS).fetchall()
    except sqlite3.Error:
        return None
    finally:
        conn.close()
    return Summary.from_groups(merge_groups([summary_group(*row) for row in rows]))


def merge_groups(groups: list[SummaryGroup]) -> list[SummaryGroup]:
    """Summary lines in the order every summary prints them (type, label, location),
    one a line: a memdev's media errors and its other records (both label ``memN``, no
    location) are added up."""
    merged: dict[tuple[str, str, str], SummaryGroup] = {}
    for g in groups:
        key = (g.type, g.label or "", g.location)
        seen = merged.get(key)
        merged[key] = g if seen is None else replace(
            seen, events=seen.events + g.events, errors=seen.errors + g.errors)
    return [merged[key] for key in sorted(merged)]


def _unknown(value: int) -> int | None:
    return None if value == -1 else value


def summary_group(type: str, label: str, mc: int, top: int, mid: int, low: int, events: int,
           errors: int | None) -> SummaryGroup:
    return SummaryGroup(type=type, label=label or None, mc=_unknown(mc),
                        top_layer=_unknown(top), middle_layer=_unknown(mid),
                        lower_layer=_unknown(low), events=int(events), errors=int(errors or 0))
