"""Scenario d: a whole replacement with no downtime, on the real kernel.

Inside the guest, a checksumming workload runs the whole time; CEs on dimm1 reach a
replace verdict; ``memras replace --backend qemu --qmp 10.0.2.100:4444`` offlines the
blocks, has QEMU delete the DIMM and add a new one into the same slot, onlines it
Movable and verifies. The offline time is compared with raw sysfs writes to the same
blocks holding the same workload, in A-B-A rounds (raw, memras, raw, ...) whose medians
are printed for the CI log and recorded in docs/performance.md (offline-vs-raw-sysfs).
Deterministic: each CE is logged by the kernel before the next is injected, spaced
wider than the kmsg parser's grouping window, and all of them must be stored.
"""

from __future__ import annotations

import pytest

from memras.errors import LabError
from memras.lab import actions
from memras.lab.console import CommandResult
from memras.lab.guest import Lab
from memras.lab.scenarios import run_scenario
from memras.lab.scenarios import show_report as show
from memras.lab.scenarios.replace import (
    _migrated,
    _rounds,
    alerts_after_replacement,
    figures,
)


@pytest.mark.lab
# One round (quick) of a TCG guest replacement plus the alert check: ~4 min on a quiet
# machine, more at load 10; the suite's 600 s per test would cut a slow but correct run.
@pytest.mark.timeout(1800)
def test_replacement_under_load_has_no_downtime(lab: Lab) -> None:
    report = run_scenario(lab, "replace-no-downtime", quick=True)
    print(show(report))
    print(figures(report))
    assert report.ok, show(report)
    facts = report.facts
    # memras did it all, in the guest, against its real kernel and QEMU.
    assert facts["replace"]["state"] == "closed"
    assert [s["step"] for s in facts["replace"]["steps"]][-1] == "close"
    assert facts["new_qemu_dimm"] != "dimm1"
    assert set(facts["new_zones"].values()) == {"Movable"}
    assert facts["memtotal_after_kb"] == facts["memtotal_before_kb"]
    assert facts["ce_stored"] == len(facts["ce_addrs"])
    assert facts["dimm_verdict"].startswith("replace")
    assert facts["audit_verify"]["ok"] is True
    # Alerts follow the hardware: the old module's are resolved, naming the replacement,
    # and the swap's EDAC counter reset is not alerted.
    alerts = facts["alerts_after_replace"]
    assert alerts["open"] == [] and alerts["resets"] == []
    assert alerts["resolved_by_replacement"]
    # The workload's data sat in the DIMM, was migrated out, and never went bad.
    assert facts["pages_in_dimm_before_replace"] > 0
    assert facts["workload_live"]["pages_in_range"] == 0
    assert facts["workload"]["errors"] == 0 and facts["workload"]["final"] is True
    timing = facts["offline_timing"]
    assert len(timing["rounds"]) == facts["rounds_planned"]
    assert timing["memras_s"] > 0 and all(r > 0 for r in timing["raw_s"])
    assert all(r["memras_kernel_s"] > 0 and r["bookkeeping_s"] > -0.01 for r in timing["rounds"])
    # The guest is as it was: dimm1 back in slot 1, blocks online Movable.
    assert lab.qmp.dimm("dimm1")["slot"] == 1
    states = actions.block_states(lab, tuple(facts["blocks"]))
    assert {s.valid_zones for s in states.values()} == {"Movable"}


# --- the scenario's pure parts, without QEMU ------------------------------------------------


class _FakeQmp:
    def __init__(self, lab: _FakeLab) -> None:
        self.lab = lab

    def inject_mce(self, *args: int) -> None:
        self.lab.injected += 1


