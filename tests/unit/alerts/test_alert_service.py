"""AlertService over the real memras store (SQLite file), and the ``memras alerts`` CLI."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from memras.alerts.alert import AlertState
from memras.alerts.config import AlertsConfig
from memras.alerts.service import AlertService
from memras.cli import main
from memras.errors import UsageError
from memras.store.store import Store

from .conftest import HttpReceiver


@dataclass
class Change:
    kind: str = "threshold-crossed"
    dimm_id: str = "mc0-dimm2"
    severity: str = "warning"
    message: str = "12 corrected errors in 24h"
    time: datetime = field(default_factory=lambda: datetime.now(UTC))
    evidence: dict[str, Any] = field(default_factory=lambda: {"ce_count": 12,
                                                              "dimm_label": "CPU0_DIMM_C1"})
    rule_ids: tuple[str, ...] = ("ce-24h",)
    verdict: str = "suspect"


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "memras.db"


@pytest.fixture
def store(db: Path) -> Iterator[Store]:
    with Store.open(db) as opened:
        yield opened


def _config(receiver: HttpReceiver) -> AlertsConfig:
    return AlertsConfig.from_dict({"retry": {"attempts": 2, "backoff": 0},
                                   "hooks": {"webhook": {"url": receiver.url}}})


def test_dedup_ack_resolve_persist_in_the_store(store: Store, db: Path,
                                                http_receiver: HttpReceiver) -> None:
    service = AlertService.open(store, _config(http_receiver))
    first = service.raise_change(Change())
    second = service.raise_change(Change())
    assert first.notified and not second.notified
    assert len(http_receiver.requests) == 1
    acked = service.ack(first.alert.id, by="ana", note="swap on Friday")
    assert [r.json()["state"] for r in http_receiver.requests] == ["open", "acked"]
    with Store.open(db, create=False) as reopened:  # another process's view
        again = AlertService.open(reopened).get(acked.id)
    assert (again.state, again.acked_by, again.ack_note, again.repeats) == (
        AlertState.ACKED, "ana", "swap on Friday", 1)
    assert again.dimm_label == "CPU0_DIMM_C1" and again.evidence["ce_count"] == 12
    service.resolve(first.alert.id)
    third = service.raise_change(Change())
    assert third.notified and third.alert.id != first.alert.id
    deliveries = service.deliveries(first.alert.id)
    assert [(d.hook, d.attempt, d.status) for d in deliveries] == [
        ("webhook", 1, "ok"), ("webhook", 1, "ok"), ("webhook", 1, "ok")]


def test_failed_attempts_are_recorded_with_their_error(store: Store,
                                                       http_receiver: HttpReceiver) -> None:
    http_receiver.fail_first = 5
    result = AlertService.open(store, _config(http_receiver)).raise_change(Change(kind="ue"))
    assert result.results[0].status == "failed"
    records = AlertService.open(store).deliveries(result.alert.id)
    assert [(d.attempt, d.status) for d in records] == [(1, "failed"), (2, "failed")]
    assert all("HTTP 503" in d.error for d in records)


def test_unknown_id_and_acking_a_resolved_alert_are_usage_errors(store: Store) -> None:
    service = AlertService.open(store)
    with pytest.raises(UsageError, match="no alert with id 99"):
        service.ack(99)
    alert = service.raise_change(Change()).alert
    service.resolve(alert.id)
    with pytest.raises(UsageError, match="already resolved"):
        service.ack(alert.id)


def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_list_ack_resolve_with_json(store: Store, db: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    service = AlertService.open(store)
    alert_id = service.raise_change(Change(evidence={"dimm_label": "A1\x1b[31m"})).alert.id
    code, out, _ = _cli(capsys, "--db", str(db), "alerts")
    assert code == 0 and "A1\\x1b[31m" in out and "\x1b" not in out
    code, out, _ = _cli(capsys, "alerts", "ack", str(alert_id), "--note", "seen",
                        "--by", "bo", "--db", str(db), "--json")
    assert code == 0 and json.loads(out)["changed"][0]["ack"]["by"] == "bo"
    code, out, _ = _cli(capsys, "alerts", "list", "--state", "acked", "--db", str(db), "--json")
    (payload,) = json.loads(out)
    assert payload["dimm"]["label"] == "A1\x1b[31m" and payload["ack"]["note"] == "seen"
    code, out, _ = _cli(capsys, "alerts", "resolve", str(alert_id), "--db", str(db))
    assert code == 0 and f"alert {alert_id} resolved" in out
    code, out, _ = _cli(capsys, "alerts", "--db", str(db), "--json")
    assert json.loads(out) == []


def test_cli_unknown_id_is_one_clear_line(store: Store, db: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _cli(capsys, "alerts", "ack", "404", "--db", str(db))
    assert code == 2 and err.strip().startswith("memras: no alert with id 404")


def test_cli_test_reports_each_hook(tmp_path: Path, http_receiver: HttpReceiver,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "memras.toml"
    config.write_text(f'[alerts.retry]\nattempts = 1\n[alerts.hooks.webhook]\n'
                      f'url = "{http_receiver.url}"\n[alerts.hooks.syslog]\nfacility = "nosuch"\n')
    code, out, _ = _cli(capsys, "alerts", "test", "--config", str(config), "--json")
    results = {r["hook"]: r for r in json.loads(out)["results"]}
    assert code == 1
    assert results["webhook"]["status"] == "ok"
    assert results["syslog"]["status"] == "not-loaded"
    assert http_receiver.requests[0].json()["test"] is True
    code, out, _ = _cli(capsys, "alerts", "test", "--hook", "webhook", "--config", str(config))
    assert code == 0 and "webhook" in out and "ok" in out
    code, _, err = _cli(capsys, "alerts", "test", "--hook", "email", "--config", str(config))
    assert code == 2 and "hook email is not configured" in err


def test_open_alerts_api_for_status(store: Store, db: Path) -> None:
    from memras.alerts.api import open_alerts

    service = AlertService.open(store)
    kept = service.raise_change(Change(kind="ue", severity="critical", message="UE")).alert
    service.raise_change(Change(kind="ue", severity="critical", message="UE"))
    gone = service.raise_change(Change(dimm_id="mc0-dimm5")).alert
    service.resolve(gone.id)
    (row,) = open_alerts(str(db))
    assert row["id"] == kept.id and row["schema"] == "memras.alert/v1"
    assert row["title"] == f"#{kept.id} CRITICAL ue CPU0_DIMM_C1: UE (x2)"
