"""The prometheus hook: a node_exporter textfile and a /metrics endpoint on 127.0.0.1."""

from __future__ import annotations

import urllib.request
from pathlib import Path

import pytest
from memras.plugins.alerts.prometheus_hook import PrometheusHook, render
from prometheus_client.parser import text_string_to_metric_families

from memras.alerts.alert import Alert, AlertKind, AlertState, Severity
from memras.alerts.config import AlertsConfig, HookConfig, RateLimit
from memras.alerts.dispatcher import Dispatcher, MemoryAlertStore
from memras.alerts.hooks import DimmMetrics, MetricsSnapshot
from memras.errors import HookError

HOSTILE = 'CPU0 "A1"\\\nx'
SNAPSHOT = MetricsSnapshot(dimms=(
    DimmMetrics("mc0-dimm0", "CPU0_DIMM_A1", corrected=120, uncorrected=0, verdict="suspect",
                slot="P1-DIMMA1"),
    DimmMetrics("mc0-dimm1", HOSTILE, corrected=3, uncorrected=2, verdict="failing"),
), alerts_open=4)


def _samples(text: str) -> dict[tuple[str, tuple], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def test_render_parses_with_help_type_and_escaped_labels() -> None:
    text = render(SNAPSHOT)
    assert "# TYPE memras_dimm_corrected_errors_total counter" in text
    assert "# HELP memras_alerts_open " in text
    samples = _samples(text)
    a1 = (("dimm", "mc0-dimm0"), ("dimm_label", "CPU0_DIMM_A1"), ("slot", "P1-DIMMA1"))
    hostile = (("dimm", "mc0-dimm1"), ("dimm_label", HOSTILE), ("slot", ""))
    assert samples[("memras_dimm_corrected_errors_total", a1)] == 120
    assert samples[("memras_dimm_uncorrected_errors_total", hostile)] == 2  # label round-trips
    assert samples[("memras_dimm_verdict", (*hostile, ("verdict", "failing")))] == 1
    assert samples[("memras_alerts_open", ())] == 4


def test_textfile_is_replaced_atomically(tmp_path: Path) -> None:
    hook = PrometheusHook({"textfile_dir": str(tmp_path)})
    target = tmp_path / "memras.prom"
    hook.publish(MetricsSnapshot(alerts_open=1))
    first_inode = target.stat().st_ino
    hook.publish(SNAPSHOT)
    assert target.stat().st_ino != first_inode  # a new file renamed over, not rewritten
    assert sorted(p.name for p in tmp_path.iterdir()) == ["memras.prom"]  # no temp left
    assert _samples(target.read_text())[("memras_alerts_open", ())] == 4


def test_unwritable_directory_is_a_hook_error(tmp_path: Path) -> None:
    hook = PrometheusHook({"textfile_dir": str(tmp_path / "missing")})
    with pytest.raises(HookError, match="cannot write"):
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
    a1 = (("dimm", "mc0-dimm0"), ("dimm_label", "CPU0_DIMM_A1"), ("slot", "P1-DIMMA1"))
    assert samples[("memras_dimm_corrected_errors_total", a1)] == 120


def test_dispatcher_keeps_the_textfile_current(tmp_path: Path) -> None:
    hook = PrometheusHook({"textfile_dir": str(tmp_path)})
    dispatcher = Dispatcher(MemoryAlertStore(),
                            [(HookConfig("prometheus", {}, RateLimit()), hook)], AlertsConfig())
    alert = Alert(kind=AlertKind.UE, severity=Severity.CRITICAL, message="UE", dimm_id="d1",
                  dimm_label="B1", evidence={"ce_count": 5, "ue_count": 1}, verdict="failing")
    stored = dispatcher.submit(alert).alert
    samples = _samples((tmp_path / "memras.prom").read_text())
    assert samples[("memras_alerts_open", ())] == 1
    assert samples[("memras_dimm_uncorrected_errors_total",
                    (("dimm", "d1"), ("dimm_label", "B1"), ("slot", "")))] == 1
    dispatcher.store.update(stored.replace(state=AlertState.RESOLVED))
    dispatcher.notify_state(stored.replace(state=AlertState.RESOLVED))
    assert _samples((tmp_path / "memras.prom").read_text())[("memras_alerts_open", ())] == 0
