"""The pure hash chain: an edited, a deleted, a reordered and a truncated row are named."""

from __future__ import annotations

import dataclasses

from memras.audit.chain import GENESIS_HASH, ChainRow, row_hash, verify_chain


def build(n: int) -> list[ChainRow]:
    rows, prev = [], GENESIS_HASH
    for seq in range(1, n + 1):
        payload = {"step": f"s{seq}", "blocks": [seq, seq + 1], "who": "ünï"}
        h = row_hash(prev, payload)
        rows.append(ChainRow(seq, prev, h, payload))
        prev = h
    return rows


def check(rows: list[ChainRow], count: int = 5, head: str | None = None):
    original = build(5)
    return verify_chain(rows, head_count=count, head_hash=head or original[-1].hash)


def test_intact_chain_verifies() -> None:
    report = check(build(5))
    assert report.ok and report.rows == 5


def test_edited_row_is_named() -> None:
    rows = build(5)
    rows[2] = dataclasses.replace(rows[2], payload={**rows[2].payload, "step": "forged"})
    report = check(rows)
    assert [(p.kind, p.seq) for p in report.problems] == [("edited", 3)]


def test_deleted_middle_row_is_named() -> None:
    rows = build(5)
    del rows[1]
    report = check(rows)
    kinds = [(p.kind, p.seq) for p in report.problems]
    assert kinds == [("deleted", 3)]
    assert "2" in report.problems[0].detail


def test_reordered_rows_are_named_not_called_edited() -> None:
    rows = build(5)
    rows[2], rows[3] = (dataclasses.replace(rows[3], seq=3), dataclasses.replace(rows[2], seq=4))
    report = check(rows)
    assert {p.kind for p in report.problems} == {"reordered"}
    assert {p.seq for p in report.problems} >= {3, 4}


def test_truncation_at_the_end_is_caught_by_the_head() -> None:
    rows = build(5)[:3]
    report = check(rows)
    assert [p.kind for p in report.problems] == ["truncated"]
    assert "2 row(s)" in report.problems[0].detail


def test_hash_depends_on_previous_hash_and_canonical_order() -> None:
    assert row_hash(GENESIS_HASH, {"a": 1, "b": 2}) == row_hash(GENESIS_HASH, {"b": 2, "a": 1})
    assert row_hash(GENESIS_HASH, {"a": 1}) != row_hash("1" * 64, {"a": 1})
