"""Redfish against sushy-tools' sushy-emulator (fake driver) on 127.0.0.1, extended with
Memory resources (tests/fixtures/redfish_emulator.py says how). The emulator records
every PATCH body, so the tests check what memras sent as well as what it read back."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from memras.audit.service import AuditTrail
from memras.bmc.config import BmcConfig, bmc_config
from memras.bmc.led import set_slot_led
from memras.bmc.redfish import RedfishClient, match_slot
from memras.cli import main
from memras.config import parse_config_text
from memras.errors import BmcError
from memras.sim import profiles
from memras.store import Store
from memras.workflow.runner import Replacement, ReplaceOptions
from memras.workflow.states import State
from tests.fixtures.redfish_emulator import (
    PASSWORD,
    RedfishEmulator,
    redfish_emulator,  # noqa: F401  (the fixture)
    start_emulator,
)

FAST = {"backoff_initial_s": 0.01, "backoff_max_s": 0.02, "max_attempts": 4}


def config_of(emu: RedfishEmulator, **over: object) -> BmcConfig:
    cfg = bmc_config(parse_config_text(emu.toml()))
    assert cfg is not None
    return BmcConfig(**{**cfg.__dict__, **over})


def led_of(emu: RedfishEmulator, name: str) -> bool | None:
    with RedfishClient(config_of(emu)) as client:
        return client.find_slot([name]).led


@pytest.mark.parametrize("name", ["P1-DIMMB1", "cpu1 dimm b1"])  # DeviceLocator, label
def test_light_and_clear_the_slot(redfish_emulator: RedfishEmulator,  # noqa: F811
                                  name: str) -> None:
    emu = redfish_emulator
    before = len(emu.patches())
    on = set_slot_led(config_of(emu), [name], True)
    assert (on.ok, on.slot, on.data["read_back"]) == (True, "P1-DIMMB1", True)
    assert on.led.endswith("/Memory/DIMM1")
    assert led_of(emu, "P1-DIMMB1") is True and led_of(emu, "P1-DIMMA1") is False
    off = set_slot_led(config_of(emu), [name], False)
    assert off.ok and led_of(emu, "P1-DIMMB1") is False
    sent = emu.patches()[before:]
    assert [p["body"] for p in sent] == [{"LocationIndicatorActive": True},
                                         {"LocationIndicatorActive": False}]
    assert all(p["uri"] == on.led and p["if_match"] for p in sent)  # ETag honoured


def test_an_unknown_slot_names_what_the_service_has(
        redfish_emulator: RedfishEmulator) -> None:  # noqa: F811
    with pytest.raises(BmcError) as info:
        set_slot_led(config_of(redfish_emulator), ["P9-DIMMZ9"], True)
    assert "P1-DIMMA1, P1-DIMMB1, P2-DIMMA1" in info.value.msg


def test_a_wrong_password_is_refused_by_the_service(redfish_emulator: RedfishEmulator,  # noqa: F811
                                                    tmp_path: Path) -> None:
    wrong = tmp_path / "wrong.pass"
    wrong.write_text("nope\n")
    wrong.chmod(0o600)
    with pytest.raises(BmcError) as info:
        set_slot_led(config_of(redfish_emulator, password_file=str(wrong)), ["P1-DIMMB1"],
                     True)
    assert "HTTP 401" in info.value.msg and "nope" not in str(info.value)


def test_two_resources_with_one_name_are_an_error_not_a_guess() -> None:
    members = [("/m/0", {"DeviceLocator": "DIMM_A1"}),
               ("/m/1", {"Location": {"PartLocation": {"ServiceLabel": "DIMM_A1"}}}),
               ("/m/2", {"Id": "X", "Name": "Y"})]
    with pytest.raises(BmcError, match="2 Memory resources"):
        match_slot(members, ["dimm_a1"])
    assert match_slot(members, ["y"]) == members[2]
    assert match_slot(members, ["nothing"]) is None


def test_memras_led_json_and_exit_codes(redfish_emulator: RedfishEmulator,  # noqa: F811
                                        tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    conf = tmp_path / "memras.toml"
    conf.write_text(redfish_emulator.toml())
    assert main(["--config", str(conf), "led", "on", "P2-DIMMA1", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["ok"], out["kind"], out["data"]["read_back"]) == (True, "redfish", True)
    assert PASSWORD not in json.dumps(out)
    assert main(["--config", str(conf), "led", "off", "P2-DIMMA1"]) == 0
    assert "read back False" in capsys.readouterr().out
    assert main(["--config", str(conf), "led", "on"]) == 2  # Redfish needs the slot
    assert "name the DIMM" in capsys.readouterr().err
    assert main(["--config", str(conf), "led", "on", "P9-NOPE"]) == 1
    assert "no Memory resource called P9-NOPE" in capsys.readouterr().err


def test_replacement_lights_the_slot_and_clears_it(redfish_emulator: RedfishEmulator,  # noqa: F811
                                                   tmp_path: Path) -> None:
    emu = redfish_emulator
    conf = tmp_path / "memras.toml"
    conf.write_text(emu.toml())
    host = profiles.create("demo", tmp_path / "root").host()
    before = len(emu.patches())
    lit_during: list[bool | None] = []
    with Store.open(tmp_path / "m.db") as store:
        rep = Replacement.start(host, store, "P1-DIMMB1",
                                ReplaceOptions(policy=FAST, alerts_config=str(conf)))
        while not rep.finished:
            outcome = rep.next_step()
            if outcome.step == "insert_module":
                lit_during.append(led_of(emu, "P1-DIMMB1"))
        rep.close()
        assert rep.state is State.CLOSED
        audit = {e.action: e.data for e in AuditTrail(store).list(replacement_id=rep.id)}
    assert lit_during == [True]  # the slot shone while the module was out
    assert led_of(emu, "P1-DIMMB1") is False
    assert [p["body"]["LocationIndicatorActive"] for p in emu.patches()[before:]] == \
        [True, False]
    assert audit["remove_module"]["led"]["slot"] == "P1-DIMMB1"
    assert audit["verify"]["led"]["data"]["read_back"] is False


def test_tls_is_verified_against_the_ca_file(tmp_path_factory: pytest.TempPathFactory
                                             ) -> None:
    """https with a self-signed certificate: refused without its CA, accepted with
    ``ca_file``, and with ``verify_tls = false`` only when said so."""
    emu = start_emulator(tmp_path_factory.mktemp("redfish-tls"), tls=True)
    try:
        assert emu.url.startswith("https://")
        with pytest.raises(BmcError) as info:
            set_slot_led(config_of(emu), ["P1-DIMMA1"], True)
        assert "CERTIFICATE_VERIFY_FAILED" in info.value.msg
        assert "verify_tls, ca_file" in (info.value.hint or "")
        trusted = config_of(emu, ca_file=str(emu.work / "cert.pem"))
        assert set_slot_led(trusted, ["P1-DIMMA1"], True).data["read_back"] is True
        unverified = config_of(emu, verify_tls=False)
        assert set_slot_led(unverified, ["P1-DIMMA1"], False).data["read_back"] is False
    finally:
        emu.proc.terminate()
        emu.proc.wait(timeout=10)
