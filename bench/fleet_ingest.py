"""Central ingest: ``--hosts`` hosts shipping a CE storm at once, against PostgreSQL's COPY;
then the shipping overhead on one host.

Central ingest: each simulated host is a copy of one local memras database holding
``--events`` stored CEs (a storm on one DIMM, stored through ``Store.add_events``) under
its own machine id; every host's shipper (:class:`memras.fleet.ship.Shipper`, its own
engine and connection, one thread per host as each host's watcher runs it) ships them
into one throw-away PostgreSQL (tests/fixtures/postgres.py) at the same time. Each
host's shipper is set up first as a running watcher has it (store open, connected,
schema checked, its statements compiled by an earlier pass); the timed part is the
pass that ships the storm (``--cold``: opening, connecting and compiling timed too,
as a fleet's first pass after all its watchers start at once). The floor
is the server's own ``COPY`` of the very rows that arrived (``COPY fleet_error TO`` a
file, then ``COPY … FROM`` it into an empty twin with the same indexes). ``--rounds``
rounds, each into a fresh database, the floor right after its round: the median of the
rounds' ratios. CPU seconds are given beside the wall clock (this process's, i.e. all
200 hosts', and the server's: the postmaster with its children, reaped or alive), as
the machine's load from other jobs moves the wall clock and not them. Beside it the
server's share alone: ``--hosts`` connections COPYing their hosts' rows at once.

``--staged``: the same, with each host's own work out of the clock, as on a fleet where
every host has its own machine (here the 200 hosts share the server's cores). Before
the timing each warm host also reads its batches (:meth:`Shipper.read_batch`: the COPY
CSV SQLite writes, as a pass builds it); the timed part is what the central store
receives from a pass, from 200 connections at once: each batch's transaction with its
COPY (:meth:`Shipper.store_batch`, the connection checked out with its pre-ping as in a
pass) and the ``fleet_host`` upsert (:meth:`Shipper.contact`). The cursors, saved in the
host's SQLite after each commit, are the host's side: saved after the timing, and the
host's backlog then checked to be 0. The server receives the same statements as in a
warm pass (a mutable table unchanged since the earlier pass sends nothing either way).
Beside the floor, the hosts' very CSV bytes COPYed from one connection (the format's cost).

Shipping overhead: local ingest rate (``add_events`` of ``--local-events`` CEs in
batches of 500 into a fresh database) with shipping off, with a shipper thread in the
same process, and with ``memras fleet ship`` as its own process, both shipping every
``--interval`` s. The three run back to back in each of ``--pairs`` rounds, their order
rotated; each mode's ratio to the off run of its own round, then the median of those
ratios and their spread (min–max): a machine whose load drifts moves both runs of a
round alike. CPU a CE beside it (the ingesting thread's; the shipper's: the shipper
thread's share of this process, or the `fleet ship` process's), to the end of the
shipping, which the load does not move. ``--watcher-rounds``: the same three ways
around the default ``memras watch`` (kmsg and trace, health on) fed ``--rate`` CEs/s for
``--seconds`` (bench/ingest_steady_host.py's injector), as CPU a CE of the watcher (and
of the `fleet ship` process) until every CE is stored and shipped: off's over on's is
the rate a host whose CPU is the limit keeps.

    .venv/bin/python bench/fleet_ingest.py [--hosts 200] [--events 2000] [--rounds 3]
                   [--cold | --staged] [--pairs 7] [--local-events 50000] [--interval 1]
                   [--watcher-rounds 6] [--rate 1000] [--seconds 20]
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))  # ingest_steady_host

import psycopg  # noqa: E402
from sqlalchemy import func, select  # noqa: E402

from memras.cli import main as memras_main  # noqa: E402
from memras.fleet.identity import HostIdentity  # noqa: E402
from memras.fleet.schema import CENTRAL, SHIPPED  # noqa: E402
from memras.fleet.ship import (  # noqa: E402
    CURSOR_PREFIX,
    DIRECT,
    Batch,
    PassResult,
    Shipper,
    ShipperThread,
    central_engine,
)
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


def _ticks(pid: int) -> tuple[int, int]:
    """(utime + stime, cutime + cstime) of ``pid`` in clock ticks; (0, 0) when gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0, 0
    return int(fields[11]) + int(fields[12]), int(fields[13]) + int(fields[14])


