"""Issue 18, deliverable 2 on a real kernel: the ``acpi`` backend in the guest, the host
adding the new DIMM within 100 ms of the eject (QMP, on DEVICE_DELETED). memras must see
the old module go (its blocks' ``remove`` uevents) although the new one took the same
block numbers, verify the new module and audit a swap — not wait 600 s and "roll back".
"""

from __future__ import annotations

import pytest

from memras.lab import actions
from memras.lab.guest import Lab
from memras.lab.scenarios import run_scenario
from memras.lab.scenarios import show_report as show
from memras.lab.scenarios.fastswap import SWAP_BUDGET_MS, figures


@pytest.mark.lab
@pytest.mark.timeout(1800)
def test_fast_swap_is_seen_verified_and_audited_as_a_swap(lab: Lab) -> None:
    report = run_scenario(lab, "replace-fast-swap", quick=True)
    print(show(report))
    print(figures(report))
    assert report.ok, show(report)
    facts = report.facts
    assert facts["swap"]["deleted"] and facts["swap"]["device_add_ms"] <= SWAP_BUDGET_MS
    assert facts["state"] == "closed" and facts["exit_status"] == 0
    # what memras observed, from the guest kernel's netlink uevents
    removed, inserted = facts["observed_removed"], facts["observed_inserted"]
    assert removed["uevent_source"] == "netlink"
    names = [f"memory{b.removeprefix('memory')}" for b in facts["blocks"]]
    span = f"{names[0]}-{names[-1].removeprefix('memory')}"
    assert removed["removed"] == f"uevents: remove {span}"
    assert inserted["inserted"] == f"uevents: add {span} after the removal"
    seen = inserted["uevents"]  # one watch: every uevent of the module, in order
    for name in names:  # each block removed before it was added again
        assert seen.index(f"remove {name}") < seen.index(f"add {name}")
    assert "rollback" not in facts["audit_actions"]
    assert "swap-observed" not in facts["audit_actions"]
    checks = {c["name"]: c for c in facts["verify_checks"]}
    assert checks["module identity"]["ok"] and "new kernel objects" in checks[
        "module identity"]["detail"]
    assert facts["audit_verify"]["ok"] is True
    assert facts["new_qemu_dimm"] == "dimm1-new"
    assert set(facts["new_zones"].values()) == {"Movable"}
    assert facts["memtotal_after_kb"] == facts["memtotal_before_kb"]
    # the guest is as it was
    assert lab.qmp.dimm("dimm1")["slot"] == 1
    states = actions.block_states(lab, tuple(facts["blocks"]))
    assert {(s.state, s.valid_zones) for s in states.values()} == {("online", "Movable")}
