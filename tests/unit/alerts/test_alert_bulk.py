"""Acks keep earlier notes; ``memras alerts ack|resolve`` take several ids or --dimm."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from memras.alerts.alert import AlertState
from memras.alerts.config import AlertsConfig, HookConfig, RateLimit
from memras.alerts.dispatcher import Dispatcher, MemoryAlertStore
from memras.alerts.hooks import RecordingHook
from memras.alerts.service import AlertService
from memras.cli import main
from memras.errors import UsageError
from memras.sim import profiles
from memras.store.store import Store


@dataclass
class Change:
    dimm_id: str = "mc0/dimm2"
    kind: str = "threshold-crossed"
    severity: str = "warning"
    message: str = "12 corrected errors in 24h"
    time: datetime = field(default_factory=lambda: datetime.now(UTC))
    evidence: dict[str, Any] = field(default_factory=lambda: {"dimm_label": "P1-DIMMB1"})
    rule_ids: tuple[str, ...] = ("ce-24h",)


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "memras.db"


@pytest.fixture
def service(db: Path) -> Iterator[AlertService]:
    with Store.open(db) as store:
        yield AlertService.open(store)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A simulated demo server, for --dimm names."""
    profiles.create("demo", tmp_path / "root")
    return tmp_path / "root"


def raise_on(service: AlertService, dimm_id: str, kind: str = "threshold-crossed",
             label: str | None = None) -> int:
    change = Change(dimm_id=dimm_id, kind=kind,
                    evidence={"dimm_label": label} if label else {})
    alert_id = service.raise_change(change).alert.id
    assert alert_id is not None
    return alert_id


def test_a_second_ack_without_a_note_keeps_the_first_note(service: AlertService) -> None:
    alert_id = raise_on(service, "mc0/dimm2")
    first = service.ack(alert_id, by="ana", note="swap booked for Friday")
    again = service.ack(alert_id, by="bo")
    assert again.ack_note == "swap booked for Friday"
    assert (again.acked_by, again.acked_at) == ("ana", first.acked_at)  # the first ack's


def test_a_later_note_is_appended_with_who_and_when(service: AlertService) -> None:
    alert_id = raise_on(service, "mc0/dimm2")
    service.ack(alert_id, by="ana", note="swap booked")
    later = service.ack(alert_id, by="bo", note="part arrived")
    first, second = later.ack_note.splitlines()
    assert first == "swap booked"
    assert second.endswith(" UTC bo: part arrived") and second[:4].isdigit()
    assert later.acked_by == "ana"


def test_a_note_on_an_alert_acked_without_one_names_its_author() -> None:
    hook = RecordingHook()
    dispatcher = Dispatcher(MemoryAlertStore(), [(HookConfig("rec", {}, RateLimit()), hook)],
                            AlertsConfig())
    service = AlertService(dispatcher)
    alert_id = raise_on(service, "mc0/dimm2")
    service.ack(alert_id, by="ana")
    service.ack(alert_id, by="ana")  # nothing to say: nothing changes, nobody is told
    noted = service.ack(alert_id, by="bo", note="seen")
    assert noted.ack_note is not None and noted.ack_note.endswith("UTC bo: seen")
    assert [a.state.value for a in hook.sent][1:] == ["acked", "acked"]


def test_bulk_ack_checks_every_id_before_changing_any(service: AlertService) -> None:
    ids = [raise_on(service, "mc0/dimm2"), raise_on(service, "mc1/dimm0")]
    with pytest.raises(UsageError, match="no alert with id 99"):
        service.ack_many([*ids, 99])
    service.resolve(ids[1])
    with pytest.raises(UsageError, match=f"alert {ids[1]} is already resolved"):
        service.ack_many(ids)
    assert service.get(ids[0]).state is AlertState.OPEN  # nothing was acknowledged


def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, Any, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    try:
        return code, json.loads(out), err
    except ValueError:
        return code, out, err


def test_cli_acks_and_resolves_several_ids_listing_what_changed(
        service: AlertService, db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a, b, c = (raise_on(service, f"mc0/dimm{n}") for n in range(3))
    service.ack(b, by="ana")
    code, out, _ = _cli(capsys, "alerts", "ack", str(a), str(b), "--by", "bo",
                        "--db", str(db), "--json")
    assert code == 0
    assert [p["id"] for p in out["changed"]] == [a]
    assert [p["id"] for p in out["unchanged"]] == [b]
    code, out, _ = _cli(capsys, "alerts", "resolve", str(a), str(c), str(a), "--db", str(db),
                        "--by", "bo", "--json")
    assert [p["id"] for p in out["changed"]] == [a, c]  # each once
    assert out["changed"][0]["evidence"]["resolution"]["by"] == "bo"
    code, text, _ = _cli(capsys, "alerts", "resolve", str(a), "--db", str(db))
    assert code == 0 and f"alert {a} unchanged: already resolved" in text


def test_cli_needs_ids_or_dimm_and_not_both(db: Path, service: AlertService,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _cli(capsys, "alerts", "ack", "--db", str(db))
    assert code == 2 and "name the alerts to ack" in err
    code, _, err = _cli(capsys, "alerts", "resolve", "1", "--dimm", "x", "--db", str(db))
    assert code == 2 and "not both" in err


def test_cli_dimm_names_a_module_as_every_command_does(
        root: Path, service: AlertService, db: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    mine = [raise_on(service, "mc0/dimm2"), raise_on(service, "mc0/dimm2", kind="ue")]
    other = raise_on(service, "mc1/dimm0")
    code, out, _ = _cli(capsys, "alerts", "ack", "--dimm", "P1-DIMMB1", "--note", "swap",
                        "--root", str(root), "--db", str(db), "--json")
    assert code == 0 and sorted(p["id"] for p in out["changed"]) == sorted(mine)
    assert {p["ack"]["note"] for p in out["changed"]} == {"swap"}
    code, out, _ = _cli(capsys, "alerts", "resolve", "--dimm", "mc0/dimm2",
                        "--root", str(root), "--db", str(db), "--json")
    assert sorted(p["id"] for p in out["changed"]) == sorted(mine)
    assert service.get(other).state is AlertState.OPEN
    code, _, err = _cli(capsys, "alerts", "resolve", "--dimm", "NO-SUCH", "--root", str(root),
                        "--db", str(db))
    assert code == 2 and "no DIMM called 'NO-SUCH'" in err


def test_cli_dimm_finds_a_module_this_host_no_longer_shows_by_its_stored_label(
        root: Path, service: AlertService, db: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    gone = raise_on(service, "mc9/dimm9", label="GONE_DIMM")
    code, out, _ = _cli(capsys, "alerts", "resolve", "--dimm", "GONE_DIMM", "--root", str(root),
                        "--db", str(db), "--json")
    assert code == 0 and [p["id"] for p in out["changed"]] == [gone]


def test_gap_grace_is_read_from_the_alerts_table_within_its_bounds() -> None:
    assert AlertsConfig().gap_grace_s == 30.0
    assert AlertsConfig.from_dict({"gap_grace": "2m"}).gap_grace_s == 120.0
    with pytest.raises(UsageError, match="gap_grace 7200s is out of range"):
        AlertsConfig.from_dict({"gap_grace": "2h"})
