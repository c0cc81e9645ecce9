"""Migration 3: memras_page_state of a v2 database becomes per module, rows kept."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

from memras.health.page_action import PageAction, PageOutcome, StorePageBook
from memras.store import Store
from memras.store.migrations import LATEST_VERSION

V2_PAGE_STATE = """CREATE TABLE memras_page_state (
    page BIGINT NOT NULL, dimm_id VARCHAR(128), action VARCHAR(20) NOT NULL,
    outcome VARCHAR(20) NOT NULL, steps TEXT, attempts INTEGER,
    hw_corrupted_before BIGINT, hw_corrupted_after BIGINT, time DATETIME NOT NULL,
    PRIMARY KEY (page))"""
OLD_PAGE, CURRENT_PAGE, NO_SLOT_PAGE = 0x100001000, 0x100002000, 0x3000


def v2_database(path: Path) -> None:
    """A database as memras left it before migration 3: slot PNP0C80:00 had module 1
    until 12:00, then module 2; three page states (old module, new module, no slot)."""
    Store.open(path).close()
    db = sqlite3.connect(path)
    db.execute("DROP TABLE memras_page_state")
    db.execute(V2_PAGE_STATE)
    db.execute("DELETE FROM memras_schema WHERE version = 3")
    db.executemany(
        "INSERT INTO memras_dimm_module (id, slot_id, identity, serial, part, manufacturer,"
        " installed_at, removed_at, replaced_by, source, replacement_id)"
        " VALUES (?, 'PNP0C80:00', ?, '', '', '', ?, ?, ?, ?, ?)",
        [(1, "location:PNP0C80:00", "2024-03-01 10:00:00.000000",
          "2024-03-01 12:00:00.000000", 2, "inventory", None),
         (2, "location:PNP0C80:00", "2024-03-01 12:00:00.000000", None, None,
          "replacement", 7)])
    db.executemany(
        "INSERT INTO memras_page_state (page, dimm_id, action, outcome, steps, attempts,"
        " hw_corrupted_before, hw_corrupted_after, time) VALUES (?, ?, 'soft', 'done',"
        " '[[\"soft\", \"done\"]]', 1, 0, 4096, ?)",
        [(OLD_PAGE, "PNP0C80:00", "2024-03-01 11:00:00.000000"),
         (CURRENT_PAGE, "PNP0C80:00", "2024-03-01 13:00:00.000000"),
         (NO_SLOT_PAGE, None, "2024-03-01 11:30:00.000000")])
    db.commit()
    db.close()


def test_v2_page_states_get_their_module_and_stay(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    v2_database(path)
    with Store.open(path) as store:
        db = sqlite3.connect(path)
        rows = db.execute("SELECT page, module_id, dimm_id, outcome FROM memras_page_state"
                          " ORDER BY time").fetchall()
        assert rows == [(OLD_PAGE, 1, "PNP0C80:00", "done"), (NO_SLOT_PAGE, 0, None, "done"),
                        (CURRENT_PAGE, 2, "PNP0C80:00", "done")]
        assert db.execute("SELECT max(version) FROM memras_schema").fetchone() == (LATEST_VERSION,)
        book = StorePageBook(store)
        assert book.get(OLD_PAGE) is None  # module 1 was replaced
        assert book.get(CURRENT_PAGE).outcome == "done"  # module 2 is in the slot
        assert book.get(NO_SLOT_PAGE).outcome == "done"  # no slot: kept as it was
        # The new module's own state for the old page is a new row; the old one stays.
        book.put(PageOutcome(OLD_PAGE, PageAction.SOFT, "EBUSY",
                             datetime(2024, 3, 1, 14, tzinfo=UTC), "PNP0C80:00"))
        assert book.get(OLD_PAGE).outcome == "EBUSY"
        assert [(o.page, o.outcome) for o in book.all() if o.page == OLD_PAGE] == \
            [(OLD_PAGE, "done"), (OLD_PAGE, "EBUSY")]
        db.close()
    Store.open(path).close()  # idempotent: nothing left to migrate


def test_fresh_database_has_the_per_module_table(tmp_path: Path) -> None:
    Store.open(tmp_path / "new.db").close()
    db = sqlite3.connect(tmp_path / "new.db")
    pk = [(name, pk) for _, name, _, _, _, pk in db.execute(
        "PRAGMA table_info(memras_page_state)") if pk]
    assert pk == [("page", 1), ("module_id", 2)]
