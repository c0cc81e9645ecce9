"""Byte relay between one guest TCP connection and a host endpoint: QEMU's ``guestfwd`` helper.

QEMU's user-mode network forwards a guest connection to ``10.0.2.100:PORT`` by
spawning ``cmd:`` once per connection, with the connection on stdin/stdout (the
chardev form of ``guestfwd`` instead connects ONCE at QEMU start, fails when
nothing listens yet and shares one stream between all guest connections).
This program connects to the host side and copies bytes both ways until either
side closes. Targets:

``unix PATH``        a unix socket (the guest's QMP monitor)
``tcp-file PATH``    127.0.0.1 at the port written in PATH, read per connection, so
                     a test can start its receiver on any free port after boot
                     (:meth:`memras.lab.guest.Lab.forward`)

libslirp splits the command at spaces (no quoting), so paths must not contain
spaces. It imports nothing from memras: it starts once per connection.
"""

from __future__ import annotations

import os
import selectors
import socket
import sys


def _connect(kind: str, target: str) -> socket.socket:
    if kind == "unix":
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(target)
        return sock
    if kind == "tcp-file":
        with open(target) as fh:
            port = int(fh.read().strip())
        return socket.create_connection(("127.0.0.1", port), timeout=10)
    raise SystemExit(f"relay: unknown target kind {kind!r}")


def relay(kind: str, target: str) -> None:
    guest = socket.socket(fileno=os.dup(0))
    host = _connect(kind, target)
    host.settimeout(None)
    sel = selectors.DefaultSelector()
    sel.register(guest, selectors.EVENT_READ, host)
    sel.register(host, selectors.EVENT_READ, guest)
    open_ends = 2
    while open_ends:
        for key, _ in sel.select():
            src: socket.socket = key.fileobj  # type: ignore[assignment]  # only sockets registered
            dst: socket.socket = key.data
            data = src.recv(65536)
            if data:
                dst.sendall(data)
                continue
            # One side finished sending: pass the half-close on, keep reading the other.
            sel.unregister(src)
            open_ends -= 1
            try:
                dst.shutdown(socket.SHUT_WR)
            except OSError:
                return
            if src is host:  # the host answered and closed: the exchange is over
                return


def main(argv: list[str]) -> None:
    # stderr is the guest's connection too: errors go to a log beside the target.
    log = os.open(os.path.join(os.path.dirname(argv[1]) or ".", "relay.log"),
                  os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.dup2(log, 2)
    try:
        relay(argv[0], argv[1])
    except OSError as exc:
        print(f"relay {argv}: {exc}", file=sys.stderr)


if __name__ == "__main__":
    main(sys.argv[1:])
