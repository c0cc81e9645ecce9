"""`memras replace mem0`: a CXL memdev replaced on the simulator's CXL profiles.

cxl-single: one 256 MiB memdev (serial 0x0) in a 1-way region0, dax0.0 onlined Movable
as blocks 82-83 on node 1 (its own node: the node checks need --force-node). cxl: two
memdevs interleaved into one region (blocks 82-85), which only --whole-region replaces.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from memras.plugins.backends.cxl import UI64_NULL, CxlBackend

from memras.audit.service import AuditTrail
from memras.errors import WorkflowError
from memras.host import Host
from memras.sim import profiles
from memras.sim.cxl import insert_cxl_memdev
from memras.store import Store
from memras.workflow.backends import BackendContext
from memras.workflow.driver import WizardDriver
from memras.workflow.runner import Replacement, ReplaceOptions, resolve_target
from memras.workflow.states import State

FAST = {"backoff_initial_s": 0.01, "backoff_max_s": 0.02, "max_attempts": 3}
CLI = ["--reserve", "128M", "--force-node", "--backoff", "0.01", "--yes"]
HAPPY = ["select", "preflight", "soft_offline_pages", "offline_blocks", "remove_module",
         "insert_module", "online_blocks", "verify", "close"]
CXL = "sys/bus/cxl/devices"


@pytest.fixture
def store(tmp_path):
    with Store.open(tmp_path / "memras.db") as s:
        yield s


def options(**kw) -> ReplaceOptions:
    return ReplaceOptions(operator="Ada", policy=FAST, reserve_bytes=128 << 20,
                          force_node=True, detect_timeout_s=5, **kw)


def memdevs(host: Host) -> dict[int | None, str]:
    return {m.serial: m.name for m in host.cxl.memdevs()}


def read(root: Path, rel: str) -> str:
    return (root / rel).read_text().strip()


def memras(root, db, *args: str, env: dict[str, str] | None = None):
    return subprocess.run([sys.executable, "-m", "memras", "--root", str(root), "--db",
                           str(db), *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=120)


def assert_replaced(host: Host, root: Path, total_before: int, blocks=(82, 83),
                    serial: int = 0x1) -> str:
    """The old serial is gone, a new memdev is in a committed region whose blocks are
    online Movable, MemTotal is back; the new memdev's name."""
    devs = memdevs(host)
    assert 0x0 not in devs and serial in devs, devs
    region = next(r for r in host.cxl.regions() if any(t.memdev == devs[serial]
                                                       for t in r.targets))
    assert read(root, f"{CXL}/{region.name}/commit") == "1"
    assert region.start == 0x290000000
    for index in blocks:
        b = host.memory.read(index)
        assert (b.state, b.zone) == ("online", "Movable"), index
    assert host.meminfo.read().total >= total_before
    return devs[serial]


def test_resolve_by_name_and_serial(tmp_path) -> None:
    host = profiles.create("cxl-single", tmp_path / "root").host()
    for text in ("mem0", "0x0"):
        target, status, reason = resolve_target(host, text)
        assert status == "mapped", reason
        assert target.blocks == (82, 83) and target.label == "mem0"
        assert target.serial == "0x0" and target.locator == "0000:0d:00.0"
        assert target.cxl is not None and target.cxl["slot"] == "2"
        assert [r["name"] for r in target.cxl["regions"]] == ["region0"]
        assert target.cxl["regions"][0]["dax"] == ["dax0.0"]


def test_happy_path_replaces_the_memdev(tmp_path, store) -> None:
    srv = profiles.create("cxl-single", tmp_path / "root")
    host = srv.host()
    total_before = host.meminfo.read().total
    rep = Replacement.start(host, store, "mem0", options())
    assert rep._row().backend == "simulated"  # the cxl backend's steps, the sim inserts
    rep.run()
    assert rep.state is State.CLOSED, rep._row().error
    new = assert_replaced(host, srv.root, total_before)
    assert sorted(b.block for b in rep.blocks("new")) == [82, 83]
    trail = AuditTrail(store)
    entries = trail.list(replacement_id=rep.id)
    assert [e.action for e in entries] == HAPPY
    assert trail.verify().ok
    removed = next(e for e in entries if e.action == "remove_module").data
    assert "0 > /sys/bus/cxl/devices/region0/commit" in removed["backend"]["teardown"]
    assert removed["backend"]["slot_power"] == "0 > /sys/bus/pci/slots/2/power"
    identity = rep._row().new_identity
    assert (identity["old_serial"], identity["serial"], identity["memdev"]) == (
        "0x0", "0x1", new)
    checks = {c["name"]: c for c in rep.snapshot()["result"]["checks"]}
    assert checks["cxl device"]["ok"] and "was 0x0" in checks["cxl device"]["detail"]


