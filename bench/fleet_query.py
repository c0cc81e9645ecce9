"""`memras fleet dimms` ("DIMMs to replace across the fleet") on a big central store.

A throw-away PostgreSQL cluster (Debian's server, tests/fixtures/postgres.py) gets the
fleet schema (``memras fleet init``), then a fleet of ``--hosts`` hosts with 16 DIMM
modules each, 3 verdict rows (watch → repair → replace-*) for 1 % of the DIMMs and ok
for another 4 %, and ``--errors`` error rows spread over the hosts, loaded with COPY.
It times :func:`memras.fleet.read.dimms` (the query and building the rows) at each step
of the error count, to show that its cost follows the verdict rows and not the errors.

    .venv/bin/python bench/fleet_query.py [--hosts 10000] [--errors 1000000,10000000]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import psycopg  # noqa: E402
from sqlalchemy import create_engine  # noqa: E402

from memras.cli import main as memras_main  # noqa: E402
from memras.fleet.read import dimms  # noqa: E402
from tests.fixtures.postgres import PgCluster, pg_bindir  # noqa: E402

T0 = datetime(2026, 1, 1)
STATES = ("watch", "repair-by-page-offlining", "replace-now")


def _host_id(h: int) -> str:
    return f"{h:032x}"


def load_fleet(conn: psycopg.Connection, hosts: int) -> int:
    rnd = random.Random(19)
    verdicts = 0
    with conn.cursor() as cur:
        with cur.copy("COPY fleet_host (host_id, hostname, memras_version, first_contact, "
                      "last_contact, backlog, dropped_errors) FROM STDIN") as copy:
            for h in range(hosts):
                copy.write_row((_host_id(h), f"node{h:05d}", "0.1.0", T0, T0, 0, 0))
        with cur.copy("COPY fleet_dimm_module (host_id, local_id, slot_id, identity, serial, "
                      "part, manufacturer, installed_at, source) FROM STDIN") as copy:
            for h in range(hosts):
                for d in range(16):
                    copy.write_row((_host_id(h), d + 1, f"mc{d // 8}/dimm{d % 8}",
                                    f"smbios:M:{d}:{h}", f"S{h:05d}{d:02d}",
                                    rnd.choice(("M393A2K43BB1", "HMA82GR7AFR8N", "36ASF4G72")),
                                    "Samsung", T0 - timedelta(days=rnd.randrange(2000)),
                                    "inventory"))
        with cur.copy("COPY fleet_health_verdict (host_id, local_id, dimm_id, time, state, "
                      "previous_state, rules, reasons, evidence, reached_at) FROM STDIN"
                      ) as copy:
            for h in range(hosts):
                n = 0
                for d in range(16):
                    roll = rnd.random()
                    if roll < 0.01:
                        path = STATES
                    elif roll < 0.05:
                        path = ("ok",)
                    else:
                        continue
                    for i, state in enumerate(path):
                        n += 1
                        when = T0 + timedelta(days=rnd.randrange(300), minutes=i)
                        copy.write_row((_host_id(h), n, f"mc{d // 8}/dimm{d % 8}", when,
                                        state, None, "[]", f'["{state} because"]', "{}",
                                        when))
                        verdicts += 1
    conn.commit()
    return verdicts


def add_errors(conn: psycopg.Connection, start: int, count: int, hosts: int) -> None:
    with conn.cursor() as cur, cur.copy(
            "COPY fleet_error (host_id, local_id, time, source, type, count, address, "
            "dimm_id, dedup_key, identity, message, driver, driver_detail, raw) FROM STDIN"
            ) as copy:
        for i in range(start, start + count):
            h = i % hosts
            copy.write_row((_host_id(h), i // hosts + 1, T0 + timedelta(seconds=i),
                            "trace", "Corrected", 1, 0x1000 * (i % 65536),
                            f"mc0/dimm{i % 8}", f"{i:032x}", f"t:{i:030x}", "", "", "", ""))
    conn.commit()
    with conn.cursor() as cur:
        cur.execute("ANALYZE")
    conn.commit()


def time_query(url: str, runs: int) -> tuple[float, int]:
    engine = create_engine(url)
    times = []
    found = 0
    for _ in range(runs):
        with engine.connect() as conn:
            t = time.perf_counter()
            found = len(dimms(conn))
            times.append(time.perf_counter() - t)
    engine.dispose()
    return statistics.median(times), found


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hosts", type=int, default=10_000)
    ap.add_argument("--errors", default="1000000,10000000",
                    help="error counts to measure at, comma-separated, ascending")
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    bindir = pg_bindir()
    if bindir is None:
        sys.exit("no PostgreSQL server (apt-get install postgresql)")
    base = Path(tempfile.mkdtemp(prefix="memras-pgb-", dir="/tmp"))
    cluster = PgCluster(bindir, base)
    cluster.init()
    cluster.start()
    try:
        url = cluster.new_database("fq")
        assert memras_main(["fleet", "--url", url, "init"]) == 0
        dsn = dict(host=str(base), user="memras", dbname=url.split("?")[0].rsplit("/", 1)[1])
        with psycopg.connect(**dsn) as conn:  # type: ignore[arg-type]
            verdicts = load_fleet(conn, args.hosts)
            print(f"{args.hosts} hosts, {16 * args.hosts} modules, {verdicts} verdict rows; "
                  f"load average {os.getloadavg()[0]:.1f}")
            done = 0
            for target in (int(x) for x in args.errors.split(",")):
                t = time.perf_counter()
                add_errors(conn, done, target - done, args.hosts)
                loaded = time.perf_counter() - t
                done = target
                median, found = time_query(url, args.runs)
                print(f"errors {done:>10,}: dimms() {median * 1000:7.1f} ms median of "
                      f"{args.runs} ({found} DIMMs listed); COPY of the errors {loaded:.0f} s; "
                      f"load average {os.getloadavg()[0]:.1f}")
    finally:
        cluster.stop()
        import shutil

        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
