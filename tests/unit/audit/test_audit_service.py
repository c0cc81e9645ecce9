"""The audit table on a real SQLite database: append, export, and tamper detection."""

from __future__ import annotations

import csv
import io
import json

import pytest
from sqlalchemy import text

from memras.audit.service import Actor, AuditTrail
from memras.errors import UsageError
from memras.store import Store


@pytest.fixture
def store(tmp_path):
    with Store.open(tmp_path / "audit.db") as s:
        yield s


@pytest.fixture
def engine(store):
    return store.engine


@pytest.fixture
def trail(store) -> AuditTrail:
    audit = AuditTrail(store)
    actor = Actor(uid=0, user="root", operator="Ada", host="db7")
    for i in range(1, 6):
        audit.append(f"step-{i}", {"blocks": [i], "serial": f"S{i}\x1b[2J"}, actor=actor,
                     replacement_id=1 if i < 4 else 2)
    return audit


def test_append_chains_and_verifies(trail: AuditTrail) -> None:
    entries = trail.list()
    assert [e.seq for e in entries] == [1, 2, 3, 4, 5]
    assert all(b.prev_hash == a.hash for a, b in zip(entries, entries[1:], strict=False))
    assert entries[0].actor["operator"] == "Ada"
    report = trail.verify()
    assert report.ok and report.rows == 5 and report.last_hash == entries[-1].hash
    assert [e.seq for e in trail.list(replacement_id=2)] == [4, 5]


def test_export_json_and_csv_hold_every_entry(trail: AuditTrail) -> None:
    data = json.loads(trail.export("json"))
    assert [d["action"] for d in data] == [f"step-{i}" for i in range(1, 6)]
    rows = list(csv.DictReader(io.StringIO(trail.export("csv"))))
    assert len(rows) == 5 and rows[2]["operator"] == "Ada"
    assert json.loads(rows[0]["data"])["blocks"] == [1]
    with pytest.raises(UsageError, match="xml"):
        trail.export("xml")


def test_show_unknown_entry_is_a_clear_error(trail: AuditTrail) -> None:
    assert trail.show(3).action == "step-3"
    with pytest.raises(UsageError, match="no audit entry 99"):
        trail.show(99)


def test_edited_row_is_caught(trail: AuditTrail, engine) -> None:
    with engine.begin() as conn:
        payload = conn.execute(text("SELECT payload FROM memras_audit WHERE seq=2")).scalar()
        conn.execute(text("UPDATE memras_audit SET payload=:p WHERE seq=2"),
                     {"p": payload.replace('"blocks":[2]', '"blocks":[7]')})
    problems = trail.verify().problems
    assert [(p.kind, p.seq) for p in problems] == [("edited", 2)]


def test_edited_indexed_column_is_caught(trail: AuditTrail, engine) -> None:
    with engine.begin() as conn:
        conn.execute(text("UPDATE memras_audit SET action='nothing' WHERE seq=4"))
    assert [(p.kind, p.seq) for p in trail.verify().problems] == [("edited", 4)]


def test_deleted_row_is_caught(trail: AuditTrail, engine) -> None:
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM memras_audit WHERE seq=3"))
    problems = trail.verify().problems
    # the chain names the gap; the anchor file (5 rows) sees the database hold 4
    assert [(p.kind, p.seq) for p in problems] == [("deleted", 4), ("anchor", None)]


def test_reordered_rows_are_caught(trail: AuditTrail, engine) -> None:
    with engine.begin() as conn:
        conn.execute(text("UPDATE memras_audit SET seq=100 WHERE seq=2"))
        conn.execute(text("UPDATE memras_audit SET seq=2 WHERE seq=3"))
        conn.execute(text("UPDATE memras_audit SET seq=3 WHERE seq=100"))
    problems = trail.verify().problems
    assert problems and {p.kind for p in problems} == {"reordered"}
    assert {2, 3} <= {p.seq for p in problems}


def test_truncated_tail_is_caught(trail: AuditTrail, engine) -> None:
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM memras_audit WHERE seq>=4"))
    problems = trail.verify().problems
    assert [p.kind for p in problems] == ["truncated", "anchor"]


def test_expected_head_from_elsewhere_is_compared(trail: AuditTrail) -> None:
    head = trail.verify().last_hash
    assert trail.verify(expect_head=head).ok
    assert not trail.verify(expect_head="f" * 64).ok
