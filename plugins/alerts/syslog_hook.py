"""The ``syslog`` hook: one log record per alert, to syslog or to journald.

Options (``[alerts.hooks.syslog]``)::

    transport = "unix"        # unix (datagram socket) | udp | journald
    socket = "/dev/log"       # unix: the socket path
    host = "127.0.0.1"        # udp: the collector
    port = 514
    format = "rfc3164"        # rfc3164 | rfc5424; default 3164 on unix, 5424 on udp
    facility = "daemon"       # kern user mail daemon auth syslog local0..local7
    app_name = "memras"

Severity maps critical → crit (2), warning → warning (4), info → info (6).
RFC 5424 records carry ``[memras@32473 alert_id=… kind=… severity=… dimm=…]``
(32473 is the documentation enterprise number of RFC 5612). The journald transport
speaks the native protocol to /run/systemd/journal/socket: ``KEY=value`` lines, the
binary length form for values with a newline, and fields MEMRAS_ALERT_ID,
MEMRAS_DIMM, MEMRAS_KIND, MEMRAS_SEVERITY, MEMRAS_DIMM_LABEL (verbatim); syslog
text has control characters escaped so a firmware label cannot forge log lines.
"""

from __future__ import annotations

import os
import socket
import struct
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from memras.alerts.alert import Alert, Severity
from memras.alerts.hooks import AlertHook
from memras.errors import HookError
from memras.text import escape

JOURNAL_SOCKET = "/run/systemd/journal/socket"
FACILITIES = {"kern": 0, "user": 1, "mail": 2, "daemon": 3, "auth": 4, "syslog": 5,
              **{f"local{i}": 16 + i for i in range(8)}}
SEVERITY_CODES = {Severity.CRITICAL: 2, Severity.WARNING: 4, Severity.INFO: 6}
SD_ID = "memras@32473"


class SyslogHook(AlertHook):
    name = "syslog"

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        super().__init__(options)
        self.transport = str(self.option("transport", "unix"))
        if self.transport not in ("unix", "udp", "journald"):
            raise HookError("alert hook syslog: transport must be unix, udp or journald")
        default_path = JOURNAL_SOCKET if self.transport == "journald" else "/dev/log"
        self.socket_path = str(self.option("socket", default_path))
        self.address = (str(self.option("host", "127.0.0.1")), int(self.option("port", 514)))
        self.format = str(self.option("format",
                                      "rfc5424" if self.transport == "udp" else "rfc3164"))
        if self.format not in ("rfc3164", "rfc5424"):
            raise HookError("alert hook syslog: format must be rfc3164 or rfc5424")
        facility = str(self.option("facility", "daemon"))
        if facility not in FACILITIES:
            raise HookError(f"alert hook syslog: unknown facility {facility!r}")
        self.facility = FACILITIES[facility]
        self.app_name = str(self.option("app_name", "memras"))

    def send(self, alert: Alert) -> None:
        if self.transport == "journald":
            self._send_datagram(journal_record(alert, self.app_name), socket.AF_UNIX,
                                self.socket_path)
            return
        record = self.format_record(alert).encode("utf-8", errors="replace")
        if self.transport == "udp":
            self._send_datagram(record, socket.AF_INET, self.address)
        else:
            self._send_datagram(record, socket.AF_UNIX, self.socket_path)

    def format_record(self, alert: Alert, *, hostname: str | None = None) -> str:
        priority = self.facility * 8 + SEVERITY_CODES[alert.severity]
        host = hostname or socket.gethostname() or "-"
        text = escape(_summary(alert))
        if self.format == "rfc5424":
            return rfc5424(priority, alert, host, self.app_name, text)
        stamp = alert.time.astimezone().strftime("%b %d %H:%M:%S")
        stamp = stamp[:4] + stamp[4:6].replace("0", " ", 1) + stamp[6:]  # "Feb  3"
        return f"<{priority}>{stamp} {host} {self.app_name}[{os.getpid()}]: {text}"

    @staticmethod
    def _send_datagram(data: bytes, family: int, address: Any) -> None:
        try:
            with socket.socket(family, socket.SOCK_DGRAM) as sock:
                sock.settimeout(5.0)
                sock.sendto(data, address)
        except OSError as exc:
            raise HookError(f"syslog: cannot send to {address}: {exc.strerror or exc}") from exc


def rfc5424(priority: int, alert: Alert, host: str, app_name: str, text: str) -> str:
    """``<PRI>1 TIMESTAMP HOST APP PROCID MSGID [SD] MSG`` (RFC 5424 §6)."""
    params = {"alert_id": "" if alert.id is None else str(alert.id), "kind": alert.kind.value,
              "severity": alert.severity.value, "dimm": alert.dimm_id or "",
              "label": escape(alert.dimm_label or ""), "slot": escape(alert.dimm_name or "")}
    sd = " ".join(f'{k}="{_sd_escape(v)}"' for k, v in params.items())
    stamp = _rfc3339(alert.time)
    return (f"<{priority}>1 {stamp} {_token(host)} {_token(app_name)} {os.getpid()} "
            f"{_token(alert.kind.value)} [{SD_ID} {sd}] {text}")


def journal_record(alert: Alert, identifier: str) -> bytes:
    """A journald native-protocol datagram for the alert."""
    fields = {
        "MESSAGE": _summary(alert),
        "PRIORITY": str(SEVERITY_CODES[alert.severity]),
        "SYSLOG_IDENTIFIER": identifier,
        "MEMRAS_ALERT_ID": "" if alert.id is None else str(alert.id),
        "MEMRAS_KIND": alert.kind.value,
        "MEMRAS_SEVERITY": alert.severity.value,
        "MEMRAS_DIMM": alert.dimm_id or "",
        "MEMRAS_DIMM_LABEL": alert.dimm_label or "",
        "MEMRAS_DIMM_SLOT": alert.dimm_name or "",
    }
    return b"".join(_journal_field(k, v) for k, v in fields.items())


def _journal_field(key: str, value: str) -> bytes:
    data = value.encode("utf-8", errors="replace")
    if b"\n" in data:
        return key.encode() + b"\n" + struct.pack("<Q", len(data)) + data + b"\n"
    return key.encode() + b"=" + data + b"\n"


def _summary(alert: Alert) -> str:
    dimm = alert.dimm_shown  # the slot label when named (memras.alerts.naming)
    return f"{alert.severity.value.upper()} {alert.kind.value} DIMM {dimm}: {alert.message}"


def _sd_escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("]", "\\]")


def _token(value: str) -> str:
    """RFC 5424 header fields: printable US-ASCII without spaces, or '-'."""
    cleaned = "".join(c for c in value if 33 <= ord(c) <= 126)
    return cleaned[:48] or "-"


def _rfc3339(when: datetime) -> str:
    return when.isoformat(timespec="microseconds").replace("+00:00", "Z")
