"""Drive the guest's shell on its serial console: one command in, its output and status out.

The console is a QEMU ``chardev socket`` (a unix socket on the host) wired to the
guest's ttyS0, where the init script runs ``sh -i`` with a controlling tty. A
command is sent as::

    printf '%s%s\\n' '@@MEMRAS-S' ID; ( CMD
    ) </dev/null 2>&1; printf '\\n%s%s:%s\\n' '@@MEMRAS-E' ID "$?"

The marker halves are joined by printf at run time, so the tty's echo of the
typed line never contains a whole marker; everything the tty echoes comes
before the start marker because the shell parses the whole list before it runs
any of it. The subshell keeps ``exit`` or ``cd`` in a command from touching the
console shell itself. The output is the text between the two markers, and the
exit status is the number after the end marker. ``</dev/null`` keeps a command
that reads stdin from swallowing typed input. A command that outlives its
timeout gets a Ctrl-C, the shell is resynchronised, and :class:`LabError` says so.
"""

from __future__ import annotations

import re
import select
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from memras.errors import LabError

START = ("@@MEMRAS", "-S")
END = ("@@MEMRAS", "-E")
MAX_LINE = 3800  # the tty's canonical line buffer holds 4095 bytes


@dataclass(frozen=True)
class CommandResult:
    """What a guest command did."""

    command: str
    status: int
    output: str
    seconds: float

    @property
    def ok(self) -> bool:
        return self.status == 0

    def __iter__(self) -> Iterator[int | str]:
        """``status, output = lab.run(cmd)`` unpacks like a pair."""
        return iter((self.status, self.output))


class Console:
    """A connection to the guest's serial console socket."""

    def __init__(self, socket_path: Path, transcript: Path | None = None) -> None:
        self.socket_path = socket_path
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self._sock.connect(str(socket_path))
        except OSError as exc:
            self._sock.close()
            raise LabError(f"cannot connect to the guest console {socket_path}: {exc.strerror}",
                           hint="is the lab up? run: memras lab status") from None
        self._sock.setblocking(False)
        self._buffer = ""
        self._transcript = transcript.open("a") if transcript else None

    def close(self) -> None:
        self._sock.close()
        if self._transcript:
            self._transcript.close()

    def __enter__(self) -> Console:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- raw I/O -------------------------------------------------------------------------

    def send(self, text: str) -> None:
        data = text.encode()
        self._sock.setblocking(True)
        try:
            self._sock.sendall(data)
        except OSError as exc:
            raise LabError(f"the guest console closed: {exc.strerror}",
                           hint="the guest may have died; see the kernel log") from None
        finally:
            self._sock.setblocking(False)

    def _pump(self, wait_s: float) -> bool:
        """Read what is available within ``wait_s``; False when the socket closed."""
        readable, _, _ = select.select([self._sock], [], [], max(wait_s, 0))
        if not readable:
            return True
        try:
            chunk = self._sock.recv(65536)
        except BlockingIOError:
            return True
        if not chunk:
            return False
        text = chunk.decode(errors="replace").replace("\r", "")
        self._buffer += text
        if self._transcript:
            self._transcript.write(text)
            self._transcript.flush()
        return True

    def expect(self, pattern: str, timeout: float,
               alive: Callable[[], bool] = lambda: True) -> tuple[str, re.Match[str]]:
        """Wait for ``pattern`` in the console output; the text before it, and the match.

        Everything through the match is consumed. ``pattern`` should start with a
        literal, so the search stays linear in the size of the output.
        """
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            match = regex.search(self._buffer)
            if match:
                before = self._buffer[:match.start()]
                self._buffer = self._buffer[match.end():]
                return before, match
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(pattern)
            if not self._pump(min(left, 0.5)):
                raise LabError("the guest console closed", hint="see the kernel log")
            if not alive():
                raise LabError("QEMU exited", hint="see the kernel log")

    # --- commands ------------------------------------------------------------------------

    def run(self, command: str, timeout: float = 60.0) -> CommandResult:
        """Run ``command`` in the guest shell; its status and output (stdout+stderr)."""
        tag = uuid.uuid4().hex[:10]
        line = self._wrap(command, tag)
        if len(line) > MAX_LINE:
            raise LabError(f"guest command longer than {MAX_LINE} bytes",
                           hint="split it or write a script to the guest's /tmp first")
        started = time.monotonic()
        try:
            status, output = self._exchange(line, tag, timeout)
        except TimeoutError:
            self.interrupt()
            raise LabError(f"guest command timed out after {timeout:.0f} s: {command[:80]}",
                           hint="the command was interrupted with Ctrl-C") from None
        return CommandResult(command, status, output, time.monotonic() - started)

    def _exchange(self, line: str, tag: str, timeout: float) -> tuple[int, str]:
        """Send one wrapped command line; (status, output), or TimeoutError."""
        started = time.monotonic()
        self.send(line)
        start_re = re.escape("".join(START) + tag) + r"\n"
        end_re = re.escape("".join(END) + tag) + r":(\d+)\n"
        self.expect(start_re, timeout)
        output, match = self.expect(end_re, max(timeout - (time.monotonic() - started), 1))
        # The end marker is printed after a newline of its own; drop that one.
        return int(match.group(1)), output.removesuffix("\n")

    @staticmethod
    def _wrap(command: str, tag: str) -> str:
        """The typed line: start marker, the command with stdin closed, end marker + status."""
        return (f"printf '%s%s\\n' '{START[0]}' '{START[1]}{tag}'; ( {command}\n"
                f") </dev/null 2>&1; printf '\\n%s%s:%s\\n' '{END[0]}' '{END[1]}{tag}' \"$?\"\n")

    def interrupt(self) -> None:
        """Ctrl-C the foreground command and resynchronise with the shell."""
        self.send("\x03")
        time.sleep(0.2)
        self.sync(timeout=15)

    def sync(self, timeout: float = 15.0) -> None:
        """Make sure the shell answers, discarding anything printed before."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            tag = uuid.uuid4().hex[:10]
            try:
                self._exchange(self._wrap("true", tag), tag, min(5.0, left))
                return
            except TimeoutError:
                continue
        raise LabError("the guest shell does not answer",
                       hint="is another `memras lab shell` attached? else run: memras lab down")