def test_the_cxl_backend_powers_the_slot_off_and_waits_for_the_operator(tmp_path,
                                                                     store) -> None:
    """--backend cxl off the simulator's technician: memras powers slot 2 off, says what
    to pull, and waits; the operator's new device (inserted meanwhile) is brought up."""
    srv = profiles.create("cxl-single", tmp_path / "root")
    host = srv.host()
    said: list[str] = []
    rep = Replacement.start(host, store, "mem0", options(backend="cxl"), say=said.append)
    while rep.state is not State.REMOVED:
        rep.next_step()
    assert read(srv.root, "sys/bus/pci/slots/2/power") == "0"
    assert any("slot 2 is powered off: pull the CXL device mem0" in s for s in said)
    timer = threading.Timer(0.5, insert_cxl_memdev, (srv.root, "0000:0d:00.0"),
                            {"serial": 0x1})
    timer.start()
    try:
        rep.run()
    finally:
        timer.join()
    assert rep.state is State.CLOSED, rep._row().error
    assert any("Insert the new CXL device" in s for s in said)
    assert_replaced(host, srv.root, 0)


def test_dry_run_changes_nothing(tmp_path) -> None:
    srv = profiles.create("cxl-single", tmp_path / "root")
    before = sorted(p.name for p in (srv.root / CXL).iterdir())
    out = memras(srv.root, tmp_path / "m.db", "replace", "mem0", "--dry-run", "--json",
                 "--reserve", "128M", "--force-node")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["ok"] and data["target"]["cxl"]["memdev"] == "mem0"
    assert data["unit"] == {"kind": "cxl-memdev", "id": "mem0", "serial": "0x0",
                            "host": "0000:0d:00.0", "slot": "2", "regions": ["region0"],
                            "blocks": [82, 83], "whole_region": False}
    assert {c["name"] for c in data["checks"]} >= {"mapping", "backend simulated"}
    assert sorted(p.name for p in (srv.root / CXL).iterdir()) == before
    assert srv.host().memory.read(82).state == "online"


def test_the_node_checks_refuse_a_device_that_is_its_nodes_memory(tmp_path, store) -> None:
    host = profiles.create("cxl-single", tmp_path / "root").host()
    rep = Replacement.start(host, store, "mem0", ReplaceOptions(reserve_bytes=128 << 20))
    rep.run()
    assert rep.state is State.REFUSED
    failed = {c["name"] for c in rep._row().checks if not c["ok"]}
    assert "node movable" in failed
    assert host.memory.read(82).state == "online"


def test_an_interleaved_region_is_refused_without_whole_region(tmp_path, store) -> None:
    srv = profiles.create("cxl", tmp_path / "root")
    host = srv.host()
    out = memras(srv.root, tmp_path / "m.db", "replace", "mem0", *CLI)
    assert out.returncode == 3, (out.stdout, out.stderr)
    assert "region0 interleaves mem0 with mem1" in out.stdout
    assert "--whole-region" in out.stdout
    dry = memras(srv.root, tmp_path / "m.db", "replace", "mem0", "--dry-run", "--reserve",
                 "128M", "--force-node")
    assert dry.returncode == 3
    assert ("region region0 on decoder0.0: 2-way, 512M, DAX dax0.0; interleaved with mem1"
            in dry.stdout)
    assert read(srv.root, f"{CXL}/region0/commit") == "1"
    assert all(host.memory.read(b).state == "online" for b in range(82, 86))


def test_whole_region_remakes_the_interleave_with_the_new_device(tmp_path, store) -> None:
    srv = profiles.create("cxl", tmp_path / "root")
    host = srv.host()
    total_before = host.meminfo.read().total
    rep = Replacement.start(host, store, "mem0", options(whole_region=True))
    assert "goes out whole" in rep._row().target["reason"]
    rep.run()
    assert rep.state is State.CLOSED, rep._row().error
    # the new serial is past mem1's 0x1
    new = assert_replaced(host, srv.root, total_before, blocks=range(82, 86), serial=0x2)
    region = next(r for r in host.cxl.regions() if r.targets)
    assert region.ways == 2 and region.granularity == 4096
    assert [t.memdev for t in region.targets] == [new, "mem1"]
    assert "mem1" in memdevs(host).values()


