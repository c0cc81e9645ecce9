"""Issue 17: secrets kept out of output, and hook failures contained, counted, visible.

Real servers on 127.0.0.1 (the webhook receiver of conftest, a closed port for a
refused connection), a real trigger script for exec, the memras CLI for what a user sees.
"""

from __future__ import annotations

import base64
import json
import logging
import socket
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar

import pytest
from memras.plugins.alerts.exec_hook import ExecHook
from memras.plugins.alerts.prometheus_hook import render
from memras.plugins.alerts.webhook import WebhookHook

from memras.alerts.alert import Alert, AlertKind, Severity
from memras.alerts.config import AlertsConfig, HookConfig, RateLimit, RetryPolicy
from memras.alerts.dispatcher import FAILED, OK, Dispatcher, hook_metrics
from memras.alerts.hooks import AlertHook, load_hooks, resolve_secret_files
from memras.alerts.service import AlertService, SqlAlertStore
from memras.cli import main
from memras.errors import HookError
from memras.store.store import Store
from memras.text import redact, redact_config

from .conftest import HttpReceiver

# ---- the one redaction ------------------------------------------------------------------

REDACTED_CASES = [
    # (text, secrets that must be gone, words that must stay)
    ("cannot POST to http://user:PASSWORD@host/x?token=TOKEN: refused",
     ["PASSWORD", "TOKEN"], ["user", "host/x", "token=", "refused"]),
    ("https://ghp_0123456789abcdef@github.com/org/repo", ["ghp_0123456789abcdef"],
     ["github.com/org/repo"]),
    ("GET https://maps.example/api?key=AIzaSyA-1234&sig=ab%2Fcd&zoom=3",
     ["AIzaSyA-1234", "ab%2Fcd"], ["zoom=3", "key=", "sig="]),
    ("https://acct.blob.example/c?sv=2021&X-Amz-Signature=deadbeef&X-Amz-Credential=AKIA/x",
     ["deadbeef", "AKIA/x"], ["sv=2021"]),
    ("smtp login failed: password=hunter22 user=memras", ["hunter22"], ["user=memras"]),
    ("Authorization: Bearer eyJhbGciOi.payload.sig", ["eyJhbGciOi.payload.sig"],
     ["Authorization"]),
    ("header Authorization: token ghp_secretvalue rejected", ["ghp_secretvalue"], []),
    ('{"password": "p a s s", "access_token":"abc123"}', ["p a s s", "abc123"],
     ["password", "access_token"]),
    ("postgresql://memras:dbpw1234@db.example/memras", ["dbpw1234"],
     ["memras:***@db.example/memras"]),
]
KEPT_AS_IS = [
    "webhook: http://127.0.0.1:8080/hook answered HTTP 503 Service Unavailable",
    "invalid token provided", "monkey=banana", "code=200", "secret_file=/etc/memras/k",
    "ca_file = /etc/memras/ca.pem", "at 12:30: timeout", "DIMM label P1-DIMMA1 (mc0)",
]


@pytest.mark.parametrize(("text", "gone", "kept"), REDACTED_CASES,
                         ids=[f"redact-{i}" for i in range(len(REDACTED_CASES))])
def test_redact_removes_secrets_and_keeps_the_rest(text: str, gone: list[str],
                                                   kept: list[str]) -> None:
    out = redact(text)
    for secret in gone:
        assert secret not in out, out
    for word in kept:
        assert word in out, out
    assert "***" in out


@pytest.mark.parametrize("text", KEPT_AS_IS)
def test_redact_leaves_text_without_secrets_alone(text: str) -> None:
    assert redact(text) == text


def test_redact_known_literals_wherever_they_are() -> None:
    assert redact("login as memras with s3cr3t-value failed",
                  ["s3cr3t-value", "ab"]) == "login as memras with *** failed"


def test_redact_config_by_key_name() -> None:
    shown = redact_config({"hooks": {"webhook": {
        "url": "https://u:p4ss@h/x?access_token=T0K", "secret": "s", "secret_file": "/k",
        "headers": {"Authorization": "Bearer x", "X-Api-Key": "k1", "X-Trace": "t"},
        "verify": True}, "email": {"password": "pw", "username": "u", "port": 587}}})
    hook = shown["hooks"]["webhook"]
    assert hook["url"] == "https://u:***@h/x?access_token=***"
    assert hook["secret"] == "***" and hook["secret_file"] == "/k" and hook["verify"] is True
    assert hook["headers"] == {"Authorization": "***", "X-Api-Key": "***", "X-Trace": "t"}
    assert shown["hooks"]["email"] == {"password": "***", "username": "u", "port": 587}


