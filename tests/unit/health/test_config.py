"""memras.toml validation, and importing real-format rasdaemon and mcelog config files."""

from __future__ import annotations

from pathlib import Path

import pytest

from memras.errors import UsageError
from memras.health.buckets import Scope, Severity, Threshold
from memras.health.classify import FaultMode
from memras.health.config import (
    import_configs,
    load_config,
    parse_config,
    rasdaemon_threshold,
)
from memras.health.page_action import PageAction
from memras.health.verdict import VerdictState

# misc/rasdaemon.env as rasdaemon ships it (v0.8.x), trimmed to the keys around PFA.
RASDAEMON_ENV = """\
# Page Isolation
# Note: Run-time configuration is unsupported, service restart needed.
# Note: this file should be installed at /etc/sysconfig/rasdaemon

# Specify the threshold of isolating buggy pages.
#
# Format:
#   [0-9]+[unit]
# Notice: please make sure match this format, rasdaemon will use default value for exception input.
#
# Supported units:
# PAGE_CE_REFRESH_CYCLE: D|d (day), H|h (hour), M|m (min), S|s (second), default is in hour
# PAGE_CE_THRESHOLD: K|k (x1000), M|m (x1000k), default is none
PAGE_CE_REFRESH_CYCLE="24h"
PAGE_CE_THRESHOLD="50"

# Specify the internal action in rasdaemon to exceeding a page error threshold.
#
# off        no action
# account    only account errors
# soft       try to soft-offline page without killing any processes
#            This requires an uptodate kernel. Might not be successfull.
# hard       try to hard-offline page by killing processes
#            Requires an uptodate kernel. Might not be successfull.
# soft-then-hard   First try to soft offline, then try hard offlining.
# Note:
# 1. Default action is soft.
PAGE_CE_ACTION="soft"

# Row Isolation
ROW_CE_REFRESH_CYCLE="24h"
ROW_CE_THRESHOLD="50"
ROW_CE_ACTION="off"

# CPU Online Fault Isolation
CPU_ISOLATION_ENABLE="no"
CPU_CE_THRESHOLD="18"
CPU_ISOLATION_CYCLE="24h"
CPU_ISOLATION_LIMIT="10"
"""

# andikleen/mcelog mcelog.conf, the memory parts as shipped.
MCELOG_CONF = """\
#
# Example config file for mcelog
# mcelog is the user space backend that decodes and process machine check events
#
[dimm]
# Is the in memory DIMM error tracking enabled?
# Only works on systems with integrated memory controller and
# which are supported.
# Only takes effect in daemon mode.
dimm-tracking-enabled = yes

# Use DMI information from the BIOS to determine the DIMM names?
dmi-prepopulate = yes

# Execute these triggers when the rate of corrected or uncorrected
# Errors per DIMM exceeds the threshold.
uc-error-threshold = 1 / 24h
#uc-error-trigger = dimm-error-trigger
uc-error-log = yes

ce-error-threshold = 10 / 24h
#ce-error-trigger = dimm-error-trigger
ce-error-log = yes

[socket]
# Enable memory error accounting per socket.
socket-tracking-enabled = yes

# Threshold and trigger for uncorrected memory errors on a socket.
# mem-uc-error-trigger = socket-memory-error-trigger

mem-uc-error-threshold = 100 / 24h

# Trigger script for corrected memory errors on a socket.
mem-ce-error-trigger = socket-memory-error-trigger

# Threshold on when to trigger a correct error for the socket.

mem-ce-error-threshold = 100 / 24h

[page]
# Memory error accounting per 4K memory page.
# Threshold for the correct memory errors trigger script.
memory-ce-threshold = 2 / 24h   # a comment after the value

# Trigger script for corrected errors.
# memory-ce-trigger = page-error-trigger

# Memory error counter per 4K memory page.
# Threshold for the counter replacements trigger script.
memory-ce-counter-replacement-threshold = 20 / 24h

# Should page threshold events be logged explicitly?
memory-ce-log = yes

# specify the internal action in mcelog to exceeding a page error threshold
# this is done in addition to executing the trigger script if available
# off      no action
# account  only account errors
# soft     try to soft-offline page without killing any processes
#          This requires an uptodate kernel. Might not be successfull.
# hard     try to hard-offline page by killing processes
#          Requires an uptodate kernel. Might not be successfull.
# soft-then-hard   First try to soft offline, then try hard offlining
#memory-ce-action = off|account|soft|hard|soft-then-hard
memory-ce-action = soft

[trigger]
children-max = 2
directory = /etc/mcelog
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def test_defaults_without_a_file() -> None:
    cfg = parse_config("")
    assert cfg.thresholds[(Scope.DIMM, Severity.CE)] == Threshold(10, 86400)
    assert cfg.thresholds[(Scope.PAGE, Severity.CE)] == Threshold(2, 86400)
    assert cfg.page_action == PageAction.SOFT
    assert cfg.raw_section("alerts") == {}


def test_full_config(tmp_path: Path) -> None:
    path = write(tmp_path, "memras.toml", """
