"""Host-side QMP: the "technician" who pulls and inserts DIMMs and injects machine checks.

:class:`GuestQmp` is the synchronous client :mod:`memras.capacity.vm` and the lab
drive QEMU with, a thin layer over ``qemu.qmp``'s legacy client; the ``qemu``
replace backend (async, inside the workflow's cancellable steps) shares its event
helpers. Every event read is kept in :attr:`GuestQmp.events` (the lab's scenarios
report them), and waiting for an event is always bounded. Failures raise
:class:`memras.errors.QemuError`.

Unplug contract (docs/hotplug-internals.md, acpi-eject): ``device_del`` returns at
once; success is ``DEVICE_DELETED`` for the device, failure is an
``ACPI_DEVICE_OST`` with status 0x80-0x83 (0x82 = busy: the guest could not
offline the memory) or no ``DEVICE_DELETED`` within the timeout.

``qemu.qmp`` is the ``memras[vm]`` extra, not a core dependency: a production server
never drives QEMU. It is imported where a connection is made (:func:`qmp_library`),
so this module's helpers and every command that merely lists them load without it,
and a missing extra is one line naming the extra, not a traceback.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from memras.errors import QemuError, UsageError

if TYPE_CHECKING:
    from qemu.qmp.legacy import QEMUMonitorProtocol

VM_EXTRA_HINT = "pip install 'memras[vm]', or with pipx: pipx inject memras qemu.qmp"

Event = dict[str, Any]
OST_FAILURES = range(0x80, 0x84)
OST_NAMES = {0x80: "not supported", 0x81: "failure", 0x82: "busy (offline failed)",
             0x83: "not attached", 0x84: "in progress", 0: "success"}


@dataclass
class UnplugResult:
    """What came of a ``device_del``."""

    device: str
    deleted: bool
    ost_status: list[int] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def failure_status(self) -> int | None:
        return next((s for s in self.ost_status if s in OST_FAILURES), None)


def qmp_library() -> ModuleType:
    """``qemu.qmp``, or a UsageError naming the extra that installs it."""
    try:
        import qemu.qmp
        import qemu.qmp.legacy  # noqa: F401  (GuestQmp's synchronous client)
    except ModuleNotFoundError as exc:
        if not (exc.name or "").startswith("qemu"):
            raise
        raise UsageError("the QEMU monitor client qemu.qmp is not installed: "
                         "install memras[vm]", hint=VM_EXTRA_HINT) from None
    return qemu.qmp


def event_data(event: Event) -> dict[str, Any]:
    """An event's data; ``ACPI_DEVICE_OST`` nests it under ``info`` (ACPIOSTInfo)."""
    data: dict[str, Any] = event.get("data") or {}
    info = data.get("info")
    return info if isinstance(info, dict) else data