class _FakeLab:
    """dmesg already holds ``old`` lines for the address; the poller logs the injection
    after ``polls`` more looks (never, when ``polls`` is None)."""

    def __init__(self, old: int, polls: int | None) -> None:
        self.old, self.polls, self.injected, self.commands = old, polls, 0, []
        self.qmp = _FakeQmp(self)

    def run(self, command: str, timeout: float = 60.0) -> CommandResult:
        self.commands.append(command)
        if "grep -c" not in command:
            return CommandResult(command, 0, "", 0.0)
        logged = self.injected and self.polls is not None and self.polls <= 0
        if self.injected and self.polls is not None:
            self.polls -= 1
        count = self.old + logged
        return CommandResult(command, 0 if count else 1, f"{count}\n", 0.0)

    def check(self, command: str, timeout: float = 60.0) -> str:
        return self.run(command, timeout).output


def test_inject_ce_logged_waits_for_a_new_line_not_an_old_one(monkeypatch) -> None:
    monkeypatch.setattr(actions.time, "sleep", lambda s: None)
    lab = _FakeLab(old=1, polls=3)  # a line from an earlier run is already there
    assert actions.inject_ce_logged(lab, 0x100001000, then_sleep_s=1.5) == 2
    assert lab.injected == 1
    assert sum("grep -c" in c for c in lab.commands) == 1 + 4  # before, then 4 looks
    assert lab.commands[-1] == "sleep 1.5"  # in the guest, after the line appeared


def test_inject_ce_logged_fails_when_the_kernel_never_logs(monkeypatch) -> None:
    monkeypatch.setattr(actions.time, "sleep", lambda s: None)
    clock = iter(range(0, 1000, 5))
    monkeypatch.setattr(actions.time, "monotonic", lambda: next(clock))
    with pytest.raises(LabError, match="did not log the CE at 0x100001000"):
        actions.inject_ce_logged(_FakeLab(old=0, polls=None), 0x100001000, timeout_s=20)


def test_rounds_compare_each_memras_run_with_its_two_raw_neighbours() -> None:
    raw = [{"seconds": s, "block_seconds": [s / 2, s / 2], "pages_in_dimm": 1}
           for s in (1.0, 3.0, 2.0)]
    runs = [{"seconds": 2.2, "block_seconds": [1.0, 1.1], "attempts": [1, 1],
             "pages_in_dimm": 2},
            {"seconds": 2.5, "block_seconds": [1.2, 1.2], "attempts": [1, 2],
             "pages_in_dimm": 2}]
    first, second = _rounds(raw, runs)
    assert (first["raw_s"], first["raw_mean_s"], first["ratio"]) == ([1.0, 3.0], 2.0, 1.1)
    assert (second["raw_s"], second["raw_mean_s"], second["ratio"]) == ([3.0, 2.0], 2.5, 1.0)
    assert first["bookkeeping_s"] == 0.1 and second["memras_kernel_s"] == 2.4
    assert second["memras_attempts"] == [1, 2]


def test_migrated_is_the_counter_difference_with_failures_summed() -> None:
    before = {"pgmigrate_success": 10, "thp_migration_success": 1, "pgmigrate_fail": 0}
    after = {"pgmigrate_success": 1034, "thp_migration_success": 3, "pgmigrate_fail": 2,
             "thp_migration_fail": 1, "thp_migration_split": 1}
    assert _migrated(before, after) == {"pages": 1024, "thp": 2, "thp_split": 1, "fail": 3}


def test_alerts_after_replacement_sorts_open_resets_and_resolved() -> None:
    def alert(n: int, dimm: str, state: str, kind: str = "ue", **evidence: object) -> dict:
        return {"id": n, "dimm": {"id": dimm}, "state": state, "kind": kind,
                "evidence": evidence}

    alerts = [alert(1, "dimm1", "resolved", resolution={"replacement_id": 7}),
              alert(2, "dimm1", "acked"),
              alert(3, "dimm2", "open"),
              alert(4, None, "open", kind="gap", error_type="reset"),
              alert(5, None, "open", kind="gap", error_type="Corrected"),
              alert(6, "dimm1", "resolved", resolution={"replacement_id": 6})]
    assert alerts_after_replacement(alerts, "dimm1", 7) == {
        "open": [2], "resets": [4], "resolved_by_replacement": [1]}
