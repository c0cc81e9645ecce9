"""The ``prometheus`` hook: every DIMM's error counts and verdict, open alerts, as metrics.

Options (``[alerts.hooks.prometheus]``)::

    # node_exporter's --collector.textfile.directory:
    textfile_dir = "/var/lib/node_exporter/textfile_collector"
    filename = "memras.prom"
    listen = "127.0.0.1:9477"     # optional: also serve /metrics (prometheus_client)

Metrics (node_exporter naming, ``memras_`` prefix; DIMM_LABELS below)::

    memras_up                                               gauge  1: the database was read
    memras_build_info{version,python} 1                     gauge
    memras_dimm_corrected_errors_total{DIMM_LABELS}         counter
    memras_dimm_uncorrected_errors_total{DIMM_LABELS}       counter (deferred, fatal too)
    memras_dimm_verdict{DIMM_LABELS,verdict}                gauge  one series per verdict
    memras_last_event_timestamp_seconds{DIMM_LABELS}        gauge  0: no error yet
    memras_alerts_open                                      gauge
    memras_alert_deliveries_total{hook}                     counter
    memras_alert_delivery_failures_total{hook}              counter

DIMM_LABELS: ``dimm`` (memras's id, ``mc0/dimm2``), ``slot`` (the label printed on the
board, the SMBIOS locator ``P1-DIMMB1``; '' when unknown), ``dimm_label`` (the EDAC
label), ``controller``, ``csrow`` and ``channel`` as node_exporter's ``node_edac_*``
series name them (``controller="0"``; csrow and channel only for csrow-layout drivers),
``serial`` and ``part``. Every DIMM of the inventory has every series from the first
publish, errors or not (:mod:`memras.alerts.metrics` builds the snapshot).

``memras_dimm_verdict`` is an enum-style gauge (like kube_pod_status_phase): one series
per verdict state, 1 for the DIMM's current one and 0 for the others, so
``memras_dimm_verdict{verdict="replace-now"} == 1`` selects DIMMs to pull now.

The two delivery counters count attempts as the database records them (every run of
every memras process, so they do not reset when the watcher restarts): a failure is
one failed attempt (retries and metric publishes included); ``increase(
memras_alert_delivery_failures_total[1h]) > 0`` finds a hook that stopped delivering.

The textfile is written by prometheus_client's ``write_to_textfile`` (a temporary file
beside it, renamed over it: node_exporter never reads half a file), on every change and,
by the watcher, every interval even when nothing changed, so node_exporter's
``node_textfile_mtime_seconds`` tells a stopped watcher from a quiet one.
"""

from __future__ import annotations

import platform
import threading
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from memras import __version__
from memras.alerts.alert import Alert
from memras.alerts.hooks import AlertHook, DimmMetrics, MetricsSnapshot
from memras.alerts.metrics import VERDICT_STATES
from memras.errors import HookError

DIMM_LABELS = ("dimm", "slot", "dimm_label", "controller", "csrow", "channel", "serial",
               "part")
HELP = {
    "memras_up": "1 when memras read its database for these metrics, 0 when it could not "
                 "(the DIMM series are then the last read).",
    "memras_build_info": "memras's version and Python's, as labels; the value is always 1.",
    "memras_dimm_corrected_errors": "Corrected memory errors attributed to the DIMM.",
    "memras_dimm_uncorrected_errors":
        "Uncorrected (incl. deferred and fatal) memory errors attributed to the DIMM.",
    "memras_dimm_verdict": "The DIMM's memras verdict: 1 for the current verdict label, "
                           "0 for the others.",
    "memras_last_event_timestamp_seconds":
        "Time of the newest memory error attributed to the DIMM (0: none yet).",
    "memras_alerts_open": "memras alerts that are open (not acked or resolved).",
    "memras_alert_deliveries": "Alert deliveries the hook accepted (attempts that succeeded).",
    "memras_alert_delivery_failures":
        "Failed alert delivery attempts of the hook (retries included).",
}


def _dimm_values(dimm: DimmMetrics) -> list[str]:
    return [dimm.dimm_id, dimm.slot or "", dimm.label or "", dimm.controller, dimm.csrow,
            dimm.channel, dimm.serial, dimm.part]


