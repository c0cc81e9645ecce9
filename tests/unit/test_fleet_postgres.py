"""The test cluster itself (tests/fixtures/postgres.py): a real PostgreSQL server, run by
an unprivileged user, reachable only through its unix socket."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import sqlalchemy as sa

from memras.cli import main
from memras.sim import profiles
from tests.fixtures.postgres import PgCluster

STREAMS = Path(__file__).parent.parent / "fixtures" / "streams"


def test_cluster_is_real_unprivileged_and_socket_only(pg_cluster: PgCluster,
                                                      pg_url: str) -> None:
    engine = sa.create_engine(pg_url)
    with engine.connect() as conn:
        version = conn.execute(sa.text("SHOW server_version_num")).scalar_one()
        listen = conn.execute(sa.text("SHOW listen_addresses")).scalar_one()
        sockets = conn.execute(sa.text("SHOW unix_socket_directories")).scalar_one()
    engine.dispose()
    assert int(version) >= 150000
    assert listen == ""  # no TCP socket at all
    assert sockets == str(pg_cluster.base)
    pid = pg_cluster.pid()
    assert pid is not None
    assert os.stat(f"/proc/{pid}").st_uid != 0  # postgres never runs as root


def test_each_test_gets_its_own_empty_database(pg_url: str) -> None:
    engine = sa.create_engine(pg_url)
    with engine.connect() as conn:
        assert sa.inspect(conn).get_table_names() == []
    engine.dispose()


_CLOCK_KEYS = {"time", "at", "reached_at", "installed_at", "removed_at", "first_seen",
               "last_seen", "timestamp", "last_notified_at", "updated", "since"}


def _without_clock(value: object) -> object:
    """A command's JSON without the wall-clock values a second run cannot repeat."""
    if isinstance(value, dict):
        return {k: _without_clock(v) for k, v in value.items() if k not in _CLOCK_KEYS}
    if isinstance(value, list):
        return [_without_clock(v) for v in value]
    return value


def test_the_watchers_pipeline_gives_the_same_answers_on_both_dialects(
        tmp_path: Path, pg_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    """Beyond the store tier: `memras watch --once` (store, health, alerts, the module
    registry) and the readers on a real PostgreSQL answer as they do on SQLite."""
    answers = []
    for n, db in enumerate((str(tmp_path / "memras.db"), pg_url)):
        root = tmp_path / f"root{n}"
        profiles.create("demo", root)
        for suffix in ("kmsg", "trace"):
            shutil.copy(STREAMS / f"demo-row-fault.{suffix}", root / ".memras-sim" / suffix)
        assert main(["--root", str(root), "--db", db, "--json", "watch", "--once"]) == 0
        stored = json.loads(capsys.readouterr().out)
        answer: dict[str, object] = {"stored": sum(
            s["inserted"] for s in stored["sources"].values())}
        for command in ("dimms", "verdicts", "alerts", "summary"):
            assert main(["--root", str(root), "--db", db, "--json", command]) == 0, command
            answer[command] = _without_clock(json.loads(capsys.readouterr().out))
        answers.append(answer)
    sqlite, postgres = answers
    assert sqlite["stored"] == postgres["stored"] == 12
    assert sqlite["verdicts"] and sqlite["alerts"]  # the row fault was judged and alerted
    for command in ("dimms", "verdicts", "alerts", "summary"):
        assert postgres[command] == sqlite[command], command
