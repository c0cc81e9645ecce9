"""Shipping to a real central PostgreSQL (memras.fleet.ship) and `memras fleet` on it.

Three simulated hosts, each with its own SQLite filled by a real `memras watch --once`
on the demo server's recorded row fault, ship at once; PostgreSQL is SIGKILLed mid-stream
and restarted; a host is cut off for a simulated day. Each time every local row must be
in the central store exactly once, and `memras fleet` must show what the hosts know.
"""

from __future__ import annotations

import json
import shutil
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, select

from memras.cli import main
from memras.errors import StoreError
from memras.fleet.identity import HostIdentity, host_identity
from memras.fleet.schema import CENTRAL, HOSTS, SHIPPED
from memras.fleet.ship import DIRECT, MERGED, REFUSED, Shipper, central_engine
from memras.records import DimmLocation, ErrorType, MemoryErrorEvent, Source
from memras.sim import profiles
from memras.store import Store
from tests.fixtures.postgres import PgCluster

STREAMS = Path(__file__).parent.parent / "fixtures" / "streams"
T0 = datetime(2026, 11, 1, tzinfo=UTC)


@pytest.fixture
def central(pg_url: str) -> str:
    assert main(["fleet", "--url", pg_url, "init"]) == 0
    return pg_url


def _host_root(tmp_path: Path, n: int) -> Path:
    """A simulated server with its recorded row fault to read, machine id n, its name."""
    root = tmp_path / f"host{n}"
    profiles.create("demo", root)
    for suffix in ("kmsg", "trace"):
        shutil.copy(STREAMS / f"demo-row-fault.{suffix}", root / ".memras-sim" / suffix)
    (root / "etc").mkdir(exist_ok=True)
    (root / "etc" / "machine-id").write_text(f"{n:032x}\n")
    (root / "etc" / "hostname").write_text(f"rack1-host{n}\n")
    return root


def _host(tmp_path: Path, n: int) -> tuple[Path, Path]:
    """A simulated server that watched its recorded row fault: (root, database)."""
    root = _host_root(tmp_path, n)
    db = tmp_path / f"host{n}.db"
    assert main(["--root", str(root), "--db", str(db), "--json", "watch", "--once"]) == 0
    return root, db


def _local_keys(db: Path) -> dict[str, set[int]]:
    with Store.open(db) as store, store.engine.connect() as conn:
        return {s.name: set(conn.scalars(select(s.local.c[s.key]))) for s in SHIPPED}


def _central_keys(url: str, host_id: str) -> dict[str, list[int]]:
    engine = create_engine(url)
    with engine.connect() as conn:
        out = {s.name: list(conn.scalars(select(CENTRAL[s.local.name].c.local_id)
                                         .where(CENTRAL[s.local.name].c.host_id == host_id)))
               for s in SHIPPED}
    engine.dispose()
    return out


def _exactly_once(url: str, db: Path, host_id: str) -> None:
    local, remote = _local_keys(db), _central_keys(url, host_id)
    for name, keys in local.items():
        assert sorted(remote[name]) == sorted(keys), name  # every row, none twice


def _events(n: int, start: datetime, step: timedelta, label: str = "P1-DIMMB1"
            ) -> list[MemoryErrorEvent]:
    return [MemoryErrorEvent(
        ErrorType.CORRECTED, Source.TRACE, timestamp=start + i * step,
        address=0x1234_5000 + i * 0x1000, grain_bits=6, message="memory read error",
        location=DimmLocation(label=label, mc=0, top_layer=0, middle_layer=0),
        raw=f"synthetic {start.isoformat()} {i}") for i in range(n)]


