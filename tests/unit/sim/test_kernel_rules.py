"""The simulated kernel's rules, each driven through Host/KernelFs as memras does."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

from memras.host import Host
from memras.sim import create, load
from memras.sim.actions import inject_ce, insert_dimm, set_busy, set_unmovable
from memras.sim.state import read_state, read_uevents

DIMM_BLOCK = 33  # qemu-guest: PNP0C80:00 holds memory32..35, online Movable


@pytest.fixture
def guest(tmp_path: Path) -> Host:
    return Host(create("qemu-guest", tmp_path / "root").root)


def block(host: Host, index: int):
    return host.memory.read(index, node=0)


def test_spec_round_trips_through_state(tmp_path: Path) -> None:
    server = create("skylake-2s", tmp_path / "root")
    assert load(server.root) == server.spec
    assert len(server.spec.dimms) == 12


def test_offline_movable_block_succeeds_with_uevent_and_zones(guest: Host) -> None:
    total = guest.meminfo.read().total
    guest.memory.set_state(DIMM_BLOCK, "offline")
    b = block(guest, DIMM_BLOCK)
    assert b.state == "offline"
    assert b.valid_zones == ("Movable", "Normal")  # inside the Movable span: default first
    assert ("offline", "/devices/system/memory/memory33") in read_uevents(guest.root)
    assert guest.meminfo.read().total == total - 128 * 1024 * 1024


def test_offline_of_unmovable_normal_block_is_ebusy_and_stays_online(tmp_path: Path) -> None:
    host = Host(create("skylake-2s", tmp_path / "root").root)
    with pytest.raises(OSError) as exc:
        host.memory.set_state(10, "offline")
    assert exc.value.errno == errno.EBUSY
    assert host.memory.read(10).state == "online"


def test_offline_of_multizone_block_is_einval(guest: Host) -> None:
    with pytest.raises(OSError) as exc:
        guest.memory.set_state(0, "offline")
    assert exc.value.errno == errno.EINVAL


def test_offline_twice_is_einval(guest: Host) -> None:
    guest.memory.set_state(DIMM_BLOCK, "offline")
    with pytest.raises(OSError) as exc:
        guest.memory.set_state(DIMM_BLOCK, "offline")
    assert exc.value.errno == errno.EINVAL


def test_online_kernel_makes_block_unofflinable(guest: Host) -> None:
    guest.memory.set_state(DIMM_BLOCK, "offline")
    guest.memory.set_state(DIMM_BLOCK, "online_kernel")
    assert block(guest, DIMM_BLOCK).zone == "Normal"
    with pytest.raises(OSError) as exc:
        guest.memory.set_state(DIMM_BLOCK, "offline")
    assert exc.value.errno == errno.EBUSY


def test_online_movable_goes_to_movable_and_can_offline_again(guest: Host) -> None:
    guest.memory.set_state(DIMM_BLOCK, "offline")
    guest.memory.set_state(DIMM_BLOCK, "online_movable")
    assert block(guest, DIMM_BLOCK).zone == "Movable"
    guest.memory.set_state(DIMM_BLOCK, "offline")


def test_busy_flag_fails_n_times_then_succeeds(guest: Host) -> None:
    set_busy(guest.root, DIMM_BLOCK, 2)
    for _ in range(2):
        with pytest.raises(OSError) as exc:
            guest.memory.set_state(DIMM_BLOCK, "offline")
        assert exc.value.errno == errno.EBUSY
    guest.memory.set_state(DIMM_BLOCK, "offline")
    assert block(guest, DIMM_BLOCK).state == "offline"


def test_soft_offline_raises_hardware_corrupted_once(guest: Host) -> None:
    address = 0x100001234
    guest.memory.soft_offline_page(address)
    assert guest.meminfo.read().hardware_corrupted == 4096
    guest.memory.soft_offline_page(address)  # already poisoned: success, no change
    assert guest.meminfo.read().hardware_corrupted == 4096
    assert read_state(guest.root).poisoned == [0x100001000]


def test_soft_offline_errors(guest: Host) -> None:
    with pytest.raises(OSError) as exc:
        guest.memory.soft_offline_page(0x80000000)  # no block there
    assert exc.value.errno == errno.ENXIO
    guest.memory.set_state(DIMM_BLOCK, "offline")
    with pytest.raises(OSError) as exc:
        guest.memory.soft_offline_page(DIMM_BLOCK * 128 * 1024 * 1024)
    assert exc.value.errno == errno.EIO


def test_hard_offline_twice_is_ehwpoison(guest: Host) -> None:
    guest.memory.hard_offline_page(0x100002000)
    with pytest.raises(OSError) as exc:
        guest.memory.hard_offline_page(0x100002000)
    assert exc.value.errno == 133  # EHWPOISON


def test_eject_removes_blocks_and_links(guest: Host) -> None:
    total = guest.meminfo.read().total
    guest.acpi.eject("PNP0C80:00")
    dev = guest.acpi.read("PNP0C80:00")
    assert (dev.status, dev.blocks) == (0, ())
    assert not any(i in guest.memory.indexes() for i in range(32, 36))
    assert not (guest.root / "sys/devices/system/node/node0/memory33").exists()
    assert guest.meminfo.read().total == total - 512 * 1024 * 1024
    actions = [a for a, p in read_uevents(guest.root) if p.endswith("memory35")]
    assert actions == ["offline", "remove"]


def test_eject_rolls_back_when_a_block_refuses(guest: Host) -> None:
    set_unmovable(guest.root, 34)
    with pytest.raises(OSError) as exc:
        guest.acpi.eject("PNP0C80:00")
    assert exc.value.errno == errno.EBUSY
    assert guest.acpi.read("PNP0C80:00").blocks == (32, 33, 34, 35)
    assert all(block(guest, i).zone == "Movable" for i in range(32, 36))
    actions = [a for a, p in read_uevents(guest.root) if p.endswith("memory32")]
    assert actions == ["offline", "online"]


def test_insert_after_eject_lands_in_same_place_online_movable(guest: Host) -> None:
    guest.acpi.eject("PNP0C80:00")
    blocks = insert_dimm(guest.root, "0", serial="NEW-0001", part="pc-dimm")
    assert blocks == [32, 33, 34, 35]
    assert guest.acpi.read("PNP0C80:00").status == 15
    assert all(block(guest, i).zone == "Movable" for i in blocks)
    assert load(guest.root).dimm("dimm1").serial == "NEW-0001"


def test_insert_into_occupied_slot_is_a_clear_error(guest: Host) -> None:
    from memras.errors import UsageError

    with pytest.raises(UsageError, match="already holds"):
        insert_dimm(guest.root, "PNP0C80:00")


def test_edac_counters_grow_until_reset(tmp_path: Path) -> None:
    host = Host(create("skylake-2s", tmp_path / "root").root)
    inject_ce(host.root, "P1-DIMMB1", count=3)
    inject_ce(host.root, "P1-DIMMB1")
    dimm = next(d for d in host.edac.dimms() if d.label == "CPU_SrcID#0_MC#0_Chan#1_DIMM#0")
    assert dimm.ce_count == 4
    assert host.edac.read_controller(0).ce_count == 4
    host.edac.reset_counters(0)
    assert host.edac.read_controller(0).ce_count == 0
    assert all(d.ce_count == 0 for d in host.edac.read_controller(0).dimms)


def test_inject_writes_kmsg_and_trace_for_that_dimm(tmp_path: Path) -> None:
    root = create("skylake-2s", tmp_path / "root").root
    address = inject_ce(root, "P2-DIMMD1")
    spec = load(root)
    assert spec.dimm_for_address(address).name == "P2-DIMMD1"
    kmsg = (root / ".memras-sim/kmsg").read_text().splitlines()
    assert kmsg[-1].startswith("4,")
    assert f"page:0x{address >> 12:x} offset:0x{address & 0xfff:x}" in kmsg[-1]
    assert "on CPU_SrcID#1_MC#1_Chan#0_DIMM#0 (channel:0 slot:0" in kmsg[-1]
    trace = (root / ".memras-sim/trace").read_text().splitlines()[-1]
    assert "mc_event: 1 Corrected error: memory read error on CPU_SrcID#1_MC#1" in trace
    assert f"address:0x{address:08x}" in trace


def test_injection_is_deterministic(tmp_path: Path) -> None:
    a = inject_ce(create("epyc", tmp_path / "a").root, "P0-DIMMC")
    b = inject_ce(create("epyc", tmp_path / "b").root, "P0-DIMMC")
    assert a == b


def test_label_write_limits(tmp_path: Path) -> None:
    host = Host(create("skylake-2s", tmp_path / "root").root)
    host.edac.set_label(0, "dimm0", "P1-DIMMA1")
    assert host.edac.read_controller(0).dimms[0].label == "P1-DIMMA1"
    with pytest.raises(OSError) as exc:
        host.fs.write("/sys/devices/system/edac/mc/mc0/dimm0/dimm_label", "x" * 32)
    assert exc.value.errno == errno.EINVAL


def test_read_only_attribute_is_eacces(guest: Host) -> None:
    with pytest.raises(OSError) as exc:
        guest.fs.write("/sys/devices/system/memory/block_size_bytes", "1")
    assert exc.value.errno == errno.EACCES
