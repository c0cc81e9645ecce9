"""Capacity on a real kernel: chmem parity inside the guest, pc-dimm and virtio-mem cycles.

Each test leaves the shared guest as it found it (blocks back online Movable, DIMMs
back in their slots).
"""

from __future__ import annotations

import json
import shlex

import pytest

from memras.capacity import vm
from memras.lab import actions
from memras.lab.guest import Lab, checkout_root
from tests.lab.loud import lab_unavailable

pytestmark = pytest.mark.lab
MEMRAS = shlex.quote(str(checkout_root() / ".venv" / "bin" / "memras"))


def _states(lab: Lab) -> dict[str, str]:
    out = lab.check("cd /sys/devices/system/memory && for b in memory*; do "
                    "echo $b $(cat $b/state) $(cat $b/valid_zones); done")
    return {line.split()[0]: " ".join(line.split()[1:]) for line in out.splitlines()
            if line.startswith("memory")}


def _online_all(lab: Lab, blocks: list[str]) -> None:
    for b in blocks:
        lab.run(f"echo online_movable > /sys/devices/system/memory/{b}/state")


def test_capacity_offline_matches_chmem(lab: Lab) -> None:
    before = _states(lab)
    theirs = lab.run("chmem -d 256M; echo rc=$?", timeout=120)
    after_chmem = _states(lab)
    changed = sorted(b for b in before if before[b] != after_chmem[b])
    _online_all(lab, changed)
    assert _states(lab) == before, "could not restore the state chmem changed"
    ours = lab.run(f"{MEMRAS} capacity offline 256M --yes --json --db /tmp/cap.db",
                   timeout=120)
    after_memras = _states(lab)
    _online_all(lab, sorted(b for b in before if before[b] != after_memras[b]))
    assert "rc=0" in theirs.output
    assert ours.ok, ours.output
    assert after_memras == after_chmem
    assert len(changed) == 2
    data = json.loads(ours.output[ours.output.index("{"):])
    assert data["exit_status"] == 0
    assert sorted(f"memory{b}" for b in data["changed"]) == changed


def test_pc_dimm_add_remove_cycle(lab: Lab) -> None:
    total_before = actions.meminfo_kb(lab)["MemTotal"]
    qmp = lab.qmp
    added = vm.add_dimm(qmp, "capdimm", 256 << 20)
    assert added.ok, added.detail
    dev = vm.find(qmp, "capdimm")
    first = dev.addr // actions.block_size(lab)
    blocks = tuple(f"memory{first + i}" for i in range(2))
    actions.wait_blocks_online_movable(lab, blocks)
    assert actions.meminfo_kb(lab)["MemTotal"] == total_before + 256 * 1024
    removed = vm.remove_dimm(qmp, "capdimm", timeout=60)
    assert removed.ok, removed.detail
    assert "capdimm" not in {d.id for d in vm.list_devices(qmp)}
    assert actions.meminfo_kb(lab)["MemTotal"] == total_before
    print(f"\npc-dimm 256M: add {added.seconds:.2f}s, remove {removed.seconds:.2f}s")


def test_virtio_mem_resize_cycle(lab: Lab) -> None:
    devices = [d for d in vm.list_devices(lab.qmp) if d.type == "virtio-mem"]
    if not devices:
        lab_unavailable("the lab guest has no virtio-mem-pci device: LabConfig needs a "
                        "virtio-mem option (and virtio_mem in the initramfs modules)")
    dev = devices[0]
    grown = vm.resize_virtio_mem(lab.qmp, dev.id, (dev.requested_size or 0) + (256 << 20))
    assert grown.ok, grown.detail
    back = vm.resize_virtio_mem(lab.qmp, dev.id, dev.requested_size or 0)
    assert back.ok, back.detail
    print(f"\nvirtio-mem +256M {grown.seconds:.2f}s, -256M {back.seconds:.2f}s")
