"""Central ingest: ``--hosts`` hosts shipping a CE storm at once, against PostgreSQL's COPY.

Each simulated host is a copy of one local memras database holding ``--events`` stored
CEs (a storm on one DIMM, stored through ``Store.add_events``) under its own machine id;
every host's shipper (:class:`memras.fleet.ship.Shipper`, batches of 2,000 rows, one
thread per host as each host's watcher runs it) ships them into one throw-away PostgreSQL
(tests/fixtures/postgres.py) at the same time. The floor is the server's own ``COPY``
of the very rows that arrived (``COPY fleet_error TO`` a file, then ``COPY … FROM`` it
into an empty twin table). Then the host side: local ingest rate (``add_events``, batches
of 500) with a shipper thread shipping the same database every 0.2 s, against none.

    .venv/bin/python bench/fleet_ingest.py [--hosts 200] [--events 2000]
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import psycopg  # noqa: E402

from memras.cli import main as memras_main  # noqa: E402
from memras.fleet.identity import HostIdentity  # noqa: E402
from memras.fleet.ship import Shipper, ShipperThread, central_engine  # noqa: E402
from memras.records import DimmLocation, ErrorType, MemoryErrorEvent, Source  # noqa: E402
from memras.store import Store  # noqa: E402
from tests.fixtures.postgres import PgCluster, pg_bindir  # noqa: E402

T0 = datetime(2026, 11, 1, tzinfo=UTC)


def storm(n: int, offset: int = 0) -> list[MemoryErrorEvent]:
    return [MemoryErrorEvent(
        ErrorType.CORRECTED, Source.TRACE, timestamp=T0 + timedelta(milliseconds=10 * i),
        address=0x1234_5000 + (i % 4096) * 0x40, grain_bits=6, message="memory read error",
        location=DimmLocation(label="P1-DIMMB1", mc=0, top_layer=0, middle_layer=1),
        raw=f"storm {offset + i}") for i in range(offset, offset + n)]


def central_ingest(cluster: PgCluster, work: Path, hosts: int, events: int) -> None:
    url = cluster.new_database("fi")
    assert memras_main(["fleet", "--url", url, "init"]) == 0
    template = work / "template.db"
    with Store.open(template) as store:
        for start in range(0, events, 500):
            store.add_events(storm(min(500, events - start), start))
        stored = store.count()
    dbs = []
    for h in range(hosts):
        db = work / f"h{h}.db"
        shutil.copy(template, db)
        dbs.append(db)
    errors: list[BaseException] = []

    def ship(h: int) -> None:  # each host its own engine and connection, as on a fleet
        engine = central_engine(url)
        try:
            with Store.open(dbs[h]) as local:
                Shipper(local, engine, HostIdentity(f"{h:032x}", f"h{h}")).ship_once()
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            engine.dispose()

    threads = [threading.Thread(target=ship, args=(h,)) for h in range(hosts)]
    t = time.perf_counter()
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    shipped_s = time.perf_counter() - t
    if errors:
        sys.exit(f"a shipper failed: {errors[0]}")
    dump = cluster.base / "fleet_error.copy"
    name = url.split("?")[0].rsplit("/", 1)[1]
    with psycopg.connect(host=str(cluster.base), user="memras", dbname=name,
                         autocommit=True) as conn:
        rows = conn.execute("SELECT count(*) FROM fleet_error").fetchone()[0]  # type: ignore[index]
        conn.execute(f"COPY fleet_error TO '{dump}'")
        conn.execute("CREATE TABLE floor (LIKE fleet_error INCLUDING ALL)")
        t = time.perf_counter()
        conn.execute(f"COPY floor FROM '{dump}'")
        copy_s = time.perf_counter() - t
    assert rows == hosts * stored, (rows, hosts * stored)
    print(f"{hosts} hosts x {stored} CEs = {rows:,} rows: shipped in {shipped_s:.1f} s "
          f"({rows / shipped_s:,.0f} rows/s); COPY of the same rows {copy_s:.1f} s "
          f"({rows / copy_s:,.0f} rows/s); ratio {copy_s / shipped_s:.2f} of the floor; "
          f"load average {os.getloadavg()[0]:.1f}")


def host_overhead(cluster: PgCluster, work: Path, events: int, runs: int) -> None:
    url = cluster.new_database("fo")
    assert memras_main(["fleet", "--url", url, "init"]) == 0
    config = work / "fleet.toml"
    config.write_text(f'[fleet]\nurl = "{url}"\ninterval = "1s"\n')
    rates: dict[str, list[float]] = {"off": [], "thread": [], "process": []}
    for run in range(runs):
        for mode in rates:
            db = work / f"o{run}{mode}.db"
            root = work / f"root{run}{mode}"
            (root / "etc").mkdir(parents=True)
            (root / "etc" / "machine-id").write_text(f"{1000 + run:032x}\n")
            with Store.open(db) as store:
                thread, proc = None, None
                if mode == "thread":
                    shipper = Shipper(Store.open(db), central_engine(url),
                                      HostIdentity(f"{1000 + run:032x}", "o"))
                    thread = ShipperThread(shipper, interval_s=0.2)
                    thread.start()
                elif mode == "process":  # `memras fleet ship`, as its own unit would run it
                    proc = subprocess.Popen(
                        [sys.executable, "-m", "memras", "--root", str(root), "--db", str(db),
                         "--config", str(config), "fleet", "ship"],
                        stdout=subprocess.DEVNULL)
                    time.sleep(3)  # its interpreter started, its first pass done
                batches = [storm(500, 10**6 * run + s) for s in range(0, events, 500)]
                t = time.perf_counter()
                for batch in batches:
                    store.add_events(batch)
                elapsed = time.perf_counter() - t
                if thread is not None:
                    thread.stop(final_pass=True)
                    assert thread.shipper.backlog() == 0
                if proc is not None:
                    proc.send_signal(signal.SIGTERM)
                    proc.wait(60)
                rates[mode].append(events / elapsed)
    off = max(rates["off"])
    for mode, label in (("thread", "a shipper thread every 0.2 s"),
                        ("process", "`memras fleet ship` every 1 s in its own process")):
        on = max(rates[mode])
        print(f"local ingest of {events:,} CEs: {off:,.0f}/s without shipping, {on:,.0f}/s "
              f"with {label} (best of {runs}): {on / off:.2f}x; "
              f"load average {os.getloadavg()[0]:.1f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hosts", type=int, default=200)
    ap.add_argument("--events", type=int, default=2000, help="CEs per host")
    ap.add_argument("--local-events", type=int, default=20_000)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    bindir = pg_bindir()
    if bindir is None:
        sys.exit("no PostgreSQL server (apt-get install postgresql)")
    base = Path(tempfile.mkdtemp(prefix="memras-pgi-", dir="/tmp"))
    work = Path(tempfile.mkdtemp(prefix="memras-fleet-ingest-"))
    cluster = PgCluster(bindir, base)
    cluster.init()
    cluster.start()
    try:
        if args.hosts:
            central_ingest(cluster, work, args.hosts, args.events)
        host_overhead(cluster, work, args.local_events, args.runs)
    finally:
        cluster.stop()
        shutil.rmtree(base, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
