"""The test cluster itself (tests/fixtures/postgres.py): a real PostgreSQL server, run by
an unprivileged user, reachable only through its unix socket."""

from __future__ import annotations

import os

import sqlalchemy as sa

from tests.fixtures.postgres import PgCluster


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
