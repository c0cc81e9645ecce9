"""``memras capacity`` with CXL DAX devices, on the simulator's ``cxl`` profile (two
memdevs interleaved into region0, whose dax0.0 is system-ram on node 1, blocks 82-85):
the listing, ``offline --dax`` (blocks offline, kmem lets go, devdax) and ``online --dax``
(kmem, blocks online movable), through the dax bus's sysfs writes; and what it says of
dynamic capacity."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from memras.audit.service import AuditTrail
from memras.capacity import chmem, dax
from memras.cli import main
from memras.host import Host
from memras.sim import actions, profiles
from memras.store import Store

DAX_BLOCKS = [82, 83, 84, 85]
MiB = 1 << 20


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return profiles.create("cxl", tmp_path / "srv").root


def cli(capsys, root: Path, db: Path | None, *argv: str) -> tuple[int, str, str]:
    extra = ["--root", str(root)] + (["--db", str(db)] if db else [])
    status = main([*argv, *extra])
    out, err = capsys.readouterr()
    return status, out, err


def mem_total(root: Path) -> int:
    return Host(root).meminfo.read().total


def dax0(root: Path) -> dax.DaxCapacity:
    return dax.find_dax(Host(root), "dax0.0")


def present(root: Path) -> list[int]:
    base = root / "sys/devices/system/memory"
    return sorted(i for i in DAX_BLOCKS if (base / f"memory{i}").is_dir())


def auto_online(root: Path, policy: str) -> None:
    (root / "sys/devices/system/memory/auto_online_blocks").write_text(policy + "\n")


def test_the_listing_shows_the_dax_device_as_capacity(root: Path, capsys) -> None:
    status, out, _ = cli(capsys, root, None, "capacity", "--json")
    data = json.loads(out)
    assert status == 0
    (d,) = data["dax"]
    assert (d["device"], d["region"], d["mode"], d["driver"], d["node"]) == (
        "dax0.0", "region0", "system-ram", "kmem", 1)
    assert d["size"] == 512 * MiB and d["blocks"] == DAX_BLOCKS
    assert d["online_blocks"] == DAX_BLOCKS and d["movable"] is True
    assert data["online_blocks"] == data["blocks"] == 20
    status, out, _ = cli(capsys, root, None, "capacity")
    row = next(line for line in out.splitlines() if line.startswith("dax0.0"))
    assert row.split() == ["dax0.0", "region0", "512M", "system-ram", "4/4", "1", "yes",
                           "82-85"]


def test_offline_gives_the_device_back_to_devdax(root: Path, tmp_path: Path,
                                                 capsys) -> None:
    before, db = mem_total(root), tmp_path / "m.db"
    status, out, _ = cli(capsys, root, db, "capacity", "offline", "--dax", "dax0.0",
                         "--yes", "--json")
    data = json.loads(out)
    assert status == 0, data
    assert data["mode_after"] == "devdax" and data["online_blocks_after"] == 0
    assert [o["block"] for o in data["block_result"]["outcomes"]] == DAX_BLOCKS
    assert [w["write"].split("/")[-2:] for w in data["writes"]] == [
        ["kmem", "unbind"], ["device_dax", "new_id"], ["device_dax", "bind"]]
    # kmem hot-removed the memory: the blocks are gone and MemTotal is 512M less
    assert present(root) == [] and dax0(root).device.driver == "device_dax"
    assert before - mem_total(root) == 512 * MiB
    with Store.open(db) as store:
        names = [e.action for e in AuditTrail(store).list()]
        assert names[0] == "capacity.dax.offline.start"
        assert names.count("capacity.dax.offline.block") == 4
        assert names.count("capacity.dax.offline.driver") == 3
        assert names[-1] == "capacity.dax.offline.result"
        assert AuditTrail(store).verify().ok


def test_online_binds_kmem_and_onlines_every_block_movable(root: Path, tmp_path: Path,
                                                           capsys) -> None:
    assert cli(capsys, root, tmp_path / "m.db", "capacity", "offline", "--dax", "dax0.0",
               "--yes")[0] == 0
    low = mem_total(root)
    auto_online(root, "offline")  # the kernel leaves the hot-added blocks to memras
    status, out, _ = cli(capsys, root, tmp_path / "m.db", "capacity", "online", "--dax",
                         "dax0.0", "--json")
    data = json.loads(out)
    assert status == 0, data
    assert [w["write"].split("/")[-2:] for w in data["writes"]] == [
        ["device_dax", "unbind"], ["kmem", "new_id"], ["kmem", "bind"]]
    assert [(o["block"], o["write"]) for o in data["block_result"]["outcomes"]] == [
        (b, "online_movable") for b in DAX_BLOCKS]
    d = dax0(root)
    assert d.device.mode == "system-ram" and d.online == DAX_BLOCKS and d.movable is True
    assert mem_total(root) - low == 512 * MiB


def test_online_when_the_kernel_onlined_the_blocks_itself(root: Path, tmp_path: Path,
                                                          capsys) -> None:
    cli(capsys, root, None, "capacity", "offline", "--dax", "dax0.0", "--yes")
    auto_online(root, "online_movable")
    status, out, _ = cli(capsys, root, None, "capacity", "online", "--dax", "dax0.0")
    assert status == 0
    assert out.splitlines()[-1] == "dax0.0: 512M is system-ram, 4/4 blocks online"
    assert "Memory Block" not in out  # nothing left for memras to online


def test_dry_run_lists_the_writes_and_changes_nothing(root: Path, tmp_path: Path,
                                                      capsys) -> None:
    status, out, _ = cli(capsys, root, tmp_path / "m.db", "capacity", "offline", "--dax",
                         "dax0.0", "--dry-run", "--json")
    data = json.loads(out)
    assert status == 0 and data["dry_run"] is True
    assert data["steps"] == ["offline memory82, memory83, memory84, memory85",
                             "dax0.0 > /sys/bus/dax/drivers/kmem/unbind",
                             "dax0.0 > /sys/bus/dax/drivers/device_dax/new_id",
                             "dax0.0 > /sys/bus/dax/drivers/device_dax/bind"]
    assert {c["name"]: c["ok"] for c in data["preflight"]} == {
        "privileges": True, "blocks": True, "memory reserve": True, "node reserve": True,
        "dax drivers": True, "whole device": True}
    # the device is all of node 1: no reserve can stay there, the global one covers it
    [node] = [c for c in data["preflight"] if c["name"] == "node reserve"]
    assert "all of the node" in node["detail"] and node["nodes"][0]["node"] == 1
    assert present(root) == DAX_BLOCKS and dax0(root).device.driver == "kmem"
    assert not (tmp_path / "m.db").exists()


def test_the_reserve_refuses_before_anything_changes(root: Path, capsys) -> None:
    status, _, err = cli(capsys, root, None, "capacity", "offline", "--dax", "dax0.0",
                         "--yes", "--reserve", "2G")
    assert status == 3
    assert "preflight refused: memory reserve" in err and len(err.strip().splitlines()) <= 2
    assert dax0(root).online == DAX_BLOCKS and dax0(root).device.driver == "kmem"


def test_a_block_that_will_not_go_keeps_the_device_system_ram(root: Path, tmp_path: Path,
                                                              capsys) -> None:
    actions.set_unmovable(root, 84)
    status, out, _ = cli(capsys, root, tmp_path / "m.db", "capacity", "offline", "--dax",
                         "dax0.0", "--yes", "--json", "--max-attempts", "1")
    data = json.loads(out)
    assert status == chmem.EXIT_PARTIAL
    assert data["writes"] == []  # kmem never asked to let go with a block online
    assert data["mode_after"] == "system-ram"
    assert dax0(root).online == [84] and present(root) == DAX_BLOCKS


def test_rollback_puts_the_offlined_blocks_back(root: Path, tmp_path: Path, capsys) -> None:
    actions.set_unmovable(root, 84)
    status, out, _ = cli(capsys, root, None, "capacity", "offline", "--dax", "dax0.0",
                         "--yes", "--json", "--max-attempts", "1", "--on-failure",
                         "rollback")
    data = json.loads(out)
    assert status == chmem.EXIT_FAILURE  # as chmem: all rolled back, nothing done
    assert sorted(data["block_result"]["rolled_back"]) == [82, 83, 85]
    assert dax0(root).online == DAX_BLOCKS and dax0(root).movable is True


def test_cancel_stops_between_blocks_and_kmem_keeps_the_device(root: Path) -> None:
    host = Host(root)
    cancel = threading.Event()
    plan = dax.plan_dax(host, "offline", "dax0.0")
    seen: list[int] = []

    def after_first(outcome: chmem.Outcome) -> None:
        seen.append(outcome.block)
        cancel.set()

    result = dax.execute_dax(host, plan, cancel=cancel, on_outcome=after_first)
    assert seen == [82] and result.blocks is not None and result.blocks.cancelled
    assert result.writes == [] and result.mode_after == "system-ram"
    assert result.exit_status == chmem.EXIT_PARTIAL


def test_nothing_to_do_and_bad_requests(root: Path, capsys) -> None:
    cli(capsys, root, None, "capacity", "offline", "--dax", "dax0.0", "--yes")
    status, out, _ = cli(capsys, root, None, "capacity", "offline", "--dax", "dax0.0",
                         "--yes")
    assert status == 0 and "devdax (nothing to do)" in out
    status, _, err = cli(capsys, root, None, "capacity", "online", "--dax", "dax9.0")
    assert status == 2 and "no DAX device dax9.0" in err and "dax0.0" in err
    status, _, err = cli(capsys, root, None, "capacity", "online", "256M", "--dax",
                         "dax0.0")
    assert status == 2 and "--dax takes the whole device" in err
    status, _, err = cli(capsys, root, None, "capacity", "--dax", "dax0.0")
    assert status == 2 and "say online or offline" in err


def _memdev_partition(root: Path, size: int) -> None:
    mem0 = (root / "sys/bus/cxl/devices/mem0").resolve()
    (mem0 / "dynamic_ram_a").mkdir()
    (mem0 / "dynamic_ram_a" / "size").write_text(f"{size:#x}\n")


def _release(root: Path, text: str) -> None:
    path = root / "proc/sys/kernel/osrelease"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text + "\n")


def test_dynamic_capacity_on_612_is_not_supported(root: Path, capsys) -> None:
    _release(root, "6.12.95+deb12-amd64")
    status, out, _ = cli(capsys, root, None, "capacity")
    assert status == 0
    assert "dynamic capacity: not supported by this kernel (6.12.95+deb12-amd64)" in out
    data = json.loads(cli(capsys, root, None, "capacity", "--json")[1])["dynamic_capacity"]
    assert data["supported"] is False and data["partitions"] == []


def test_7_3_without_a_dc_partition_is_not_supported(root: Path, capsys) -> None:
    _release(root, "7.3.0-rc7-amd64")  # Debian experimental's: no DCD in its image
    assert dax.dynamic_capacity(Host(root)).supported is False


def test_a_dc_partition_the_kernel_shows_is_reported(root: Path, capsys) -> None:
    _release(root, "7.4.0")
    assert dax.dynamic_capacity(Host(root)).supported is None  # no DCD device: unknown
    _memdev_partition(root, 256 * MiB)
    data = json.loads(cli(capsys, root, None, "capacity", "--json")[1])["dynamic_capacity"]
    assert data["supported"] is True
    assert data["partitions"] == [{"memdev": "mem0", "partition": "dynamic_ram_a",
                                   "size": 256 * MiB}]
    assert "dynamic capacity: mem0 dynamic_ram_a 256M" in cli(capsys, root, None,
                                                              "capacity")[1]


@pytest.mark.parametrize(("release", "want"), [
    ("6.12.95+deb12-amd64", (6, 12)), ("7.3.0-rc3", (7, 3)), ("10.1", (10, 1)),
    ("garbage", None), ("", None)])
def test_kernel_release_parsing(release: str, want: tuple[int, int] | None) -> None:
    assert dax._release(release) == want


def test_the_policy_uses_an_idle_dax_device_as_its_standby_pool(root: Path) -> None:
    from memras.capacity.policy import CapacityPolicy, Move, load_policy_config
    from memras.capacity.record import Recorder
    from memras.workflow.offline import RetryPolicy

    host = Host(root)
    auto_online(root, "offline")  # memras, not the kernel, onlines what kmem adds
    config = load_policy_config({"standby_dax": "dax0.0", "on_available_below": "256M",
                                 "off_available_above": "512M", "reserve": "256M",
                                 "hold_s": 10, "min_dwell_s": 5, "interval_s": 1})
    recorder = Recorder()
    policy = CapacityPolicy(config, recorder, retry=RetryPolicy(max_attempts=1))
    psi = root / "proc/pressure/memory"
    psi.parent.mkdir(parents=True, exist_ok=True)
    psi.write_text("some avg10=0.00 avg60=0.00 avg300=0.00 total=0\n")
    assert policy.tick(host, 0).move == Move.NONE  # low: the hold starts
    assert policy.tick(host, 10).move == Move.OFFLINE
    assert dax0(root).device.mode == "devdax" and present(root) == []
    psi.write_text("some avg10=50.00 avg60=0.00 avg300=0.00 total=0\n")
    assert policy.tick(host, 16).move == Move.ONLINE
    d = dax0(root)
    assert d.device.mode == "system-ram" and d.online == DAX_BLOCKS and d.movable is True
    assert recorder.actions() == ["capacity.policy.offline", "alert:capacity-policy-offline",
                                  "capacity.policy.online", "alert:capacity-policy-online"]
    assert recorder.entries[0][1]["mode_after"] == "devdax"


@pytest.mark.parametrize(("raw", "message"), [
    ({"standby_dax": "dax0.0", "standby": "1G"}, "exactly one of standby"),
    ({"standby_dax": "mem0"}, "name a DAX device")])
def test_standby_dax_config_errors(raw: dict[str, str], message: str) -> None:
    from memras.capacity.policy import load_policy_config
    from memras.errors import UsageError

    with pytest.raises(UsageError, match=message):
        load_policy_config(raw)
