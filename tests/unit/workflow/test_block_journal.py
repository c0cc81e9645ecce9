"""offline_blocks' block rows: committed "offlining" before every kernel write, one
transaction per block, and the rows read back through the ORM as before."""

from __future__ import annotations

import sqlite3

import pytest

from memras.sim import actions, profiles
from memras.store import Store
from memras.workflow import journal
from memras.workflow.runner import Replacement, ReplaceOptions
from memras.workflow.states import State

FAST = {"backoff_initial_s": 0.01, "backoff_max_s": 0.02, "max_attempts": 3}
BLOCKS = [32, 33, 34, 35]  # PNP0C80:00 of the qemu-guest profile


@pytest.fixture
def store(tmp_path):
    with Store.open(tmp_path / "memras.db") as s:
        yield s


def _committed(db) -> dict[int, str]:
    """What another process would read now (committed rows only)."""
    with sqlite3.connect(db) as conn:
        return dict(conn.execute("SELECT block, status FROM memras_replacement_block "
                                 "WHERE role = 'old'").fetchall())


def _spy(host, db, seen: list[tuple[int, str, dict[int, str]]]) -> None:
    """Record the committed rows at the moment of each kernel write."""
    real = host.memory.set_state

    def set_state(index: int, state: str) -> None:
        seen.append((index, state, _committed(db)))
        real(index, state)

    host.memory.set_state = set_state


def _start(tmp_path, store, **opts):
    srv = profiles.create("qemu-guest", tmp_path / "root")
    host = srv.host()
    rep = Replacement.start(host, store, "PNP0C80:00",
                            ReplaceOptions(reserve_bytes=1 << 28, policy=FAST, **opts))
    return srv, host, rep


def _commits(monkeypatch) -> list[int]:
    counts: list[int] = []
    real = journal.BlockJournal._commit

    def counting(self, rows):
        counts.append(len(rows))
        real(self, rows)

    monkeypatch.setattr(journal.BlockJournal, "_commit", counting)
    return counts


def test_each_write_finds_its_row_committed_offlining(tmp_path, store, monkeypatch) -> None:
    _srv, host, rep = _start(tmp_path, store)
    seen: list[tuple[int, str, dict[int, str]]] = []
    commits = _commits(monkeypatch)
    _spy(host, tmp_path / "memras.db", seen)
    while rep.state is not State.OFFLINE:
        rep.next_step()
    offline_writes = [(i, rows) for i, state, rows in seen if state == "offline"]
    assert [i for i, _ in offline_writes] == BLOCKS
    for n, (index, rows) in enumerate(offline_writes):
        assert rows[index] == "offlining"
        assert all(rows[b] == "offline" for b in BLOCKS[:n])  # earlier results are in
        assert all(rows[b] == "online" for b in BLOCKS[n + 1:])
    # one transaction per block (the previous result rides along) plus the last result
    assert commits == [1, 2, 2, 2, 1]
    assert {b.block: (b.status, b.attempts, b.last_error) for b in rep.blocks("old")} == \
        {b: ("offline", 1, None) for b in BLOCKS}
    assert all(b.updated_at is not None for b in rep.blocks("old"))  # ORM reads the text
    rep.abort()


def test_a_refused_block_is_recorded_at_once(tmp_path, store, monkeypatch) -> None:
    srv, host, rep = _start(tmp_path, store, on_failure="leave")
    actions.set_busy(srv.root, 34, 1000)  # EBUSY on every attempt
    seen: list[tuple[int, str, dict[int, str]]] = []
    _spy(host, tmp_path / "memras.db", seen)
    outcome = rep.next_step()
    while outcome.step != "offline_blocks":
        outcome = rep.next_step()
    assert not outcome.ok
    rows = {b.block: b for b in rep.blocks("old")}
    assert rows[32].status == rows[33].status == "offline"
    assert rows[34].status == "online" and rows[34].attempts == FAST["max_attempts"]
    assert "EBUSY" in (rows[34].last_error or "")
    assert rows[35].status == "online"
    assert [i for i, state, _ in seen if state == "offline"] == [32, 33, 34, 34, 34]


def test_already_offline_blocks_are_recorded_without_a_write(tmp_path, store) -> None:
    _srv, host, rep = _start(tmp_path, store)
    host.memory.set_state(32, "offline")  # as after a crash, before --resume
    seen: list[tuple[int, str, dict[int, str]]] = []
    _spy(host, tmp_path / "memras.db", seen)
    while rep.state is not State.OFFLINE:
        rep.next_step()
    assert [i for i, state, _ in seen if state == "offline"] == [33, 34, 35]
    assert {b.block: b.status for b in rep.blocks("old")} == {b: "offline" for b in BLOCKS}
    rep.abort()
