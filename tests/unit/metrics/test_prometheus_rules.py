"""contrib/prometheus/memras-alerts.yml and contrib/grafana/memras-dashboard.json, checked
by the real promtool (Debian's ``prometheus`` package, installed by scripts/test.sh)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from memras.plugins.alerts.prometheus_hook import render

from memras.alerts.hooks import DimmMetrics, MetricsSnapshot

ROOT = Path(__file__).resolve().parents[3]
RULES = ROOT / "contrib/prometheus/memras-alerts.yml"
RULE_TESTS = ROOT / "contrib/prometheus/memras-alerts.test.yml"
DASHBOARD = ROOT / "contrib/grafana/memras-dashboard.json"


def promtool() -> str:
    exe = shutil.which("promtool")
    if exe is None:
        pytest.skip("promtool is not installed (scripts/test.sh installs Debian's "
                    "prometheus package)")
    return exe


def _run(*argv: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([promtool(), *argv], capture_output=True, text=True, timeout=60,
                          cwd=cwd)


def test_promtool_checks_the_rules() -> None:
    done = _run("check", "rules", str(RULES), cwd=ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS: 7 rules found" in done.stdout


def test_promtool_runs_the_rules_unit_tests() -> None:
    done = _run("test", "rules", RULE_TESTS.name, cwd=RULE_TESTS.parent)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def test_promtool_catches_a_broken_rule(tmp_path: Path) -> None:
    """The check above can fail: a rule with a PromQL typo does."""
    broken = tmp_path / "broken.yml"
    broken.write_text(RULES.read_text().replace("memras_up == 0", "memras_up == == 0"))
    done = _run("check", "rules", str(broken), cwd=tmp_path)
    assert done.returncode != 0 and "MemrasCannotReadDatabase" in done.stdout + done.stderr


def _written_metrics() -> set[str]:
    text = render(MetricsSnapshot(dimms=(DimmMetrics("mc0/dimm0", "A1", 1, 0, "ok"),)))
    return {line.split()[2] for line in text.splitlines() if line.startswith("# TYPE")}


def expressions() -> list[str]:
    """Every PromQL expression of the rules file and the dashboard."""
    rules = re.findall(r"^\s+expr: (.+)$", RULES.read_text(), re.MULTILINE)
    panels = json.loads(DASHBOARD.read_text())["panels"]
    return rules + [t["expr"] for p in panels for t in p["targets"]]


def test_rules_and_dashboard_use_only_metrics_memras_writes() -> None:
    written = _written_metrics()
    assert {"memras_up", "memras_build_info", "memras_dimm_corrected_errors_total",
            "memras_dimm_uncorrected_errors_total", "memras_dimm_verdict",
            "memras_last_event_timestamp_seconds"} <= written
    exprs = expressions()
    assert len(exprs) == 7 + 13
    used = {name for e in exprs for name in re.findall(r"\bmemras_[a-z_]+", e)}
    assert used <= written, used - written
    assert {m for m in written if m.startswith("memras_dimm")} <= used  # every DIMM metric
