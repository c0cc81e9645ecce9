"""``replace-kill-resume``: ``memras replace`` killed with SIGKILL in the middle of the
offline, remove and online steps on the guest's kernel, each resumed with
``memras replace --resume`` to a closed replacement.

Three replacements of dimm1 (slot 1) in one guest, ``--backend qemu``. Each runs in
the guest's background with ``MEMRAS_TEST_KILL_AT=<point>``: memras sends itself
SIGKILL when it reaches that point (:func:`memras.workflow.runner.crash_point`) —
the kernel ends it as ``kill -9`` does, at an exact place inside the step (a shell
loop in the guest polling for the point, tried first, landed after the step under
TCG). ``MEMRAS_TEST_CRASH_LOG`` records the points reached, so the report shows where:

* offline: after the kernel offlined the first block (the others still online);
* remove: as the remove step starts (QMP ``device_del`` under way or not yet sent);
* online: after the kernel onlined the first of the new module's blocks (for this run
  the guest's ``auto_online_blocks`` is ``offline``, so memras onlines them itself).

Then ``memras replace --resume`` must finish each to ``closed``: the audit chain
verifies, every memory block of the guest is online, the slot holds a new DIMM.
Where the kill landed (kernel and database) is recorded for each. The guest is left
with dimm1 back in slot 1.
"""

from __future__ import annotations

import shlex
from typing import Any

from memras.errors import LabError
from memras.lab import actions
from memras.lab.guest import DimmSpec, Lab
from memras.lab.scenarios.common import GUEST_WORK, dimm_spec
from memras.lab.scenarios.fastswap import start_guest_replace, stop_guest_command, wait_guest_exit
from memras.lab.scenarios.registry import ScenarioReport, scenario
from memras.lab.scenarios.replace import GUEST_QMP, RESERVE, GuestMemras

AUTO_ONLINE = f"{actions.MEMORY}/auto_online_blocks"


def kill_points(blocks: tuple[str, ...]) -> list[tuple[str, str]]:
    """(step, crash point at which SIGKILL is sent) for the three steps."""
    first = blocks[0].removeprefix("memory")
    return [("offline_blocks", f"block:{first}:offline:after"),
            ("remove_module", "step:remove_module:before"),
            ("online_blocks", f"block:{first}:online_blocks:after")]


def all_memory_online(lab: Lab) -> dict[str, str]:
    """Blocks of the guest that are not online (should be none)."""
    out = lab.check(f"cd {actions.MEMORY} && for b in memory*; do "
                    "echo $b $(cat $b/state); done")
    return {f[0]: f[1] for f in (line.split() for line in out.splitlines())
            if len(f) == 2 and f[1] != "online"}


def put_back(lab: Lab, dimm: DimmSpec, blocks: tuple[str, ...]) -> None:
    current = next((d for d in lab.qmp.memory_devices() if d["slot"] == dimm.slot), None)
    if current is not None and current["id"] == dimm.id:
        return
    if current is not None:
        actions.wait_blocks_online_movable(lab, blocks, timeout_s=60)
        unplug = lab.qmp.unplug(current["id"], timeout=120)
        if not unplug.deleted:
            raise LabError(f"no DEVICE_DELETED for {current['id']}: OST {unplug.ost_status}")
        lab.qmp.cmd("object-del", id=str(current["memdev"]).rsplit("/", 1)[-1])
    actions.replug_dimm(lab, dimm)
    actions.wait_blocks_online_movable(lab, blocks, timeout_s=60)


@scenario("replace-kill-resume", "memras replace killed (SIGKILL) in the offline, remove "
                                 "and online steps; --resume closes each replacement")
