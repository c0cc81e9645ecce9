"""``[bmc]``: the schema and BmcConfig agree, and each missing piece is one clear line."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from memras.bmc.config import BmcConfig, bmc_config
from memras.cli import main
from memras.config import SCHEMA, Key, Table, parse_config_text
from memras.errors import UsageError

# schema key -> BmcConfig field, where the names differ (durations carry their unit)
RENAMED = {"timeout": "timeout_s", "sel_interval": "sel_interval_s"}


def test_every_schema_key_is_a_field_with_the_same_default() -> None:
    table = SCHEMA.keys["bmc"]
    assert isinstance(table, Table)
    fields = {f.name: f.default for f in dataclasses.fields(BmcConfig)}
    for key, spec in table.keys.items():
        assert isinstance(spec, Key)
        name = RENAMED.get(key, key)
        assert name in fields, key
        default = fields[name]
        if spec.type == "duration":
            assert default == float(spec.default.rstrip("s")), key
        else:
            assert default == spec.default, key
    assert set(fields) == {RENAMED.get(k, k) for k in table.keys}


@pytest.mark.parametrize(("text", "problem"), [
    ('[bmc]\ninterface = "lanplus"\n', "needs address"),
    ('[bmc]\ninterface = "lanplus"\naddress = "10.0.0.5"\n', "needs user and password_file"),
    ('[bmc]\nkind = "redfish"\naddress = "https://bmc"\nuser = "u"\n',
     "needs user and password_file"),
    ('[bmc]\nkind = "snmp"\n', "allowed: ipmi, redfish"),  # the schema's words
])
def test_what_a_kind_needs(text: str, problem: str) -> None:
    with pytest.raises(UsageError) as info:
        bmc_config(parse_config_text(text))
    assert problem in info.value.msg and "\n" not in info.value.msg


def test_empty_or_absent_means_no_bmc() -> None:
    assert bmc_config(parse_config_text("")) is None
    assert bmc_config(parse_config_text("[bmc]\n")) is None
    cfg = bmc_config(parse_config_text('[bmc]\nkind = "ipmi"\n'))
    assert cfg is not None and (cfg.interface, cfg.remote) == ("open", False)
    assert cfg.describe() == "this host's BMC (ipmitool -I open)"


def test_config_check_knows_the_table(tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    conf = tmp_path / "memras.toml"
    conf.write_text('[bmc]\nkind = "ipmi"\ninterface = "lanplus"\naddress = "10.0.0.5"\n'
                    'user = "u"\npassword_file = "/etc/memras/bmc.pass"\ncipher_suite = 3\n'
                    'timeout = "5s"\n')
    assert main(["config", "check", "--config", str(conf)]) == 0
    conf.write_text('[bmc]\nkind = "ipmi"\npasword_file = "x"\ncipher_suite = 99\n')
    assert main(["config", "check", "--config", str(conf)]) == 2
    err = capsys.readouterr().err
    assert "password_file" in err and "cipher_suite" in err
