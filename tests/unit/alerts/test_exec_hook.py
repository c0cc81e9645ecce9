"""The exec hook runs a real trigger script; rasdaemon/mcelog-compatible variables."""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from memras.plugins.alerts.exec_hook import ExecHook

from memras.alerts.alert import Alert, AlertKind, Severity, event_evidence
from memras.errors import HookError
from memras.records import DimmLocation, ErrorType, MemoryErrorEvent, Source

RECORDER = f"""#!{sys.executable}
import json, os, shutil, sys
out = sys.argv[1]
with open(out, "w") as f:
    json.dump(dict(os.environ), f)
shutil.copy(os.environ["MEMRAS_ALERT_JSON"], out + ".alert.json")
"""


@pytest.fixture
def utc_tz(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def _script(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "trigger"
    path.write_text(text)
    path.chmod(0o755)
    return path


def _threshold_alert() -> Alert:
    event = MemoryErrorEvent(
        error_type=ErrorType.CORRECTED, source=Source.TRACE, count=1,
        timestamp=datetime(2025, 3, 1, 11, 59, 7, tzinfo=UTC), address=0x12345000,
        grain_bits=5, syndrome=0xBEEF, message="memory read error",
        driver_detail="area:DRAM socket:0 rank:0",
        location=DimmLocation(socket=0, mc=0, channel=1, slot=0, top_layer=0, middle_layer=1,
                              label="CPU_SrcID#0_Ha#0_Chan#1_DIMM#0"),
    )
    evidence = {"last_event": event_evidence(event), "ce_count": 12, "ue_count": 0,
                "threshold": {"count": 10, "window_s": 86400, "observed": 12},
                "bank_locator": "P0_Node0_Channel1_Dimm0"}
    return Alert(kind=AlertKind.THRESHOLD_CROSSED, severity=Severity.WARNING,
                 message="corrected DIMM memory error count exceeded threshold",
                 dimm_id="mc0-dimm1", dimm_label="CPU_SrcID#0_Ha#0_Chan#1_DIMM#0",
                 evidence=evidence, verdict="suspect", rule_ids=("ce-24h",), id=42)


def _run(tmp_path: Path, alert: Alert, **options: object) -> tuple[dict, dict]:
    out = tmp_path / "env.json"
    ExecHook({"command": [str(_script(tmp_path, RECORDER)), str(out)], **options}).send(alert)
    alert_json = json.loads(Path(f"{out}.alert.json").read_text())
    return json.loads(out.read_text()), alert_json


def test_trigger_gets_rasdaemon_variables(tmp_path: Path, utc_tz: None) -> None:
    env, _ = _run(tmp_path, _threshold_alert())
    assert env["TIMESTAMP"] == "2025-03-01 11:59:07 +0000"
    assert env["COUNT"] == "1"
    assert env["TYPE"] == "Corrected"
    assert env["MESSAGE"] == "memory read error"
    assert env["LABEL"] == "CPU_SrcID#0_Ha#0_Chan#1_DIMM#0"
    assert (env["MC_INDEX"], env["TOP_LAYER"], env["MIDDLE_LAYER"], env["LOWER_LAYER"]) == (
        "0", "0", "1", "-1")
    assert env["ADDRESS"] == "12345000"  # %llx, no 0x
    assert env["GRAIN"] == "5"
    assert env["SYNDROME"] == "beef"
    assert env["DRIVER_DETAIL"] == "area:DRAM socket:0 rank:0"


def test_trigger_gets_mcelog_and_memras_variables(tmp_path: Path, utc_tz: None) -> None:
    env, alert_json = _run(tmp_path, _threshold_alert())
    assert env["THRESHOLD"] == "12 in 24h"  # count+excess, as mcelog prints it
    assert env["TOTALCOUNT"] == "12" and env["CECOUNT"] == "12" and env["UCCOUNT"] == "0"
    assert env["LOCATION"] == ("SOCKET:0 CHANNEL:1 DIMM:0 "
                               "[P0_Node0_Channel1_Dimm0 CPU_SrcID#0_Ha#0_Chan#1_DIMM#0]")
    assert env["DMI_LOCATION"] == "P0_Node0_Channel1_Dimm0"
    assert (env["SOCKETID"], env["CHANNEL"], env["DIMM"]) == ("0", "1", "0")
    assert env["LASTEVENT"] == str(int(datetime(2025, 3, 1, 11, 59, 7, tzinfo=UTC).timestamp()))
    assert env["AGETIME"] == "86400" and env["THRESHOLD_COUNT"] == "12"
    assert env["MEMRAS_ALERT_ID"] == "42"
    assert env["MEMRAS_VERDICT"] == "suspect" and env["MEMRAS_SEVERITY"] == "warning"
    assert alert_json["schema"] == "memras.alert/v1" and alert_json["id"] == 42
    assert not Path(env["MEMRAS_ALERT_JSON"]).exists()  # cleaned up after the run
    assert "HOME" not in env  # only the documented variables, like the daemons


def test_mcelog_message_style_and_unknown_fields_absent(tmp_path: Path) -> None:
    alert = Alert(kind=AlertKind.THRESHOLD_CROSSED, severity=Severity.WARNING,
                  message="corrected DIMM memory error count exceeded threshold",
                  dimm_id="d9", evidence={"ce_count": 3,
                                          "threshold": {"count": 2, "window_s": 3600}})
    env, _ = _run(tmp_path, alert, message_style="mcelog")
    assert env["MESSAGE"] == "corrected DIMM memory error count exceeded threshold: 2 in 1h"
    for absent in ("DIMM", "CHANNEL", "SOCKETID", "DMI_LOCATION", "LASTEVENT", "UCCOUNT",
                   "LOCATION"):
        assert absent not in env
    assert env["TOTALCOUNT"] == "3"
    assert "THRESHOLD_COUNT" not in env  # nothing said how many were seen in the window


def test_health_engine_change_feeds_the_mcelog_threshold_variables(tmp_path: Path) -> None:
    from memras.health.engine import ChangeKind, HealthChange

    change = HealthChange(ChangeKind.THRESHOLD_CROSSED, "mc0-dimm1",
                          datetime(2025, 3, 1, tzinfo=UTC), "warning",
                          "dimm mc0-dimm1: 12 CEs crossed 10 / 24h (mcelog-dimm-ce)",
                          {"scope": "dimm", "key": "mc0-dimm1", "threshold": "10 / 24h",
                           "total_in_window": 12}, ("mcelog-dimm-ce",))
    env, alert_json = _run(tmp_path, Alert.from_change(change).replace(id=3))
    assert (env["THRESHOLD"], env["THRESHOLD_COUNT"], env["AGETIME"]) == ("12 in 24h", "12",
                                                                          "86400")
    assert alert_json["kind"] == "threshold-crossed"
    assert alert_json["rule_ids"] == ["mcelog-dimm-ce"]


def test_timeout_kills_the_trigger_and_its_children(tmp_path: Path) -> None:
    pidfile = tmp_path / "child.pid"
    script = _script(tmp_path, f"#!/bin/sh\nsleep 60 &\necho $! > {pidfile}\nsleep 60\n")
    hook = ExecHook({"command": [str(script)], "timeout": 0.5})
    started = time.monotonic()
    with pytest.raises(HookError, match="killed after 0.5s timeout"):
        hook.send(_threshold_alert())
    assert time.monotonic() - started < 10
    child = int(pidfile.read_text())
    for _ in range(50):
        if not _alive(child):
            break
        time.sleep(0.05)
    assert not _alive(child)


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.split(")")[-1].split()[0] != "Z"


def test_failing_trigger_reports_exit_status_and_stderr(tmp_path: Path) -> None:
    script = _script(tmp_path, "#!/bin/sh\necho 'no pager configured' >&2\nexit 3\n")
    with pytest.raises(HookError, match="exited 3: no pager configured"):
        ExecHook({"command": [str(script)]}).send(_threshold_alert())


def test_missing_program_and_bad_options_are_hook_errors(tmp_path: Path) -> None:
    with pytest.raises(HookError, match="cannot run"):
        ExecHook({"command": [str(tmp_path / "absent")]}).send(_threshold_alert())
    with pytest.raises(HookError, match="command"):
        ExecHook({})
    with pytest.raises(HookError, match="argv"):
        ExecHook({"command": [1, 2]})
    assert os.environ.get("MEMRAS_ALERT_ID") is None
