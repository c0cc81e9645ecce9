"""Test-wide safety net: no test may write this machine's kernel files.

Two layers: ``MEMRAS_FORBID_REAL_WRITES=1`` makes memras's own KernelFs refuse
any write under the real root, and a Python audit hook refuses *any* open for
writing of a path under /sys, /proc or /dev (except /dev/null and friends) from
this process, whatever code does it. Lab tests write only inside the QEMU
guest, whose /sys is its own and is never reached through these paths.
"""

from __future__ import annotations

import os
import sys

import pytest

os.environ["MEMRAS_FORBID_REAL_WRITES"] = "1"
os.environ.pop("MEMRAS_LAB_GUEST", None)

_KERNEL_PREFIXES = ("/sys/", "/proc/", "/dev/")
_ALLOWED = ("/dev/null", "/dev/tty", "/dev/pts/", "/dev/shm/", "/proc/self/fd/")
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_TRUNC


class KernelWriteBlocked(PermissionError):
    pass


def _is_write(mode: object, flags: object) -> bool:
    if isinstance(mode, str) and any(c in mode for c in "wax+"):
        return True
    return isinstance(flags, int) and bool(flags & _WRITE_FLAGS)


def _guard(event: str, args: tuple) -> None:
    if event != "open" or not args:
        return
    path = args[0]
    if isinstance(path, bytes):
        path = path.decode(errors="replace")
    if not isinstance(path, str):
        return
    mode = args[1] if len(args) > 1 else None
    flags = args[2] if len(args) > 2 else None
    if not _is_write(mode, flags):
        return
    real = os.path.realpath(path)
    if real.startswith(_KERNEL_PREFIXES) and not real.startswith(_ALLOWED):
        raise KernelWriteBlocked(f"test tried to write the host's kernel file {real}")


sys.addaudithook(_guard)

# The throw-away PostgreSQL cluster (pg_cluster, pg_url) for the fleet and two-dialect tests.
pytest_plugins = ["tests.fixtures.postgres"]


@pytest.fixture
def kernel_write_guard_active() -> bool:
    return True


@pytest.fixture(scope="session")
def large_server(tmp_path_factory: pytest.TempPathFactory):
    """The ``large`` simulated server (16,384 memory blocks), built once: writing its
    tree takes ~15 s. Only for tests that read it (lsmem parity, the TUI's map)."""
    from memras.sim.profiles import create

    return create("large", tmp_path_factory.mktemp("large") / "large")