def server_cpu_s(postmaster: int) -> float:
    """CPU seconds of the server so far: the postmaster, its children that exited (its
    cutime/cstime: backends of closed connections) and those alive."""
    own, reaped = _ticks(postmaster)
    alive = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        if ppid == postmaster:
            alive += _ticks(int(stat.parent.name))[0]
    return (own + reaped + alive) / os.sysconf("SC_CLK_TCK")


def _warm_shipper(db: Path, url: str, h: int) -> Shipper:
    """Host ``h``'s shipper as a running watcher has it: its connection open, the schema
    checked, its statements compiled and the mutable tables and its fleet_host row
    shipped by an earlier pass; then the storm waits unshipped (the cursors at 0)."""
    local = Store.open(db)
    shipper = Shipper(local, central_engine(url), HostIdentity(f"{h:032x}", f"h{h}"))
    appended = [s for s in SHIPPED if not s.mutable]
    with local.engine.connect() as conn:
        last = {s.local.name: conn.scalar(select(func.max(s.local.c[s.key])))
                for s in appended}
    for name, key in last.items():
        local.set_cursor(CURSOR_PREFIX + name, str(key or 0))
    shipper.ship_once()
    for name in last:
        local.set_cursor(CURSOR_PREFIX + name, "0")
    shipper.roads.clear()
    return shipper


def _staged_pass(shipper: Shipper) -> tuple[list[Batch], PassResult]:
    """A warm host's next pass, read but not sent: its batches (COPY CSV written by
    SQLite, by the shipper's own :meth:`Shipper.read_batch`) and the result its
    ``fleet_host`` row will carry (backlog 0 once they are stored)."""
    batches: list[Batch] = []
    result = PassResult()
    for shipped in SHIPPED:
        if shipped.mutable:  # unchanged since the warm-up pass: nothing is sent
            continue
        after, sent = int(shipper.local.get_cursor(CURSOR_PREFIX + shipped.local.name)
                          or 0), 0
        while True:
            batch = shipper.read_batch(shipped, after)
            if batch.count:
                batches.append(batch)
                after, sent = batch.last, sent + batch.count
            if batch.count < shipper.batch_rows:
                break
        result.shipped[shipped.name] = sent
    result.backlog = shipper.backlog() - sum(b.count for b in batches)
    return batches, result


