"""The audit head outside the database (anchor file, syslog line, hooks) and the HMAC key."""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
from pathlib import Path

import pytest

from memras.audit import anchor as anchor_mod
from memras.audit.anchor import AuditSettings, Head
from memras.audit.chain import row_hash
from memras.audit.service import Actor, AuditTrail
from memras.cli import main
from memras.errors import UsageError
from memras.sim import profiles
from memras.store import Store
from memras.workflow.runner import Replacement, ReplaceOptions

ACTOR = Actor(uid=0, user="root", operator="Ada", host="db7")
KEY = "0123456789abcdef0123456789abcdef"


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "audit.db"


def quiet(**kw) -> AuditSettings:
    return AuditSettings(syslog=False, **kw)


def key_file(tmp_path: Path, text: str = KEY, mode: int = 0o600) -> Path:
    path = tmp_path / "audit.key"
    path.write_text(text + "\n")
    path.chmod(mode)
    return path


def fill(store: Store, settings: AuditSettings, n: int = 3) -> AuditTrail:
    trail = AuditTrail(store, settings)
    for i in range(n):
        trail.append(f"step-{i}", {"i": i}, actor=ACTOR, replacement_id=None)
    return trail


def test_default_anchor_paths() -> None:
    settings = AuditSettings()
    assert settings.anchor_path(Path("/var/lib/memras/memras.db")) == \
        Path("/var/lib/memras/audit-head")
    assert settings.anchor_path(Path("/srv/x/a.db")) == Path("/srv/x/a.db.audit-head")
    assert settings.anchor_path(None) is None
    assert AuditSettings(anchor_file=Path("/etc/h")).anchor_path(Path("/srv/a.db")) == \
        Path("/etc/h")


def test_anchor_file_is_0640_atomic_and_holds_the_head(db: Path) -> None:
    old = os.umask(0)
    try:
        with Store.open(db) as store:
            trail = fill(store, quiet())
            last = trail.list()[-1]
    finally:
        os.umask(old)
    path = db.parent / "audit.db.audit-head"
    assert oct(path.stat().st_mode & 0o777) == oct(0o640)
    data = json.loads(path.read_text())
    assert data["count"] == 3 and data["head"] == last.hash and data["alg"] == "sha256"
    assert data["database"] == str(db) and data["time"] == last.time
    assert not [p for p in db.parent.iterdir() if p.name.endswith(".tmp")]
    assert last.chain == {"alg": "sha256", "anchored": True}


def test_syslog_line_and_hooks_hear_every_append(db: Path, monkeypatch) -> None:
    lines: list[tuple[int, str]] = []
    monkeypatch.setattr(anchor_mod.syslog, "syslog", lambda prio, msg: lines.append((prio, msg)))
    heads: list[Head] = []

    def broken(head: Head) -> None:
        raise RuntimeError("fleet store down")

    monkeypatch.setattr(anchor_mod, "ANCHOR_HOOKS", [heads.append, broken])
    with Store.open(db) as store:
        trail = fill(store, AuditSettings(), n=2)  # syslog on: the default
    last = trail.list()[-1]
    assert [h.count for h in heads] == [1, 2] and heads[-1].hash == last.hash
    assert lines[-1][1].startswith(f"MEMRAS_AUDIT_HEAD={last.hash} count=2 alg=sha256 ")
    assert f'database="{db}"' in lines[-1][1]


def test_a_failing_hook_is_logged_not_fatal(db: Path, monkeypatch, caplog) -> None:
    def broken(head: Head) -> None:
        raise RuntimeError("fleet store down")

    monkeypatch.setattr(anchor_mod, "ANCHOR_HOOKS", [broken])
    with caplog.at_level(logging.WARNING, logger="memras.audit"), Store.open(db) as store:
        trail = fill(store, quiet(), n=1)
        assert trail.verify().ok
    assert "fleet store down" in caplog.text


def test_an_anchor_that_could_not_be_written_is_reported_until_the_next_append(
        db: Path, monkeypatch, caplog) -> None:
    with Store.open(db) as store:
        trail = fill(store, quiet(), n=2)

        def full_disk(path: Path, head: Head, **kw) -> None:
            raise OSError(28, "No space left on device")

        real = anchor_mod.write_anchor
        monkeypatch.setattr(anchor_mod, "write_anchor", full_disk)
        with caplog.at_level(logging.WARNING, logger="memras.audit"):
            trail.append("step-2", {}, actor=ACTOR)
        assert "No space left on device" in caplog.text
        problems = trail.verify().problems
        assert [(p.kind, p.seq) for p in problems] == [("anchor", 3)]
        assert "never anchored" in problems[0].detail
        monkeypatch.setattr(anchor_mod, "write_anchor", real)
        trail.append("step-3", {}, actor=ACTOR)
        assert trail.verify().ok