class GuestQmp:
    """A QMP connection to one QEMU."""

    def __init__(self, socket_path: Path, timeout: float = 30.0) -> None:
        self.socket_path = socket_path
        self.events: list[Event] = []
        lib = qmp_library()
        self._error: type[Exception] = lib.QMPError
        self._qmp: QEMUMonitorProtocol = lib.legacy.QEMUMonitorProtocol(str(socket_path))
        try:
            self._qmp.connect()
        except (self._error, OSError) as exc:
            raise QemuError(f"cannot connect to QMP at {socket_path}: {exc}",
                            hint="is QEMU running with -qmp unix:PATH,server=on?") from None
        self._qmp.settimeout(timeout)

    def close(self) -> None:
        # QEMU may be gone already (EOFError, connection reset): nothing left to close.
        with contextlib.suppress(Exception):
            self._qmp.close()

    def __enter__(self) -> GuestQmp:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def cmd(self, name: str, **args: Any) -> Any:
        """Run a QMP command; a QEMU error becomes :class:`QemuError`."""
        try:
            return self._qmp.cmd(name, **args)
        except self._error as exc:
            raise QemuError(f"QMP {name} failed: {exc}") from None

    def hmp(self, command_line: str) -> str:
        """A human monitor command; its text output."""
        return str(self.cmd("human-monitor-command", **{"command-line": command_line}))

    # --- events --------------------------------------------------------------------------

    def drain(self) -> list[Event]:
        """Events that arrived so far (also appended to :attr:`events`)."""
        got: list[Event] = []
        while (event := self._qmp.pull_event(wait=False)) is not None:
            got.append(event)
        self.events.extend(got)
        return got

    def wait_event(self, match: Callable[[Event], bool], timeout: float) -> Event | None:
        """The first new event for which ``match`` is true, or None after ``timeout``."""
        deadline = time.monotonic() + timeout
        event: Event | None  # a drained event, then what pull_event() returns
        while True:
            for event in self.drain():
                if match(event):
                    return event
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            try:
                event = self._qmp.pull_event(wait=min(left, 0.5))
            except TimeoutError:
                continue
            if event is not None:
                self.events.append(event)
                if match(event):
                    return event

    # --- memory devices ------------------------------------------------------------------

    def memory_devices(self) -> list[dict[str, Any]]:
        """``query-memory-devices``: each DIMM's data (id, slot, addr, size, memdev…)."""
        return [d["data"] for d in self.cmd("query-memory-devices")]

    def dimm(self, dimm_id: str) -> dict[str, Any]:
        for data in self.memory_devices():
            if data.get("id") == dimm_id:
                return data
        raise QemuError(f"no DIMM {dimm_id} in the guest")

    def unplug(self, dimm_id: str, timeout: float = 30.0) -> UnplugResult:
        """``device_del`` and wait for DEVICE_DELETED, or a failing OST, or the timeout."""
        self.drain()
        result = UnplugResult(dimm_id, deleted=False)
        started = time.monotonic()
        self.cmd("device_del", id=dimm_id)

        def done(event: Event) -> bool:
            data = event_data(event)
            if event["event"] == "ACPI_DEVICE_OST" and data.get("device") == dimm_id:
                result.ost_status.append(int(data.get("status", -1)))
                return result.failure_status is not None
            return event["event"] == "DEVICE_DELETED" and data.get("device") == dimm_id

        event = self.wait_event(done, timeout)
        result.deleted = event is not None and event["event"] == "DEVICE_DELETED"
        result.seconds = time.monotonic() - started
        return result

    def plug(self, dimm_id: str, memdev: str, size: int, slot: int | None = None,
             node: int | None = None) -> float:
        """``object-add`` a RAM backend and ``device_add`` a pc-dimm (on guest NUMA ``node``
        when given; QEMU's default is node 0); seconds until OST 0."""
        self.drain()
        started = time.monotonic()
        self.cmd("object-add", **{"qom-type": "memory-backend-ram", "id": memdev, "size": size})
        args: dict[str, Any] = {"driver": "pc-dimm", "id": dimm_id, "memdev": memdev}
        if slot is not None:
            args["slot"] = slot
        if node is not None:
            args["node"] = node
        self.cmd("device_add", **args)

        def ost_done(event: Event) -> bool:
            data = event_data(event)
            return event["event"] == "ACPI_DEVICE_OST" and data.get("device") == dimm_id

        event = self.wait_event(ost_done, 30)
        status = None if event is None else event_data(event).get("status")
        if status != 0:
            raise QemuError(f"the guest did not accept DIMM {dimm_id} (ACPI OST {status})")
        return time.monotonic() - started

    def inject_mce(self, cpu: int, bank: int, status: int, mcg_status: int, addr: int,
                   misc: int, broadcast: bool = False) -> None:
        """QEMU's ``mce`` monitor command: write an MCA bank of a guest CPU."""
        flag = "-b " if broadcast else ""
        out = self.hmp(f"mce {flag}{cpu} {bank} {status:#x} {mcg_status:#x} {addr:#x} {misc:#x}")
        if out.strip():
            raise QemuError(f"QEMU refused the MCE injection: {out.strip()}")
