"""The ``email`` hook: one mail per alert over SMTP, STARTTLS and AUTH by default.

Options (``[alerts.hooks.email]``)::

    host = "smtp.example.net"
    port = 587
    from = "memras@server1.example.net"
    to = ["oncall@example.net"]           # or one string
    username = "memras"                   # AUTH only when set
    password = "…"                        # or password_file = "/etc/memras/smtp.pw" (mode 600)
    security = "starttls"                 # starttls (default) | ssl (SMTPS) | none
    ca_file = "/etc/memras/ca.pem"        # trust this CA; verification is always on
    timeout = "30s"

Subject: ``[memras] CRITICAL DIMM CPU0_DIMM_A1: <message>``; the body is the
alert in words followed by its v1 JSON payload. Firmware text in the subject is
escaped (no header injection); the JSON keeps it verbatim.
"""

from __future__ import annotations

import json
import smtplib
import ssl
from collections.abc import Mapping
from email.message import EmailMessage
from typing import Any

from memras.alerts.alert import Alert
from memras.alerts.config import parse_duration
from memras.alerts.hooks import AlertHook
from memras.errors import HookError
from memras.text import escape

SUBJECT_MAX = 200


class EmailHook(AlertHook):
    name = "email"

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        super().__init__(options)
        self.host = str(self.option("host", required=True))
        self.security = str(self.option("security", "starttls"))
        if self.security not in ("starttls", "ssl", "none"):
            raise HookError("alert hook email: security must be starttls, ssl or none")
        self.port = int(self.option("port", 465 if self.security == "ssl" else 587))
        self.sender = str(self.option("from", required=True))
        to = self.option("to", required=True)
        self.recipients = [to] if isinstance(to, str) else [str(t) for t in to]
        self.username = self.option("username")
        self.password = self._password()
        self.timeout_s = parse_duration(self.option("timeout", 30), what="hooks.email.timeout")
        try:
            self.ssl_context = ssl.create_default_context(cafile=self.option("ca_file"))
        except (OSError, ssl.SSLError) as exc:
            raise HookError(f"alert hook email: cannot load ca_file: {exc}") from exc

    def _password(self) -> str | None:
        password = self.option("password")  # password_file is read in by AlertHook.__init__
        return None if password is None else str(password)

    def message(self, alert: Alert) -> EmailMessage:
        mail = EmailMessage()
        mail["Subject"] = subject(alert)
        mail["From"] = self.sender
        mail["To"] = ", ".join(self.recipients)
        mail.set_content(body(alert))
        return mail

    def send(self, alert: Alert) -> None:
        try:
            with self._connect() as smtp:
                if self.username:
                    smtp.login(str(self.username), self.password or "")
                smtp.send_message(self.message(alert))
        except smtplib.SMTPException as exc:
            raise HookError(f"email: SMTP {self.host}:{self.port} refused: {exc}") from exc
        except (OSError, ssl.SSLError) as exc:
            raise HookError(f"email: cannot reach {self.host}:{self.port}: {exc}") from exc

    def _connect(self) -> smtplib.SMTP:
        if self.security == "ssl":
            return smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout_s,
                                    context=self.ssl_context)
        smtp = smtplib.SMTP(self.host, self.port, timeout=self.timeout_s)
        if self.security == "starttls":
            try:
                smtp.starttls(context=self.ssl_context)
            except BaseException:
                smtp.close()
                raise
        return smtp


def subject(alert: Alert) -> str:
    dimm = alert.dimm_shown  # the slot label when named (memras.alerts.naming)
    text = f"[memras] {alert.severity.value.upper()} DIMM {dimm}: {alert.message}"
    return escape(text)[:SUBJECT_MAX]


def body(alert: Alert) -> str:
    lines = [
        f"Severity: {alert.severity.value}",
        f"Kind:     {alert.kind.value}",
        f"DIMM:     {escape(alert.dimm_shown)} (label {escape(alert.dimm_label or '-')}, "
        f"id {escape(alert.dimm_id or '-')})",
        f"Verdict:  {escape(alert.verdict or '-')}",
        f"Time:     {alert.time.isoformat()}",
        f"Alert id: {alert.id if alert.id is not None else '-'}",
        "",
        escape(alert.message),
        "",
        "Acknowledge with: memras alerts ack " + (str(alert.id) if alert.id else "ID"),
        "",
        "-- alert payload (memras.alert/v1) --",
        json.dumps(alert.to_payload(), indent=2, sort_keys=True),
    ]
    return "\n".join(lines) + "\n"