# ---- config show / check ------------------------------------------------------------------

SECRETS = ("URLPASS", "URLTOKEN", "HOOKSECRET", "BEARERTOK", "SMTPPASS")


def _config(tmp_path: Path, key_mode: int = 0o600) -> Path:
    key = tmp_path / "webhook.key"
    key.write_text("HOOKSECRET\n")
    key.chmod(key_mode)
    path = tmp_path / "memras.toml"
    path.write_text(f"""
[alerts.hooks.webhook]
url = "http://memras:URLPASS@127.0.0.1:9/hook?token=URLTOKEN"
secret_file = "{key}"
headers = {{ Authorization = "Bearer BEARERTOK", X-Trace = "plain" }}
[alerts.hooks.email]
host = "127.0.0.1"
from = "memras@host1"
to = "oncall@example.net"
username = "memras"
password = "SMTPPASS"
""")
    return path


def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("json_flag", [[], ["--json"]], ids=["plain", "json"])
def test_config_show_redacts_every_secret(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                          json_flag: list[str]) -> None:
    code, out, err = _cli(capsys, "config", "show", "--config", str(_config(tmp_path)),
                          *json_flag)
    assert code == 0, err
    for secret in SECRETS:
        assert secret not in out
    assert "memras:***@127.0.0.1:9/hook?token=***" in out and "plain" in out
    assert str(tmp_path / "webhook.key") in out  # the path is shown, not what it holds
    if json_flag:
        email = json.loads(out)["alerts"]["hooks"]["email"]
        assert email["password"] == "***" and email["username"] == "memras"


def test_config_check_refuses_a_secret_file_others_can_read(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = _config(tmp_path, key_mode=0o644)
    code, out, err = _cli(capsys, "config", "check", "--config", str(config))
    key = tmp_path / "webhook.key"
    assert code == 2 and out == ""
    assert err.strip() == (f"memras: {config}: [alerts.hooks.webhook] secret_file: {key} is "
                           f"mode 0644, readable or writable by group or others "
                           f"(chmod 600 {key})")
    key.chmod(0o600)
    code, out, _ = _cli(capsys, "config", "check", "--config", str(config))
    assert code == 0 and out.strip() == f"{config}: ok"


def test_secret_files_are_read_stripped_and_checked(tmp_path: Path) -> None:
    pw = tmp_path / "smtp.pw"
    pw.write_text("pa55 word\r\n\n")
    pw.chmod(0o400)
    resolved = resolve_secret_files({"password_file": str(pw), "ca_file": "/etc/ca.pem",
                                     "headers": {"X-Api-Key_file": str(pw)}}, "email")
    assert resolved == {"password": "pa55 word", "ca_file": "/etc/ca.pem",
                        "headers": {"X-Api-Key": "pa55 word"}}
    with pytest.raises(HookError, match="give password or password_file, not both"):
        resolve_secret_files({"password": "x", "password_file": str(pw)}, "email")
    with pytest.raises(HookError, match="does not exist"):
        resolve_secret_files({"secret_file": str(tmp_path / "nope")}, "webhook")
    empty = tmp_path / "empty"
    empty.write_text("\n")
    empty.chmod(0o600)
    with pytest.raises(HookError, match="is empty"):
        resolve_secret_files({"token_file": str(empty)}, "webhook")
    pw.chmod(0o640)
    with pytest.raises(HookError, match=r"mode 0640.*") as refused:
        resolve_secret_files({"password_file": str(pw)}, "email")
    assert refused.value.hint == f"chmod 600 {pw}"


def test_a_hook_with_a_readable_secret_file_is_not_loaded_and_says_why(
        tmp_path: Path) -> None:
    import io

    config = AlertsConfig.from_dict({"hooks": {"webhook": {
        "url": "http://127.0.0.1:9/", "secret_file": str(_key(tmp_path, 0o604))}}})
    warn = io.StringIO()
    report = load_hooks(config, warn=warn)
    assert report.hooks == [] and "mode 0604" in report.failures["webhook"]
    assert "chmod 600" in warn.getvalue() and "the other hooks still run" in warn.getvalue()


def _key(tmp_path: Path, mode: int) -> Path:
    key = tmp_path / "k"
    key.write_text("HOOKSECRET")
    key.chmod(mode)
    return key


# ---- failed deliveries: contained, counted, retried, visible, redacted --------------------

@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "memras.db"


@pytest.fixture
def store(db: Path) -> Iterator[Store]:
    # every table a watcher-made database has (`alerts list` also reads the verdicts)
    import memras.health.models  # noqa: F401

    with Store.open(db) as opened:
        yield opened


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])  # nobody listens once it is closed