def central_round(cluster: PgCluster, work: Path, template: Path, hosts: int,
                  stored: int, n: int, cold: bool, staged: bool = False
                  ) -> dict[str, float]:
    url = cluster.new_database(f"fi{n}_")
    assert memras_main(["fleet", "--url", url, "init"]) == 0
    dbs = []
    for h in range(hosts):
        db = work / f"h{h}.db"
        shutil.copy(template, db)  # a fresh host: nothing shipped yet
        dbs.append(db)
    errors: list[BaseException] = []
    roads: Counter[str] = Counter()
    warm = [] if cold else [_warm_shipper(db, url, h) for h, db in enumerate(dbs)]
    prepared = [_staged_pass(shipper) for shipper in warm] if staged else []

    def ship(h: int) -> None:  # each host its own engine and connection, as on a fleet
        try:
            if prepared:  # only what the central store receives from the pass
                batches, result = prepared[h]
                for batch in batches:
                    warm[h].store_batch(batch)
                warm[h].contact(result)
                roads.update(warm[h].roads)
                return
            if warm:
                warm[h].ship_once()
                roads.update(warm[h].roads)
                return
            engine = central_engine(url)
            with Store.open(dbs[h]) as local:
                shipper = Shipper(local, engine, HostIdentity(f"{h:032x}", f"h{h}"))
                shipper.ship_once()
                roads.update(shipper.roads)
            engine.dispose()
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    postmaster = cluster.pid()
    assert postmaster is not None
    threads = [threading.Thread(target=ship, args=(h,)) for h in range(hosts)]
    server0, client0, t = server_cpu_s(postmaster), time.process_time(), time.perf_counter()
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    shipped_s = time.perf_counter() - t
    client_s = time.process_time() - client0
    if cold:
        time.sleep(0.5)  # the backends of the closed connections exited and were reaped
    ship_server_s = server_cpu_s(postmaster) - server0  # warm: the backends are alive
    for shipper, (batches, _result) in zip(warm, prepared, strict=False):
        for batch in batches:  # the host's side of the pass: its cursors saved
            shipper.local.set_cursor(CURSOR_PREFIX + batch.shipped.local.name,
                                     str(batch.last))
        assert shipper.backlog() == 0, shipper.backlog()
    for shipper in warm:
        shipper.central.dispose()
        shipper.local.close()
    ship_load = os.getloadavg()[0]
    if errors:
        sys.exit(f"a shipper failed: {errors[0]}")
    dump = cluster.base / "fleet_error.copy"
    name = url.split("?")[0].rsplit("/", 1)[1]
    with psycopg.connect(host=str(cluster.base), user="memras", dbname=name,
                         autocommit=True) as conn:
        rows = conn.execute("SELECT count(*) FROM fleet_error").fetchone()[0]  # type: ignore[index]
        conn.execute(f"COPY fleet_error TO '{dump}'")
        conn.execute("CREATE TABLE floor (LIKE fleet_error INCLUDING ALL)")
        server0, t = server_cpu_s(postmaster), time.perf_counter()
        conn.execute(f"COPY floor FROM '{dump}'")
        copy_s = time.perf_counter() - t
        copy_server_s = server_cpu_s(postmaster) - server0
        copy_load = os.getloadavg()[0]
        csv_floor = ""
        if prepared:  # the same floor from the bytes the hosts sent: COPY CSV's own cost
            central = CENTRAL["memras_error"]
            data = b"".join(b.data for batches, _ in prepared for b in batches
                            if b.shipped.local.name == "memras_error"
                            and isinstance(b.data, bytes))
            columns = ", ".join(f'"{c.name}"' for c in central.columns)
            conn.execute("CREATE TABLE floor_csv (LIKE fleet_error INCLUDING ALL)")
            server0, t = server_cpu_s(postmaster), time.perf_counter()
            with conn.cursor() as cur, cur.copy(
                    f"COPY floor_csv ({columns}) FROM STDIN (FORMAT csv)") as copy:
                copy.write(data)
            csv_floor = (f"; the hosts' COPY CSV from one connection "
                         f"{time.perf_counter() - t:.1f} s (server CPU "
                         f"{server_cpu_s(postmaster) - server0:.1f} s)")
    together_s, together_server_s = concurrent_copy(cluster, name, dump, hosts)
    cluster.execute(f'DROP DATABASE "{name}"')
    assert rows == hosts * stored, (rows, hosts * stored)
    assert roads == Counter({DIRECT: roads[DIRECT]}), roads  # every batch straight in
    print(f"round {n}: {rows:,} rows shipped in {shipped_s:.1f} s ({rows / shipped_s:,.0f} "
          f"rows/s; CPU: hosts {client_s:.1f} s, server {ship_server_s:.1f} s; load average "
          f"{ship_load:.1f}); COPY of the same rows {copy_s:.1f} s ({rows / copy_s:,.0f} "
          f"rows/s; server CPU {copy_server_s:.1f} s; load average {copy_load:.1f}): "
          f"{copy_s / shipped_s:.2f}x the floor; {hosts} COPYs at once, no memras: "
          f"{together_s:.1f} s (server CPU {together_server_s:.1f} s; load average "
          f"{os.getloadavg()[0]:.1f}){csv_floor}", flush=True)
    return {"ratio": copy_s / shipped_s, "rows_s": rows / shipped_s,
            "floor_rows_s": rows / copy_s, "cpu_ratio": copy_server_s / ship_server_s,
            "together_ratio": together_s / shipped_s}


def concurrent_copy(cluster: PgCluster, dbname: str, dump: Path, hosts: int
                    ) -> tuple[float, float]:
    """The server's share of the fleet's way of arriving, without memras: ``hosts``
    connections (opened beforehand) each COPY their host's rows of ``dump`` at once into
    an empty twin with the same indexes: (wall seconds, server CPU seconds)."""
    by_host: dict[bytes, list[bytes]] = {}
    with dump.open("rb") as lines:
        for line in lines:
            by_host.setdefault(line.split(b"\t", 1)[0], []).append(line)
    assert len(by_host) == hosts
    cluster.execute("CREATE TABLE together (LIKE fleet_error INCLUDING ALL)", dbname)
    conns = [psycopg.connect(host=str(cluster.base), user="memras", dbname=dbname)
             for _ in by_host]

    def copy(conn: psycopg.Connection[Any], data: bytes) -> None:
        with conn.cursor() as cur, cur.copy("COPY together FROM STDIN") as copy:
            copy.write(data)
        conn.commit()

    datas = [b"".join(lines) for lines in by_host.values()]
    threads = [threading.Thread(target=copy, args=pair) for pair in zip(conns, datas,
                                                                          strict=True)]
    postmaster = cluster.pid()
    assert postmaster is not None
    server0, t = server_cpu_s(postmaster), time.perf_counter()
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    wall = time.perf_counter() - t
    server = server_cpu_s(postmaster) - server0
    for conn in conns:
        conn.close()
    return wall, server


