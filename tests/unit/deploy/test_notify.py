"""sd_notify as systemd sees it: a test listens on the unix datagram socket that
$NOTIFY_SOCKET names and reads what ``memras watch`` sends (READY=1, WATCHDOG=1,
RELOADING=1 around a SIGHUP, STOPPING=1), as contrib/systemd/memras-watch.service
(Type=notify, WatchdogSec=, ExecReload=kill -HUP) relies on."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from memras.watcher.notify import SdNotify

WAIT_S = 120.0  # a safety net for a hung watcher, not a measured time


class Listener:
    """The service manager's end: a bound datagram socket, read message by message."""

    def __init__(self, address: str) -> None:
        self.address = address
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind("\0" + address[1:] if address.startswith("@") else address)
        self.sock.settimeout(WAIT_S)
        self.seen: list[dict[str, str]] = []

    def next(self) -> dict[str, str]:
        data = self.sock.recv(4096).decode()
        message = dict(line.split("=", 1) for line in data.splitlines())
        self.seen.append(message)
        return message

    def until(self, key: str) -> dict[str, str]:
        """Messages up to and including the next one that has ``key``."""
        while key not in (message := self.next()):
            pass
        return message


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[Listener]:
    got = Listener(str(tmp_path / "notify.sock"))
    yield got
    got.sock.close()


def test_messages_reach_a_path_socket(listener: Listener) -> None:
    notify = SdNotify(listener.address, watchdog_usec=2_000_000)
    notify.ready("reading kmsg")
    assert listener.next() == {"READY": "1", "STATUS": "reading kmsg"}
    assert notify.watchdog(now=100.0)
    assert listener.next() == {"WATCHDOG": "1"}


def test_messages_reach_an_abstract_socket() -> None:
    listener = Listener(f"@memras-test-{os.getpid()}")
    try:
        SdNotify(listener.address).stopping()
        assert listener.next() == {"STOPPING": "1"}
    finally:
        listener.sock.close()


def test_watchdog_is_sent_every_half_interval(listener: Listener) -> None:
    notify = SdNotify(listener.address, watchdog_usec=10_000_000)  # WatchdogSec=10
    assert [notify.watchdog(now=t) for t in (0.0, 4.9, 5.0, 9.9, 10.0)] == \
        [True, False, True, False, True]


@pytest.mark.parametrize(("env", "enabled", "interval_s"), [
    ({}, False, None),
    ({"NOTIFY_SOCKET": "/run/systemd/notify"}, True, None),
    ({"NOTIFY_SOCKET": "/run/systemd/notify", "WATCHDOG_USEC": "30000000"}, True, 15.0),
    # WATCHDOG_PID names another process (a forking helper's parent): not ours to ping
    ({"NOTIFY_SOCKET": "/x", "WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}, True, None),
    ({"NOTIFY_SOCKET": "/x", "WATCHDOG_USEC": "bogus"}, True, None),
    ({"NOTIFY_SOCKET": "/x", "WATCHDOG_USEC": "0"}, True, None),
])
def test_from_env(env: dict[str, str], enabled: bool, interval_s: float | None) -> None:
    notify = SdNotify.from_env(env)
    assert notify.enabled is enabled
    assert notify.watchdog_interval_s == interval_s


def test_without_a_socket_nothing_is_sent_and_nothing_fails(tmp_path: Path) -> None:
    assert SdNotify(None).send("READY=1") is False
    assert SdNotify(str(tmp_path / "nobody-listens")).send("READY=1") is False


def test_the_watcher_as_a_notify_service(server: Path, tmp_path: Path,
                                         listener: Listener) -> None:
    """READY=1 once its sources run, WATCHDOG=1 from the writer, a SIGHUP reload that
    rejects a broken config and takes a good one, STOPPING=1 on SIGTERM, exit 0."""
    config = tmp_path / "memras.toml"
    config.write_text("[page]\naction = \"off\"\n")
    stderr = tmp_path / "stderr"
    env = {**os.environ, "NOTIFY_SOCKET": listener.address, "WATCHDOG_USEC": "2000000"}
    env.pop("JOURNAL_STREAM", None)
    with open(stderr, "w") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "memras", "--root", str(server), "--db",
             str(tmp_path / "memras.db"), "--config", str(config), "watch", "--log-events"],
            env=env, stdout=subprocess.DEVNULL, stderr=err)
    try:
        ready = listener.until("READY")
        assert ready["STATUS"].startswith("reading ")
        assert "kmsg" in ready["STATUS"]
        listener.until("WATCHDOG")

        config.write_text("[page\n")  # not TOML: the running configuration must stay
        proc.send_signal(signal.SIGHUP)
        listener.until("RELOADING")
        listener.until("READY")
        config.write_text("[page]\naction = \"off\"\n")
        proc.send_signal(signal.SIGHUP)
        listener.until("RELOADING")
        assert listener.until("READY")["STATUS"] == "reloaded (1 times)"
        assert proc.poll() is None

        proc.send_signal(signal.SIGTERM)
        listener.until("STOPPING")
        assert proc.wait(timeout=WAIT_S) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    log = stderr.read_text()
    assert "reload failed, the running configuration stays" in log
    assert log.count("configuration reloaded") == 1
    assert log.count("MEMRAS_EVENT=error ") == 12  # the stream's twelve errors, stored once
