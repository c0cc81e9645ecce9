"""``memras hotplug-test`` on simulated servers: verdicts, exit statuses and reports.

Failures are injected with the simulator's knobs (set_busy, set_unmovable) and by
corrupting the workload, to prove each one makes the exit non-zero and is named.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from memras.cli import main
from memras.host import Host
from memras.hotplug_test import Config, HotplugTest, Want
from memras.hotplug_test.pressure import CHUNK
from memras.sim import actions, profiles
from memras.workflow.offline import RetryPolicy

FAST = RetryPolicy(block_timeout_s=5, max_attempts=3, backoff_initial_s=0.01, backoff_max_s=0.02)


@pytest.fixture
def guest(tmp_path: Path) -> Path:
    return profiles.create("qemu-guest", tmp_path / "root").root


def cli(capsys, *argv: str) -> tuple[int, dict, str]:
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, json.loads(out) if out.strip() else {}, err


def states(root: Path) -> dict[int, str]:
    host = Host(root)
    return {b.index: f"{b.state} {b.zone}" for b in host.memory.all()}


def test_clean_run_passes_with_every_check_and_files(guest: Path, tmp_path: Path,
                                                     capsys) -> None:
    before = states(guest)
    status, report, _ = cli(capsys, "hotplug-test", "--root", str(guest), "--cycles", "2",
                            "--pressure", "5", "--pressure-max", "8M", "--uevents",
                            "--report-dir", str(tmp_path / "rep"), "--json")
    assert status == 0 and report["ok"] and report["exit_status"] == 0
    s = report["summary"]
    assert s["offline"] == {"pass": 16, "fail": 0, "skip": 0}
    assert s["zone"]["pass"] == 16 and s["uevent"]["pass"] == 32
    assert s["data"]["pass"] == 3 and report["pressure"]["bytes"] == 8 << 20
    assert s["notifier-offline"]["skip"] == 1  # the simulator has no injector
    assert report["figures"]["offline"]["count"] == 16
    assert report["figures"]["per_block"]["32"]["online"]["count"] == 2
    assert report["environment"]["uevent_source"] == "simulator"
    assert {Path(p).name for p in report["files"].values()} == {"report.json", "report.md",
                                                                "latency.svg"}
    assert json.loads(Path(report["files"]["json"]).read_text())["ok"] is True
    assert states(guest) == before


def test_unmovable_block_fails_the_run_and_the_rest_is_still_tested(guest: Path, tmp_path: Path,
                                                                    capsys) -> None:
    actions.set_unmovable(guest, 33)
    status, report, _ = cli(capsys, "hotplug-test", "--root", str(guest), "--max-attempts", "1",
                            "--report-dir", str(tmp_path / "rep"), "--json")
    assert status == 1 and report["ok"] is False
    [failure] = report["failures"]
    assert failure["name"] == "offline" and failure["block"] == 33
    assert "EBUSY" in failure["detail"] and "reads online" in failure["detail"]
    assert report["summary"]["offline"] == {"pass": 7, "fail": 1, "skip": 0}
    md = (tmp_path / "rep" / "report.md").read_text()
    assert md.startswith("# memras hotplug-test: FAIL") and "memory33" in md


def test_transient_ebusy_is_retried_and_counted(guest: Path, tmp_path: Path) -> None:
    actions.set_busy(guest, 34, 2)
    report = HotplugTest(Host(guest), Config(blocks=(34,), policy=FAST)).run()
    assert report.ok
    [offline] = [op for op in report.ops if op.kind == "offline"]
    assert offline.attempts == 3


def test_busy_beyond_the_attempts_fails(guest: Path) -> None:
    actions.set_busy(guest, 34, 5)
    report = HotplugTest(Host(guest), Config(blocks=(34, 35), policy=FAST)).run()
    assert not report.ok
    assert [(c.name, c.block) for c in report.failures] == [("offline", 34)]


def test_corrupted_workload_fails_the_data_check(guest: Path) -> None:
    test = HotplugTest(Host(guest), Config(blocks=(32,), pressure_share=0.5,
                                           pressure_max_bytes=2 * CHUNK, policy=FAST))

    def corrupt(msg: str) -> None:
        if msg.startswith("cycle 1") and test.workload is not None:
            test.workload.corrupt(7)

    test.progress = corrupt
    report = test.run()
    assert not report.ok
    assert {c.name for c in report.failures} == {"data"}
    assert "1 pages differ, first at page(s) 7" in report.failures[0].detail


def test_required_features_that_cannot_run_fail(guest: Path, capsys, tmp_path: Path) -> None:
    status, report, _ = cli(capsys, "hotplug-test", "--root", str(guest), "--blocks", "32",
                            "--inject", "--report-dir", str(tmp_path / "r"), "--json")
    assert status == 1
    assert {f["name"] for f in report["failures"]} == {"notifier-offline", "notifier-online"}


def test_required_uevents_without_a_source_fail(guest: Path, monkeypatch) -> None:
    from memras.hotplug_test import uevents

    monkeypatch.setattr(uevents.UeventWatch, "available", property(lambda self: False))
    report = HotplugTest(Host(guest), Config(blocks=(32,), uevents=Want.ON, policy=FAST)).run()
    assert [c.name for c in report.failures] == ["uevent"]


def test_hwpoison_page_does_not_block_offlining(guest: Path) -> None:
    host = Host(guest)
    before = host.meminfo.read().hardware_corrupted
    report = HotplugTest(host, Config(blocks=(36,), hwpoison=True, policy=FAST)).run()
    assert report.ok, report.failures
    [check] = [c for c in report.checks if c.name == "hwpoison"]
    assert check.outcome.value == "pass" and "HardwareCorrupted +4 kB" in check.detail
    assert host.meminfo.read().hardware_corrupted == before + 4096


def test_eject_and_readd(guest: Path) -> None:
    host = Host(guest)
    stop = threading.Event()

    def technician() -> None:  # waits for the slot to empty, then inserts a new module
        while not stop.wait(0.05):
            if not (set(range(32, 36)) & set(host.memory.indexes())):
                actions.insert_dimm(guest, "0", 512 << 20, serial="NEW")
                return

    helper = threading.Thread(target=technician)
    helper.start()
    try:
        report = HotplugTest(host, Config(blocks=(32, 33, 34, 35), eject="acpi",
                                          readd_timeout_s=10, policy=FAST)).run()
    finally:
        stop.set()
        helper.join()
    assert report.ok, report.failures
    t = report.tally()
    assert t["eject"]["pass"] == 1 and t["readd"]["pass"] == 1
    assert report.figures()["eject"]["count"] == 1
    assert all(host.memory.read(b).zone == "Movable" for b in range(32, 36))


def test_eject_without_readd_fails_and_says_the_blocks_are_gone(guest: Path) -> None:
    report = HotplugTest(Host(guest), Config(blocks=(32, 33, 34, 35), eject="acpi",
                                             readd_timeout_s=0.5, policy=FAST)).run()
    names = {c.name for c in report.failures}
    assert names == {"readd", "restore"}


def test_cancel_stops_restores_and_exits_130(guest: Path) -> None:
    cancel = threading.Event()

    def stop_after_first(msg: str) -> None:
        if "memory33" in msg:
            cancel.set()

    report = HotplugTest(Host(guest), Config(cycles=3, policy=FAST), cancel=cancel,
                         progress=stop_after_first).run()
    assert report.cancelled and not report.ok
    assert all(Host(guest).memory.read(b).state == "online" for b in range(32, 40))


def test_demo_kernel_zones_are_left_alone_unless_asked(tmp_path: Path, capsys) -> None:
    root = profiles.create("demo", tmp_path / "demo").root
    status, plan, _ = cli(capsys, "hotplug-test", "--root", str(root), "--dry-run", "--json")
    assert status == 0 and plan["dry_run"]
    zones = Host(root).memory
    assert all(zones.read(b).zone == "Movable" for b in plan["blocks"])
    assert any("kernel zone Normal" in s["reason"] for s in plan["skipped"])
    normal = next(s["block"] for s in plan["skipped"] if "kernel zone Normal" in s["reason"])
    status, report, _ = cli(capsys, "hotplug-test", "--root", str(root), "--blocks",
                            f"{normal},{plan['blocks'][0]}", "--include-kernel-zones",
                            "--max-attempts", "1", "--report-dir", str(tmp_path / "r"), "--json")
    assert status == 1
    assert [(f["name"], f["block"]) for f in report["failures"]] == [("offline", normal)]
    assert report["summary"]["offline"]["pass"] == 1


def test_dry_run_changes_nothing(guest: Path, capsys) -> None:
    before = states(guest)
    status = main(["hotplug-test", "--root", str(guest), "--dry-run"])
    assert "would cycle 8 blocks" in capsys.readouterr().out
    assert status == 0 and states(guest) == before


def test_real_root_is_refused_without_i_understand(capsys) -> None:
    status = main(["hotplug-test", "--yes"])
    _, err = capsys.readouterr()
    assert status != 0 and "refusing to cycle this machine's real memory" in err