def replace_kill_resume(lab: Lab, report: ScenarioReport) -> None:
    dimm = dimm_spec(lab, "dimm1")
    device = actions.slot_device(lab, dimm.slot)
    blocks = device.blocks
    memtotal = actions.meminfo_kb(lab)["MemTotal"]
    report.facts.update(dimm=device.name, blocks=list(blocks), memtotal_before_kb=memtotal,
                        runs=[])
    lab.check(f"rm -rf {GUEST_WORK}/*; sync; echo 3 > /proc/sys/vm/drop_caches")
    memras = GuestMemras(lab, "resume")
    policy = lab.check(f"cat {AUTO_ONLINE}").strip()
    report.facts["auto_online_blocks"] = policy
    try:
        for step_name, point in kill_points(blocks):
            if step_name == "online_blocks":
                # the guest onlines a new DIMM itself (memhp_default_state): then
                # memras's online step has nothing to write and nothing to kill in
                lab.check(f"echo offline > {AUTO_ONLINE}")
            run: dict[str, Any] = {"step": step_name, "kill_at": point}
            report.facts["runs"].append(run)
            log = f"{memras.dir}/crash-{step_name}.log"
            with report.step(f"kill -9 memras replace in {step_name} ({point})") as step:
                base = f"{memras.dir}/bg"
                lab.check(f"rm -f {log} {base}.*")
                start_guest_replace(memras, f"replace {device.name} --backend qemu "
                                    f"--qmp {GUEST_QMP} --yes --reserve {RESERVE} "
                                    "--operator lab", env=f"MEMRAS_TEST_CRASH_LOG={log} "
                                    f"MEMRAS_TEST_KILL_AT={shlex.quote(point)}")
                status, out, err = wait_guest_exit(lab, base, timeout_s=900)
                reached = lab.run(f"tail -3 {log}").output.split()
                # the shell's status of a process ended by signal 9 is 128 + 9
                killed = "SIGKILL" if status == 137 else ""
                kernel = {b: s.state for b, s in actions.block_states(lab, blocks).items()}
                run.update(exit_status=status, killed=killed, last_points=reached,
                           kernel_after_kill=kernel)
                step.detail = f"exit {status}; {killed or 'not killed'}; kernel {kernel}"
                # 137 = 128 + SIGKILL, from the subshell's $?
                report.expect(status == 137 and reached[-1:] == [point],
                              f"memras was not killed at {point}: exit {status}, last "
                              f"points {reached}, {(out + err).strip()[-300:]}")
            with report.step(f"memras replace --resume after the kill in {step_name}") as step:
                # `audit verify` (read in the next step) in the same guest Python: one
                # TCG start-up (~25 s) fewer per run
                resume_out, verify_out = memras.batch(
                    ["replace --resume --json", "audit verify --json"], timeout=900)
                status, resumed = resume_out.status, resume_out.json("replace --resume", ok=False)
                run.update(resume_status=status, resume_state=resumed.get("state"),
                           resume_id=resumed.get("id"), resume_steps=[
                               s.get("step") for s in resumed.get("steps", [])])
                step.detail = (f"exit {status}: #{resumed.get('id')} {resumed.get('state')}: "
                               f"{resumed.get('where')}")
                report.expect(status == 0 and resumed.get("state") == "closed",
                              f"resume ended {resumed.get('state')} (exit {status}): "
                              f"{resumed.get('error')}")
            with report.step(f"after {step_name}: audit verifies, all memory online, "
                             "a new DIMM in the slot") as step:
                # the actions straight from the guest's database: a second CLI start
                # (`audit list`, ~25 s under TCG) per run would prove nothing more
                # (scenario replace-no-downtime runs `audit list`); `audit verify` checks
                # the chain, these rows included
                run["audit_actions"] = [row[0] for row in actions.guest_sql(
                    lab, f"{memras.dir}/memras.db", "SELECT action FROM memras_audit "
                    f"WHERE replacement_id = {int(resumed['id'])} ORDER BY seq")]
                verified = verify_out.json("audit verify")
                run["audit_verify_ok"] = verified["ok"]
                actions.wait_blocks_online_movable(lab, blocks, timeout_s=60)
                offline = all_memory_online(lab)
                qemu = next(d for d in lab.qmp.memory_devices() if d["slot"] == dimm.slot)
                after = actions.meminfo_kb(lab)["MemTotal"]
                run.update(not_online=offline, slot_dimm=qemu["id"], memtotal_after_kb=after)
                step.detail = (f"audit ok {verified['ok']}; not online {offline}; slot "
                               f"{dimm.slot}: {qemu['id']}; MemTotal {after} kB")
                report.expect(verified["ok"], f"audit verify failed: {verified}")
                report.expect(not offline, f"blocks not online: {offline}")
                report.expect("close" in run["audit_actions"],
                              f"no close in the audit: {run['audit_actions']}")
                report.expect("rollback" not in run["audit_actions"],
                              f"a rollback in the audit: {run['audit_actions']}")
                report.expect(after == memtotal, f"MemTotal {after} kB, was {memtotal} kB")
    finally:
        with report.step("put dimm1 back"):
            stop_guest_command(lab, f"{memras.dir}/bg")
            lab.check(f"echo {policy} > {AUTO_ONLINE}")
            put_back(lab, dimm, blocks)


def figures(report: ScenarioReport) -> str:
    lines = ["replace-kill-resume figures:"]
    for run in report.facts.get("runs", []):
        lines.append(f"  {run['step']}: kill at {run['kill_at']} -> exit "
                     f"{run.get('exit_status')} ({run.get('killed')}), last points "
                     f"{run.get('last_points')}, kernel {run.get('kernel_after_kill')}; "
                     f"--resume -> {run.get('resume_state')} via {run.get('resume_steps')}; "
                     f"audit ok {run.get('audit_verify_ok')}")
    return "\n".join(lines)