[thresholds.dimm]
ce = "20/24h"
ue = "off"
[thresholds.bank]
ce = "1k / 7d"
[page]
action = "soft-then-hard"
counters = 2048
[classify]
bank_ce_min = 500
[verdict]
storm = "watch"
[verdict.modes]
random = "replace-at-next-maintenance"
[alerts.hooks.syslog]
transport = "udp"
[workflow]
backend = "acpi"
""")
    cfg = load_config(path)
    assert cfg.thresholds[(Scope.DIMM, Severity.CE)] == Threshold(20, 86400)
    assert cfg.thresholds[(Scope.DIMM, Severity.UE)] is None
    assert cfg.thresholds[(Scope.BANK, Severity.CE)] == Threshold(1000, 7 * 86400)
    assert cfg.page_action == PageAction.SOFT_THEN_HARD
    assert cfg.page_counters == 2048 and cfg.to_dict()["page"]["counters"] == 2048
    assert cfg.classify.bank_ce_min == 500
    assert cfg.verdict.storm == VerdictState.WATCH
    assert cfg.verdict.modes[FaultMode.RANDOM] == VerdictState.REPLACE_LATER
    assert cfg.raw_section("alerts") == {"hooks": {"syslog": {"transport": "udp"}}}
    assert cfg.raw_section("workflow") == {"backend": "acpi"}
    assert cfg.to_dict()["thresholds"]["bank"]["ce"] == "1000 / 7d"


BAD = [
    ('[thresholds.dimm]\nce = "10 / 24s"\n',
     "memras.toml: [thresholds.dimm] ce = '10 / 24s': unit 's' is not allowed "
     "(use m, h or d, or none for seconds)"),
    ('[thresholds.page]\nue = "1/24h"\n',
     "memras.toml:2: [thresholds.page] ue is not a known key (allowed: ce)"),
    ('[thresholds.dim]\nce = "1/24h"\n',
     "memras.toml:1: [thresholds.dim] is not a known table; did you mean 'dimm'?"),
    ('[page]\naction = "offline"\n',
     "memras.toml:2: [page] action = 'offline' is not allowed (allowed: off, account"),
    ("[page]\ncounters = 3\n", "memras.toml:2: [page] counters = 3 is out of range (at least 16)"),
    ('[page]\ncounters = "many"\n',
     "memras.toml:2: [page] counters = 'many' is not a whole number"),
    ("[page]\nmax = 3\n",
     "memras.toml:2: [page] max is not a known key (allowed: action, counters)"),
    ("[classify]\nwindow_events = 500\n",
     "memras.toml: [classify] window_events = 500: must exceed the largest CE minimum (1000)"),
    ("[classify]\nstorm_gap_s = 99999\n",
     "memras.toml:2: [classify] storm_gap_s = 99999 is out of range (allowed 1 .. 3600)"),
    ('[verdict]\nstorm = "panic"\n',
     "memras.toml:2: [verdict] storm = 'panic' is not allowed (allowed: ok, watch"),
    ('[verdict.modes]\nrowz = "watch"\n',
     "memras.toml:2: [verdict.modes] rowz is not a known key; did you mean 'row'?"),
    ("[threshold]\n",
     "memras.toml:1: [threshold] is not a known table; did you mean 'thresholds'?"),
    ("[page\n", "memras.toml: not valid TOML"),
]


@pytest.mark.parametrize(("text", "message"), BAD)
def test_bad_config_is_one_clear_line(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(UsageError) as info:
        load_config(write(tmp_path, "memras.toml", text))
    assert info.value.msg.startswith(message)
    assert "\n" not in info.value.msg


def test_missing_explicit_config(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="does not exist"):
        load_config(tmp_path / "nope.toml")


def test_import_rasdaemon(tmp_path: Path) -> None:
    imported = import_configs(rasdaemon=write(tmp_path, "rasdaemon", RASDAEMON_ENV))
    assert imported.data == {"thresholds": {"page": {"ce": "50 / 24h"}, "row": {"ce": "50 / 24h"}},
                             "page": {"action": "soft"}}
    cfg = parse_config(imported.to_toml())
    assert cfg.thresholds[(Scope.PAGE, Severity.CE)] == Threshold(50, 86400)


def test_import_mcelog(tmp_path: Path) -> None:
    imported = import_configs(mcelog=write(tmp_path, "mcelog.conf", MCELOG_CONF))
    assert imported.data["thresholds"] == {
        "dimm": {"ce": "10 / 24h", "ue": "1 / 24h"},
        "socket": {"ce": "100 / 24h", "ue": "100 / 24h"},
        "page": {"ce": "2 / 24h"},
    }
    assert imported.data["page"] == {"action": "soft"}
    assert parse_config(imported.to_toml()).page_action == PageAction.SOFT


def test_import_both_notes_the_page_conflict(tmp_path: Path) -> None:
    imported = import_configs(rasdaemon=write(tmp_path, "rasdaemon", RASDAEMON_ENV),
                              mcelog=write(tmp_path, "mcelog.conf", MCELOG_CONF))
    assert imported.data["thresholds"]["page"] == {"ce": "2 / 24h"}
    assert imported.data["thresholds"]["row"] == {"ce": "50 / 24h"}
    assert any("mcelog's are used" in n for n in imported.notes)


def test_import_mcelog_tracking_disabled_and_action_unset(tmp_path: Path) -> None:
    text = "[dimm]\ndimm-tracking-enabled = no\n[page]\nmemory-ce-threshold = 10 / 24h\n"
    imported = import_configs(mcelog=write(tmp_path, "mcelog.conf", text))
    assert imported.data["thresholds"]["dimm"] == {"ce": "off", "ue": "off"}
    assert imported.data["page"] == {"action": "off"}


RAS_THRESHOLDS = [
    ("50", "24h", Threshold(50, 86400)),
    ("50", "24", Threshold(50, 86400)),  # bare cycle = hours in rasdaemon
    ("2k", "1d", Threshold(2000, 86400)),
    ("1M", "30m", Threshold(1_000_000, 1800)),
    ("10", "3600s", Threshold(10, 3600)),  # rasdaemon allows s; memras writes bare seconds
]


@pytest.mark.parametrize(("count", "cycle", "expected"), RAS_THRESHOLDS)
def test_rasdaemon_grammar(count: str, cycle: str, expected: Threshold) -> None:
    assert rasdaemon_threshold(count, cycle, "rasdaemon") == expected


def test_rasdaemon_seconds_round_trip_through_memras_grammar(tmp_path: Path) -> None:
    env = 'PAGE_CE_THRESHOLD="10"\nPAGE_CE_REFRESH_CYCLE="90s"\nPAGE_CE_ACTION="account"\n'
    imported = import_configs(rasdaemon=write(tmp_path, "rasdaemon", env))
    assert imported.data["thresholds"]["page"]["ce"] == "10 / 90"
    assert parse_config(imported.to_toml()).thresholds[(Scope.PAGE, Severity.CE)] == \
        Threshold(10, 90)


@pytest.mark.parametrize(("name", "text", "message"), [
    ("rasdaemon", 'PAGE_CE_ACTION="offline"\n',
     "rasdaemon: PAGE_CE_ACTION = 'offline': not an action"),
    ("rasdaemon", 'PAGE_CE_THRESHOLD="lots"\n', "rasdaemon: PAGE_CE: threshold 'lots'"),
    ("mcelog.conf", "[dimm]\nce-error-threshold = 10 / 24s\n",
     "mcelog.conf: [dimm] ce-error-threshold = '10 / 24s': unit 's' is not allowed"),
])
def test_import_bad_values(tmp_path: Path, name: str, text: str, message: str) -> None:
    kind = "mcelog" if name.startswith("mcelog") else "rasdaemon"
    with pytest.raises(UsageError) as info:
        import_configs(**{kind: write(tmp_path, name, text)})
    assert info.value.msg.startswith(message)
