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
