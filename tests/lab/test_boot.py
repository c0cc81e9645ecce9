"""The booted guest is a real kernel with the layout the rest of memras relies on."""

from __future__ import annotations

from pathlib import Path

import pytest

from memras.lab import actions
from memras.lab.guest import Lab, checkout_root
from memras.lab.scenarios import run_scenario

pytestmark = pytest.mark.lab


def test_guest_runs_commands_and_reports_their_status(lab: Lab) -> None:
    assert lab.run("echo hello; exit_code=3; (exit $exit_code)").status == 3
    result = lab.run("printf 'a\\nb\\n'; echo err >&2")
    assert result.ok
    assert result.output.splitlines() == ["a", "b", "err"]
    status, output = lab.run("echo pair; false")
    assert (status, output) == (1, "pair\n")


def test_exit_in_a_command_does_not_kill_the_console_shell(lab: Lab) -> None:
    assert lab.run("exit 4").status == 4
    assert lab.run("cd /sys && pwd").output.strip() == "/sys"
    assert lab.run("pwd").output.strip() != "/sys"  # each command starts afresh
    assert lab.run("echo still here").output == "still here\n"


def test_guest_has_its_own_kernel_and_flag(lab: Lab) -> None:
    assert lab.check("uname -r").strip() == lab.state.kernel
    assert lab.check("echo $MEMRAS_LAB_GUEST").strip() == "1"
    # The guest's /proc is its own: its cmdline carries the lab's boot options.
    assert "memhp_default_state=online_movable" in lab.check("cat /proc/cmdline")


def test_block_size_is_128_mib(lab: Lab) -> None:
    assert lab.check(f"cat {actions.MEMORY}/block_size_bytes").strip() == "8000000"


def test_dimm0_acpi_device_links_its_movable_blocks(lab: Lab) -> None:
    report = run_scenario(lab, "boot-facts", quick=True)
    assert report.ok, report.error
    assert report.facts["acpi_device"] == "PNP0C80:00"
    dimm = lab.qmp.dimm("dimm0")
    first = dimm["addr"] // 0x8000000
    expected = [f"memory{n}" for n in range(first, first + dimm["size"] // 0x8000000)]
    assert sorted(report.facts["blocks"]) == expected
    assert set(report.facts["zones"].values()) == {"Movable"}


def test_lsmem_runs_in_the_guest_and_shows_the_dimm_range(lab: Lab) -> None:
    out = lab.check("lsmem")
    assert "0x0000000100000000" in out
    assert "Memory block size:       128M" in out


def test_checkout_and_tmp_paths_stay_visible(lab: Lab, tmp_probe: tuple[Path, str]) -> None:
    memras = checkout_root() / ".venv" / "bin" / "memras"
    assert lab.run(f"test -x {memras}").ok, f"{memras} is not visible in the guest"
    probe_dir, token = tmp_probe
    assert lab.check(f"cat {probe_dir / 'token'}").strip() == token
    # …while the guest's /tmp itself is a writable tmpfs of its own.
    assert lab.run("touch /tmp/guest-scratch && rm /tmp/guest-scratch").ok


def test_injection_modules_are_loaded(lab: Lab) -> None:
    modules = lab.check("cut -d' ' -f1 /proc/modules").split()
    for name in ("mce_inject", "hwpoison_inject", "notifier_error_inject",
                 "memory_notifier_error_inject", "9p"):
        assert name in modules
