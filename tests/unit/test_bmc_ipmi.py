"""IPMI against a real BMC: ipmitool -I lanplus to OpenIPMI's ipmi_sim on 127.0.0.1.

What the BMC was told is read from the sim's side (its chassis_control program's log),
and SEL records are put in by the sim's own `sel_add`, as firmware would log them.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from memras.audit.service import AuditTrail
from memras.bmc.config import BmcConfig, bmc_config
from memras.bmc.ipmi import Ipmitool
from memras.bmc.led import set_slot_led, workflow_led
from memras.cli import main
from memras.config import parse_config_text
from memras.errors import BmcError, Refused, UsageError
from memras.records import ErrorType
from memras.sim import profiles
from memras.store import Store
from memras.watcher.sel_source import BmcSelSource
from memras.workflow.runner import Replacement, ReplaceOptions
from memras.workflow.states import State
from tests.fixtures.ipmi_sim import (
    CORRECTABLE_ECC,
    DEVICE_DISABLED,
    PASSWORD,
    UNCORRECTABLE_ECC,
    IpmiSim,
    ipmi_sim,  # noqa: F401  (the fixture)
)

FAST = {"backoff_initial_s": 0.01, "backoff_max_s": 0.02, "max_attempts": 4}


def config_of(sim: IpmiSim, **over: object) -> BmcConfig:
    cfg = bmc_config(parse_config_text(sim.toml()))
    assert cfg is not None
    return BmcConfig(**{**cfg.__dict__, **over})


def test_identify_on_and_off_reach_the_bmc(ipmi_sim: IpmiSim) -> None:  # noqa: F811
    before = len(ipmi_sim.chassis_calls())
    on = set_slot_led(config_of(ipmi_sim), ["P1-DIMMB1"], True)
    off = set_slot_led(config_of(ipmi_sim), ["P1-DIMMB1"], False)
    # Chassis Identify: force=1 (on until turned off), then interval 0 (off)
    assert ipmi_sim.chassis_calls()[before:] == ["set identify 0 1", "set identify 0 0"]
    assert (on.ok, on.led, off.ok) == (True, "chassis identify", True)
    assert on.data["answer"] == "Chassis identify interval: indefinite"
    assert off.data["answer"] == "Chassis identify interval: off"


def test_the_password_is_never_on_the_command_line(ipmi_sim: IpmiSim) -> None:  # noqa: F811
    tool = Ipmitool(config_of(ipmi_sim))
    argv = tool.argv(["chassis", "status"])
    assert PASSWORD not in " ".join(argv) and "-P" not in argv and "-E" in argv
    assert tool._env()["IPMI_PASSWORD"] == PASSWORD
    assert "System Power" in tool.run(["chassis", "status"]).stdout


def test_a_wrong_password_is_one_line_with_what_to_check(ipmi_sim: IpmiSim,  # noqa: F811
                                                         tmp_path: Path) -> None:
    wrong = tmp_path / "wrong.pass"
    wrong.write_text("not-it\n")
    wrong.chmod(0o600)
    with pytest.raises(BmcError) as info:
        Ipmitool(config_of(ipmi_sim, password_file=str(wrong))).identify(True)
    assert "not-it" not in str(info.value) and "\n" not in info.value.msg
    assert "password_file" in (info.value.hint or "")


def test_a_password_file_others_can_read_is_refused(ipmi_sim: IpmiSim,  # noqa: F811
                                                    tmp_path: Path) -> None:
    loose = tmp_path / "loose.pass"
    loose.write_text(PASSWORD)
    loose.chmod(0o644)
    with pytest.raises(UsageError, match="mode 0644"):
        Ipmitool(config_of(ipmi_sim, password_file=str(loose))).identify(True)


def test_in_band_leds_are_refused_under_the_test_suite() -> None:
    assert os.environ.get("MEMRAS_FORBID_REAL_WRITES") == "1"
    with pytest.raises(Refused):
        Ipmitool(BmcConfig(interface="open")).identify(True)


def test_sel_records_added_to_the_bmc_reach_the_store(ipmi_sim: IpmiSim,  # noqa: F811
                                                      tmp_path: Path) -> None:
    ipmi_sim.sel_add_memory(CORRECTABLE_ECC)
    ipmi_sim.sel_add_memory(UNCORRECTABLE_ECC, sensor=0x03)
    ipmi_sim.sel_add_memory(DEVICE_DISABLED)
    ipmi_sim.sel_add_memory(CORRECTABLE_ECC, deassert=True)  # an end, not an error
    now = [0.0]
    source = BmcSelSource(config_of(ipmi_sim, sel_interval_s=60.0), clock=lambda: now[0])
    source.start(None)
    batch = source.poll(0)
    types = [r.error_type for r in batch.records]
    assert types[-3:] == [ErrorType.CORRECTED, ErrorType.UNCORRECTED, ErrorType.UNCORRECTED]
    assert [r.driver_detail for r in batch.records[-3:]] == [
        "Memory #0x02: Correctable ECC", "Memory #0x03: Uncorrectable ECC",
        "Memory #0x02: Memory Device Disabled"]
    assert batch.skipped == []
    assert not source.poll(0)  # not due before sel_interval
    now[0] = 61.0
    assert source.poll(0).records == []  # nothing new on the BMC: nothing again
    with Store.open(tmp_path / "m.db") as store:
        first = store.add_events(batch.records)
        again = BmcSelSource(config_of(ipmi_sim))  # a restarted watcher reads it all
        second = store.add_events(again.poll(0).records)
    assert first.inserted == len(batch.records)
    assert (second.inserted, second.duplicates) == (0, len(batch.records))


def test_an_unreachable_bmc_is_a_skipped_poll(ipmi_sim: IpmiSim) -> None:  # noqa: F811
    source = BmcSelSource(config_of(ipmi_sim, port=1, timeout_s=3.0))
    batch = source.poll(0)
    assert batch.records == [] and len(batch.skipped) == 1
    assert batch.skipped[0].startswith("SEL not read: ")


def test_memras_led_json(ipmi_sim: IpmiSim, tmp_path: Path,  # noqa: F811
                         capsys: pytest.CaptureFixture[str]) -> None:
    conf = tmp_path / "memras.toml"
    conf.write_text(ipmi_sim.toml())
    before = len(ipmi_sim.chassis_calls())
    assert main(["--config", str(conf), "led", "on", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["ok"], out["kind"], out["on"]) == (True, "ipmi", True)
    assert PASSWORD not in json.dumps(out)
    assert main(["--config", str(conf), "led", "off"]) == 0
    assert "chassis identify LED off" in capsys.readouterr().out
    assert ipmi_sim.chassis_calls()[before:] == ["set identify 0 1", "set identify 0 0"]


def test_memras_led_without_a_bmc_says_how_to_add_one(tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]
                                                      ) -> None:
    conf = tmp_path / "memras.toml"
    conf.write_text("")
    assert main(["--config", str(conf), "led", "on"]) == 2
    assert "no BMC is configured" in capsys.readouterr().err


def test_replacement_lights_the_slot_at_the_swap_and_clears_it_at_verify(
        ipmi_sim: IpmiSim, tmp_path: Path) -> None:  # noqa: F811
    conf = tmp_path / "memras.toml"
    conf.write_text(ipmi_sim.toml())
    host = profiles.create("demo", tmp_path / "root").host()
    before = len(ipmi_sim.chassis_calls())
    with Store.open(tmp_path / "m.db") as store:
        rep = Replacement.start(host, store, "P1-DIMMB1",
                                ReplaceOptions(policy=FAST, alerts_config=str(conf)))
        steps: list[tuple[str, int]] = []
        while not rep.finished:
            outcome = rep.next_step()
            steps.append((outcome.step, len(ipmi_sim.chassis_calls()) - before))
        rep.close()
        assert rep.state is State.CLOSED
        audit = {e.action: e.data for e in AuditTrail(store).list(replacement_id=rep.id)}
    # lit before the removal (the "pull this module" step), cleared by verify, not before
    assert dict(steps)["offline_blocks"] == 0
    assert dict(steps)["remove_module"] == 1 and dict(steps)["online_blocks"] == 1
    assert dict(steps)["verify"] == 2
    assert ipmi_sim.chassis_calls()[before:] == ["set identify 0 1", "set identify 0 0"]
    assert audit["remove_module"]["led"]["on"] is True
    assert audit["verify"]["led"]["on"] is False and audit["verify"]["led"]["ok"] is True
    assert "led" not in audit["offline_blocks"]


def test_a_dead_bmc_is_a_warning_in_the_audit_not_a_failed_replacement(
        ipmi_sim: IpmiSim, tmp_path: Path) -> None:  # noqa: F811
    conf = tmp_path / "memras.toml"
    conf.write_text(ipmi_sim.toml().replace(f"port = {ipmi_sim.port}", "port = 1")
                    .replace('timeout = "20s"', 'timeout = "2s"'))
    host = profiles.create("demo", tmp_path / "root").host()
    said: list[str] = []
    with Store.open(tmp_path / "m.db") as store:
        rep = Replacement.start(host, store, "P1-DIMMB1",
                                ReplaceOptions(policy=FAST, alerts_config=str(conf)),
                                say=said.append)
        rep.run()
        assert rep.state is State.CLOSED
        audit = {e.action: e.data for e in AuditTrail(store).list(replacement_id=rep.id)}
        assert AuditTrail(store).verify().ok
    for step in ("remove_module", "verify"):
        assert audit[step]["outcome"] == "ok"
        assert audit[step]["led"]["ok"] is False
        assert audit[step]["led"]["warning"].startswith("slot LED not turned")
    assert sum(1 for s in said if s.startswith("warning: slot LED")) == 2


def test_no_bmc_configured_leaves_the_audit_as_it_was(tmp_path: Path) -> None:
    assert workflow_led(None, "remove_module", ["P1-DIMMB1"]) is None
    conf = tmp_path / "memras.toml"
    conf.write_text('[bmc]\nkind = "ipmi"\ninterface = "lanplus"\nled = false\n'
                    'address = "127.0.0.1"\nuser = "u"\npassword_file = "/nonexistent"\n')
    assert workflow_led(str(conf), "remove_module", ["P1-DIMMB1"]) is None
