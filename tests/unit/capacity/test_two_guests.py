"""Two lab guests side by side and the guest agent path, without booting anything.

The QEMU command lines of two guests share no socket, log or forward file; a guest
agent channel is a named virtio-serial port; partition's qemu-ga reader and the
lab's ``guest_agent_call`` speak the agent's protocol to a stand-in agent.
"""

from __future__ import annotations

import base64
import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from memras.capacity import partition
from memras.lab.guest import GUEST_AGENT_PORT, LabConfig, guest_agent_call, qemu_argv
from memras.lab.kernel import Kernel

MEMINFO = "MemTotal:        1000000 kB\nMemFree:          500000 kB\nMemAvailable:     600000 kB\n"


def _paths(argv: list[str], state_dir: Path) -> set[str]:
    return {part for arg in argv for part in arg.replace(",", " ").replace("=", " ").split()
            if part.startswith(f"{state_dir}/")}


def test_two_guests_share_no_socket_or_file(tmp_path: Path) -> None:
    kernel = Kernel("6.1.0-1-amd64", tmp_path)
    a_dir, b_dir = tmp_path / "guest-a", tmp_path / "guest-b"
    a_dir.mkdir(), b_dir.mkdir()
    a = qemu_argv("qemu", LabConfig(keep=()), kernel, tmp_path / "i.gz", "tcg", a_dir)
    b = qemu_argv("qemu", LabConfig(keep=(), name="memras-lab-donor", guest_agent=True,
                                    forwards=(), guest_qmp=False, virtio_mem_mib=0),
                  kernel, tmp_path / "i.gz", "tcg", b_dir)
    assert _paths(a, a_dir) and _paths(b, b_dir)
    assert not _paths(a, b_dir) and not _paths(b, a_dir)
    assert b[b.index("-name") + 1] == "memras-lab-donor"
    joined = " ".join(b)
    assert f"name={GUEST_AGENT_PORT}" in joined and f"path={b_dir / 'qga.sock'}" in joined
    assert "virtio-serial" not in " ".join(a)
    # user-mode networking listens on no host port: no hostfwd rule in either guest
    assert "hostfwd" not in " ".join(a) + joined


@pytest.fixture
def agent(tmp_path: Path) -> Iterator[Path]:
    """A stand-in qemu-ga on a unix socket: guest-sync, guest-ping, guest-file-*."""
    path = tmp_path / "qga.sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen()

    def serve() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            with conn, conn.makefile("rb") as reader:
                conn.sendall(b'{"return": "stale reply from an earlier client"}\n')
                for line in reader:
                    req = json.loads(line)
                    name, args = req["execute"], req.get("arguments", {})
                    value = {"guest-sync": args.get("id"), "guest-ping": {},
                             "guest-file-open": 7, "guest-file-close": {},
                             "guest-file-read": {"count": len(MEMINFO), "eof": True,
                                                 "buf-b64": base64.b64encode(
                                                     MEMINFO.encode()).decode()}}[name]
                    conn.sendall(json.dumps({"return": value}).encode() + b"\n")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield path
    server.close()


def test_guest_agent_call_skips_stale_replies(agent: Path) -> None:
    assert guest_agent_call(agent, "guest-ping") == {}


def test_partition_reads_meminfo_through_the_agent(agent: Path) -> None:
    meminfo = partition.guest_meminfo(str(agent))
    assert meminfo["MemAvailable"] == 600000 * 1024
    ok, detail = partition.spare_check(256 << 20, 256 << 20, meminfo, force=False)
    assert ok, detail
