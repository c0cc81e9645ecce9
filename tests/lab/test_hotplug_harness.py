"""``memras hotplug-test`` inside the lab guest: the harness against a real 6.1 kernel.

1. Two cycles over the cold-plugged DIMMs' blocks with a patterned workload, uevent
   and notifier-injection checks required: everything passes, the figures print.
2. A left-over MEM_GOING_OFFLINE error makes the run fail with a non-zero exit and
   an EBUSY offline failure in the report (the selftest would have exited 0).
3. ``--eject acpi``: the harness ejects dimm1 from inside the guest, the test (the
   "technician") sees DEVICE_DELETED over QMP and plugs a new DIMM into the slot,
   and the harness finds its blocks back online Movable.

Each test leaves the guest as it found it.
"""

from __future__ import annotations

import json
import shlex
import time

import pytest

from memras.lab import actions
from memras.lab.guest import DEFAULT_DIMMS, Lab, checkout_root

pytestmark = pytest.mark.lab
MEMRAS = shlex.quote(str(checkout_root() / ".venv" / "bin" / "memras"))


def _dimm_blocks(lab: Lab) -> list[int]:
    blocks = []
    for slot in (0, 1):
        blocks += [int(b[6:]) for b in actions.slot_device(lab, slot).blocks]
    return sorted(blocks)


def _harness(lab: Lab, args: str, report_dir: str, timeout: float = 300
             ) -> tuple[int, dict]:
    result = lab.run(f"{MEMRAS} hotplug-test {args} --i-understand --yes --json "
                     f"--report-dir {report_dir} 2>{report_dir}.err", timeout=timeout)
    output = result.output
    assert "{" in output, f"no JSON from hotplug-test (status {result.status}): {output}"
    return result.status, json.loads(output[output.index("{"):])


def _span(blocks: list[int]) -> str:
    return ",".join(str(b) for b in blocks)


def test_two_cycles_with_pressure_uevents_and_notifier(lab: Lab) -> None:
    blocks = _dimm_blocks(lab)
    assert len(blocks) == 4
    status, report = _harness(lab, f"--blocks {_span(blocks)} --cycles 2 --pressure 40 "
                              "--pressure-max 256M --uevents --inject", "/tmp/ht-cycles")
    summary = report["summary"]
    assert status == 0, report["failures"]
    assert report["ok"] is True and report["exit_status"] == 0
    assert report["plan"]["blocks"] == blocks
    assert summary["offline"] == {"pass": 8, "fail": 0, "skip": 0}
    assert summary["online"]["pass"] == 8 and summary["zone"]["pass"] == 8
    assert summary["uevent"] == {"pass": 16, "fail": 0, "skip": 0}
    assert summary["data"]["pass"] == 3  # after each cycle and at the end
    assert summary["notifier-offline"]["pass"] == 1
    assert summary["notifier-online"]["pass"] == 1
    assert report["environment"]["uevent_source"] == "netlink"
    assert report["environment"]["block_size"] == 128 << 20
    assert report["pressure"]["bytes"] >= 64 << 20
    figs = report["figures"]
    assert figs["offline"]["count"] == 8 and figs["offline"]["p50"] > 0
    assert 0 < figs["migration"]["bytes"] <= 8 * (128 << 20)  # at most the blocks offlined
    assert figs["migration"]["bytes_per_s"] > 0
    files = lab.check("ls /tmp/ht-cycles")
    assert {"report.json", "report.md", "latency.svg"} <= set(files.split())
    assert "# memras hotplug-test: PASS" in lab.check("head -1 /tmp/ht-cycles/report.md")
    states = actions.block_states(lab, [f"memory{b}" for b in blocks])
    assert all(s.state == "online" and s.valid_zones == "Movable" for s in states.values())
    off, on, mig = figs["offline"], figs["online"], figs["migration"]
    print(f"\nhotplug-test lab: {report['seconds']:.1f}s, pressure "
          f"{report['pressure']['bytes'] >> 20} MiB (fill {report['pressure']['fill_seconds']}s, "
          f"verify {report['pressure']['verify_seconds']}s)\n"
          f"offline ms p50/p90/p99/max {off['p50'] * 1e3:.0f}/{off['p90'] * 1e3:.0f}/"
          f"{off['p99'] * 1e3:.0f}/{off['max'] * 1e3:.0f}; online "
          f"{on['p50'] * 1e3:.0f}/{on['p90'] * 1e3:.0f}/{on['p99'] * 1e3:.0f}/"
          f"{on['max'] * 1e3:.0f}\nmigration {mig['bytes'] >> 20} MiB in {mig['seconds']:.2f}s"
          f" = {mig['bytes_per_s'] / (1 << 20):.0f} MiB/s")


def test_notifier_error_left_set_fails_the_run(lab: Lab) -> None:
    block = _dimm_blocks(lab)[0]
    actions.set_offline_notifier_error(lab, -16)
    try:
        status, report = _harness(lab, f"--blocks {block} --no-inject --max-attempts 2",
                                  "/tmp/ht-fail")
    finally:
        actions.set_offline_notifier_error(lab, 0)
    assert status == 1
    assert report["ok"] is False
    failure = report["failures"][0]
    assert failure["name"] == "offline" and failure["block"] == block
    assert "EBUSY" in failure["detail"] and "reads online" in failure["detail"]
    assert actions.block_states(lab, [f"memory{block}"])[f"memory{block}"].state == "online"


def test_eject_and_readd_through_qmp(lab: Lab) -> None:
    dimm = DEFAULT_DIMMS[1]
    blocks = [int(b[6:]) for b in actions.slot_device(lab, dimm.slot).blocks]
    lab.qmp.drain()
    lab.check(f"rm -f /tmp/ht-eject.rc; ( {MEMRAS} hotplug-test --blocks {_span(blocks)} "
              "--no-inject --eject acpi --readd-timeout 120 --i-understand --yes --json "
              "--report-dir /tmp/ht-eject > /tmp/ht-eject.json 2>/tmp/ht-eject.err; "
              "echo $? > /tmp/ht-eject.rc ) >/dev/null 2>&1 &")
    deleted = lab.qmp.wait_event(
        lambda e: e["event"] == "DEVICE_DELETED" and e.get("data", {}).get("device") == dimm.id,
        timeout=150)
    try:
        assert deleted is not None, lab.run("cat /tmp/ht-eject.err").output
    finally:
        if dimm.id not in {d.get("id") for d in lab.qmp.memory_devices()}:
            actions.replug_dimm(lab, dimm)
    deadline = time.monotonic() + 150
    while lab.run("test -s /tmp/ht-eject.rc").status != 0:
        assert time.monotonic() < deadline, lab.run("cat /tmp/ht-eject.err").output
        time.sleep(2)
    status = int(lab.check("cat /tmp/ht-eject.rc").strip())
    report = json.loads(lab.check("cat /tmp/ht-eject.json"))
    assert status == 0, report["failures"]
    assert report["summary"]["eject"]["pass"] == 1 and report["summary"]["readd"]["pass"] == 1
    actions.wait_blocks_online_movable(lab, tuple(f"memory{b}" for b in blocks))
    print(f"\nhotplug-test eject {report['figures']['eject']['max']:.2f}s, "
          f"re-add wait {report['figures']['readd']['max']:.2f}s")
