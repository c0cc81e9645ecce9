"""``ingest``: ``memras watch`` in the guest stores each injected error once, on time."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, cast

from memras.lab import actions
from memras.lab.guest import Lab
from memras.lab.scenarios.common import GUEST_WORK, ce_address, dimm_spec
from memras.lab.scenarios.registry import ScenarioReport, scenario

SINGLE_EVENT_BOUND_S = 5.0


def _trace_delay(lab: Lab, probe: str, addr: int, inject: Callable[[Lab, int], Any]) -> float:
    """Seconds, on the guest's clock, from injecting a CE at ``addr`` to its trace line."""
    t0 = actions.guest_time(lab)
    inject(lab, addr)
    return actions.probe_arrival(lab, probe, addr) - t0


def _errors_at(errors: list[dict[str, Any]], addr: int) -> list[dict[str, Any]]:
    return [e for e in errors if e.get("address") == addr]


@scenario("ingest", "memras watch (kmsg+trace) stores each injected CE once, on the right "
                    "DIMM, each CE in trace_pipe without waiting for a full buffer; an SRAO "
                    "becomes a memory-failure record")
def ingest(lab: Lab, report: ScenarioReport) -> None:
    dimm0, dimm1 = dimm_spec(lab, "dimm0"), dimm_spec(lab, "dimm1")
    db, log, probe = f"{GUEST_WORK}/b.db", f"{GUEST_WORK}/b-watch.log", f"{GUEST_WORK}/b-probe"
    qemu_addr = ce_address(lab, dimm0.id, 0x3000)
    sw_addr = ce_address(lab, dimm0.id, 0x4000)
    # SRAO on dimm1, far into it: a free page, so memory_failure() recovers it; it is
    # unpoisoned at the end so the shared guest's DIMMs stay removable.
    srao_addr = ce_address(lab, dimm1.id, (dimm1.size_mib - 8) << 20)
    report.facts.update(qemu_addr=f"{qemu_addr:#x}", sw_addr=f"{sw_addr:#x}",
                        srao_addr=f"{srao_addr:#x}")
    with report.step("start memras watch and the trace latency probe") as step:
        lab.check(f"mkdir -p {GUEST_WORK}")
        actions.enable_mce_observation(lab)
        actions.start_trace_probe(lab, probe)
        # Ingestion only: the health engine's default page policy (2 CEs/24 h, soft) would
        # soft-offline a page too, and this scenario measures the SRAO's +4 kB alone.
        actions.start_guest_watch(lab, db, log, extra="--no-health")
        step.detail = lab.check(f"cat {actions.TRACING}/instances/memras/buffer_percent").strip()
        report.expect(step.detail == "0", f"memras's instance buffer_percent is {step.detail}")
    hc_before = actions.meminfo_kb(lab)["HardwareCorrupted"]
    try:
        with report.step("QEMU mce: CE in dimm0, found by the 1 s poller") as step:
            delay = _trace_delay(lab, probe, qemu_addr, actions.inject_ce)
            report.facts["qemu_ce_trace_delay_s"] = round(delay, 3)
            step.detail = f"in trace_pipe after {delay:.3f} s (poll interval 1 s)"
            # the kernel's 1 s MCA poll, then the same "delivered, not held" bound
            report.expect(delay < 1.0 + SINGLE_EVENT_BOUND_S,
                          f"QEMU CE took {delay:.2f} s to reach trace_pipe")
        with report.step("mce-inject sw: CE in dimm0, single event latency") as step:
            delay = _trace_delay(lab, probe, sw_addr, actions.inject_sw_ce)
            report.facts["sw_ce_trace_delay_s"] = round(delay, 3)
            step.detail = f"in trace_pipe after {delay:.3f} s"
            # The bound separates "delivered" from "held in the buffer" (a lone event with
            # buffer_percent > 0 would wait for the buffer to fill: no bounded time at all);
            # the figure itself is recorded. At 1.0 s it failed once at load ~3 (CI: 1.09 s).
            report.expect(delay < SINGLE_EVENT_BOUND_S,
                          f"a single event took {delay:.2f} s (buffer_percent=0?)")
        with report.step("QEMU mce -b: SRAO in dimm1 -> memory_failure()") as step:
            actions.inject_srao(lab, srao_addr)
            line = actions.wait_guest_output(
                lab, "dmesg", rf"Memory failure: {srao_addr >> 12:#x}: .*Recovered", 20)
            hc_after = actions.meminfo_kb(lab)["HardwareCorrupted"]
            report.facts.update(memory_failure_dmesg=line.strip(),
                                hardware_corrupted_kb=[hc_before, hc_after])
            step.detail = f"{line.strip()}; HardwareCorrupted {hc_before} -> {hc_after} kB"
            report.expect(hc_after == hc_before + 4, f"HardwareCorrupted {hc_before} -> {hc_after}")
        with report.step("let the watcher catch up, SIGTERM it") as step:
            time.sleep(3)
            step.detail = actions.stop_guest_watch(lab, log)
            report.facts["watch_output"] = step.detail
    finally:
        actions.stop_trace_probe(lab, probe)
        lab.run(f"kill $(cat {log}.pid) 2>/dev/null")
    with report.step("memras errors --json: each error once, right address and DIMM") as step:
        # `memras --json errors` prints a list of objects
        errors = cast("list[dict[str, Any]]", actions.guest_memras_json(lab, f"--db {db} errors"))
        report.facts["errors"] = [{k: e.get(k) for k in ("type", "address", "source",
                                                         "dimm_id", "message")} for e in errors]
        for name, addr in (("QEMU CE", qemu_addr), ("sw CE", sw_addr)):
            rows = _errors_at(errors, addr)
            report.expect(len(rows) == 1, f"{name} at {addr:#x} stored {len(rows)} times: "
                                          f"{[(r['source'], r['type']) for r in rows]}")
            report.expect(rows[0]["type"] == "Corrected", f"{name} stored as {rows[0]['type']}")
        failures = [e for e in errors if e.get("address") == srao_addr
                    or "Memory failure" in str(e.get("message"))]
        report.expect(bool(failures), "the SRAO left no memory-failure record")
        step.detail = f"{len(errors)} rows: " + ", ".join(
            f"{e['type']}@{e['address']:#x}/{e['source']}/{e.get('dimm_id')}"
            for e in errors if e.get("address") is not None)
    with report.step("memras locate: dimm0's slot and ACPI device") as step:
        device = actions.slot_device(lab, dimm0.slot)
        located = lab.check(f"{actions.memras_argv()} locate {qemu_addr:#x}", timeout=120)
        report.facts["locate"] = located
        report.expect(device.name in located, f"memras locate does not name {device.name}")
        dimm_ids = {e.get("dimm_id") for e in errors if e.get("address") in (qemu_addr, sw_addr)}
        report.facts["dimm_ids"] = sorted(str(d) for d in dimm_ids)
        step.detail = f"{device.name}, dimm_id {dimm_ids}"
    with report.step("unpoison the SRAO page (best effort)") as step:
        report.facts["unpoisoned"] = actions.unpoison_pfn(lab, srao_addr >> 12)
        step.detail = ("unpoisoned" if report.facts["unpoisoned"]
                       else "refused (6.1 disables unpoison after a hardware memory failure)")