def test_concurrent_appenders_leave_the_anchor_at_the_last_row(db: Path) -> None:
    with Store.open(db) as store:
        trail = AuditTrail(store, quiet())
        threads = [threading.Thread(target=lambda: [trail.append("t", {"n": n}, actor=ACTOR)
                                                    for n in range(8)]) for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        report = trail.verify()
    assert report.ok and report.rows == 24, report.problems


def _strip_chain(db: Path) -> None:
    """Rewrite the rows as a memras before anchors wrote them (no "chain" in the payload)."""
    conn = sqlite3.connect(db)
    prev = "0" * 64
    with conn:
        for seq, payload in conn.execute("SELECT seq, payload FROM memras_audit ORDER BY seq"
                                         ).fetchall():
            data = json.loads(payload)
            data.pop("chain")
            digest = row_hash(prev, data)
            conn.execute("UPDATE memras_audit SET payload=?, prev_hash=?, hash=? WHERE seq=?",
                         (json.dumps(data), prev, digest, seq))
            prev = digest
        conn.execute("UPDATE memras_audit_head SET last_hash=?", (prev,))
    conn.close()


def test_rows_from_before_anchors_pass_with_a_warning(db: Path) -> None:
    with Store.open(db) as store:
        trail = fill(store, quiet())
    _strip_chain(db)
    (db.parent / "audit.db.audit-head").unlink()
    with Store.open(db) as store:
        report = AuditTrail(store, quiet()).verify()
        assert report.ok and report.anchor is None
        assert "predate anchoring" in report.warnings[0]
        trail = AuditTrail(store, quiet())
        trail.append("upgrade", {}, actor=ACTOR)  # the first anchored append
        assert trail.verify().ok and trail.verify().warnings == ()


def test_key_readable_by_others_is_refused(tmp_path: Path, db: Path, capsys) -> None:
    key = key_file(tmp_path, mode=0o644)
    with Store.open(db) as store, pytest.raises(UsageError, match="mode 0644"):
        AuditTrail(store, quiet(key_file=key)).append("x", {}, actor=ACTOR)
    config = tmp_path / "memras.toml"
    config.write_text(f'[audit]\nsyslog = false\nkey_file = "{key}"\n')
    assert main(["audit", "seal", "--db", str(db), "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "chmod 600" in err


def test_a_replacement_with_a_bad_key_is_refused_before_it_is_recorded(tmp_path: Path) -> None:
    key = key_file(tmp_path, text="short")
    config = tmp_path / "memras.toml"
    config.write_text(f'[audit]\nsyslog = false\nkey_file = "{key}"\n')
    host = profiles.create("demo", tmp_path / "root").host()
    with Store.open(tmp_path / "memras.db") as store:
        with pytest.raises(UsageError, match="at least 16"):
            Replacement.start(host, store, "P1-DIMMB1",
                              ReplaceOptions(alerts_config=str(config)))
        with store.engine.connect() as conn:
            assert conn.exec_driver_sql("SELECT count(*) FROM memras_replacement"
                                        ).scalar() == 0


def test_hmac_chain_needs_its_key(tmp_path: Path, db: Path) -> None:
    key = key_file(tmp_path)
    with Store.open(db) as store:
        keyed = fill(store, quiet(key_file=key))
        assert keyed.verify().ok and keyed.verify().algorithms == ("hmac-sha256",)
        assert keyed.list()[0].chain["key"] == anchor_mod.ChainKey.from_bytes(KEY.encode()).id
        no_key = AuditTrail(store, quiet()).verify()
        assert not no_key.ok and [p.kind for p in no_key.problems] == ["unverifiable"]
        assert "rows 1..3 (3)" in no_key.problems[0].detail
        (tmp_path / "other").mkdir()
        other = key_file(tmp_path / "other", text="f" * 32)
        wrong = AuditTrail(store, quiet(key_file=other)).verify()
        assert [p.kind for p in wrong.problems] == ["key"]


def test_an_unreadable_key_says_why_it_cannot_check(tmp_path: Path, db: Path) -> None:
    key = key_file(tmp_path)
    with Store.open(db) as store:
        fill(store, quiet(key_file=key))
        key.chmod(0o644)  # e.g. an unprivileged reader: the key is not theirs to use
        report = AuditTrail(store, quiet(key_file=key)).verify()
    assert not report.ok and {p.kind for p in report.problems} == {"unverifiable"}
    assert "mode 0644" in report.warnings[0]


def test_seal_keys_a_trail_written_before_the_key(tmp_path: Path, db: Path, capsys) -> None:
    with Store.open(db) as store:
        fill(store, quiet())
    config = tmp_path / "memras.toml"
    config.write_text(f'[audit]\nsyslog = false\nkey_file = "{key_file(tmp_path)}"\n')
    args = ["--db", str(db), "--config", str(config)]
    assert main(["audit", "verify", *args]) == 1
    assert "TAMPERED downgrade: row 3: a key is configured" in capsys.readouterr().out
    assert main(["audit", "seal", "--reason", "key configured", *args]) == 0
    assert "row 4 (hmac-sha256)" in capsys.readouterr().out
    assert main(["audit", "verify", "--json", *args]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] and report["chain"] == ["sha256", "hmac-sha256"]


def test_verify_of_a_database_without_audit_tables_creates_none(db: Path, capsys) -> None:
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE t (x)")
    conn.close()
    with Store.open(db):
        pass  # a memras database: migrations recorded, the registered tables created
    conn = sqlite3.connect(db)
    conn.execute("DROP TABLE memras_audit")
    conn.execute("DROP TABLE memras_audit_head")
    conn.close()
    before = db.read_bytes()
    assert main(["audit", "verify", "--db", str(db)]) == 0
    assert "intact: 0 rows" in capsys.readouterr().out
    assert db.read_bytes() == before
    conn = sqlite3.connect(db)
    names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
    conn.close()
    assert "memras_audit" not in names


def test_audit_table_settings_are_checked() -> None:
    with pytest.raises(UsageError, match=r"unknown key 'keyfile' \(allowed: anchor_file"):
        AuditSettings.from_section({"keyfile": "/x"})
    with pytest.raises(UsageError, match="syslog must be true or false"):
        AuditSettings.from_section({"syslog": "yes"})
    with pytest.raises(UsageError, match="key_file must be a non-empty path"):
        AuditSettings.from_section({"key_file": ""})
    assert AuditSettings.from_section({"anchor_file": "/srv/h", "syslog": False}) == \
        AuditSettings(anchor_file=Path("/srv/h"), syslog=False)


def test_config_check_reads_the_audit_table_and_the_keys_permissions(tmp_path: Path,
                                                                      capsys) -> None:
    config = tmp_path / "memras.toml"
    config.write_text('[audit]\nkeyfile = "/x"\n')
    assert main(["config", "check", "--config", str(config)]) == 2
    assert "[audit] keyfile is not a known key; did you mean 'key_file'?" in capsys.readouterr().err
    key = key_file(tmp_path, mode=0o640)
    config.write_text(f'[audit]\nkey_file = "{key}"\n')
    assert main(["config", "check", "--config", str(config)]) == 2
    assert "mode 0640" in capsys.readouterr().err
    key.chmod(0o600)
    assert main(["config", "check", "--config", str(config)]) == 0


def test_a_read_only_store_finds_its_anchor_file(db: Path) -> None:
    with Store.open(db) as store:
        fill(store, quiet())
    with Store.open_readonly(db) as store:  # its engine connects through a creator
        report = AuditTrail(store, quiet()).verify()
    assert report.ok and report.anchor is not None
    assert report.anchor.startswith(str(db.parent / "audit.db.audit-head"))


def test_a_simulated_servers_replacement_logs_no_journal_line(tmp_path: Path,
                                                              monkeypatch) -> None:
    lines: list[str] = []
    monkeypatch.setattr(anchor_mod.syslog, "syslog", lambda prio, msg: lines.append(msg))
    config = tmp_path / "memras.toml"
    config.write_text("[audit]\nsyslog = true\n")
    host = profiles.create("demo", tmp_path / "root").host()
    with Store.open(tmp_path / "memras.db") as store:
        rep = Replacement.start(host, store, "P2-DIMMA1",  # refused at preflight: quick
                                ReplaceOptions(alerts_config=str(config)))
        rep.run()
        trail = AuditTrail(store, quiet())
        assert len(trail.list()) >= 2 and trail.verify().ok
    assert lines == []  # the anchor file was written, the journal left alone
    assert json.loads((tmp_path / "audit-head").read_text())["count"] == len(trail.list())