def test_a_memdev_without_a_region_is_replaced_with_nothing_to_offline(tmp_path,
                                                                      store) -> None:
    srv = profiles.create("cxl-single", tmp_path / "root")
    host = Host(srv.root)
    for block in (82, 83):
        host.fs.write(f"/sys/devices/system/memory/memory{block}/state", "offline")
    for rel, value in (("/sys/bus/dax/drivers/kmem/unbind", "dax0.0"),
                       (f"/{CXL}/region0/commit", "0"),
                       (f"/{CXL}/decoder0.0/delete_region", "region0"),
                       (f"/{CXL}/decoder2.0/dpa_size", "0")):
        host.fs.write(rel, value)
    target, status, reason = resolve_target(host, "mem0")
    assert status == "mapped" and target.blocks == ()
    assert "has no region" in reason and "nothing to offline" in reason
    rep = Replacement.start(host, store, "mem0", options())
    rep.run()
    assert rep.state is State.CLOSED, rep._row().error
    assert 0x1 in memdevs(host) and 0x0 not in memdevs(host)
    assert not rep.blocks("new")


def test_a_failed_removal_after_the_teardown_rolls_back_onto_the_old_device(
        tmp_path, store) -> None:
    srv = profiles.create("cxl-single", tmp_path / "root")
    host = srv.host()
    rep = Replacement.start(host, store, "mem0", options())
    # the slot's power file goes away: the teardown runs, the power-off write fails
    os.unlink(srv.root / "sys/bus/pci/slots/2/power")
    rep.run()
    assert rep.state is State.ROLLED_BACK, rep._row().error
    assert memdevs(host) == {0x0: "mem0"}
    region = next(r for r in host.cxl.regions() if r.targets)
    assert region.name != "region0" and read(srv.root, f"{CXL}/{region.name}/commit") == "1"
    for index in (82, 83):
        b = host.memory.read(index)
        assert (b.state, b.zone) == ("online", "Movable")
    rollback = [e for e in AuditTrail(store).list(replacement_id=rep.id)
                if e.action == "rollback"][-1]
    assert rollback.data["restore"]["regions"] == [region.name]


def crash_points(tmp_path) -> list[str]:
    srv = profiles.create("cxl-single", tmp_path / "probe")
    log = tmp_path / "points.log"
    result = memras(srv.root, tmp_path / "probe.db", "replace", "mem0", *CLI,
                    env={"MEMRAS_TEST_CRASH_LOG": str(log)})
    assert result.returncode == 0, result.stderr
    return log.read_text().split()


def test_kill_at_every_point_then_resume(tmp_path) -> None:
    points = crash_points(tmp_path)
    for wanted in ("cxl:unbind:dax0.0:after", "cxl:commit:0:after",
                   "cxl:delete_region:region0:after", "cxl:target0:decoder2.0:after",
                   "cxl:commit:1:after", "step:insert_module:before"):
        assert wanted in points, (wanted, points)
    for n, point in enumerate(points):
        srv = profiles.create("cxl-single", tmp_path / f"r{n}")
        host, db = srv.host(), tmp_path / f"r{n}.db"
        total_before = host.meminfo.read().total
        crashed = memras(srv.root, db, "replace", "mem0", *CLI,
                         env={"MEMRAS_TEST_CRASH_AT": point})
        assert crashed.returncode == 137, (point, crashed.stderr)
        # resumed in this process (`memras replace --resume` is Replacement.active().run();
        # a crash after close's state write leaves nothing to resume): the subprocesses
        # are the crashes alone, which keeps this test's time down
        with Store.open(db) as store:
            try:
                rep = Replacement.active(host, store)
            except WorkflowError:
                rep = Replacement.latest(host, store)
                assert rep is not None and rep.finished, point
            rep.run()
            assert rep.state is State.CLOSED, (point, rep._row().error)
            assert AuditTrail(store).verify().ok, point
        assert_replaced(host, srv.root, total_before)
        # no region a resumed bring-up began and left behind
        assert [r.name for r in host.cxl.regions() if not r.targets] == [], point


def test_the_wizard_driver_replaces_a_memdev_with_its_pauses(tmp_path, store) -> None:
    """The TUI wizard's engine: preflight pauses for the confirmation, the swap pauses
    once the old device is gone, then it runs to CLOSED."""
    srv = profiles.create("cxl-single", tmp_path / "root")
    driver = WizardDriver(srv.host(), store, options())
    update = driver.begin("mem0")
    assert update.state is State.CHECKED and not update.error
    assert update.snapshot["target"]["target"]["cxl"]["memdev"] == "mem0"
    while not update.finished:
        update = driver.run_until()
        assert not update.error, update.error
    assert update.state is State.CLOSED
    assert_replaced(srv.host(), srv.root, 0)