def central_ingest(cluster: PgCluster, work: Path, hosts: int, events: int,
                   rounds: int, cold: bool, staged: bool = False) -> None:
    template = work / "template.db"
    with Store.open(template) as store:
        for start in range(0, events, 500):
            store.add_events(storm(min(500, events - start), start))
        stored = store.count()
    results = [central_round(cluster, work, template, hosts, stored, n, cold, staged)
               for n in range(1, rounds + 1)]
    ratios = sorted(r["ratio"] for r in results)
    cpu_ratio = statistics.median(r["cpu_ratio"] for r in results)
    together = statistics.median(r["together_ratio"] for r in results)
    mode = "cold" if cold else "staged" if staged else "warm"
    print(f"central ingest ({mode}), {hosts} hosts x {stored:,} CEs: median "
          f"{statistics.median(ratios):.2f}x the floor (rounds: "
          f"{', '.join(f'{r:.2f}' for r in ratios)}); shipped median "
          f"{statistics.median(r['rows_s'] for r in results):,.0f} rows/s, floor median "
          f"{statistics.median(r['floor_rows_s'] for r in results):,.0f} rows/s; server CPU "
          f"of the floor over that of shipping: median {cpu_ratio:.2f}x; the same COPYs "
          f"at once without memras took median {together:.2f}x the shipping's time")


MODES = ("off", "thread", "process")


def ingest_run(url: str, config: Path, work: Path, events: int, mode: str, n: int,
               interval_s: float) -> dict[str, float]:
    """One local ingest of ``events`` CEs, then what is left shipped. Its rate (CEs/s),
    and CPU seconds a CE: of the ingesting thread, of this process's other threads
    (the store's WAL checkpointer; with ``thread``, the shipper) and, with ``process``,
    of the `memras fleet ship` process, all from the ingest's start to the end of the
    shipping."""
    db = work / f"o{n}{mode}.db"
    root = work / f"root{n}{mode}"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "machine-id").write_text(f"{10_000 + n:032x}\n")
    tick = os.sysconf("SC_CLK_TCK")
    with Store.open(db) as store:
        thread, proc = None, None
        if mode == "thread":
            shipper = Shipper(Store.open(db), central_engine(url),
                              HostIdentity(f"{20_000 + n:032x}", "o"))
            thread = ShipperThread(shipper, interval_s=interval_s)
            thread.start()
        elif mode == "process":  # `memras fleet ship`, as its own unit would run it
            proc = subprocess.Popen(
                [sys.executable, "-m", "memras", "--root", str(root), "--db", str(db),
                 "--config", str(config), "fleet", "ship"], stdout=subprocess.DEVNULL)
            time.sleep(3)  # its interpreter started, its first pass done
            if proc.poll() is not None:
                sys.exit(f"memras fleet ship exited {proc.returncode}")
        batches = [storm(500, 10**6 * n + s) for s in range(0, events, 500)]
        child0 = sum(_ticks(proc.pid)) if proc is not None else 0
        cpu0, own0 = time.process_time(), time.thread_time()
        t = time.perf_counter()
        for batch in batches:
            store.add_events(batch)
        elapsed = time.perf_counter() - t
        own = time.thread_time() - own0
        child = 0.0
        if thread is not None:
            thread.stop(final_pass=True)
        if proc is not None:
            proc.send_signal(signal.SIGTERM)  # it ships what is left, then exits
            while proc.poll() is None:
                child = (sum(_ticks(proc.pid)) - child0) / tick
                time.sleep(0.05)
        others = time.process_time() - cpu0 - own
        if mode != "off":
            shipped = Shipper(store, central_engine(url), HostIdentity("0" * 32, "check"))
            assert shipped.backlog() == 0, (mode, shipped.backlog())
    db.unlink()
    return {"rate": events / elapsed, "ingest": own / events, "others": others / events,
            "process": child / events}