def _alert(label: str = "P1-DIMMA1") -> Alert:
    return Alert(kind=AlertKind.THRESHOLD_CROSSED, severity=Severity.CRITICAL,
                 message="uncorrected error", dimm_id="mc0-dimm0", dimm_label=label)


RETRY3 = AlertsConfig(retry=RetryPolicy(attempts=3, backoff_s=0.0, max_backoff_s=0.0))


def test_a_refused_webhook_stores_and_logs_its_error_without_credentials(
        store: Store, db: Path, capsys: pytest.CaptureFixture[str],
        caplog: pytest.LogCaptureFixture) -> None:
    url = f"http://memras:URLPASS@127.0.0.1:{_closed_port()}/hook?token=URLTOKEN&sig=SIG123"
    hook = WebhookHook({"url": url, "secret": "HOOKSECRET"})
    dispatcher = Dispatcher(SqlAlertStore(store), [(HookConfig("webhook", {}, RateLimit()),
                                                    hook)], RETRY3, sleep=lambda _s: None)
    with caplog.at_level(logging.WARNING, logger="memras.alerts"):
        result = dispatcher.submit(_alert())
    (outcome,) = result.results
    assert outcome.status == FAILED and outcome.attempts == 3
    rows = SqlAlertStore(store).deliveries(result.alert.id)
    assert [(d.attempt, d.status) for d in rows] == [(1, FAILED), (2, FAILED), (3, FAILED)]
    assert "cannot POST to http://127.0.0.1:" in rows[0].error
    assert "/hook?token=***&sig=***: " in rows[0].error
    # nothing secret in the database file, the log, or `alerts list`
    raw = db.read_bytes() + Path(f"{db}-wal").read_bytes()
    logged = caplog.text
    code, out, _ = _cli(capsys, "alerts", "list", "--db", str(db))
    code_json, out_json, _ = _cli(capsys, "alerts", "list", "--db", str(db), "--json")
    for secret in ("URLPASS", "URLTOKEN", "SIG123", "HOOKSECRET"):
        assert secret.encode() not in raw and secret not in logged
        assert secret not in out and secret not in out_json
    assert [r.levelname for r in caplog.records] == ["WARNING", "WARNING", "ERROR"]
    assert "not delivered" in caplog.records[-1].getMessage()
    assert code == 0 and f"alert {result.alert.id}: 3 failed delivery attempts, " \
        "not delivered to webhook; last: webhook: cannot POST" in out
    deliveries = json.loads(out_json)[0]["deliveries"]
    assert code_json == 0 and deliveries["failed"] == 3 and deliveries["ok"] == 0
    assert deliveries["undelivered"] == ["webhook"]


def test_url_credentials_go_as_basic_auth(http_receiver: HttpReceiver) -> None:
    url = http_receiver.url.replace("http://", "http://memras:p%40ss@")
    WebhookHook({"url": url}).send(_alert())
    (request,) = http_receiver.requests
    assert request.headers["Authorization"] == "Basic " + base64.b64encode(
        b"memras:p@ss").decode()
    assert request.path == "/hook"


class RaisingHook(AlertHook):
    """A plugin with a bug: raises what a plugin should not (not a HookError)."""

    name = "buggy"
    sends_resolved = False
    raises: ClassVar[list[BaseException]] = []

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        super().__init__(options)
        self.calls = 0

    def send(self, alert: Alert) -> None:
        self.calls += 1
        error = self.raises[(self.calls - 1) % len(self.raises)]
        raise error


