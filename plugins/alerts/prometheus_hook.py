"""The ``prometheus`` hook: DIMM error counts, verdicts and open alerts as metrics.

Options (``[alerts.hooks.prometheus]``)::

    # node_exporter's --collector.textfile.directory:
    textfile_dir = "/var/lib/node_exporter/textfile_collector"
    filename = "memras.prom"
    listen = "127.0.0.1:9477"     # optional: also serve /metrics (prometheus_client)

Metrics (node_exporter naming, ``memras_`` prefix)::

    memras_dimm_corrected_errors_total{dimm="…",slot="…",dimm_label="…"}    counter
    memras_dimm_uncorrected_errors_total{dimm="…",slot="…",dimm_label="…"}  counter
    memras_dimm_verdict{dimm="…",slot="…",dimm_label="…",verdict="…"} 1     gauge, per DIMM
    memras_alerts_open                                                      gauge

``slot`` is the label printed on the board (the SMBIOS locator, ``P1-DIMMB1``) as the
watcher names the DIMM now, empty when it cannot (no host inventory); ``dimm_label`` is
the EDAC label the error printed; ``dimm`` the id the series is keyed by.
    memras_alert_deliveries_total{hook="…"}                        counter
    memras_alert_delivery_failures_total{hook="…"}                 counter

The two delivery counters count attempts as the database records them (every run of
every memras process, so they do not reset when the watcher restarts): a failure is
one failed attempt (retries and metric publishes included); ``increase(
memras_alert_delivery_failures_total[1h]) > 0`` finds a hook that stopped delivering.

``memras_dimm_verdict`` is an info-style gauge (like kube_pod_status_phase): the DIMM's
current verdict is the ``verdict`` label and the value is always 1, so
``memras_dimm_verdict{verdict="failing"} == 1`` selects failing DIMMs without a
numeric code to remember. The textfile is written to a temporary file in the same
directory and renamed over the old one, so node_exporter never reads half a file.
"""

from __future__ import annotations

import os
import tempfile
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from memras.alerts.alert import Alert
from memras.alerts.hooks import AlertHook, MetricsSnapshot
from memras.errors import HookError

METRICS = (
    ("memras_dimm_corrected_errors_total", "counter",
     "Corrected memory errors attributed to the DIMM."),
    ("memras_dimm_uncorrected_errors_total", "counter",
     "Uncorrected (incl. deferred and fatal) memory errors attributed to the DIMM."),
    ("memras_dimm_verdict", "gauge",
     "The DIMM's current memras verdict, as the verdict label; the value is always 1."),
    ("memras_alerts_open", "gauge", "memras alerts that are open (not acked or resolved)."),
    ("memras_alert_deliveries_total", "counter",
     "Alert deliveries the hook accepted (attempts that succeeded)."),
    ("memras_alert_delivery_failures_total", "counter",
     "Failed alert delivery attempts of the hook (retries included)."),
)


def escape_label(value: str) -> str:
    """Prometheus exposition format: backslash, double quote and newline escaped."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(**labels: str) -> str:
    return "{" + ",".join(f'{k}="{escape_label(v)}"' for k, v in labels.items()) + "}"


def render(snapshot: MetricsSnapshot) -> str:
    """The snapshot in the Prometheus text exposition format (version 0.0.4)."""
    lines: list[str] = []
    for name, kind, help_text in METRICS:
        lines.append(f"# HELP {name} {help_text}")
        lines.append(f"# TYPE {name} {kind}")
        lines.extend(_samples(name, snapshot))
    return "\n".join(lines) + "\n"


def _samples(name: str, snapshot: MetricsSnapshot) -> Iterator[str]:
    if name == "memras_alerts_open":
        yield f"{name} {snapshot.alerts_open}"
        return
    if name in ("memras_alert_deliveries_total", "memras_alert_delivery_failures_total"):
        for hook in snapshot.hooks:
            count = hook.delivered if name == "memras_alert_deliveries_total" else hook.failed
            yield f"{name}{_labels(hook=hook.hook)} {count}"
        return
    for dimm in snapshot.dimms:
        labels = {"dimm": dimm.dimm_id, "slot": dimm.slot or "", "dimm_label": dimm.label or ""}
        if name == "memras_dimm_corrected_errors_total":
            yield f"{name}{_labels(**labels)} {dimm.corrected}"
        elif name == "memras_dimm_uncorrected_errors_total":
            yield f"{name}{_labels(**labels)} {dimm.uncorrected}"
        elif dimm.verdict:
            yield f"{name}{_labels(**labels, verdict=dimm.verdict)} 1"


def write_atomically(path: Path, text: str) -> None:
    """Write ``text`` to a temporary file beside ``path`` and rename it into place."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


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
        self._server: Any = None
        if self.listen:
            self._serve(str(self.listen))

    def send(self, alert: Alert) -> None:
        """Nothing to deliver per alert: state is exported by :meth:`publish`."""

    def publish(self, snapshot: MetricsSnapshot) -> None:
        with self._lock:
            self._snapshot = snapshot
        if self.path is None:
            return
        try:
            write_atomically(self.path, render(snapshot))
        except OSError as exc:
            raise HookError(f"prometheus: cannot write {self.path}: {exc.strerror}") from exc

    def current(self) -> MetricsSnapshot:
        with self._lock:
            return self._snapshot

    def _serve(self, listen: str) -> None:
        from prometheus_client import CollectorRegistry, start_http_server

        host, _, port = listen.rpartition(":")
        registry = CollectorRegistry(auto_describe=False)
        registry.register(_SnapshotCollector(self))
        try:
            self._server, _thread = start_http_server(int(port), addr=host or "127.0.0.1",
                                                      registry=registry)
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


class _SnapshotCollector:
    """prometheus_client collector over the hook's latest snapshot."""

    def __init__(self, hook: PrometheusHook) -> None:
        self.hook = hook

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        snap = self.hook.current()
        labels = ["dimm", "slot", "dimm_label"]
        ce = CounterMetricFamily("memras_dimm_corrected_errors", METRICS[0][2], labels=labels)
        ue = CounterMetricFamily("memras_dimm_uncorrected_errors", METRICS[1][2], labels=labels)
        verdict = GaugeMetricFamily("memras_dimm_verdict", METRICS[2][2],
                                    labels=[*labels, "verdict"])
        for dimm in snap.dimms:
            values = [dimm.dimm_id, dimm.slot or "", dimm.label or ""]
            ce.add_metric(values, dimm.corrected)
            ue.add_metric(values, dimm.uncorrected)
            if dimm.verdict:
                verdict.add_metric([*values, dimm.verdict], 1)
        yield from (ce, ue, verdict)
        yield GaugeMetricFamily("memras_alerts_open", METRICS[3][2], value=snap.alerts_open)
        ok = CounterMetricFamily("memras_alert_deliveries", METRICS[4][2], labels=["hook"])
        failed = CounterMetricFamily("memras_alert_delivery_failures", METRICS[5][2],
                                     labels=["hook"])
        for hook in snap.hooks:
            ok.add_metric([hook.hook], hook.delivered)
            failed.add_metric([hook.hook], hook.failed)
        yield from (ok, failed)