def host_overhead(cluster: PgCluster, work: Path, events: int, pairs: int,
                  interval_s: float) -> None:
    url = cluster.new_database("fo")
    assert memras_main(["fleet", "--url", url, "init"]) == 0
    config = work / "fleet.toml"
    config.write_text(f'[fleet]\nurl = "{url}"\ninterval = {interval_s}\n')
    ratios: dict[str, list[float]] = {"thread": [], "process": []}
    shipper_cpu: dict[str, list[float]] = {"thread": [], "process": []}
    ingest_cpu, offs = [], []
    for n in range(pairs):
        order = MODES[n % 3:] + MODES[:n % 3]  # rotated: no mode always first
        runs = {mode: ingest_run(url, config, work, events, mode, n, interval_s)
                for mode in order}
        offs.append(runs["off"]["rate"])
        ingest_cpu.append(runs["off"]["ingest"])
        shipper_cpu["thread"].append(runs["thread"]["others"] - runs["off"]["others"])
        shipper_cpu["process"].append(runs["process"]["process"])
        for mode in ratios:
            ratios[mode].append(runs[mode]["rate"] / runs["off"]["rate"])
        print(f"round {n + 1} ({', '.join(order)}): " + ", ".join(
            f"{m} {runs[m]['rate']:,.0f}/s" for m in MODES) + f"; thread "
            f"{ratios['thread'][-1]:.2f}x, process {ratios['process'][-1]:.2f}x; shipper CPU a "
            f"CE: thread {shipper_cpu['thread'][-1] * 1e6:.1f} us, process "
            f"{shipper_cpu['process'][-1] * 1e6:.1f} us; load average "
            f"{os.getloadavg()[0]:.1f}", flush=True)
    ingest = statistics.median(ingest_cpu)
    print(f"local ingest of {events:,} CEs, shipping every {interval_s:g} s: off median "
          f"{statistics.median(offs):,.0f}/s, {ingest * 1e6:.0f} us of CPU a CE")
    for mode, label in (("thread", "a shipper thread in the same process"),
                        ("process", "`memras fleet ship` in its own process")):
        r, cpu = ratios[mode], statistics.median(shipper_cpu[mode])
        print(f"  {label}: median {statistics.median(r):.2f}x of off (spread "
              f"{min(r):.2f}–{max(r):.2f} over {len(r)} rounds); the shipper's CPU "
              f"{cpu * 1e6:.1f} us a CE (median): {ingest / (ingest + cpu):.2f}x if every "
              f"cycle of it were taken from the ingest")


def _stored(db: Path) -> int:
    try:
        with sqlite3.connect(db, timeout=30) as conn:
            return int(conn.execute("SELECT count(*) FROM memras_error "
                                    "WHERE address IS NOT NULL").fetchone()[0])
    except sqlite3.Error:  # the schema is not there yet
        return 0


def _central_count(url: str, host_id: str) -> int:
    name = url.split("?")[0].rsplit("/", 1)[1]
    host = url.split("host=")[1]
    with psycopg.connect(host=host, user="memras", dbname=name) as conn:
        row = conn.execute("SELECT count(*) FROM fleet_error WHERE host_id = %s",
                           (host_id,)).fetchone()
    return int(row[0]) if row else 0


def _until(done: Callable[[], bool], what: str, quiet_s: float = 60.0) -> None:
    deadline = time.monotonic() + quiet_s
    while not done():
        if time.monotonic() > deadline:
            sys.exit(f"bench: {what} did not finish")
        time.sleep(0.2)


