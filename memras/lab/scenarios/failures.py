"""``memras replace`` when things go wrong, run in the guest against its own /sys:

* ``replace-offline-refused``: MEM_GOING_OFFLINE fails with -EBUSY (notifier error
  injection); memras retries, rolls back, exits 1, and the memory stays online Movable.
* ``replace-crash-abort``: memras dies (exit 137, as kill -9) right after the kernel
  offlined the first block; the database records that block as touched, and
  ``memras replace --abort`` brings it back online Movable.
"""

from __future__ import annotations

from memras.lab import actions
from memras.lab.guest import DimmSpec, Lab
from memras.lab.scenarios.common import dimm_spec
from memras.lab.scenarios.registry import ScenarioReport, scenario
from memras.lab.scenarios.replace import GUEST_QMP, RESERVE, GuestMemras


def _block_rows(memras: GuestMemras) -> dict[str, str]:
    """block -> status of the replacement's old blocks, read from its database."""
    query = ("select block, status from memras_replacement_block where role='old' "
             "order by block")
    out = memras.lab.check(f"{actions.python_argv()} -c \"import sqlite3,sys; "
                           f"[print(*r) for r in sqlite3.connect('{memras.dir}/memras.db')"
                           f".execute(\\\"{query}\\\")]\"")
    return {f"memory{line.split()[0]}": line.split()[1] for line in out.splitlines()
            if line.strip()}


def _dimm0(lab: Lab) -> tuple[DimmSpec, tuple[str, ...], str]:
    dimm = dimm_spec(lab, "dimm0")
    device = actions.slot_device(lab, dimm.slot)
    return dimm, device.blocks, device.name


@scenario("replace-offline-refused", "the kernel refuses offline (notifier -16): memras "
                                     "retries, rolls back, exits 1; memory stays Movable")
def replace_offline_refused(lab: Lab, report: ScenarioReport) -> None:
    dimm, blocks, name = _dimm0(lab)
    memras = GuestMemras(lab, "refused")
    report.facts.update(dimm=name, blocks=list(blocks))
    actions.set_offline_notifier_error(lab, -16)
    try:
        with report.step("memras replace with MEM_GOING_OFFLINE = -EBUSY") as step:
            # the audit list read in the last step shares this guest Python (a CLI
            # start-up is ~25 s under TCG)
            replaced, listed = memras.batch([
                f"replace {name} --backend qemu --qmp {GUEST_QMP} --yes --reserve {RESERVE} "
                "--max-attempts 3 --backoff 0.1 --json", "audit list --json"])
            status, out = replaced.status, replaced.json("replace", ok=False)
            report.facts.update(exit_status=status, state=out.get("state"),
                                where=out.get("where"), blocks_db=out.get("blocks"),
                                steps=out.get("steps"))
            step.detail = f"exit {status}: {out.get('state')}: {out.get('where')}"
            report.expect(status == 1, f"exit status {status}, expected 1")
            report.expect(out.get("state") == "rolled-back", f"state {out.get('state')}")
    finally:
        actions.set_offline_notifier_error(lab, 0)
    with report.step("blocks online Movable, DIMM still in QEMU"):
        states = actions.wait_blocks_online_movable(lab, blocks)
        report.facts["zones"] = {b: s.valid_zones for b, s in states.items()}
        lab.qmp.dimm(dimm.id)
    with report.step("the kernel said why; the audit says so") as step:
        report.facts["dmesg"] = lab.run("dmesg | grep -e 'Injecting error (-16)' "
                                        "| tail -2").output.strip()
        entries = [e for e in listed.json("audit list")
                   if e.get("replacement_id") == out["id"]]
        offline = [e for e in entries if e["action"] == "offline_blocks"]
        report.facts["audit"] = [(e["action"], e["data"].get("outcome")) for e in entries]
        report.facts["audit_offline"] = offline[-1]["data"] if offline else {}
        step.detail = str(report.facts["audit"])
        report.expect(bool(offline) and offline[-1]["data"].get("outcome") == "failed",
                      "the audit has no failed offline_blocks entry")
        report.expect(any(e["action"] == "rollback" for e in entries),
                      "the audit has no rollback entry")


@scenario("replace-crash-abort", "memras is killed right after the kernel offlined a block; "
                                 "the database has it; --abort re-onlines it Movable")
def replace_crash_abort(lab: Lab, report: ScenarioReport) -> None:
    dimm, blocks, name = _dimm0(lab)
    first = blocks[0].removeprefix("memory")
    memras = GuestMemras(lab, "crash")
    crash_at = f"block:{first}:offline:after"
    report.facts.update(dimm=name, blocks=list(blocks), crash_at=crash_at)
    with report.step(f"memras replace dies at {crash_at}") as step:
        status, out, err = memras.run(
            f"replace {name} --backend qemu --qmp {GUEST_QMP} --yes --reserve {RESERVE} "
            "--json", env=f"MEMRAS_TEST_CRASH_AT={crash_at}")
        report.facts["exit_status"] = status
        step.detail = f"exit {status}"
        report.expect(status == 137, f"exit {status}, expected 137: {(out + err)[-300:]}")
    with report.step("kernel vs database: every offline block is recorded") as step:
        kernel = {b: s.state for b, s in actions.block_states(lab, blocks).items()}
        db = _block_rows(memras)
        report.facts.update(kernel_after_crash=kernel, db_after_crash=db)
        step.detail = f"kernel {kernel}, database {db}"
        report.expect(kernel[blocks[0]] == "offline", f"{blocks[0]} is {kernel[blocks[0]]}")
        for block, state in kernel.items():
            if state != "online":
                report.expect(db.get(block) in ("offlining", "offline"),
                              f"{block} is {state} but the database says {db.get(block)}")
    with report.step("memras replace --abort") as step:
        status, out = memras.json("replace --abort", ok=False)
        report.facts.update(abort_status=status, abort_state=out.get("state"),
                            abort_where=out.get("where"))
        step.detail = f"exit {status}: {out.get('state')}: {out.get('where')}"
        report.expect(out.get("state") == "rolled-back", f"abort ended {out.get('state')}")
    with report.step("every block online Movable again; DIMM still in QEMU"):
        states = actions.wait_blocks_online_movable(lab, blocks)
        report.facts["zones"] = {b: s.valid_zones for b, s in states.items()}
        report.facts["db_after_abort"] = _block_rows(memras)
        lab.qmp.dimm(dimm.id)
