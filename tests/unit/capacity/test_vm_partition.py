"""VM device listing against a real (paused, kernel-less) QEMU; partition planning tables."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from memras.capacity import partition, vm
from memras.cli import main
from memras.errors import UsageError

M = 1 << 20


def dev(id: str, type: str, size_m: int, req_m: int | None = None,
        max_m: int | None = None) -> vm.MemoryDevice:
    return vm.MemoryDevice(id=id, type=type, size=size_m * M, memdev=f"/objects/mem-{id}",
                           requested_size=None if req_m is None else req_m * M,
                           max_size=None if max_m is None else max_m * M)


@pytest.mark.parametrize(("devices", "size_m", "kind", "ids"), [
    ([dev("d0", "dimm", 256), dev("d1", "dimm", 512)], 512, "dimms", ["d1"]),
    ([dev("d0", "dimm", 256), dev("d1", "dimm", 512)], 768, "dimms", ["d1", "d0"]),
    ([dev("d0", "dimm", 256), dev("d1", "dimm", 256)], 256, "dimms", ["d0"]),
    ([dev("v0", "virtio-mem", 1024, 1024, 2048), dev("d0", "dimm", 256)], 256,
     "virtio-mem", ["v0"]),
    ([dev("v0", "virtio-mem", 128, 128, 2048), dev("d0", "dimm", 256)], 256, "dimms", ["d0"]),
])
def test_plan_removal(devices: list, size_m: int, kind: str, ids: list[str]) -> None:
    plan = partition.plan_removal(devices, size_m * M)
    assert plan.kind == kind and [d.id for d in plan.devices] == ids


def test_plan_removal_refuses_part_of_a_dimm() -> None:
    with pytest.raises(UsageError, match="cannot give exactly 128M"):
        partition.plan_removal([dev("d0", "dimm", 256)], 128 * M)


def test_pick_receiver_needs_headroom() -> None:
    assert partition.pick_receiver([dev("v0", "virtio-mem", 0, 0, 512)], 512 * M).id == "v0"
    assert partition.pick_receiver([dev("v0", "virtio-mem", 0, 256, 512)], 512 * M) is None


@pytest.mark.parametrize(("meminfo", "force", "ok", "fragment"), [
    (None, False, False, "without a guest agent"),
    (None, True, True, "--force"),
    ({"MemAvailable": 1024 * M}, False, True, "reserve 256M"),
    ({"MemAvailable": 700 * M}, False, False, "reserve 256M"),
])
def test_spare_check(meminfo, force: bool, ok: bool, fragment: str) -> None:
    got, detail = partition.spare_check(512 * M, 256 * M, meminfo, force)
    assert got == ok and fragment in detail


def test_memory_device_from_qmp_reference_shape() -> None:
    # The reply recorded in hotplug-and-qemu.md §4.
    entry = {"type": "dimm", "data": {"memdev": "/objects/mem1", "hotplugged": True,
                                      "addr": 4294967296, "hotpluggable": True,
                                      "size": 536870912, "slot": 0, "node": 0, "id": "dimm1"}}
    d = vm.MemoryDevice.from_qmp(entry)
    assert (d.id, d.size, d.addr, d.backend_id) == ("dimm1", 512 * M, 1 << 32, "mem1")


# --- a real QEMU, paused before the firmware runs: QMP only, no guest -------------------

@pytest.fixture
def paused_qemu(tmp_path: Path) -> Iterator[Path]:
    if shutil.which("qemu-system-x86_64") is None:
        msg = "QEMU TEST NOT RUN: qemu-system-x86_64 missing (apt-get install qemu-system-x86)"
        if os.environ.get("CI") == "true":
            pytest.fail(msg)
        warnings.warn(msg, stacklevel=1)
        pytest.skip(msg)
    sock = tmp_path / "qmp.sock"
    proc = subprocess.Popen(
        ["qemu-system-x86_64", "-machine", "pc,accel=tcg", "-S", "-nodefaults",
         "-display", "none", "-m", "256M,slots=2,maxmem=2G",
         "-qmp", f"unix:{sock},server=on,wait=off",
         "-object", "memory-backend-ram,id=mem-d0,size=128M",
         "-device", "pc-dimm,id=d0,memdev=mem-d0,slot=0",
         "-object", "memory-backend-ram,id=vmem0,size=1G",
         "-device", "virtio-mem-pci,id=vm0,memdev=vmem0,requested-size=0"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 20
        while not sock.exists() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        assert sock.exists(), proc.stderr.read().decode() if proc.poll() is not None else ""
        yield sock
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_list_and_refusals_on_real_qemu(paused_qemu: Path, capsys) -> None:
    with vm.connect(str(paused_qemu)) as qmp:
        devices = {d.id: d for d in vm.list_devices(qmp)}
        assert devices["d0"].type == "dimm" and devices["d0"].size == 128 * M
        assert devices["d0"].backend_id == "mem-d0"
        assert devices["vm0"].type == "virtio-mem" and devices["vm0"].max_size == 1 << 30
        with pytest.raises(UsageError, match="already exists"):
            vm.check_add(qmp, "d0", 128 * M)
        with pytest.raises(UsageError, match="multiple of 128M"):
            vm.check_add(qmp, "d9", 100 * M)
        with pytest.raises(UsageError, match="not virtio-mem"):
            vm.resize_virtio_mem(qmp, "d0", 0)
        with pytest.raises(UsageError, match="only pc-dimm"):
            vm.remove_dimm(qmp, "vm0")
    assert main(["vm", "list", "--qmp", str(paused_qemu), "--json"]) == 0
    assert '"id": "vm0"' in capsys.readouterr().out
    assert main(["vm", "remove", "d0", "--qmp", str(paused_qemu), "--dry-run"]) == 0
    assert "would remove dimm d0 (128M)" in capsys.readouterr().out
