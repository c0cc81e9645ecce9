"""The one place memras reads and writes kernel files, always under a root prefix.

Every kernel reader in ``memras.host`` goes through :class:`KernelFs`, so a test,
the demo or an offline analysis points the whole tool at a synthetic or captured
tree by passing another root.

Writes are the dangerous part. :meth:`KernelFs.write` refuses to write under the
real root ``/`` unless the caller built the ``KernelFs`` with ``allow_real_writes``
(the CLI does so only for commands that are meant to change the machine), and
refuses entirely when ``MEMRAS_FORBID_REAL_WRITES=1`` is set (the test suite sets
it), unless ``MEMRAS_LAB_GUEST=1`` says we are inside a lab guest whose /sys is its
own. When the root holds a simulator marker, writes are handed to the simulated
kernel, which applies the kernel's rules (Movable offlines, EBUSY, eject…).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from pathlib import Path

from memras.errors import KernelInterfaceError, NotPermitted

SIM_MARKER = ".memras-sim"  # directory under a simulated root; see memras.sim

# A simulated kernel: (relative path, value) -> None, raising OSError like the kernel.
SimWriter = Callable[[str, str], None]
# Builds the simulated kernel of a root. memras.sim registers it when imported: the
# simulator sits above production code, so the host layer never imports it.
SimulatorFactory = Callable[[Path], SimWriter]
_simulator_factory: SimulatorFactory | None = None


def register_simulator(factory: SimulatorFactory) -> None:
    """Called by :mod:`memras.sim`: writes under a simulated root go to ``factory(root)``."""
    global _simulator_factory
    _simulator_factory = factory


def running_in_lab_guest() -> bool:
    return os.environ.get("MEMRAS_LAB_GUEST") == "1"


def real_writes_forbidden() -> bool:
    return os.environ.get("MEMRAS_FORBID_REAL_WRITES") == "1" and not running_in_lab_guest()


class KernelFs:
    """Read and write files of one kernel view: the real one (``/``) or a tree."""

    def __init__(self, root: str | Path = "/", *, allow_real_writes: bool = False) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise KernelInterfaceError(
                f"root {self.root} is not a directory",
                hint="pass --root with a captured or simulated tree, or omit it for /",
            )
        self.is_real_root = self.root.resolve() == Path("/")
        self.allow_real_writes = allow_real_writes
        # The simulated kernel is built when a simulated root is first written:
        # reading commands (blocks, locate) should not pay for it.
        self._simulated = (self.root / SIM_MARKER).is_dir()
        self._sim_writer_fn: SimWriter | None = None

    @property
    def is_simulated(self) -> bool:
        return self._simulated

    @property
    def _sim_writer(self) -> SimWriter | None:
        if self._simulated and self._sim_writer_fn is None:
            if _simulator_factory is None:
                raise KernelInterfaceError(
                    f"{self.root} is a simulated server but the simulator is not loaded",
                    hint="import memras.sim before writing to a simulated root")
            self._sim_writer_fn = _simulator_factory(self.root)
        return self._sim_writer_fn

    def path(self, rel: str) -> Path:
        """``rel`` is an absolute kernel path such as ``/sys/devices/system/memory``."""
        return self.root / rel.lstrip("/")

    def exists(self, rel: str) -> bool:
        return self.path(rel).exists()

    def read(self, rel: str, default: str | None = None) -> str:
        """The file's text, stripped of the trailing newline."""
        try:
            return self.path(rel).read_text(errors="replace").rstrip("\n")
        except FileNotFoundError:
            if default is not None:
                return default
            raise KernelInterfaceError(f"{rel} does not exist under {self.root}") from None
        except OSError as exc:
            if default is not None:
                return default
            raise KernelInterfaceError(f"cannot read {rel}: {exc.strerror}") from None

    def read_bytes(self, rel: str) -> bytes:
        try:
            return self.path(rel).read_bytes()
        except OSError as exc:
            raise KernelInterfaceError(f"cannot read {rel}: {exc.strerror}") from None

    def read_int(self, rel: str, base: int = 10, default: int | None = None) -> int:
        text = self.read(rel, default="" if default is not None else None).strip()
        if text == "" and default is not None:
            return default
        try:
            return int(text, base)
        except ValueError:
            if default is not None:
                return default
            raise KernelInterfaceError(f"{rel} holds {text!r}, not a number") from None

    def listdir(self, rel: str) -> list[str]:
        try:
            return sorted(os.listdir(self.path(rel)))
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise KernelInterfaceError(f"cannot list {rel}: {exc.strerror}") from None

    def readlink_name(self, rel: str) -> str | None:
        """The last component of a symlink's target (e.g. ``memory32``), or None."""
        try:
            return Path(os.readlink(self.path(rel))).name
        except OSError:
            return None

    def check_writable(self, rel: str) -> None:
        """Raise :class:`NotPermitted` if a write to ``rel`` would break the safety rules."""
        if self._sim_writer is not None:
            return
        if self.is_real_root and real_writes_forbidden():
            raise NotPermitted(
                f"refusing to write {rel} on this machine: MEMRAS_FORBID_REAL_WRITES=1",
                hint="tests write only under a temporary --root or inside a lab guest",
            )
        if self.is_real_root and not (self.allow_real_writes or running_in_lab_guest()):
            raise NotPermitted(
                f"refusing to write {rel}: this command was not asked to change the machine",
            )

    def write(self, rel: str, value: str) -> None:
        """Write ``value`` to a kernel file, raising OSError-derived errno as the kernel does.

        Raises :class:`NotPermitted` for a refused write and ``OSError`` (with the
        kernel's errno, e.g. EBUSY) when the kernel or the simulator rejects it.
        """
        self.check_writable(rel)
        if self._sim_writer is not None:
            self._sim_writer(rel, value)
            return
        path = self.path(rel)
        # One write(2) of the whole value, as `echo` does: sysfs stores parse per write.
        fd = os.open(path, os.O_WRONLY)
        try:
            os.write(fd, value.encode())
        finally:
            os.close(fd)

    def mkdir(self, rel: str) -> None:
        """Create a kernel directory (a tracefs instance); same rules as :meth:`write`."""
        self.check_writable(rel)
        with contextlib.suppress(FileExistsError):
            os.mkdir(self.path(rel))

    def rmdir(self, rel: str) -> None:
        self.check_writable(rel)
        with contextlib.suppress(FileNotFoundError):
            os.rmdir(self.path(rel))