def test_three_hosts_ship_concurrently_every_row_once(tmp_path: Path, central: str,
                                                      capsys) -> None:
    hosts = [_host(tmp_path, n) for n in (1, 2, 3)]
    errors: list[BaseException] = []

    def ship(root: Path, db: Path) -> None:
        try:
            with Store.open(db) as local:
                Shipper(local, central_engine(central), host_identity(root),
                        batch_rows=5).ship_once()
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=ship, args=h) for h in hosts]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert errors == []
    for n, (_root, db) in enumerate(hosts, 1):
        _exactly_once(central, db, f"{n:032x}")
        assert len(_local_keys(db)["fleet_error"]) == 12  # the recorded fault, stored once
    # a second pass sends nothing new, and re-sending everything is a no-op
    capsys.readouterr()
    root, db = hosts[0]
    assert main(["--root", str(root), "--db", str(db), "--json", "fleet", "--url", central,
                 "ship", "--once"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert sum(again["shipped"].values()) == 0 and again["backlog"] == 0
    with Store.open(db) as local:
        for s in SHIPPED:
            local.set_cursor("fleet:" + s.local.name, "0")
        Shipper(local, central_engine(central), host_identity(root)).ship_once()
    _exactly_once(central, db, f"{1:032x}")

    # memras fleet: three hosts, each one's DIMM with the verdict its own store has
    assert main(["fleet", "--url", central, "--json", "hosts"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [h["hostname"] for h in listed] == ["rack1-host1", "rack1-host2", "rack1-host3"]
    assert all(h["backlog"] == 0 and h["dropped_errors"] == 0 for h in listed)
    assert main(["--db", str(db), "--json", "verdicts"]) == 0
    local_verdicts = json.loads(capsys.readouterr().out)
    assert main(["fleet", "--url", central, "--json", "dimms", "--all"]) == 0
    fleet_dimms = json.loads(capsys.readouterr().out)
    assert len(fleet_dimms) == 3 * len(local_verdicts) > 0
    mine = sorted(d["verdict"] for d in fleet_dimms if d["hostname"] == "rack1-host1")
    assert mine == sorted(v["verdict"] for v in local_verdicts)
    assert "repair-by-page-offlining" in mine  # the recorded row fault


def test_postgres_killed_mid_stream_and_restarted(tmp_path: Path, central: str,
                                                  pg_cluster: PgCluster) -> None:
    root, db = _host(tmp_path, 7)
    with Store.open(db) as local:
        local.add_events(_events(6000, T0, timedelta(seconds=1)))
        shipper = Shipper(local, central_engine(central), host_identity(root), batch_rows=100)
        engine = create_engine(central)
        table = CENTRAL["memras_error"]
        failure: list[BaseException] = []

        def run() -> None:
            try:
                shipper.ship_once()
            except StoreError as exc:
                failure.append(exc)

        thread = threading.Thread(target=run)
        thread.start()
        for _ in range(400):  # kill once some batches are in
            with engine.connect() as conn:
                if (conn.scalar(select(func.count()).select_from(table)) or 0) >= 500:
                    break
            threading.Event().wait(0.02)
        pg_cluster.kill()
        thread.join(120)
        engine.dispose()
        assert failure and "central database" in str(failure[0])  # one line, no traceback
        shipped_before = int(local.get_cursor("fleet:memras_error") or 0)
        assert 0 < shipped_before < max(_local_keys(db)["fleet_error"])  # mid-stream
        pg_cluster.start()
        result = shipper.ship_once()  # resumes from the cursor on fresh connections
    assert result.backlog == 0
    _exactly_once(central, db, f"{7:032x}")


def test_a_host_offline_for_a_day(tmp_path: Path, central: str, pg_cluster: PgCluster
                                  ) -> None:
    root, db = _host(tmp_path, 9)
    identity = host_identity(root)
    nowhere = f"postgresql+psycopg://memras@/x?host={tmp_path / 'no-server'}"
    with Store.open(db) as local:
        Shipper(local, central_engine(central), identity).ship_once()
        # a day with the central store unreachable: one CE a minute keeps arriving
        local.add_events(_events(24 * 60, T0, timedelta(minutes=1), label="P1-DIMMA1"))
        offline = Shipper(local, central_engine(nowhere), identity)
        for _ in range(3):
            with pytest.raises(StoreError, match="central database"):
                offline.ship_once()
        assert offline.backlog() == 24 * 60
        result = Shipper(local, central_engine(central), identity).ship_once()
    assert result.backlog == 0 and result.dropped_now == 0
    assert result.shipped["fleet_error"] == 24 * 60
    _exactly_once(central, db, identity.host_id)


def test_the_backlog_bound_skips_the_oldest_errors_and_counts_them(
        tmp_path: Path, central: str) -> None:
    root, db = _host(tmp_path, 11)
    identity = host_identity(root)
    with Store.open(db) as local:
        Shipper(local, central_engine(central), identity).ship_once()
        local.add_events(_events(1500, T0, timedelta(minutes=1)))
        result = Shipper(local, central_engine(central), identity,
                         max_error_backlog=1000).ship_once()
        newest = sorted(_local_keys(db)["fleet_error"])[-1000:]
    assert (result.dropped_now, result.dropped_total, result.backlog) == (500, 500, 0)
    shipped = _central_keys(central, identity.host_id)["fleet_error"]
    assert set(newest) <= set(shipped) and len(shipped) == 12 + 1000
    engine = create_engine(central)
    with engine.connect() as conn:
        assert conn.scalar(select(HOSTS.c.dropped_errors)
                           .where(HOSTS.c.host_id == identity.host_id)) == 500
    engine.dispose()


def test_replacements_are_updated_in_place_and_read_with_their_audit_head(
        tmp_path: Path, central: str, capsys, monkeypatch) -> None:
    from memras.audit.models import AuditRow
    from memras.workflow.models import ReplacementRow

    root, db = _host(tmp_path, 5)
    identity = host_identity(root)
    now = datetime(2026, 11, 2, 10, 0)
    with Store.open(db) as local:
        with local.session() as s:
            s.connection().execute(ReplacementRow.__table__.insert().values(
                id=1, dimm_id="mc0/dimm1", dimm_label="P1-DIMMB1", state="swapping",
                backend="simulated", on_failure="rollback", uid=0, user="root", host="h",
                root="/", options={}, target={}, created_at=now, updated_at=now))
            for seq in (1, 2):
                s.connection().execute(AuditRow.__table__.insert().values(
                    seq=seq, time=now.isoformat(), replacement_id=1, action=f"step{seq}",
                    payload="{}", prev_hash="0" * 64, hash=f"{seq:064x}"))
        Shipper(local, central_engine(central), identity).ship_once()
        with local.session() as s:
            s.connection().execute(ReplacementRow.__table__.update().values(
                state="done", finished_at=now + timedelta(minutes=30)))
        assert Shipper(local, central_engine(central),
                       identity).ship_once().shipped["fleet_replacement"] == 1
    capsys.readouterr()
    assert main(["fleet", "--url", central, "--json", "replacements"]) == 0
    [rep] = json.loads(capsys.readouterr().out)
    assert (rep["hostname"], rep["state"], rep["audit_entries"]) == ("rack1-host5", "done", 2)
    assert rep["audit_head"] == f"{2:064x}"
    # memras evaluate on the central history, the replacement as the host's failure
    assert main(["fleet", "--url", central, "--json", "evaluate"]) == 0
    scored = json.loads(capsys.readouterr().out)
    assert (scored["unit"], scored["hosts"], scored["failures"]) == ("host", 1, 1)
    assert scored["events"] == 12
    monkeypatch.setenv("COLUMNS", "80")
    for action in ("hosts", "dimms", "failures", "replacements"):
        assert main(["fleet", "--url", central, action]) == 0
        out = capsys.readouterr().out
        assert out.strip() and max(len(line) for line in out.splitlines()) <= 80, action


def test_bad_central_and_identity_are_one_line(tmp_path: Path, pg_url: str, capsys) -> None:
    assert main(["fleet", "--url", pg_url, "hosts"]) == 1  # no fleet schema yet
    err = capsys.readouterr().err
    assert "memras fleet init" in err and "Traceback" not in err
    assert main(["fleet", "hosts"]) == 2  # no url anywhere
    assert "[fleet] url" in capsys.readouterr().err
    with pytest.raises(Exception, match="machine-id"):
        host_identity(tmp_path)
    assert HostIdentity("a" * 32, "h").host_id == "a" * 32


def test_a_host_role_writes_only_its_own_rows(tmp_path: Path, central: str,
                                             pg_cluster: PgCluster, capsys) -> None:
    """The user guide's roles: hosts in memras_ship, one login per machine id, a row-level
    policy on every fleet table. A host ships under its own id; under another's it is
    refused (one line), and it cannot read the other hosts' rows either."""
    root, db = _host(tmp_path, 13)
    other_root, other_db = _host(tmp_path, 14)
    dbname = central.split("?")[0].rsplit("/", 1)[1]
    me, other = host_identity(root), host_identity(other_root)
    tables = [CENTRAL[s.local.name].name for s in SHIPPED] + [HOSTS.name]
    setup = ["CREATE ROLE memras_ship NOLOGIN",
             "GRANT SELECT, INSERT, UPDATE ON ALL TABLES IN SCHEMA public TO memras_ship"]
    for host in (me, other):
        setup.append(f'CREATE ROLE "{host.host_id}" LOGIN IN ROLE memras_ship')
    setup += ["CREATE ROLE memras_read LOGIN",
              "GRANT SELECT ON ALL TABLES IN SCHEMA public TO memras_read"]
    for table in tables:
        setup += [f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY",
                  f"CREATE POLICY own_rows ON {table} TO memras_ship "
                  "USING (host_id = session_user) WITH CHECK (host_id = session_user)",
                  f"CREATE POLICY read_all ON {table} FOR SELECT TO memras_read USING (true)"]
    for sql in setup:
        pg_cluster.execute(sql, dbname)
    mine = pg_cluster.url(dbname, user=me.host_id)
    with Store.open(db) as local:
        shipper = Shipper(local, central_engine(mine), me, batch_rows=5)
        shipper.ship_once()
    # COPY FROM is refused under row-level security: tried once a table (errors,
    # verdicts), then every batch merged without trying (the 12 errors: 3 batches)
    assert shipper.roads[DIRECT] == 0 and shipper.roads[REFUSED] == 2
    assert shipper.roads[MERGED] >= 2
    _exactly_once(central, db, me.host_id)
    with Store.open(other_db) as local, pytest.raises(StoreError,
                                                      match="row-level security"):
        Shipper(local, central_engine(mine), other).ship_once()  # another's id, my login
    assert _central_keys(central, other.host_id)["fleet_error"] == []
    engine = create_engine(mine)
    with engine.connect() as conn:  # and it sees only its own rows
        assert set(conn.scalars(select(HOSTS.c.host_id))) == {me.host_id}
    engine.dispose()
    with Store.open(other_db) as local:  # the other host under its own login
        Shipper(local, central_engine(pg_cluster.url(dbname, user=other.host_id)),
                other).ship_once()
    reader = pg_cluster.url(dbname, user="memras_read")
    capsys.readouterr()
    assert main(["fleet", "--url", reader, "--json", "hosts"]) == 0  # SELECT is enough
    hosts = json.loads(capsys.readouterr().out)
    assert {h["host_id"] for h in hosts} == {me.host_id, other.host_id}
    assert main(["fleet", "--url", reader, "--json", "dimms"]) == 0
    assert len(json.loads(capsys.readouterr().out)) == 2