def test_a_hook_raising_runtimeerror_is_counted_retried_and_listed(
        store: Store, db: Path, capsys: pytest.CaptureFixture[str],
        caplog: pytest.LogCaptureFixture) -> None:
    RaisingHook.raises = [RuntimeError("token tok-SECRET-77 refused")]
    buggy = RaisingHook({"token": "tok-SECRET-77"})
    plain_store = SqlAlertStore(store)
    dispatcher = Dispatcher(plain_store, [(HookConfig("buggy", {}, RateLimit()), buggy)],
                            RETRY3, sleep=lambda _s: None)
    with caplog.at_level(logging.WARNING, logger="memras.alerts"):
        result = dispatcher.submit(_alert())  # no exception escapes
    assert buggy.calls == 3
    assert dispatcher.counters["buggy"].failed == 1
    assert dispatcher.counters["buggy"].failed_attempts == 3
    assert dispatcher.counters["buggy"].retries == 2
    errors = [d.error for d in plain_store.deliveries(result.alert.id)]
    assert errors == ["RuntimeError: token *** refused"] * 3
    assert "tok-SECRET-77" not in caplog.text and "RuntimeError" in caplog.text
    code, out, _ = _cli(capsys, "alerts", "list", "--db", str(db), "--json")
    (listed,) = json.loads(out)
    assert code == 0 and listed["id"] == result.alert.id
    assert listed["deliveries"] == {"ok": 0, "failed": 3, "rate_limited": 0,
                                    "last_error": "buggy: RuntimeError: token *** refused",
                                    "undelivered": ["buggy"]}
    # the metric: from the store, so every process's attempts count
    (metrics,) = hook_metrics(plain_store, ["buggy"])
    assert (metrics.hook, metrics.failed, metrics.delivered) == ("buggy", 3, 0)


def test_a_retry_that_succeeds_is_shown_as_delivered(store: Store, db: Path,
                                                     capsys: pytest.CaptureFixture[str]
                                                     ) -> None:
    class Flaky(RaisingHook):
        def send(self, alert: Alert) -> None:
            self.calls += 1
            if self.calls == 1:
                raise SystemExit("a plugin called sys.exit")  # contained too

    dispatcher = Dispatcher(SqlAlertStore(store), [(HookConfig("flaky", {}, RateLimit()),
                                                    Flaky())], RETRY3, sleep=lambda _s: None)
    result = dispatcher.submit(_alert())
    assert result.results[0].status == OK and result.results[0].attempts == 2
    code, out, _ = _cli(capsys, "alerts", "list", "--db", str(db), "--json")
    assert json.loads(out)[0]["deliveries"]["undelivered"] == []
    code, out, _ = _cli(capsys, "alerts", "list", "--db", str(db))
    assert "1 failed delivery attempt, delivered after retrying; last: flaky: SystemExit" in out


def test_prometheus_exports_delivery_failures(store: Store) -> None:
    RaisingHook.raises = [ValueError("embedded null byte")]
    sql = SqlAlertStore(store)
    Dispatcher(sql, [(HookConfig("buggy", {}, RateLimit()), RaisingHook())], RETRY3,
               sleep=lambda _s: None).submit(_alert())
    from memras.alerts.hooks import MetricsSnapshot

    text = render(MetricsSnapshot(hooks=hook_metrics(sql, ["buggy", "webhook"])))
    assert 'memras_alert_delivery_failures_total{hook="buggy"} 3' in text
    assert 'memras_alert_deliveries_total{hook="webhook"} 0' in text
    assert "# TYPE memras_alert_delivery_failures_total counter" in text


# ---- exec: NUL and ESC in firmware text -------------------------------------------------

RECORDER = f"""#!{sys.executable}
import json, os, sys
with open(sys.argv[1], "w") as f:
    json.dump({{"argv": sys.argv[1:], "env": dict(os.environ)}}, f)
"""


