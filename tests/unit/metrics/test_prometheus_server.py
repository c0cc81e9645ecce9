"""A real Prometheus server (Debian's ``prometheus`` package) scrapes a running
``memras watch``'s /metrics on 127.0.0.1: memras_up and every DIMM's series arrive,
named by slot label, and every expression of the rules file and the dashboard runs."""

from __future__ import annotations

import json
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from memras.host import Host
from memras.topology.inventory import dimm_inventory
from tests.tui.world import World, build
from tests.unit.metrics.test_prometheus_rules import expressions

WAIT_S = 30.0  # the first scrape: Prometheus starts in ~2 s and scrapes every second


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _until(what: str, probe: Callable[[], Any], proc: subprocess.Popen[bytes], log: Path
           ) -> Any:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"{proc.args[0]} exited {proc.returncode} while waiting for {what}:\n"
                        f"{log.read_text()[-2000:]}")
        try:
            found = probe()
        except (OSError, ValueError):  # not up yet; a starting server's 503 is plain text
            found = None
        if found:
            return found
        time.sleep(0.3)
    pytest.fail(f"no {what} within {WAIT_S:.0f} s:\n{log.read_text()[-2000:]}")


def _query(port: int, expr: str) -> dict[str, Any]:
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return dict(json.load(response))
    except urllib.error.HTTPError as exc:  # a bad expression: 400 with the error as JSON
        return dict(json.load(exc))


def _start(argv: list[str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "w") as out:
        return subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> World:
    return build(tmp_path, monkeypatch)


@pytest.fixture
def watching(world: World, tmp_path: Path) -> Iterator[int]:
    """``memras watch`` with the prometheus hook listening on 127.0.0.1; yields its port."""
    port = _free_port()
    (tmp_path / "prom").mkdir()
    config = tmp_path / "memras.toml"
    config.write_text(f'[alerts.hooks.prometheus]\nlisten = "127.0.0.1:{port}"\n'
                      f'textfile_dir = "{tmp_path / "prom"}"\n')
    log = tmp_path / "watch.log"
    proc = _start([sys.executable, "-m", "memras", "--root", str(world.root), "--db",
                   str(world.db), "--config", str(config), "watch", "--sources", "edac"], log)
    try:
        _until("textfile from memras watch", (tmp_path / "prom/memras.prom").exists, proc, log)
        yield port
    finally:
        _stop(proc)


def test_prometheus_scrapes_the_watchers_metrics(world: World, watching: int,
                                                  tmp_path: Path) -> None:
    exe = shutil.which("prometheus")
    if exe is None:
        pytest.skip("prometheus is not installed (scripts/test.sh installs Debian's "
                    "prometheus package)")
    port = _free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        "scrape_configs:\n  - job_name: memras\n    static_configs:\n"
        f"      - targets: ['127.0.0.1:{watching}']\n")
    log = tmp_path / "prometheus.log"
    proc = _start([exe, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                   f"--web.listen-address=127.0.0.1:{port}"], log)
    try:
        up = _until("memras_up from the scrape",
                    lambda: _query(port, "memras_up")["data"]["result"], proc, log)
        dimm = _query(port, 'memras_dimm_corrected_errors_total{slot="P1-DIMMB1"}')
        verdicts = _query(port, 'memras_dimm_verdict{slot="P1-DIMMB1"} == 1')
        dimms = _query(port, "count(memras_dimm_uncorrected_errors_total)")
        ran = {expr: _query(port, expr.replace("$instance", ".*")) for expr in expressions()}
    finally:
        _stop(proc)
    assert up[0]["value"][1] == "1" and up[0]["metric"]["job"] == "memras"
    (series,) = dimm["data"]["result"]
    labels = series["metric"]
    assert (labels["dimm"], labels["dimm_label"], labels["controller"]) == (
        "mc0/dimm2", "CPU_SrcID#0_MC#0_Chan#1_DIMM#0", "0")
    assert labels["serial"] and labels["part"]
    assert series["value"][1] == "14"  # the demo world's 14 stored CEs
    (verdict,) = verdicts["data"]["result"]
    assert verdict["metric"]["verdict"] not in ("", "ok")
    # every DIMM of the inventory, errors or not
    assert dimms["data"]["result"][0]["value"][1] == str(len(dimm_inventory(Host(world.root))))
    failed = {e: r.get("error") for e, r in ran.items() if r["status"] != "success"}
    assert not failed
