"""``capacity-policy``: ``memras watch``'s capacity-on-demand policy (issue #8) onlines
standby memory under a workload's pressure and offlines it once pressure stayed low."""

from __future__ import annotations

import json
import time

from memras.lab import actions
from memras.lab.guest import Lab
from memras.lab.scenarios.common import GUEST_WORK
from memras.lab.scenarios.registry import ScenarioFailed, ScenarioReport, scenario
from memras.lab.scenarios.workload import LabWorkload

MiB = 1 << 20

_POLICY_HOOK = """#!/bin/sh
# memras lab exec hook: one line per alert, in arrival order
echo "$(date +%s.%N) $MEMRAS_KIND $MEMRAS_MESSAGE" >> "$(dirname "$0")/hook.log"
"""
POLICY_HOLD_S = 10.0  # policy.HOLD_S minimum
POLICY_DWELL_S = 5.0  # policy.MIN_DWELL_S minimum


def _standby_blocks(lab: Lab, dimm_id: str) -> tuple[str, ...]:
    dimm = lab.qmp.dimm(dimm_id)
    bs = actions.block_size(lab)
    first = int(dimm["addr"]) // bs
    return tuple(f"memory{first + i}" for i in range(int(dimm["size"]) // bs))


def _wait_states(lab: Lab, blocks: tuple[str, ...], state: str, timeout_s: float) -> float:
    """Poll until every block is in ``state`` (online: also Movable); seconds waited."""
    started = time.monotonic()
    while True:
        states = actions.block_states(lab, blocks)
        if all(s.state == state and (state != "online" or s.valid_zones == "Movable")
               for s in states.values()) and len(states) == len(blocks):
            return time.monotonic() - started
        if time.monotonic() - started > timeout_s:
            raise ScenarioFailed(f"standby blocks not {state} within {timeout_s:.0f} s: "
                                 f"{ {b: (s.state, s.valid_zones) for b, s in states.items()} }")
        time.sleep(0.5)


@scenario("capacity-policy", "memras watch's capacity-on-demand policy keeps dimm1 offline, "
                             "onlines it Movable when a workload drives MemAvailable below "
                             "the threshold, offlines it again once pressure stayed low for "
                             "hold_s; audited, alerted, no flapping")
def capacity_policy(lab: Lab, report: ScenarioReport) -> None:
    blocks = _standby_blocks(lab, "dimm1")
    try:
        _capacity_policy(lab, report, blocks)
    finally:  # the shared guest as found, also after a failure
        lab.run("; ".join(f"echo online_movable > {actions.MEMORY}/{b}/state 2>/dev/null"
                          for b in blocks))
    with report.step("standby memory back online Movable (the shared guest as found)"):
        _wait_states(lab, blocks, "online", 30)


def _capacity_policy(lab: Lab, report: ScenarioReport, blocks: tuple[str, ...]) -> None:
    work = f"{GUEST_WORK}/policy"
    db, log, config, hook = (f"{work}/policy.db", f"{work}/watch.log", f"{work}/memras.toml",
                             f"{work}/hook.sh")
    standby = len(blocks) * actions.block_size(lab)
    first, last = (int(b.removeprefix("memory")) for b in (blocks[0], blocks[-1]))
    workload: LabWorkload | None = None
    try:
        with report.step("standby memory (dimm1) offline; thresholds from idle MemAvailable"
                         ) as step:
            lab.check(f"rm -rf {work}; mkdir -p {work}; sync; echo 3 > /proc/sys/vm/drop_caches")
            offline = actions.offline_blocks(lab, blocks)
            report.expect(offline.ok, f"cannot offline the standby blocks: {offline.output}")
            idle = actions.meminfo_kb(lab)["MemAvailable"] << 10
            # Margins for the watcher's own ~100 MB: ON below idle-350M; OFF above idle-50M,
            # which the workload (ON-100M) plus the standby (+256M) never reaches but idle
            # plus the standby does; reserve = ON, so an offline leaves idle > ON.
            on_below = (idle - 350 * MiB) // MiB * MiB
            off_above = (idle - 50 * MiB) // MiB * MiB
            psi = lab.run("cat /proc/pressure/memory")
            report.facts.update(standby_blocks=f"{first}-{last}", standby_mib=standby // MiB,
                                idle_available_mib=idle // MiB, on_below_mib=on_below // MiB,
                                off_above_mib=off_above // MiB,
                                psi=psi.output.strip() if psi.ok else None)
            actions.write_guest_file(lab, hook, _POLICY_HOOK, 0o755)
            actions.write_guest_file(lab, config, "\n".join([
                "[capacity]", f'standby_blocks = "{first}-{last}"',
                f"on_available_below = {on_below}", f"off_available_above = {off_above}",
                f"reserve = {on_below}",
                # PSI under TCG says more about the emulator than about memory: MemAvailable
                # decides here (PSI is read and reported in each audit row).
                "psi_on_above_pct = 90.0", "psi_off_below_pct = 80.0",
                f"hold_s = {POLICY_HOLD_S:g}", f"min_dwell_s = {POLICY_DWELL_S:g}",
                "interval_s = 1", "", "[alerts.hooks.exec]", f'command = ["{hook}"]', ""]))
            actions.start_guest_watch(lab, db, log, sources="kmsg", config=config)
            step.detail = (f"blocks {first}-{last} ({standby // MiB}M) offline in "
                           f"{offline.seconds:.1f} s; idle MemAvailable {idle // MiB}M: online "
                           f"below {on_below // MiB}M, offline above {off_above // MiB}M")
        with report.step("workload drives MemAvailable below on_available_below") as step:
            available = actions.meminfo_kb(lab)["MemAvailable"] << 10
            mib = (available - on_below) // MiB + 100
            workload = LabWorkload(lab, mib, work, pause_s=0.05)
            started = actions.guest_time(lab)
            step.detail = f"MemAvailable {available // MiB}M; workload {mib} MiB"
            report.facts["workload_mib"] = mib
        with report.step("policy onlines the standby memory Movable") as step:
            waited = _wait_states(lab, blocks, "online", 120)
            online_at = actions.guest_time(lab)
            report.expect(workload.running(), "the workload died")
            now_available = actions.meminfo_kb(lab)["MemAvailable"] << 10
            report.facts.update(online_after_s=round(online_at - started, 1),
                                available_while_loaded_mib=now_available // MiB)
            step.detail = (f"online Movable {online_at - started:.1f} s after the workload "
                           f"started (polled {waited:.1f} s); MemAvailable now "
                           f"{now_available // MiB}M")
        with report.step(f"workload keeps running {POLICY_HOLD_S + 5:g} s: standby stays online"
                         ) as step:
            deadline = time.monotonic() + POLICY_HOLD_S + 5
            while time.monotonic() < deadline:
                states = actions.block_states(lab, blocks)
                report.expect(all(s.state == "online" for s in states.values()),
                              f"the policy took standby memory the workload needs: {states}")
                time.sleep(2)
            step.detail = "online throughout"
        with report.step("workload stops: final verification pass") as step:
            final = workload.stop()
            stopped_at = actions.guest_time(lab)
            report.facts["workload"] = {k: final.get(k) for k in
                                        ("mib", "passes", "errors", "max_stall_ms")}
            step.detail = str(report.facts["workload"])
            report.expect(final.get("errors") == 0, f"workload checksum errors: {final}")
            workload = None
        with report.step(f"pressure low for hold_s {POLICY_HOLD_S:g} s: policy offlines it"
                         ) as step:
            _wait_states(lab, blocks, "offline", POLICY_HOLD_S + 90)
            offline_at = actions.guest_time(lab)
            report.facts["offline_after_stop_s"] = round(offline_at - stopped_at, 1)
            step.detail = f"offline {offline_at - stopped_at:.1f} s after the workload stopped"
        with report.step("no further move for 5 s; watcher stopped") as step:
            time.sleep(5)
            states = actions.block_states(lab, blocks)
            report.expect(all(s.state == "offline" for s in states.values()),
                          f"the policy moved again: {states}")
            report.facts["watch_output"] = actions.stop_guest_watch(lab, log)
    finally:
        if workload is not None:
            workload.kill()
        lab.run(f"kill $(cat {log}.pid) 2>/dev/null")
    with report.step("audit: online then offline, exactly once each") as step:
        rows = actions.guest_sql(lab, db, "select seq, time, action, payload from memras_audit "
                                          "where action like 'capacity.%' order by seq")
        moves = [r[2] for r in rows]
        payloads = [json.loads(r[3]).get("data", {}) for r in rows]
        report.facts["audit"] = [{"seq": int(r[0]), "time": r[1], "action": r[2],
                                  "available_mib": p.get("available_bytes", 0) // MiB,
                                  "psi": p.get("psi_some_avg10"), "changed": p.get("changed"),
                                  "exit_status": p.get("exit_status")}
                                 for r, p in zip(rows, payloads, strict=True)]
        step.detail = str(report.facts["audit"])
        report.expect(moves == ["capacity.policy.online", "capacity.policy.offline"],
                      f"policy audit rows {moves}")
        report.expect(all(p.get("exit_status") == 0 for p in payloads),
                      f"a move did not fully succeed: {payloads}")
        went_online, went_offline = payloads
        report.expect(went_online["available_bytes"] < on_below,
                      f"onlined at MemAvailable {went_online['available_bytes'] // MiB}M")
        left = went_offline["available_bytes"] - standby
        report.facts["available_after_offline_mib"] = left // MiB
        report.expect(left >= on_below, f"the offline left MemAvailable {left // MiB}M, "
                                        f"below the reserve {on_below // MiB}M")
        # (no `memras audit verify` here: one more memras start costs ~15 s under TCG; the
        # chain itself is the audit module's, tested in tests/unit and the replace scenarios)
    with report.step("alerted: the exec hook ran once per move, in order") as step:
        lines = [line for line in lab.run(f"cat {work}/hook.log").output.splitlines()
                 if "capacity on demand" in line]
        report.facts["hook"] = lines
        step.detail = " | ".join(line.split(" ", 1)[1][:90] for line in lines)
        report.expect([("online" if ": online " in line else "offline" if ": offline " in line
                        else "?") for line in lines] == ["online", "offline"],
                      f"exec hook lines {lines}")