def test_exec_hook_delivers_an_alert_whose_label_holds_nul_and_esc(
        store: Store, tmp_path: Path) -> None:
    script = tmp_path / "trigger"
    script.write_text(RECORDER)
    script.chmod(0o755)
    out = tmp_path / "seen.json"
    hook = ExecHook({"command": [str(script), str(out), "--tag=a\x00b\x1b[2J"]})
    service = AlertService(Dispatcher(SqlAlertStore(store),
                                      [(HookConfig("exec", {}, RateLimit()), hook)], RETRY3,
                                      sleep=lambda _s: None))
    result = service.raise_alert(_alert(label="DIMM\x00A1\x1b]0;pwned\x07"))
    assert [(d.attempt, d.status, d.error) for d in service.deliveries(result.alert.id)] \
        == [(1, OK, "")]
    seen = json.loads(out.read_text())
    assert seen["argv"] == [str(out), "--tag=a\\x00b\\x1b[2J"]
    assert seen["env"]["LABEL"] == "DIMM\\x00A1\\x1b]0;pwned\\x07"
    assert seen["env"]["DMI_NAME"] == "DIMM\\x00A1\\x1b]0;pwned\\x07"
    assert all("\x00" not in v and "\x1b" not in v for v in seen["env"].values())
    summary = service.delivery_summaries([result.alert])[result.alert.id]
    assert (summary.ok, summary.failed) == (1, 0)


# ---- memras watch: failures on stderr, in the store, in `alerts list` -------------------

def test_watch_says_on_stderr_when_a_hook_fails(server: Path, tmp_path: Path) -> None:
    """A real `memras watch --once` process: the exec trigger fails, and the watcher says
    so on stderr (no journal, no --log-events: the default of a shell), per attempt."""
    trigger = tmp_path / "trigger"
    trigger.write_text("#!/bin/sh\necho 'pager gateway down' >&2\nexit 3\n")
    trigger.chmod(0o755)
    config = tmp_path / "memras.toml"
    config.write_text(f"""[page]
action = "off"
[alerts.retry]
attempts = 2
backoff = 0
[alerts.hooks.exec]
command = ["{trigger}"]
""")
    db = tmp_path / "m.db"
    common = ["--root", str(server), "--db", str(db), "--config", str(config)]
    watch = subprocess.run([sys.executable, "-m", "memras", *common, "watch", "--once"],
                           capture_output=True, text=True, timeout=120, check=False)
    assert watch.returncode == 0, watch.stderr
    failed = [line for line in watch.stderr.splitlines() if "hook exec" in line]
    assert failed and len(failed) % 2 == 0  # two attempts per alert, each one line
    assert any("attempt 1/2 failed: exec hook: " in line and "exited 3: pager gateway down"
               in line for line in failed)
    assert any("failed all 2 attempts, not delivered" in line for line in failed)
    listed = subprocess.run([sys.executable, "-m", "memras", *common, "alerts", "list",
                             "--state", "all", "--json"],
                            capture_output=True, text=True, timeout=60, check=True)
    alerts = json.loads(listed.stdout)
    assert alerts and all(a["deliveries"]["undelivered"] == ["exec"] for a in alerts)
    assert sum(a["deliveries"]["failed"] for a in alerts) == len(failed)


@pytest.mark.parametrize("json_flag", [[], ["--json"]], ids=["plain", "json"])
def test_an_error_line_never_shows_a_database_password(
        capsys: pytest.CaptureFixture[str], json_flag: list[str]) -> None:
    code, out, err = _cli(capsys, "--db", "nosuchdriver://memras:DBPASS99@127.0.0.1:1/memras",
                          "alerts", "list", *json_flag)
    assert code != 0 and out == ""
    assert "DBPASS99" not in err and "memras:***@127.0.0.1" in err


def test_a_hook_failing_to_close_is_logged_and_the_others_still_close(
        caplog: pytest.LogCaptureFixture) -> None:
    class BadClose(RaisingHook):
        def close(self) -> None:
            raise OSError(f"cannot close session {self.options['token']}")

    class GoodClose(RaisingHook):
        closed = False

        def close(self) -> None:
            GoodClose.closed = True

    hooks = [(HookConfig("bad", {}, RateLimit()), BadClose({"token": "tok-CLOSE-1"})),
             (HookConfig("good", {}, RateLimit()), GoodClose())]
    from memras.alerts.dispatcher import MemoryAlertStore

    with caplog.at_level(logging.WARNING, logger="memras.alerts"):
        Dispatcher(MemoryAlertStore(), hooks).close()
    assert GoodClose.closed
    assert "alert hook bad: close failed: OSError: cannot close session ***" in caplog.text