def families(snapshot: MetricsSnapshot) -> Iterator[Any]:
    """The snapshot as prometheus_client metric families (what both outputs serve)."""
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

    yield GaugeMetricFamily("memras_up", HELP["memras_up"], value=1 if snapshot.up else 0)
    build = GaugeMetricFamily("memras_build_info", HELP["memras_build_info"],
                              labels=["version", "python"])
    build.add_metric([__version__, platform.python_version()], 1)
    yield build
    labels = list(DIMM_LABELS)
    ce = CounterMetricFamily("memras_dimm_corrected_errors",
                             HELP["memras_dimm_corrected_errors"], labels=labels)
    ue = CounterMetricFamily("memras_dimm_uncorrected_errors",
                             HELP["memras_dimm_uncorrected_errors"], labels=labels)
    verdict = GaugeMetricFamily("memras_dimm_verdict", HELP["memras_dimm_verdict"],
                                labels=[*labels, "verdict"])
    last = GaugeMetricFamily("memras_last_event_timestamp_seconds",
                             HELP["memras_last_event_timestamp_seconds"], labels=labels)
    for dimm in snapshot.dimms:
        values = _dimm_values(dimm)
        ce.add_metric(values, dimm.corrected)
        ue.add_metric(values, dimm.uncorrected)
        states = VERDICT_STATES if dimm.verdict in VERDICT_STATES or not dimm.verdict \
            else (*VERDICT_STATES, dimm.verdict)
        for state in states:
            verdict.add_metric([*values, state], 1 if state == (dimm.verdict or "ok") else 0)
        last.add_metric(values, dimm.last_event or 0)
    yield from (ce, ue, verdict, last)
    yield GaugeMetricFamily("memras_alerts_open", HELP["memras_alerts_open"],
                            value=snapshot.alerts_open)
    ok = CounterMetricFamily("memras_alert_deliveries", HELP["memras_alert_deliveries"],
                             labels=["hook"])
    failed = CounterMetricFamily("memras_alert_delivery_failures",
                                 HELP["memras_alert_delivery_failures"], labels=["hook"])
    for hook in snapshot.hooks:
        ok.add_metric([hook.hook], hook.delivered)
        failed.add_metric([hook.hook], hook.failed)
    yield from (ok, failed)


class _SnapshotCollector:
    """prometheus_client collector over a snapshot (the hook's latest, or a given one)."""

    def __init__(self, current: Callable[[], MetricsSnapshot]) -> None:
        self.current = current

    def collect(self) -> Iterator[Any]:
        return families(self.current())


def _registry(current: Callable[[], MetricsSnapshot]) -> Any:
    from prometheus_client import CollectorRegistry

    registry = CollectorRegistry(auto_describe=False)
    registry.register(_SnapshotCollector(current))
    return registry


def render(snapshot: MetricsSnapshot) -> str:
    """The snapshot in the Prometheus text exposition format (version 0.0.4)."""
    from prometheus_client import generate_latest

    return generate_latest(_registry(lambda: snapshot)).decode()


class PrometheusHook(AlertHook):
    name = "prometheus"
    sends_resolved = True
    publishes_metrics = True

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        super().__init__(options)
        directory = self.option("textfile_dir")
        self.path = Path(directory) / str(self.option("filename", "memras.prom")) \
            if directory else None
        self.listen = self.option("listen")
        if self.path is None and not self.listen:
            raise HookError("alert hook prometheus: set textfile_dir, listen, or both")
        self._snapshot = MetricsSnapshot()
        self._lock = threading.Lock()
        self._registry = _registry(self.current)
        self._server: Any = None
        if self.listen:
            self._serve(str(self.listen))

    def send(self, alert: Alert) -> None:
        """Nothing to deliver per alert: state is exported by :meth:`publish`."""

    def publish(self, snapshot: MetricsSnapshot) -> None:
        from prometheus_client import write_to_textfile

        with self._lock:
            self._snapshot = snapshot
        if self.path is None:
            return
        try:
            write_to_textfile(str(self.path), self._registry)
        except OSError as exc:
            raise HookError(f"prometheus: cannot write {self.path}: {exc.strerror}",
                            hint="create the directory or fix textfile_dir") from exc

    def current(self) -> MetricsSnapshot:
        with self._lock:
            return self._snapshot

    def _serve(self, listen: str) -> None:
        from prometheus_client import start_http_server

        host, _, port = listen.rpartition(":")
        try:
            self._server, _thread = start_http_server(int(port), addr=host or "127.0.0.1",
                                                      registry=self._registry)
        except (OSError, ValueError) as exc:
            raise HookError(f"alert hook prometheus: cannot listen on {listen}: {exc}") from exc

    @property
    def port(self) -> int | None:
        return None if self._server is None else int(self._server.server_address[1])

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
