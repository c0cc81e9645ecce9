"""Issue #17's 23 tamper cases, each run on a plain SHA-256 chain and on an HMAC chain.

The trail is a real one: two replacements on the simulated demo server (P1-DIMMB1
replaced and closed, P2-DIMMA1 refused at preflight), written through the workflow with
an ``[audit]`` table in the config. Each case copies that database and its anchor file,
tampers with them the way someone with write access to the database (and in some cases
to the anchor file) would, and runs ``memras audit verify --json``: every case must exit
1 and name what it found. The ids count the cases (``t01``…``t23``).

Not caught, by design, and asserted so below:

- changes that alter no recorded fact (the payload JSON re-spaced, a VACUUM);
- on a plain SHA-256 chain only: a re-chain that also rewrites the anchor file (someone
  who can write both); the syslog line keeps the real head, and the HMAC chain catches it.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from memras.audit.chain import row_hash
from memras.cli import main
from memras.sim import profiles
from memras.store import Store
from memras.workflow.runner import Replacement, ReplaceOptions
from memras.workflow.states import State

FAST = {"backoff_initial_s": 0.01, "backoff_max_s": 0.02, "max_attempts": 4}
KEY = "c2f1e0d3b4a5968778695a4b3c2d1e0f"  # 32 bytes of one line, as `openssl rand -hex 16`
MODES = ("sha256", "hmac")


@dataclass(frozen=True)
class Trail:
    dir: Path
    mode: str

    @property
    def db(self) -> Path:
        return self.dir / "memras.db"

    @property
    def anchor(self) -> Path:
        return self.dir / "audit-head"  # the default beside a database named memras.db

    @property
    def config(self) -> Path:
        return self.dir / "memras.toml"

    @property
    def older(self) -> Path:
        return self.dir / "older.db"  # the database after the first replacement only


def _config(directory: Path, mode: str) -> Path:
    lines = ["[audit]", "syslog = false"]
    if mode == "hmac":
        key = directory / "audit.key"
        key.write_text(KEY + "\n")
        key.chmod(0o600)
        lines.append(f'key_file = "{key}"')
    path = directory / "memras.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def templates(tmp_path_factory) -> dict[str, Trail]:
    out = {}
    for mode in MODES:
        trail = Trail(tmp_path_factory.mktemp(f"trail-{mode}"), mode)
        config = str(_config(trail.dir, mode))
        host = profiles.create("demo", trail.dir / "root").host()
        with Store.open(trail.db) as store:
            rep = Replacement.start(host, store, "P1-DIMMB1",
                                    ReplaceOptions(operator="Ada", policy=FAST,
                                                   alerts_config=config))
            rep.run()
            assert rep.state is State.CLOSED
        shutil.copy(trail.db, trail.older)
        with Store.open(trail.db) as store:
            rep = Replacement.start(host, store, "P2-DIMMA1",
                                    ReplaceOptions(operator="Ada", alerts_config=config))
            rep.run()
            assert rep.state is State.REFUSED
        out[mode] = trail
    return out


@pytest.fixture(params=MODES)
def trail(request, templates, tmp_path) -> Trail:
    template = templates[request.param]
    copy = Trail(tmp_path / "t", template.mode)
    shutil.copytree(template.dir, copy.dir, ignore=shutil.ignore_patterns("root"))
    copy.config.write_text(template.config.read_text().replace(str(template.dir),
                                                               str(copy.dir)))
    return copy


def verify(trail: Trail, capsys, *extra: str) -> tuple[int, dict]:
    status = main(["audit", "verify", "--db", str(trail.db), "--config", str(trail.config),
                   "--json", *extra])
    out = capsys.readouterr().out
    return status, json.loads(out)


# --- what an attacker with write access to the database does ---------------------------

def sql(trail: Trail, *statements: str) -> None:
    conn = sqlite3.connect(trail.db)
    with conn:
        conn.execute("PRAGMA foreign_keys=OFF")
        for statement in statements:
            conn.execute(statement)
    conn.close()


def rows(trail: Trail) -> list[tuple[int, str, str, str]]:
    conn = sqlite3.connect(trail.db)
    out = conn.execute("SELECT seq, payload, prev_hash, hash FROM memras_audit "
                       "ORDER BY seq").fetchall()
    conn.close()
    return out


def count(trail: Trail) -> int:
    return len(rows(trail))


def set_payload(trail: Trail, seq: int, edit: Callable[[dict], None]) -> None:
    payload = json.loads(next(p for s, p, _, _ in rows(trail) if s == seq))
    edit(payload)
    conn = sqlite3.connect(trail.db)
    with conn:
        conn.execute("UPDATE memras_audit SET payload=? WHERE seq=?",
                     (json.dumps(payload, sort_keys=True, separators=(",", ":")), seq))
    conn.close()


def rechain(trail: Trail) -> None:
    """Recompute every hash as someone without the key can: plain SHA-256 (an HMAC row
    is rewritten as a plain one), and set the head table to match."""
    conn = sqlite3.connect(trail.db)
    prev = "0" * 64
    with conn:
        for seq, payload_text, _, _ in conn.execute(
                "SELECT seq, payload, prev_hash, hash FROM memras_audit ORDER BY seq"
        ).fetchall():
            payload = json.loads(payload_text)
            payload["chain"] = {**payload.get("chain", {}), "alg": "sha256"}
            payload["chain"].pop("key", None)
            digest = row_hash(prev, payload)
            conn.execute("UPDATE memras_audit SET payload=?, prev_hash=?, hash=? WHERE seq=?",
                         (json.dumps(payload, sort_keys=True, separators=(",", ":")),
                          prev, digest, seq))
            prev = digest
        n = conn.execute("SELECT count(*) FROM memras_audit").fetchone()[0]
        conn.execute("UPDATE memras_audit_head SET count=?, last_hash=? WHERE id=1", (n, prev))
    conn.close()


def fix_head(trail: Trail) -> None:
    last = rows(trail)[-1]
    sql(trail, f"UPDATE memras_audit_head SET count={count(trail)}, last_hash='{last[3]}'")


def forge_row(trail: Trail, seq: int, prev: str, action: str = "close") -> str:
    payload = {"time": "2026-12-06T10:00:00.000000+00:00", "replacement_id": 1,
               "action": action, "actor": {"uid": 0, "user": "root", "operator": "Eve",
                                           "host": "db7"},
               "data": {"outcome": "ok", "state": "closed"},
               "chain": {"alg": "sha256", "anchored": True}}
    digest = row_hash(prev, payload)
    conn = sqlite3.connect(trail.db)
    with conn:
        conn.execute("INSERT INTO memras_audit (seq, time, replacement_id, action, payload, "
                     "prev_hash, hash) VALUES (?, ?, 1, ?, ?, ?, ?)",
                     (seq, payload["time"], action,
                      json.dumps(payload, sort_keys=True, separators=(",", ":")), prev, digest))
    conn.close()
    return digest


def write_anchor_like_memras(trail: Trail) -> None:
    data = json.loads(trail.anchor.read_text())
    data.update(count=count(trail), head=rows(trail)[-1][3], alg="sha256")
    trail.anchor.write_text(json.dumps(data, sort_keys=True) + "\n")


# --- the 23 cases ----------------------------------------------------------------------

def t_edit_field(t: Trail) -> None:  # the refused replacement's outcome, in the payload
    last = count(t)
    set_payload(t, last, lambda p: p["data"].update(state="closed", outcome="ok"))


def t_edit_indexed_column(t: Trail) -> None:
    sql(t, "UPDATE memras_audit SET action='close' WHERE seq=3")


def t_edit_digest(t: Trail) -> None:
    sql(t, f"UPDATE memras_audit SET hash='{'ab' * 32}' WHERE seq=4")


def t_delete_first(t: Trail) -> None:
    sql(t, "DELETE FROM memras_audit WHERE seq=1")


def t_delete_middle(t: Trail) -> None:
    sql(t, "DELETE FROM memras_audit WHERE seq=5")


def t_delete_last(t: Trail) -> None:
    sql(t, f"DELETE FROM memras_audit WHERE seq={count(t)}")


def t_truncate_and_fix_head(t: Trail) -> None:
    sql(t, f"DELETE FROM memras_audit WHERE seq>{count(t) - 2}")
    fix_head(t)


def t_reorder_two(t: Trail) -> None:
    sql(t, "UPDATE memras_audit SET seq=-1 WHERE seq=3",
        "UPDATE memras_audit SET seq=3 WHERE seq=4",
        "UPDATE memras_audit SET seq=4 WHERE seq=-1")


def t_insert_forged_middle(t: Trail) -> None:
    n = count(t)
    for seq in range(n, 4, -1):  # make room at 5, top down (seq is the primary key)
        sql(t, f"UPDATE memras_audit SET seq={seq + 1} WHERE seq={seq}")
    forge_row(t, 5, rows(t)[3][3], action="offline_blocks")
    fix_head(t)


def t_append_forged_and_fix_head(t: Trail) -> None:
    forge_row(t, count(t) + 1, rows(t)[-1][3])
    fix_head(t)


def t_rechain_everything(t: Trail) -> None:
    set_payload(t, count(t), lambda p: p["data"].update(state="closed", outcome="ok"))
    rechain(t)


def t_drop_audit_table(t: Trail) -> None:
    sql(t, "DROP TABLE memras_audit")


def t_empty_audit_table(t: Trail) -> None:
    sql(t, "DELETE FROM memras_audit", "DELETE FROM memras_audit_head")


def t_drop_head_table(t: Trail) -> None:
    sql(t, "DROP TABLE memras_audit_head")


def t_drop_replacement_rows(t: Trail) -> None:
    sql(t, "DELETE FROM memras_replacement_block WHERE replacement_id=2",
        "DELETE FROM memras_replacement WHERE id=2")


def t_change_replacement_outcome(t: Trail) -> None:
    sql(t, "UPDATE memras_replacement SET state='closed' WHERE id=2")


def t_change_replacement_dimm(t: Trail) -> None:
    sql(t, "UPDATE memras_replacement SET dimm_id='P1-DIMMA1' WHERE id=1")


def t_swap_timestamps(t: Trail) -> None:
    (_, p2, _, _), (_, p3, _, _) = rows(t)[1:3]
    time2, time3 = json.loads(p2)["time"], json.loads(p3)["time"]
    set_payload(t, 2, lambda p: p.update(time=time3))
    set_payload(t, 3, lambda p: p.update(time=time2))
    sql(t, f"UPDATE memras_audit SET time='{time3}' WHERE seq=2",
        f"UPDATE memras_audit SET time='{time2}' WHERE seq=3")


def t_duplicate_row(t: Trail) -> None:
    sql(t, f"INSERT INTO memras_audit (seq, time, replacement_id, action, payload, "
           f"prev_hash, hash) SELECT {count(t) + 1}, time, replacement_id, action, payload, "
           "prev_hash, hash FROM memras_audit WHERE seq=2")
    fix_head(t)


def t_change_anchor_file(t: Trail) -> None:
    data = json.loads(t.anchor.read_text())
    data["count"] -= 1
    t.anchor.write_text(json.dumps(data) + "\n")


def t_delete_anchor_file(t: Trail) -> None:
    t.anchor.unlink()


def t_rollback_to_older_copy(t: Trail) -> None:
    shutil.copy(t.older, t.db)  # the anchor is newer: it holds the refused replacement


def t_delete_one_replacement_and_rechain(t: Trail) -> None:
    sql(t, "DELETE FROM memras_audit WHERE replacement_id=2")
    rechain(t)


CASES: list[tuple[str, Callable[[Trail], None], set[str]]] = [
    ("edit-field", t_edit_field, {"edited"}),
    ("edit-indexed-column", t_edit_indexed_column, {"edited"}),
    ("edit-digest", t_edit_digest, {"edited"}),
    ("delete-first-row", t_delete_first, {"deleted"}),
    ("delete-middle-row", t_delete_middle, {"deleted"}),
    ("delete-last-row", t_delete_last, {"truncated", "anchor"}),
    ("truncate-and-fix-head", t_truncate_and_fix_head, {"anchor"}),
    ("reorder-two-rows", t_reorder_two, {"reordered"}),
    ("insert-forged-row", t_insert_forged_middle, {"reordered"}),
    ("append-forged-row-fix-head", t_append_forged_and_fix_head, {"anchor"}),
    ("rechain-everything", t_rechain_everything, {"anchor"}),
    ("drop-audit-table", t_drop_audit_table, {"missing", "anchor"}),
    ("empty-audit-table", t_empty_audit_table, {"anchor", "missing"}),
    ("drop-head-table", t_drop_head_table, {"head"}),
    ("drop-replacement-rows", t_drop_replacement_rows, {"replacement"}),
    ("change-replacement-outcome", t_change_replacement_outcome, {"replacement"}),
    ("change-replacement-dimm", t_change_replacement_dimm, {"replacement"}),
    ("swap-timestamps", t_swap_timestamps, {"edited"}),
    ("duplicate-row", t_duplicate_row, {"reordered", "anchor"}),
    ("change-anchor-file", t_change_anchor_file, {"anchor"}),
    ("delete-anchor-file", t_delete_anchor_file, {"missing"}),
    ("rollback-db-to-older-copy", t_rollback_to_older_copy, {"anchor"}),
    ("delete-one-replacements-rows-rechain", t_delete_one_replacement_and_rechain,
     {"anchor", "missing"}),
]
assert len(CASES) == 23
# on an HMAC chain, a re-chain without the key is also seen row by row
HMAC_ALSO = {"rechain-everything": {"downgrade"},
             "delete-one-replacements-rows-rechain": {"downgrade"}}


@pytest.mark.parametrize(("name", "tamper", "expected"),
                         [pytest.param(n, f, e, id=f"t{i:02d}-{n}")
                          for i, (n, f, e) in enumerate(CASES, 1)])
def test_tamper_case_is_caught(trail: Trail, capsys, name: str,
                               tamper: Callable[[Trail], None], expected: set[str]) -> None:
    status, clean = verify(trail, capsys)
    assert status == 0 and clean["ok"] and clean["problems"] == [], clean
    tamper(trail)
    before = hashlib.sha256(trail.db.read_bytes()).hexdigest()
    status, report = verify(trail, capsys)
    kinds = {p["kind"] for p in report["problems"]}
    assert status == 1 and not report["ok"]
    assert expected <= kinds, report["problems"]
    if trail.mode == "hmac":
        assert HMAC_ALSO.get(name, set()) <= kinds, report["problems"]
    # verify changed nothing: no table recreated, not a byte written
    assert hashlib.sha256(trail.db.read_bytes()).hexdigest() == before


# --- what verify cannot and need not see ----------------------------------------------

def _respace_payloads(t: Trail) -> None:
    conn = sqlite3.connect(t.db)
    with conn:
        for seq, payload, _, _ in rows(t):
            conn.execute("UPDATE memras_audit SET payload=? WHERE seq=?",
                         (json.dumps(json.loads(payload), indent=1), seq))
    conn.close()


def _vacuum(t: Trail) -> None:
    conn = sqlite3.connect(t.db)
    conn.execute("VACUUM")
    conn.close()


@pytest.mark.parametrize("change", [pytest.param(_respace_payloads, id="n1-respaced-json"),
                                    pytest.param(_vacuum, id="n2-vacuum")])
def test_changes_that_alter_no_recorded_fact_pass(trail: Trail, capsys, change) -> None:
    change(trail)
    status, report = verify(trail, capsys)
    assert status == 0 and report["ok"], report


def test_rechain_with_the_anchor_rewritten_needs_the_key(trail: Trail, capsys) -> None:
    """Someone who can write the database AND the anchor file: a plain chain cannot show
    it (the journal's MEMRAS_AUDIT_HEAD lines still hold the real head); an HMAC chain
    can, since re-chaining needs the key."""
    t_rechain_everything(trail)  # the refused replacement now "closed" in the trail…
    t_change_replacement_outcome(trail)  # …and in memras_replacement
    write_anchor_like_memras(trail)
    status, report = verify(trail, capsys)
    if trail.mode == "sha256":
        assert status == 0, report
    else:
        assert status == 1 and "downgrade" in {p["kind"] for p in report["problems"]}


def test_a_crash_between_a_steps_audit_and_its_state_is_not_tampering(trail: Trail,
                                                                      capsys) -> None:
    """memras audits a step, then records the new state: killed in between, the
    replacement is one state behind with that step still current (resume re-runs it)."""
    sql(trail, "UPDATE memras_replacement SET state='verified', current_step='close' "
               "WHERE id=1")
    status, report = verify(trail, capsys)
    assert status == 0 and report["ok"], report
    sql(trail, "UPDATE memras_replacement SET current_step=NULL WHERE id=1")
    status, report = verify(trail, capsys)
    assert status == 1 and [p["kind"] for p in report["problems"]] == ["replacement"]
