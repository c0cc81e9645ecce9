"""Issue 18, errors from before this boot, in the lab: a fatal machine check panics a
guest of its own (booted with the ramoops reservation), QEMU resets it with its RAM
kept, and after the reboot memras in the guest imports the previous kernel's ramoops
dump (once, however often it is imported) and the crashed DIMM's verdict has moved.

Its own guest: the crash and reboot would disturb the shared one's other scenarios.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from memras.errors import LabError
from memras.lab.guest import DimmSpec, Lab, LabConfig
from memras.lab.scenarios import run_scenario
from memras.lab.scenarios import show_report as show
from memras.lab.scenarios.pstore import RAMOOPS_CMDLINE
from tests.lab.loud import lab_unavailable

pytestmark = pytest.mark.lab

CRASH_GUEST = LabConfig(name="memras-lab-pstore", boot_mib=1024, slots=2, maxmem_mib=2048,
                        cpus=2, dimms=(DimmSpec("dimm0", 256, 0),), virtio_mem_mib=0,
                        forwards=(), guest_qmp=False, cmdline_extra=RAMOOPS_CMDLINE)


@pytest.fixture(scope="module")
def crash_guest(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    guest = Lab(CRASH_GUEST, state_dir=tmp_path_factory.mktemp("pstore-state"))
    started = time.monotonic()
    try:
        guest.boot()
    except LabError as exc:
        guest.shutdown()
        if "apt-get" in f"{exc.msg} {exc.hint or ''}":
            lab_unavailable(f"the pstore guest cannot boot: {exc.msg} ({exc.hint})")
        raise
    print(f"\npstore guest booted in {time.monotonic() - started:.1f} s")
    try:
        yield guest
    finally:
        guest.shutdown()


def test_fatal_mce_survives_the_reset_in_pstore_and_moves_the_verdict(crash_guest: Lab) -> None:
    report = run_scenario(crash_guest, "pstore", quick=True)
    print(show(report))
    assert report.ok, show(report)
    facts = report.facts
    assert any(f.startswith("dmesg-ramoops-") for f in facts["pstore_files"])
    assert any("Kernel panic" in line for line in facts["dump_tail"])
    assert facts["import"]["inserted"] >= 1 and facts["import_again"]["inserted"] == 0
    fatal = [e for e in facts["errors"] if e["address"] == int(facts["addr"], 16)]
    assert [e["type"] for e in fatal] == ["Fatal"] and fatal[0]["source"] == "pstore"
