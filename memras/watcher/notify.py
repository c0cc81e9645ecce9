"""sd_notify(3) for ``memras watch`` under systemd (Type=notify, WatchdogSec=).

What it sends: ``READY=1`` once every source has started (its cursor read, its
trace instance or kmsg handle open), so ``systemctl start`` returns when events
are being read, not when the process exists; ``WATCHDOG=1`` from the writer loop
every ``WATCHDOG_USEC / 2``, so a writer stuck in the database or a hook is
restarted by systemd; ``RELOADING=1`` then ``READY=1`` around a SIGHUP reload;
``STOPPING=1`` on the way out; ``STATUS=`` lines an operator sees in ``systemctl
status``.

The protocol is one unix datagram per message to the socket named by
``$NOTIFY_SOCKET`` (a leading ``@`` is the abstract namespace), so it is a dozen
lines here instead of a dependency on libsystemd or a Python binding. Without
``$NOTIFY_SOCKET`` (a shell, a test, another init) every call does nothing, and
without ``$WATCHDOG_USEC`` (or with ``$WATCHDOG_PID`` naming another process) no
keep-alive is sent. Sending never raises: a journal or PID 1 that went away must
not stop event storage.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Mapping

log = logging.getLogger("memras.watcher.notify")


class SdNotify:
    """The notify socket and watchdog interval systemd handed this process, if any."""

    def __init__(self, address: str | None, watchdog_usec: int | None = None) -> None:
        self.address = address
        self.watchdog_interval_s = watchdog_usec / 2e6 if watchdog_usec else None
        self._next_watchdog = 0.0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> SdNotify:
        """From ``$NOTIFY_SOCKET``, ``$WATCHDOG_USEC`` and ``$WATCHDOG_PID``."""
        env = os.environ if env is None else env
        usec = env.get("WATCHDOG_USEC", "")
        pid = env.get("WATCHDOG_PID", "")
        mine = not pid or (pid.isdigit() and int(pid) == os.getpid())
        return cls(env.get("NOTIFY_SOCKET") or None,
                   int(usec) if usec.isdigit() and int(usec) > 0 and mine else None)

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def send(self, *fields: str) -> bool:
        """One datagram of ``KEY=value`` lines; False when not sent (no socket, an error)."""
        if self.address is None:
            return False
        target = "\0" + self.address[1:] if self.address.startswith("@") else self.address
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as s:
                s.sendto("\n".join(fields).encode(), target)
        except OSError as exc:
            log.warning("sd_notify to %s failed: %s", self.address, exc)
            return False
        return True

    def ready(self, status: str) -> None:
        self.send("READY=1", f"STATUS={status}")

    def reloading(self) -> None:
        # MONOTONIC_USEC lets systemd >= 253 (Type=notify-reload) match this to its reload
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        self.send("RELOADING=1", f"MONOTONIC_USEC={usec}")

    def stopping(self) -> None:
        self.send("STOPPING=1")

    def watchdog(self, now: float | None = None) -> bool:
        """``WATCHDOG=1`` when half the interval passed since the last one; sent or not."""
        if self.watchdog_interval_s is None:
            return False
        now = time.monotonic() if now is None else now
        if now < self._next_watchdog:
            return False
        self._next_watchdog = now + self.watchdog_interval_s
        return self.send("WATCHDOG=1")
