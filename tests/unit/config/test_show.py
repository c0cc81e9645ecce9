"""`config show` prints TOML that reads back as the same configuration (issue 16)."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest

from memras.cli import main
from memras.health.config import load_config

CONFIG = """\
[thresholds.dimm]
ce = "20 / 24h"
[alerts]
repeat_interval = "12h"
[alerts.hooks.exec]
command = ["/etc/ras/triggers/mc_event_trigger", "--from-memras", "a \\"quoted\\" arg"]
timeout = "30s"
[alerts.hooks.email]
host = "smtp.example.net"
from = "memras@server1.example.net"
to = ["oncall@example.net", "team@example.net"]
[alerts.hooks.email.rate_limit]
per_minute = 2.5
burst = 3
[alerts.hooks.webhook]
url = "https://alerts.example.net/memras"
headers = { "X-Team" = "ras" }
[capacity]
enabled = false
standby = "4G"
[store]
keep = "400d"
"""


def test_show_prints_toml_that_reads_back_the_same(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "memras.toml"
    path.write_text(CONFIG)
    assert main(["config", "show", "--config", str(path)]) == 0
    shown = capsys.readouterr().out
    data = tomllib.loads(shown)
    assert data["alerts"]["hooks"]["exec"]["command"] == [
        "/etc/ras/triggers/mc_event_trigger", "--from-memras", 'a "quoted" arg']
    assert data["alerts"]["hooks"]["email"]["to"] == ["oncall@example.net", "team@example.net"]
    again = tmp_path / "again.toml"
    again.write_text(shown)
    assert load_config(again).to_dict() == load_config(path).to_dict()
    assert main(["config", "check", "--config", str(again)]) == 0
    assert main(["config", "show", "--json", "--config", str(again)]) == 0
    out = capsys.readouterr().out
    assert json.loads(out.split("\n", 1)[1])["capacity"] == {"enabled": False, "standby": "4G"}


def test_import_carries_triggers_over_or_says_what_it_did_not(tmp_path: Path) -> None:
    from memras.health.config import import_configs, parse_config

    ras = tmp_path / "rasdaemon"
    ras.write_text('PAGE_CE_THRESHOLD="50"\nTRIGGER_DIR=/etc/ras/triggers\n'
                   "MC_CE_TRIGGER=mc_event_trigger\nMC_UE_TRIGGER=/opt/ue\n"
                   'CPU_CE_THRESHOLD="18"\nAER_CE_TRIGGER=aer\n')
    mce = tmp_path / "mcelog.conf"
    mce.write_text("[dimm]\nce-error-threshold = 10 / 24h\nce-error-trigger = dimm-trig\n"
                   "[trigger]\nchildren-max = 2\ndirectory = /etc/mcelog\n")
    imported = import_configs(rasdaemon=ras, mcelog=mce)
    hook = imported.data["alerts"]["hooks"]["exec"]
    assert hook == {"command": ["/etc/ras/triggers/mc_event_trigger"],
                    "message_style": "rasdaemon", "workdir": "/etc/ras/triggers"}
    notes = "\n".join(imported.notes)
    for dropped in ("rasdaemon: MC_UE_TRIGGER: not carried: /opt/ue",
                    "rasdaemon: not carried: CPU_CE_THRESHOLD=18",
                    "rasdaemon: not carried: AER_CE_TRIGGER=aer",
                    "mcelog.conf: [dimm] ce-error-trigger: not carried: /etc/mcelog/dimm-trig",
                    "mcelog.conf: not carried: [trigger] children-max = 2"):
        assert dropped in notes
    assert parse_config(imported.to_toml()).raw_section("alerts") == {"hooks": {"exec": hook}}
    only_mcelog = import_configs(mcelog=mce).data["alerts"]["hooks"]["exec"]
    assert only_mcelog["command"] == ["/etc/mcelog/dimm-trig"]
    assert only_mcelog["message_style"] == "mcelog"