def watcher_run(url: str, work: Path, mode: str, n: int, rate: float, seconds: float,
                interval_s: float) -> float:
    """`memras watch` (the default watcher: kmsg and trace, health on) on a simulated
    server fed ``rate`` CEs/s for ``seconds`` (bench/ingest_steady_host.py's injector),
    shipping off, in its thread, or by `memras fleet ship`: CPU seconds a CE of the
    watcher and the shipper process, until every CE is stored (and shipped)."""
    from ingest_steady_host import MEMRAS, btime, cpu_seconds, inject

    sim = work / f"w{n}{mode}"
    subprocess.run([*MEMRAS, "sim", "create", "qemu-guest", str(sim)], check=True,
                   capture_output=True)
    root, db = sim / "root", sim / "watch.db"
    host_id = f"{30_000 + n * 3 + MODES.index(mode):032x}"
    (root / "etc").mkdir(exist_ok=True)
    (root / "etc" / "machine-id").write_text(host_id + "\n")
    fleet = f'[fleet]\nurl = "{url}"\ninterval = {interval_s}\n'
    (sim / "watch.toml").write_text(fleet if mode == "thread" else "")
    (sim / "ship.toml").write_text(fleet)
    base = [*MEMRAS, "--root", str(root), "--db", str(db)]
    watch = subprocess.Popen([*base, "--config", str(sim / "watch.toml"), "watch",
                              "--sources", "kmsg,trace"], stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True)
    assert watch.stdout is not None
    watch.stdout.readline()  # "memras watch: sources ...": it runs
    ship = None
    if mode == "process":
        ship = subprocess.Popen([*base, "--config", str(sim / "ship.toml"), "fleet", "ship"],
                                stdout=subprocess.DEVNULL)
    time.sleep(3.0)  # the simulator's boot records stored (and shipped)
    before = _stored(db)
    pids = [watch.pid] + ([ship.pid] if ship else [])
    cpu0 = sum(cpu_seconds(p) for p in pids)
    count, _achieved = inject(root, btime(root), rate, seconds, threading.Event())
    _until(lambda: _stored(db) >= before + count, f"{mode}: storing")
    if mode != "off":
        _until(lambda: _central_count(url, host_id) >= _stored(db), f"{mode}: shipping")
    cpu = sum(cpu_seconds(p) for p in pids) - cpu0
    for proc in (watch, ship):
        if proc is not None:
            proc.terminate()
            proc.communicate(timeout=60)
    shutil.rmtree(sim, ignore_errors=True)
    return cpu / count


def watcher_overhead(cluster: PgCluster, work: Path, rounds: int, rate: float,
                     seconds: float, interval_s: float) -> None:
    url = cluster.new_database("fw")
    assert memras_main(["fleet", "--url", url, "init"]) == 0
    ratios: dict[str, list[float]] = {"thread": [], "process": []}
    offs = []
    for n in range(rounds):
        order = MODES[n % 3:] + MODES[:n % 3]
        cpu = {mode: watcher_run(url, work, mode, n, rate, seconds, interval_s)
               for mode in order}
        offs.append(cpu["off"])
        for mode in ratios:
            ratios[mode].append(cpu["off"] / cpu[mode])
        print(f"watcher round {n + 1} ({', '.join(order)}): CPU a CE " + ", ".join(
            f"{m} {cpu[m] * 1e3:.3f} ms" for m in MODES) + f"; thread "
            f"{ratios['thread'][-1]:.2f}x, process {ratios['process'][-1]:.2f}x; load "
            f"average {os.getloadavg()[0]:.1f}", flush=True)
    print(f"the default watcher at {rate:g} CEs/s for {seconds:g} s: "
          f"{statistics.median(offs) * 1e3:.3f} ms of CPU a CE without shipping (median)")
    for mode in ratios:
        r = ratios[mode]
        print(f"  {mode}: its CPU a CE / with shipping: median {statistics.median(r):.3f}x "
              f"(spread {min(r):.3f}–{max(r):.3f} over {len(r)} rounds): the ingest rate "
              f"a CPU-bound host keeps")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hosts", type=int, default=200)
    ap.add_argument("--events", type=int, default=2000, help="CEs per host")
    ap.add_argument("--rounds", type=int, default=3, help="central ingest rounds")
    timing = ap.add_mutually_exclusive_group()
    timing.add_argument("--cold", action="store_true",
                        help="each host opens its store and connects inside the timed part")
    timing.add_argument("--staged", action="store_true",
                        help="each host's batches read beforehand: only what the central "
                             "store receives is timed")
    ap.add_argument("--local-events", type=int, default=50_000, help="0: no host side")
    ap.add_argument("--pairs", type=int, default=7, help="host-side rounds (off/thread/process)")
    ap.add_argument("--watcher-rounds", type=int, default=0,
                    help="rounds of the default `memras watch` fed --rate CEs/s (0: none)")
    ap.add_argument("--rate", type=float, default=1000.0, help="CEs/s for the watcher")
    ap.add_argument("--seconds", type=float, default=20.0, help="of feeding the watcher")
    ap.add_argument("--interval", type=float, default=1.0,
                    help="shipping interval, s ([fleet] interval: 1 s at least)")
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
            central_ingest(cluster, work, args.hosts, args.events, args.rounds, args.cold,
                           args.staged)
        if args.local_events:
            host_overhead(cluster, work, args.local_events, args.pairs, args.interval)
        if args.watcher_rounds:
            watcher_overhead(cluster, work, args.watcher_rounds, args.rate, args.seconds,
                             args.interval)
    finally:
        cluster.stop()
        shutil.rmtree(base, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
