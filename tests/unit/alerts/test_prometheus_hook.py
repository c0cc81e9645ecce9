"""The prometheus hook: a node_exporter textfile and a /metrics endpoint on 127.0.0.1,
over every DIMM of the host (memras.alerts.metrics), errors or not."""

from __future__ import annotations

import os
import threading
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

import pytest
from memras.plugins.alerts.prometheus_hook import DIMM_LABELS, PrometheusHook, render
from prometheus_client.parser import text_string_to_metric_families

from memras.alerts.alert import Alert, AlertKind, AlertState, Severity
from memras.alerts.config import AlertsConfig, HookConfig, RateLimit
from memras.alerts.dispatcher import Dispatcher, MemoryAlertStore
from memras.alerts.hooks import DimmMetrics, MetricsSnapshot
from memras.alerts.metrics import VERDICT_STATES, MetricsTick, StoreMetrics
from memras.alerts.service import AlertService, SqlAlertStore
from memras.errors import HookError
from memras.health.dimm_names import attribute_from_host
from memras.host import Host
from memras.records import DimmLocation, ErrorType, MemoryErrorEvent, Source
from memras.sim.profiles import create
from memras.store import Store
from memras.store.dimm_ids import last_error_id
from memras.topology.inventory import dimm_inventory
from tests.tui.world import World, build, events

HOSTILE = 'CPU0 "A1"\\\nx'
SNAPSHOT = MetricsSnapshot(dimms=(
    DimmMetrics("mc0/dimm0", "CPU0_DIMM_A1", corrected=120, uncorrected=0, verdict="watch",
                slot="P1-DIMMA1", controller="0", serial="S1", part="P-1",
                last_event=1700000000.0),
    DimmMetrics("mc0/dimm1", HOSTILE, corrected=3, uncorrected=2, verdict="replace-now"),
), alerts_open=4)
A1 = {"dimm": "mc0/dimm0", "slot": "P1-DIMMA1", "dimm_label": "CPU0_DIMM_A1",
      "controller": "0", "csrow": "", "channel": "", "serial": "S1", "part": "P-1"}


def _key(**labels: str) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(labels.items()))


