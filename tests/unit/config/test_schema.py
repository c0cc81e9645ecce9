"""One schema for memras.toml (issue 16): `config check` and `watch` refuse the same
mistakes in the same words, every one of them at once, and the schema's values are the
areas' own."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from memras.cli import main
from memras.config import HOOK_SCHEMAS, SCHEMA, Key, Table, check_config_data, parse_config_text
from memras.errors import UsageError

ROOT = Path(__file__).resolve().parents[3]

# The examples, each a mistake `config check` used to pass.
BROKEN = """\
[alerts]
repeat_intervall = "24h"

[alerts.hooks.webhok]
url = "https://alerts.example.net/memras"

[alerts.hooks.webhook]
url = "https://alerts.example.net/memras"
timeoutt = "10s"

[alerts.hooks.email]
host = "smtp.example.net"
to = "oncall@example.net"

[capacity]
standby = "4G"
on_available_below = "2G"
off_available_above = "1G"
"""
EXPECTED = [
    "memras: broken.toml:2: [alerts] repeat_intervall is not a known key; "
    "did you mean 'repeat_interval'?",
    "memras: broken.toml:4: [alerts.hooks] webhok is not an installed hook; "
    "did you mean 'webhook'?",
    "memras: broken.toml:9: [alerts.hooks.webhook] timeoutt is not a known key; "
    "did you mean 'timeout'?",
    "memras: broken.toml:11: [alerts.hooks.email] needs from (the sender address)",
    "memras: broken.toml:18: [capacity] off_available_above = '1G' must be above "
    "on_available_below ('2G')",
]


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("command", [["config", "check"], ["watch", "--once"]])
def test_config_check_and_watch_refuse_every_mistake_in_the_same_words(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], command: list[str]) -> None:
    path = tmp_path / "broken.toml"
    path.write_text(BROKEN)
    code, out, err = _run(capsys, *command, "--config", str(path), "--root", str(tmp_path),
                          "--db", str(tmp_path / "m.db"))
    lines = err.splitlines()
    assert code == 2 and out == ""
    assert len(lines) == len(EXPECTED)
    for line, expected in zip(lines, EXPECTED, strict=True):
        assert line.startswith(expected), line
    assert not (tmp_path / "m.db").exists()  # watch stopped before opening anything


def test_watch_and_check_print_identical_lines(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "broken.toml"
    path.write_text(BROKEN)
    _, _, check = _run(capsys, "config", "check", "--config", str(path))
    _, _, watch = _run(capsys, "watch", "--once", "--config", str(path))
    assert check == watch


def test_json_lists_every_problem(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "broken.toml"
    path.write_text(BROKEN)
    code, _, err = _run(capsys, "config", "check", "--json", "--config", str(path))
    data = json.loads(err)
    assert code == 2 and len(data["problems"]) == 5
    assert data["error"].endswith("(and 4 more)")


def test_a_hook_secret_is_never_echoed() -> None:
    problems = check_config_data({"alerts": {"hooks": {"webhook": {
        "url": "https://x.example", "secret": 12345678}}}})
    assert problems == ["memras.toml: [alerts.hooks.webhook] secret (a int) is not a string"]


@pytest.mark.parametrize(("text", "problem"), [
    ("[alerts]\nrepeat_interval = \"10s\"\n", "is out of range (allowed 1m .. 30d)"),
    ("[alerts.retry]\nbackoff = \"1m\"\nmax_backoff = \"10s\"\n",
     "max_backoff must not be below backoff"),
    ("[alerts.hooks.exec]\ncommand = \"ls\"\n", "is not a list of strings"),
    ("[alerts.hooks.exec]\n", "needs command"),
    ("[alerts.hooks.email]\nhost = \"h\"\nto = \"a@b\"\nenabled = false\n", None),
    ("[alerts.hooks.syslog]\ntransport = \"tcp\"\n", "(allowed: unix, udp, journald)"),
    ("[capacity]\nstandby = \"1G\"\nstandby_blocks = \"1-2\"\n", "needs exactly one of"),
    ("[capacity]\nstandby = \"1G\"\npsi_on_above_pct = 1.0\npsi_off_below_pct = 5\n",
     "psi_off_below_pct must be below psi_on_above_pct"),
    ("[store]\nkeep = \"soon\"\n", "is not a duration (use seconds or 30s, 5m, 24h, 7d)"),
    ("[audit]\nsyslog = \"yes\"\n", "syslog = 'yes' is not true or false"),
    ("page = 3\n", "page must be a table ([page])"),
])
def test_types_ranges_and_cross_field_rules(text: str, problem: str | None) -> None:
    if problem is None:
        parse_config_text(text)  # a switched-off hook may be incomplete
        return
    with pytest.raises(UsageError) as info:
        parse_config_text(text)
    assert problem in info.value.msg


def test_a_third_party_hook_keeps_its_own_options(monkeypatch: pytest.MonkeyPatch) -> None:
    import memras.config as config

    monkeypatch.setattr(config, "_hook_names", lambda: {"pagerduty", *HOOK_SCHEMAS})
    assert check_config_data({"alerts": {"hooks": {"pagerduty": {"anything": 1}}}}) == []


# ---- the schema's values are the areas' own ------------------------------------------

def test_classify_and_verdict_tunables_match_the_health_area() -> None:
    from memras.health.classify import CLASSIFY_TUNABLES
    from memras.health.verdict import MODE_VERDICT_POLICY, VERDICT_TUNABLES, VerdictState

    classify = SCHEMA.keys["classify"]
    verdict = SCHEMA.keys["verdict"]
    assert isinstance(classify, Table) and isinstance(verdict, Table)
    assert set(classify.keys) == set(CLASSIFY_TUNABLES)
    for name, tunable in {**CLASSIFY_TUNABLES, **VERDICT_TUNABLES}.items():
        key = (classify.keys.get(name) or verdict.keys[name])
        assert isinstance(key, Key)
        assert (key.min, key.default, key.max) == (tunable.minimum, tunable.default,
                                                   tunable.maximum), name
    modes = verdict.keys["modes"]
    assert isinstance(modes, Table)
    assert set(modes.keys) == {m.value for m in MODE_VERDICT_POLICY}
    storm = verdict.keys["storm"]
    assert isinstance(storm, Key) and set(storm.choices) == {s.value for s in VerdictState}


def test_thresholds_and_page_match_the_health_area() -> None:
    from memras.health.buckets import DEFAULT_THRESHOLDS, MAX_BUCKETS_PER_SCOPE
    from memras.health.config import MIN_PAGE_COUNTERS, SCOPE_SEVERITIES
    from memras.health.page_action import PageAction

    thresholds = SCHEMA.keys["thresholds"]
    assert isinstance(thresholds, Table)
    for scope, severities in SCOPE_SEVERITIES.items():
        table = thresholds.keys[scope.value]
        assert isinstance(table, Table)
        assert set(table.keys) == {s.value for s in severities}
        for sev in severities:
            key = table.keys[sev.value]
            default = DEFAULT_THRESHOLDS.get((scope, sev))
            assert isinstance(key, Key) and key.default == ("off" if default is None
                                                            else str(default))
    page = SCHEMA.keys["page"]
    assert isinstance(page, Table)
    action, counters = page.keys["action"], page.keys["counters"]
    assert isinstance(action, Key) and set(action.choices) == {a.value for a in PageAction}
    assert isinstance(counters, Key)
    assert (counters.min, counters.default) == (MIN_PAGE_COUNTERS, MAX_BUCKETS_PER_SCOPE)


def test_alerts_capacity_store_audit_match_their_areas() -> None:
    from memras.alerts import config as alerts
    from memras.audit.anchor import SETTINGS_KEYS
    from memras.capacity import policy
    from memras.ingest import edac_ledger
    from memras.store.settings import KEYS as STORE_KEYS

    table = SCHEMA.keys["alerts"]
    assert isinstance(table, Table)
    repeat, grace = table.keys["repeat_interval"], table.keys["gap_grace"]
    assert isinstance(repeat, Key) and isinstance(grace, Key)
    assert (repeat.min, repeat.max) == (alerts.MIN_REPEAT_INTERVAL_S, alerts.MAX_REPEAT_INTERVAL_S)
    assert (grace.min, grace.max) == (edac_ledger.MIN_GAP_GRACE_S, edac_ledger.MAX_GAP_GRACE_S)
    capacity = SCHEMA.keys["capacity"]
    assert isinstance(capacity, Table)
    assert set(capacity.keys) == policy.KNOWN_KEYS
    for key, bounds in (("on_available_below", policy.ON_AVAILABLE_BELOW_BYTES),
                        ("off_available_above", policy.OFF_AVAILABLE_ABOVE_BYTES),
                        ("psi_on_above_pct", policy.PSI_ON_ABOVE_PCT),
                        ("psi_off_below_pct", policy.PSI_OFF_BELOW_PCT),
                        ("hold_s", policy.HOLD_S), ("min_dwell_s", policy.MIN_DWELL_S),
                        ("reserve", policy.RESERVE_BYTES)):
        spec = capacity.keys[key]
        assert isinstance(spec, Key) and (spec.min, spec.default, spec.max) == bounds, key
    store, audit = SCHEMA.keys["store"], SCHEMA.keys["audit"]
    assert isinstance(store, Table) and set(store.keys) == set(STORE_KEYS)
    assert isinstance(audit, Table) and set(audit.keys) == set(SETTINGS_KEYS)


@pytest.mark.parametrize("hook", sorted(HOOK_SCHEMAS))
def test_each_built_in_hooks_options_are_in_the_schema(hook: str) -> None:
    source = next((ROOT / "plugins" / "alerts").glob(f"{hook}*.py")).read_text()
    read = set(re.findall(r'option\("([a-z_]+)"', source))
    assert read and read <= set(HOOK_SCHEMAS[hook].keys)
    required = set(re.findall(r'option\("([a-z_]+)"[^)]*required=True', source))
    assert required == {k for k, v in HOOK_SCHEMAS[hook].keys.items()
                        if isinstance(v, Key) and v.required}
