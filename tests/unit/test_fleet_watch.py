"""Three `memras watch` daemons, three simulated hosts, one central PostgreSQL: with
``[fleet] url`` each watcher's shipper thread delivers what its host stored, at the same
time as the others, and stops with the watcher on SIGTERM."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, select

from memras.cli import main
from memras.fleet.schema import CENTRAL, HOSTS
from tests.unit.test_fleet_ship import _exactly_once, _host_root

WAIT_S = 90.0


def _counts(url: str) -> dict[str, int]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            t = CENTRAL["memras_error"]
            rows = conn.execute(select(t.c.host_id, func.count()).group_by(t.c.host_id)).all()
            hosts = conn.scalar(select(func.count()).select_from(HOSTS)) or 0
    finally:
        engine.dispose()
    return {**{h: int(n) for h, n in rows}, "hosts": int(hosts)}


def test_three_watchers_ship_while_they_watch(tmp_path: Path, pg_url: str) -> None:
    assert main(["fleet", "--url", pg_url, "init"]) == 0
    config = tmp_path / "memras.toml"
    config.write_text(f'[fleet]\nurl = "{pg_url}"\ninterval = "1s"\n')
    procs = []
    hosts = []
    for n in (21, 22, 23):
        root = _host_root(tmp_path, n)
        db = tmp_path / f"host{n}.db"
        log = tmp_path / f"watch{n}.log"
        with open(log, "w") as out:
            procs.append((subprocess.Popen(
                [sys.executable, "-m", "memras", "--root", str(root), "--db", str(db),
                 "--config", str(config), "watch"], stdout=out, stderr=subprocess.STDOUT),
                log))
        hosts.append((f"{n:032x}", db))
    try:
        deadline = time.monotonic() + WAIT_S
        counts: dict[str, int] = {}
        while time.monotonic() < deadline:
            counts = _counts(pg_url)
            if counts["hosts"] == 3 and all(counts.get(h) == 12 for h, _ in hosts):
                break
            for proc, log in procs:
                if proc.poll() is not None:
                    pytest.fail(f"memras watch exited {proc.returncode}:\n"
                                f"{log.read_text()[-2000:]}")
            time.sleep(0.5)
        else:
            pytest.fail(f"not shipped within {WAIT_S:.0f} s: {counts}")
    finally:
        for proc, _ in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        codes = [proc.wait(timeout=30) for proc, _ in procs]
    assert codes == [0, 0, 0], [log.read_text()[-1000:] for _, log in procs]
    for host_id, db in hosts:
        _exactly_once(pg_url, db, host_id)


def test_watch_once_ships_what_it_drained(tmp_path: Path, pg_url: str) -> None:
    assert main(["fleet", "--url", pg_url, "init"]) == 0
    config = tmp_path / "memras.toml"
    config.write_text(f'[fleet]\nurl = "{pg_url}"\n')
    root, db = _host_root(tmp_path, 31), tmp_path / "host31.db"
    assert main(["--root", str(root), "--db", str(db), "--config", str(config), "--json",
                 "watch", "--once"]) == 0
    assert _counts(pg_url) == {f"{31:032x}": 12, "hosts": 1}
    _exactly_once(pg_url, db, f"{31:032x}")


def test_fleet_ship_as_its_own_process(tmp_path: Path, pg_url: str) -> None:
    """`memras fleet ship` without --once: the shipper loop in its own process (no GIL
    shared with the watcher), shipping what a watcher stored, stopped by SIGTERM."""
    assert main(["fleet", "--url", pg_url, "init"]) == 0
    config = tmp_path / "memras.toml"
    config.write_text(f'[fleet]\nurl = "{pg_url}"\ninterval = "1s"\n')
    root, db = _host_root(tmp_path, 41), tmp_path / "host41.db"
    assert main(["--root", str(root), "--db", str(db), "watch", "--once"]) == 0
    log = tmp_path / "ship.log"
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "memras", "--root", str(root), "--db",
                                 str(db), "--config", str(config), "--json", "fleet", "ship"],
                                stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + WAIT_S
        while _counts(pg_url).get(f"{41:032x}") != 12:
            assert proc.poll() is None, log.read_text()[-2000:]
            assert time.monotonic() < deadline, log.read_text()[-2000:]
            time.sleep(0.5)
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=30)
    assert code == 0, log.read_text()[-2000:]
    assert '"passes"' in log.read_text()
    _exactly_once(pg_url, db, f"{41:032x}")