def _samples(text: str) -> dict[tuple[str, tuple], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def _series(samples: dict[tuple[str, tuple], float], name: str) -> dict[str, dict]:
    """dimm id -> {labels..., value} of one metric (verdict: {state: value})."""
    out: dict[str, dict] = {}
    for (metric, labels), value in samples.items():
        if metric == name:
            found = dict(labels)
            entry = out.setdefault(found["dimm"], {})
            if "verdict" in found:
                entry[found.pop("verdict")] = value
            else:
                entry.update(found, value=value)
    return out


def test_render_has_every_metric_with_escaped_labels_and_an_enum_verdict() -> None:
    text = render(SNAPSHOT)
    assert "# TYPE memras_dimm_corrected_errors_total counter" in text
    assert "# HELP memras_alerts_open " in text
    samples = _samples(text)
    hostile = {"dimm": "mc0/dimm1", "slot": "", "dimm_label": HOSTILE, "controller": "",
               "csrow": "", "channel": "", "serial": "", "part": ""}
    assert samples[("memras_up", ())] == 1
    assert samples[("memras_dimm_corrected_errors_total", _key(**A1))] == 120
    assert samples[("memras_dimm_uncorrected_errors_total", _key(**hostile))] == 2
    assert samples[("memras_last_event_timestamp_seconds", _key(**A1))] == 1700000000
    assert samples[("memras_last_event_timestamp_seconds", _key(**hostile))] == 0
    # one series per verdict state, 1 for the current one only
    verdicts = _series(samples, "memras_dimm_verdict")
    assert verdicts["mc0/dimm1"] == {s: float(s == "replace-now") for s in VERDICT_STATES}
    assert sum(verdicts["mc0/dimm0"].values()) == 1 and verdicts["mc0/dimm0"]["watch"] == 1
    assert samples[("memras_alerts_open", ())] == 4
    (build_info,) = [k for k in samples if k[0] == "memras_build_info"]
    assert dict(build_info[1])["version"] and samples[build_info] == 1
    assert samples[("memras_up", ())] == 1
    assert _samples(render(MetricsSnapshot(up=False)))[("memras_up", ())] == 0


def test_textfile_is_rewritten_atomically_even_when_nothing_changed(tmp_path: Path) -> None:
    hook = PrometheusHook({"textfile_dir": str(tmp_path)})
    target = tmp_path / "memras.prom"
    hook.publish(SNAPSHOT)
    first = target.stat().st_ino
    os.utime(target, (1, 1))
    hook.publish(SNAPSHOT)  # the same numbers: still a new file, a new mtime
    assert target.stat().st_ino != first and target.stat().st_mtime > 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["memras.prom"]  # no temp left
    assert _samples(target.read_text())[("memras_alerts_open", ())] == 4


def test_unwritable_directory_is_a_hook_error(tmp_path: Path) -> None:
    hook = PrometheusHook({"textfile_dir": str(tmp_path / "missing")})
    with pytest.raises(HookError, match="cannot write .*missing.*textfile_dir"):
        hook.publish(SNAPSHOT)
    with pytest.raises(HookError, match="textfile_dir, listen"):
        PrometheusHook({})


def test_metrics_endpoint_serves_the_latest_snapshot() -> None:
    hook = PrometheusHook({"listen": "127.0.0.1:0"})
    try:
        hook.publish(SNAPSHOT)
        url = f"http://127.0.0.1:{hook.port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as response:
            text = response.read().decode()
    finally:
        hook.close()
    samples = _samples(text)
    assert samples[("memras_alerts_open", ())] == 4
    assert samples[("memras_dimm_corrected_errors_total", _key(**A1))] == 120


def test_dispatcher_keeps_the_textfile_current(tmp_path: Path) -> None:
    hook = PrometheusHook({"textfile_dir": str(tmp_path)})
    dispatcher = Dispatcher(MemoryAlertStore(),
                            [(HookConfig("prometheus", {}, RateLimit()), hook)], AlertsConfig())
    alert = Alert(kind=AlertKind.UE, severity=Severity.CRITICAL, message="UE", dimm_id="d1",
                  dimm_label="B1", evidence={"ce_count": 5, "ue_count": 1}, verdict="failing")
    stored = dispatcher.submit(alert).alert
    samples = _samples((tmp_path / "memras.prom").read_text())
    assert samples[("memras_alerts_open", ())] == 1
    d1 = _series(samples, "memras_dimm_uncorrected_errors_total")["d1"]
    assert (d1["dimm_label"], d1["value"]) == ("B1", 1)
    dispatcher.store.update(stored.replace(state=AlertState.RESOLVED))
    dispatcher.notify_state(stored.replace(state=AlertState.RESOLVED))
    assert _samples((tmp_path / "memras.prom").read_text())[("memras_alerts_open", ())] == 0


# ---- memras.alerts.metrics over a store and a simulated host --------------------------

@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> World:
    return build(tmp_path, monkeypatch)


def _ce(mc: int, ch: int, label: str, when: datetime, count: int = 1) -> MemoryErrorEvent:
    return MemoryErrorEvent(
        ErrorType.CORRECTED, Source.TRACE, count=count, timestamp=when, address=None,
        message="memory read error", driver="skx_edac", raw=f"t {when.isoformat()} {count}",
        location=DimmLocation(socket=mc // 2, mc=mc, channel=ch, slot=0, label=label,
                              top_layer=ch, middle_layer=0))


def test_every_inventory_dimm_is_exported_from_the_first_snapshot(world: World) -> None:
    host = Host(world.root)
    with Store.open(world.db) as store:
        snapshot = StoreMetrics(store, host)(SqlAlertStore(store))
        open_alerts = SqlAlertStore(store).list(AlertState.OPEN)
    dimms = {d.dimm_id: d for d in snapshot.dimms}
    inventory_ids = [d.id for d in dimm_inventory(host)]
    assert list(dimms)[:len(inventory_ids)] == inventory_ids  # errors or not
    failing, broken = dimms["mc0/dimm2"], dimms["mc2/dimm0"]
    # the demo world's stored rows: 14 CEs on P1-DIMMB1, one UE on P2-DIMMA1
    assert (failing.corrected, failing.uncorrected, failing.slot) == (14, 0, "P1-DIMMB1")
    assert (broken.corrected, broken.uncorrected) == (0, 1)
    assert failing.verdict != "ok" and failing.controller == "0"
    assert failing.label == "CPU_SrcID#0_MC#0_Chan#1_DIMM#0" and failing.serial
    newest = max(e.timestamp for e in events() if e.location.mc == 0 and e.timestamp)
    assert failing.last_event == newest.timestamp()
    quiet = [d for d in snapshot.dimms if d.corrected == d.uncorrected == 0
             and d.dimm_id in inventory_ids]
    assert quiet and all(d.verdict == "ok" and d.last_event is None for d in quiet)
    assert snapshot.alerts_open == len(open_alerts) > 0


def test_counts_grow_with_new_rows_only_once_settled_and_never_drop(world: World) -> None:
    host = Host(world.root)
    with Store.open(world.db) as store:
        settled = {"to": 0}
        metrics = StoreMetrics(store, host)
        alerts = SqlAlertStore(store)
        assert {d.dimm_id: d.corrected for d in metrics(alerts).dimms}["mc0/dimm2"] == 14
        metrics.settled = lambda: settled["to"]
        when = datetime(2024, 5, 14, 11, 0, tzinfo=UTC)
        store.add_events([_ce(0, 1, "CPU_SrcID#0_MC#0_Chan#1_DIMM#0", when, count=5)])
        # stored, not attributed yet (settled mark behind): not counted, not lost
        assert {d.dimm_id: d.corrected for d in metrics(alerts).dimms}["mc0/dimm2"] == 14
        attribute_from_host(store, host)
        settled["to"] = last_error_id(store)
        dimm = {d.dimm_id: d for d in metrics(alerts).dimms}["mc0/dimm2"]
        assert (dimm.corrected, dimm.last_event) == (19, when.timestamp())
        with store._write() as conn:  # retention deleting old rows: the counter stays
            conn.exec_driver_sql("DELETE FROM memras_error WHERE count = 1")
        assert {d.dimm_id: d.corrected for d in metrics(alerts).dimms}["mc0/dimm2"] == 19


def test_unreadable_database_keeps_the_last_series_with_up_0(world: World) -> None:
    with Store.open(world.db) as store:
        metrics = StoreMetrics(store, Host(world.root))
        alerts = SqlAlertStore(store)
        good = metrics(alerts)
        with store._write() as conn:
            conn.exec_driver_sql("DROP TABLE memras_error")
        bad = metrics(alerts)
    assert good.up and not bad.up and bad.dimms == good.dimms


def test_csrow_layout_labels_join_node_exporters_channel_series(tmp_path: Path) -> None:
    """amd64_edac's csrow/channel layout: node_exporter names a series by the
    controller, csrow and channel of mc<controller>/csrow<csrow>/ch<channel>_ce_count,
    the same place the DIMM's dimm_location gives (the simulator writes rankN only)."""
    server = create("epyc", tmp_path / "root")
    with Store.open(tmp_path / "m.db") as store:
        snapshot = StoreMetrics(store, server.host())(SqlAlertStore(store))
    edac = tmp_path / "root/sys/devices/system/edac/mc"
    seen = set()
    for dimm in snapshot.dimms:
        rank = edac / f"mc{dimm.controller}/{dimm.dimm_id.split('/')[1]}"
        assert (rank / "dimm_location").read_text().split() == [
            "csrow", dimm.csrow, "channel", dimm.channel]
        assert (rank / "dimm_label").read_text().strip() == dimm.label
        seen.add((dimm.controller, dimm.csrow, dimm.channel))
    assert len(seen) == len(snapshot.dimms) == 16


def test_watcher_tick_publishes_every_interval_without_waiting(world: World,
                                                                tmp_path: Path) -> None:
    prom = tmp_path / "prom"
    prom.mkdir()
    with Store.open(world.db) as store:
        service = AlertService(Dispatcher(
            SqlAlertStore(store), [(HookConfig("prometheus", {}, RateLimit()),
                                    PrometheusHook({"textfile_dir": str(prom)}))],
            AlertsConfig(), snapshot=StoreMetrics(store, Host(world.root))))
        tick = MetricsTick(service.dispatcher.publish_metrics, interval_s=15)
        tick(100.0)
        first = (prom / "memras.prom").stat().st_ino
        tick(110.0)  # not due
        assert (prom / "memras.prom").stat().st_ino == first
        tick(115.0)  # due: rewritten though nothing changed
        assert (prom / "memras.prom").stat().st_ino != first
        second = (prom / "memras.prom").stat().st_ino
        held, release = threading.Event(), threading.Event()

        def deliver() -> None:  # the alert thread in a slow delivery
            with service.dispatcher._lock:
                held.set()
                release.wait(10)

        delivery = threading.Thread(target=deliver)
        delivery.start()
        held.wait(10)
        tick(200.0)  # skipped, not waited for
        assert (prom / "memras.prom").stat().st_ino == second
        release.set()
        delivery.join()
        tick(200.5)  # and done at the next writer turn
        assert (prom / "memras.prom").stat().st_ino != second
        service.close()
    samples = _samples((prom / "memras.prom").read_text())
    ids = {dict(k[1])["dimm"] for k in samples if k[0] == "memras_dimm_corrected_errors_total"}
    assert len(ids) >= 8 and set(DIMM_LABELS) <= {n for k in samples for n, _ in k[1]}
