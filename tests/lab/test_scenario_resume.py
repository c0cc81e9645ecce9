"""Issue 18, deliverable 7: ``--resume`` on a real kernel. ``memras replace`` is killed
with SIGKILL inside the offline, remove and online steps (three replacements of dimm1 in
one guest) and each is resumed with ``memras replace --resume`` to a closed replacement
whose audit verifies, with every memory block of the guest online.
"""

from __future__ import annotations

import pytest

from memras.lab import actions
from memras.lab.guest import Lab
from memras.lab.scenarios import run_scenario
from memras.lab.scenarios import show_report as show
from memras.lab.scenarios.resume import figures, kill_points


@pytest.mark.lab
@pytest.mark.timeout(2400)
def test_kill_in_offline_remove_online_then_resume_closes_each(lab: Lab) -> None:
    report = run_scenario(lab, "replace-kill-resume", quick=True)
    print(show(report))
    print(figures(report))
    assert report.ok, show(report)
    runs = report.facts["runs"]
    assert [r["step"] for r in runs] == ["offline_blocks", "remove_module", "online_blocks"]
    for run in runs:
        assert run["exit_status"] == 137 and run["killed"] == "SIGKILL"
        assert run["last_points"][-1] == run["kill_at"]  # killed right there
        assert run["resume_status"] == 0 and run["resume_state"] == "closed"
        assert run["audit_verify_ok"] is True and run["not_online"] == {}
        assert "close" in run["audit_actions"] and "rollback" not in run["audit_actions"]
        assert run["memtotal_after_kb"] == report.facts["memtotal_before_kb"]
    # killed after the first block went offline: the next was still online
    first, second, *_ = report.facts["blocks"]
    assert runs[0]["kernel_after_kill"] == {first: "offline", second: "online"}
    # killed before the removal: both offline, the old DIMM still in
    assert runs[1]["kernel_after_kill"] == {first: "offline", second: "offline"}
    # killed in the online step: the new module is in, its first block onlined only
    assert runs[2]["kernel_after_kill"] == {first: "online", second: "offline"}
    # the resumes did what was left, starting from the killed step
    assert runs[0]["resume_steps"][0] == "offline_blocks"
    assert runs[1]["resume_steps"][0] == "remove_module"
    assert runs[2]["resume_steps"][0] == "online_blocks"
    # the guest is as it was
    assert lab.qmp.dimm("dimm1")["slot"] == 1
    states = actions.block_states(lab, tuple(report.facts["blocks"]))
    assert {(s.state, s.valid_zones) for s in states.values()} == {("online", "Movable")}


def test_kill_points_are_inside_the_three_steps() -> None:
    points = kill_points(("memory36", "memory37"))
    assert points == [("offline_blocks", "block:36:offline:after"),
                      ("remove_module", "step:remove_module:before"),
                      ("online_blocks", "block:36:online_blocks:after")]