def test_an_unknown_memdev_is_one_clear_line(tmp_path) -> None:
    srv = profiles.create("cxl-single", tmp_path / "root")
    out = memras(srv.root, tmp_path / "m.db", "replace", "mem7", "--yes")
    assert out.returncode == 2
    assert "no CXL memdev called 'mem7' (memdevs here: mem0)" in out.stderr
    assert "Traceback" not in out.stderr


class FakeQmp:
    """The QMP commands the cxl backend sends, answered as QEMU 10 did in the CXL lab:
    a cxl-type3 without ``sn`` (QEMU's UI64_NULL) on root port cxl_rp0."""

    def __init__(self) -> None:
        self.devices = {"cxl_rp0": {"type": "child<cxl-rp>"},
                        "cxl-mem0": {"type": "child<cxl-type3>", "sn": UI64_NULL,
                                     "parent_bus": "/machine/q35/pcie.0/cxl_rp0",
                                     "volatile-memdev": "/objects/cxl-vmem0"}}
        self.objects = {"cxl-vmem0"}
        self.sent: list[tuple[str, dict]] = []

    async def execute(self, cmd: str, args: dict | None = None):
        args = args or {}
        self.sent.append((cmd, args))
        if cmd == "qom-list":
            if args["path"] == "/objects":
                return [{"name": n, "type": "child<memory-backend-ram>"} for n in self.objects]
            return [{"name": n, "type": d["type"]} for n, d in self.devices.items()]
        if cmd == "qom-get":
            return self.devices[args["path"].rsplit("/", 1)[-1]][args["property"]]
        if cmd == "device_del":
            del self.devices[args["id"]]
        elif cmd == "object-add":
            self.objects.add(args["id"])
        elif cmd == "device_add":
            self.devices[args["id"]] = {"type": f"child<{args['driver']}>", "sn": args["sn"],
                                        "parent_bus": f"/machine/q35/pcie.0/{args['bus']}",
                                        "volatile-memdev": f"/objects/{args['volatile-memdev']}"}
        return {}

    def listen(self, _listener):
        return contextlib.nullcontext()


def test_the_cxl_backend_over_qmp_deletes_the_device_and_adds_a_new_one(tmp_path) -> None:
    host = profiles.create("cxl-single", tmp_path / "root").host()
    target, _, _ = resolve_target(host, "mem0")
    cx = target.cxl
    assert cx is not None
    qmp = FakeQmp()
    backend = CxlBackend(BackendContext(host=host, options={"qmp": "10.0.2.100:4444"},
                                        timeout_s=5))
    found = asyncio.run(backend._find_cxl(qmp, cx["serial"]))  # serial 0x0 is sn UI64_NULL
    assert found == {"id": "cxl-mem0", "sn": UI64_NULL, "bus": "cxl_rp0",
                     "memdev": "cxl-vmem0"}
    deleted = asyncio.run(backend._device_del(qmp, cx))
    assert deleted["qemu_id"] == "cxl-mem0" and "cxl-mem0" not in qmp.devices
    # a resumed backend (no bus remembered) finds the free root port itself
    fresh = CxlBackend(BackendContext(host=host, options={"qmp": "x:1"}, timeout_s=5))
    added = asyncio.run(fresh._device_add(qmp, cx))
    assert added == {"qemu_id": "memras-cxl-1", "qemu_bus": "cxl_rp0",
                     "qemu_memdev": "memras-cxlmem-1", "qemu_sn": "0x1"}
    assert ("object-add", {"qom-type": "memory-backend-ram", "id": "memras-cxlmem-1",
                           "size": 256 << 20, "share": True}) in qmp.sent
    assert ("device_add", {"driver": "cxl-type3", "id": "memras-cxl-1", "bus": "cxl_rp0",
                           "volatile-memdev": "memras-cxlmem-1", "sn": 1}) in qmp.sent
    # a re-run of the step adds nothing twice
    again = asyncio.run(fresh._device_add(qmp, cx))
    assert "already added" in again["note"]
    assert [c for c, _ in qmp.sent].count("device_add") == 1


def test_a_relative_root_is_replaced_too(tmp_path) -> None:
    """`--root DIR` relative to the working directory (the simulator compared the
    device's path with its links' real paths and left the links of a removed device)."""
    profiles.create("cxl-single", tmp_path / "root")
    out = subprocess.run([sys.executable, "-m", "memras", "--root", "root", "--db", "m.db",
                          "replace", "mem0", "--detect-timeout", "20", *CLI],
                         capture_output=True, text=True, cwd=tmp_path, timeout=120,
                         env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[3])})
    assert out.returncode == 0, (out.stdout, out.stderr)
    assert memdevs(Host(tmp_path / "root")) == {0x1: "mem0"}
