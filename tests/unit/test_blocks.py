"""`memras blocks` against the real util-linux lsmem on every simulated profile.

The anchor is the installed lsmem (util-linux 2.38.1) run with --sysroot on the
same tree; parity must hold before and after simulated state changes.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
from contextlib import redirect_stdout
from pathlib import Path
from unittest import mock

import pytest

from memras.cli import main
from memras.host import Host
from memras.sim import PROFILES, create
from memras.sim.actions import set_busy
from memras.topology.lsmem import human_size

LSMEM = shutil.which("lsmem")
COLS = "RANGE,SIZE,STATE,REMOVABLE,BLOCK,NODE,ZONES"
pytestmark = pytest.mark.skipif(LSMEM is None, reason="util-linux lsmem is not installed")
SMALL = [p for p in PROFILES if p != "large"]


def lsmem(root: Path, *flags: str) -> str:
    return subprocess.run([LSMEM, "--sysroot", str(root), "-o", COLS, *flags],  # type: ignore[list-item]
                          check=True, capture_output=True, text=True).stdout


def memras(root: Path, *flags: str, wide: bool = True) -> str:
    """``--wide``: lsmem's own layout (at the default width RANGE is narrower)."""
    buf = io.StringIO()
    with redirect_stdout(buf), mock.patch.dict(os.environ, {"COLUMNS": "80"}):
        assert main(["blocks", "--root", str(root), *(["--wide"] if wide else []), *flags]) == 0
    return buf.getvalue()


def _as_numbers(table: str) -> list[list[object]]:
    """Each line's fields, a RANGE's two addresses as numbers (padding aside)."""
    return [[tuple(int(a, 16) for a in f.split("-")) if f.startswith("0x") else f
             for f in line.split()] for line in table.splitlines()]


def assert_parity(root: Path) -> None:
    assert memras(root) == lsmem(root)
    for flags in ((), ("--all",), ("--bytes",)):  # at 80 columns: the same rows and values
        narrow = memras(root, *flags, wide=False)
        if not flags:  # (sizes in bytes beside two zones can still need 82)
            assert max(len(line) for line in narrow.splitlines()) <= 80
        assert _as_numbers(narrow) == _as_numbers(memras(root, *flags))
    assert memras(root, "--all") == lsmem(root, "-a")
    assert memras(root, "--bytes") == lsmem(root, "-b")
    assert json.loads(memras(root, "--json")) == json.loads(lsmem(root, "-J"))
    assert json.loads(memras(root, "--json", "--all", "--bytes")) == json.loads(
        lsmem(root, "-J", "-a", "-b"))


@pytest.fixture
def large_root(large_server) -> Path:  # tests/conftest.py: built once per session
    return large_server.root


@pytest.mark.parametrize("profile", SMALL)
def test_parity_with_lsmem(profile: str, tmp_path: Path) -> None:
    assert_parity(create(profile, tmp_path / "root").root)


def test_parity_on_large_profile(large_root: Path) -> None:
    out = memras(large_root)
    assert out == lsmem(large_root)
    assert len(out.splitlines()) > 100  # merging really had runs to split
    assert json.loads(memras(large_root, "--json")) == json.loads(lsmem(large_root, "-J"))


@pytest.mark.parametrize("profile", ["qemu-guest", "demo", "skylake-2s"])
def test_parity_after_offline_and_eject(profile: str, tmp_path: Path) -> None:
    server = create(profile, tmp_path / "root")
    host = Host(server.root)
    movable = [b.index for b in host.memory.all() if b.zone == "Movable"]
    for index in movable[1:3]:
        host.memory.set_state(index, "offline")
    assert_parity(server.root)
    host.memory.set_state(movable[1], "online_movable")
    assert_parity(server.root)
    devices = [d for d in host.acpi.all() if d.present]
    if devices:
        host.acpi.eject(devices[0].name)
        assert_parity(server.root)


def test_parity_with_going_offline_and_failed_offline(tmp_path: Path) -> None:
    server = create("qemu-guest", tmp_path / "root")
    set_busy(server.root, 33, 1)
    with pytest.raises(OSError):
        Host(server.root).memory.set_state(33, "offline")
    (server.root / "sys/devices/system/memory/memory34/state").write_text("going-offline\n")
    out = memras(server.root)
    assert "on->off" in out
    assert out == lsmem(server.root)


@pytest.mark.parametrize("size", [
    1023, 1024, 128 << 20, 896 << 20, 3 << 29, 2093796556, 2093796557 + (1 << 24),
    (1 << 30) - 1, (1 << 30) - (1 << 20) * 51, 94 << 30, (4 << 40) + (1 << 39), 0x1_4000_0001,
])
def test_human_size_matches_lsmem(size: int, tmp_path: Path) -> None:
    """lsmem prints the block size with size_to_human_string: use it as the oracle."""
    mem = tmp_path / "sys/devices/system/memory"
    (mem / "memory0").mkdir(parents=True)
    (mem / "block_size_bytes").write_text(f"{size:x}\n")
    (mem / "memory0/state").write_text("online\n")
    out = subprocess.run([LSMEM, "--sysroot", str(tmp_path), "--summary=only"],  # type: ignore[list-item]
                         check=True, capture_output=True, text=True).stdout
    expected = out.splitlines()[0].split()[-1]
    assert human_size(size) == expected


def test_missing_memory_tree_is_one_clear_error(tmp_path: Path, capsys) -> None:
    assert main(["blocks", "--root", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "does not support memory blocks" in err
    assert "Traceback" not in err
