"""The syslog hook against real sockets: unix datagram, UDP, journald native protocol."""

from __future__ import annotations

import re
import socket
import struct
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from memras.plugins.alerts.syslog_hook import SyslogHook

from memras.alerts.alert import Alert, AlertKind, Severity
from memras.errors import HookError

RFC5424 = re.compile(
    r"^<(?P<pri>\d+)>1 (?P<ts>\S+) (?P<host>\S+) (?P<app>\S+) (?P<pid>\d+) (?P<msgid>\S+) "
    r"\[memras@32473 (?P<sd>(?:[^\]\\]|\\.)*)\] (?P<msg>.*)$")
RFC3164 = re.compile(r"^<(?P<pri>\d+)>(?P<ts>[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d) "
                     r"(?P<host>\S+) memras\[\d+\]: (?P<msg>.*)$")


@pytest.fixture
def unix_socket() -> Iterator[tuple[str, socket.socket]]:
    with tempfile.TemporaryDirectory(prefix="msl") as folder:  # short path: sun_path limit
        path = str(Path(folder) / "log")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(path)
        sock.settimeout(5)
        yield path, sock
        sock.close()


def _alert(label: str = "CPU0_DIMM_A1") -> Alert:
    return Alert(kind=AlertKind.UE, severity=Severity.CRITICAL, message="uncorrected error",
                 dimm_id="d1", dimm_label=label, id=9)


def test_rfc3164_to_unix_socket_with_daemon_crit_priority(unix_socket) -> None:
    path, sock = unix_socket
    SyslogHook({"socket": path}).send(_alert())
    match = RFC3164.match(sock.recv(4096).decode())
    assert match, "not an RFC 3164 record"
    assert int(match["pri"]) == 3 * 8 + 2  # daemon.crit
    assert match["msg"] == "CRITICAL ue DIMM CPU0_DIMM_A1: uncorrected error"


def test_rfc5424_escapes_hostile_label_and_sd_values(unix_socket) -> None:
    path, sock = unix_socket
    hook = SyslogHook({"socket": path, "format": "rfc5424", "facility": "local3"})
    hook.send(_alert('A1"]\nforged: root login'))
    text = sock.recv(4096).decode()
    assert "\n" not in text
    match = RFC5424.match(text)
    assert match, text
    assert int(match["pri"]) == (16 + 3) * 8 + 2
    assert match["msgid"] == "ue"
    assert 'alert_id="9"' in match["sd"] and 'severity="critical"' in match["sd"]
    # escape() makes the newline visible as \x0a; SD escaping then doubles its backslash
    assert r'label="A1\"\]\\x0aforged: root login"' in match["sd"]
    assert match["msg"].endswith(r'DIMM A1"]\x0aforged: root login: uncorrected error')


def test_udp_defaults_to_rfc5424() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as server:
        server.bind(("127.0.0.1", 0))
        server.settimeout(5)
        port = server.getsockname()[1]
        SyslogHook({"transport": "udp", "host": "127.0.0.1", "port": port}).send(
            _alert().replace(severity=Severity.WARNING))
        match = RFC5424.match(server.recv(4096).decode())
    assert match and int(match["pri"]) == 3 * 8 + 4


def _parse_journal(data: bytes) -> dict[str, str]:
    fields: dict[str, str] = {}
    while data:
        line, _, rest = data.partition(b"\n")
        if b"=" in line:
            key, _, value = line.partition(b"=")
            fields[key.decode()] = value.decode()
            data = rest
        else:
            (size,) = struct.unpack("<Q", rest[:8])
            fields[line.decode()] = rest[8:8 + size].decode()
            data = rest[8 + size + 1:]
    return fields


def test_journald_native_protocol(unix_socket) -> None:
    path, sock = unix_socket
    alert = _alert().replace(message="two\nlines")
    SyslogHook({"transport": "journald", "socket": path}).send(alert)
    fields = _parse_journal(sock.recv(65536))
    assert fields["MESSAGE"] == "CRITICAL ue DIMM CPU0_DIMM_A1: two\nlines"  # binary form
    assert fields["PRIORITY"] == "2" and fields["SYSLOG_IDENTIFIER"] == "memras"
    assert fields["MEMRAS_ALERT_ID"] == "9" and fields["MEMRAS_DIMM"] == "d1"


def test_missing_socket_is_a_hook_error(tmp_path: Path) -> None:
    with pytest.raises(HookError, match="cannot send"):
        SyslogHook({"socket": str(tmp_path / "nope")}).send(_alert())
    with pytest.raises(HookError, match="facility"):
        SyslogHook({"facility": "nonsense"})
