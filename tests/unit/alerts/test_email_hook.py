"""The email hook against a real aiosmtpd server on 127.0.0.1 with STARTTLS and AUTH."""

from __future__ import annotations

import email
import json
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import Message
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from memras.plugins.alerts.email_hook import EmailHook

from memras.alerts.alert import Alert, AlertKind, Severity
from memras.alerts.config import AlertsConfig, HookConfig, RateLimit, RetryPolicy
from memras.alerts.dispatcher import Dispatcher, MemoryAlertStore
from memras.errors import HookError

from .conftest import TlsFiles

USER, PASSWORD = "memras", "pa55word"


@dataclass
class Mailbox:
    port: int = 0
    messages: list[Message] = field(default_factory=list)
    envelopes: list[tuple[str, list[str], bool]] = field(default_factory=list)
    logins: list[str] = field(default_factory=list)

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: N802 - aiosmtpd API
        self.messages.append(email.message_from_bytes(envelope.content))
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos),
                               session.ssl is not None))
        return "250 OK"

    def authenticate(self, server, session, envelope, mechanism, auth_data) -> AuthResult:
        ok = (isinstance(auth_data, LoginPassword) and auth_data.login.decode() == USER
              and auth_data.password.decode() == PASSWORD)
        if ok:
            self.logins.append(auth_data.login.decode())
        return AuthResult(success=ok, handled=False)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def smtp_server(tls_files: TlsFiles) -> Iterator[Mailbox]:
    mailbox = Mailbox(port=_free_port())
    controller = Controller(mailbox, hostname="127.0.0.1", port=mailbox.port,
                            tls_context=tls_files.server_context(), require_starttls=True,
                            authenticator=mailbox.authenticate, auth_require_tls=True)
    controller.start()
    yield mailbox
    controller.stop()


def _options(mailbox: Mailbox, tls_files: TlsFiles, **extra: object) -> dict:
    return {"host": "127.0.0.1", "port": mailbox.port, "from": "memras@host1",
            "to": ["oncall@example.net", "lead@example.net"], "username": USER,
            "password": PASSWORD, "ca_file": str(tls_files.cert), **extra}


def _alert() -> Alert:
    return Alert(kind=AlertKind.VERDICT_CHANGED, severity=Severity.CRITICAL,
                 message="verdict failing: row fault", dimm_id="mc0-dimm3",
                 dimm_label="CPU1_DIMM_B2\r\nBcc: evil@example.net", verdict="failing", id=17)


def test_mail_goes_over_starttls_with_auth(smtp_server: Mailbox, tls_files: TlsFiles) -> None:
    EmailHook(_options(smtp_server, tls_files)).send(_alert())
    (mail,) = smtp_server.messages
    sender, recipients, over_tls = smtp_server.envelopes[0]
    assert over_tls and smtp_server.logins == [USER]
    assert sender == "memras@host1"
    assert recipients == ["oncall@example.net", "lead@example.net"]
    subject = "".join(mail["Subject"].splitlines())  # undo RFC 5322 folding
    assert subject.startswith("[memras] CRITICAL DIMM CPU1_DIMM_B2")
    assert r"B2\x0d\x0aBcc: evil" in subject  # the label's CR LF shown, not obeyed
    assert mail["Bcc"] is None
    body = mail.get_payload(decode=True).decode().replace("\r\n", "\n")
    payload = json.loads(body.split("-- alert payload (memras.alert/v1) --\n", 1)[1])
    assert payload["dimm"]["label"] == "CPU1_DIMM_B2\r\nBcc: evil@example.net"
    assert "memras alerts ack 17" in body


def test_wrong_password_is_a_hook_error(smtp_server: Mailbox, tls_files: TlsFiles) -> None:
    with pytest.raises(HookError, match="refused"):
        EmailHook(_options(smtp_server, tls_files, password="wrong")).send(_alert())
    assert smtp_server.messages == []


def test_password_file_logs_in_and_a_refusal_is_stored_without_the_password(
        smtp_server: Mailbox, tls_files: TlsFiles, tmp_path: Path) -> None:
    pw = tmp_path / "smtp.pw"
    pw.write_text(PASSWORD + "\n")
    pw.chmod(0o600)
    options = _options(smtp_server, tls_files, password_file=str(pw))
    del options["password"]
    EmailHook(options).send(_alert())
    assert smtp_server.logins == [USER] and len(smtp_server.messages) == 1
    # a refused login through the dispatcher: recorded, counted, no password anywhere
    pw.write_text("Wr0ng-pa55word\n")
    hook = EmailHook(options)
    store = MemoryAlertStore()
    result = Dispatcher(store, [(HookConfig("email", {}, RateLimit()), hook)],
                        AlertsConfig(retry=RetryPolicy(attempts=2, backoff_s=0)),
                        sleep=lambda _s: None).submit(_alert())
    errors = [d.error for d in store.deliveries(result.alert.id)]
    assert len(errors) == 2 and all("refused" in e for e in errors)
    assert not any("Wr0ng-pa55word" in e or PASSWORD in e for e in errors)
    assert len(smtp_server.messages) == 1


def test_untrusted_server_cert_is_refused(smtp_server: Mailbox, tls_files: TlsFiles) -> None:
    options = _options(smtp_server, tls_files)
    del options["ca_file"]
    with pytest.raises(HookError, match="CERTIFICATE_VERIFY_FAILED"):
        EmailHook(options).send(_alert())


def test_plain_smtp_is_refused_by_a_server_requiring_starttls(
        smtp_server: Mailbox, tls_files: TlsFiles) -> None:
    options = _options(smtp_server, tls_files, security="none")
    options.pop("username")
    with pytest.raises(HookError):
        EmailHook(options).send(_alert())
    assert smtp_server.messages == []


def test_required_options_are_named() -> None:
    with pytest.raises(HookError, match="'host'"):
        EmailHook({"from": "a", "to": "b"})
    with pytest.raises(HookError, match="security"):
        EmailHook({"host": "h", "from": "a", "to": "b", "security": "tls1.0"})
