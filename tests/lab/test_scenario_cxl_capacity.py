"""CXL capacity on the DCD variant of the CXL lab guest (QEMU 10, Linux 6.12; the
Type-3 device has its 256 MiB static ram partition and two dynamic capacity regions).

cxl-capacity: ``memras capacity offline --dax`` gives mem0's region back to devdax under
a workload, with data in the device (blocks gone, MemTotal down by the region, the data
migrated intact) and ``online --dax`` brings it back as system-ram, onlined movable by
memras; daxctl and lsmem agree. cxl-dcd: the facts of
dynamic capacity on 6.12 (QEMU takes the add, the kernel shows no DC partition and never
accepts the extent, memras says "not supported by this kernel"); when a kernel changes
them, this test fails and the docs (hotplug-internals, "CXL dynamic capacity") need a look.

Run alone (it boots its own guest): ``.venv/bin/pytest
tests/lab/test_scenario_cxl_capacity.py -p no:cacheprovider -s``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from memras.lab.cxl_dcd import DcdLab
from memras.lab.guest import LabConfig
from memras.lab.scenarios import (
    cxl_capacity,  # noqa: F401 (registers the scenarios)
    run_scenario,
)
from memras.lab.scenarios import show_report as show
from tests.lab.loud import booted

pytestmark = pytest.mark.lab


@pytest.fixture(scope="module")
def dcd_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DcdLab]:
    yield from booted(DcdLab(LabConfig(cpus=2, boot_timeout_s=600),
                            state_dir=tmp_path_factory.mktemp("cxl-dcd-lab")), "CXL DCD lab guest")


@pytest.mark.timeout(900)
def test_dax_capacity_goes_back_to_devdax_and_returns_under_a_workload(
        dcd_lab: DcdLab) -> None:
    report = run_scenario(dcd_lab, "cxl-capacity", quick=True)
    print(show(report))
    assert report.ok, show(report)
    facts = report.facts
    blocks, size = facts["blocks"], facts["size"]
    off, on = facts["offline"], facts["online"]
    assert off["mode_after"] == off["daxctl_mode"] == "devdax"
    assert sorted(off["blocks"]) == blocks and off["lsmem"] == []
    assert off["mem_total_drop"] == size
    assert off["writes"][0].endswith("/kmem/unbind")
    assert on["mode_after"] == on["daxctl"]["mode"] == "system-ram"
    assert on["onlined"] == [(b, "online_movable") for b in blocks]
    assert on["daxctl"]["movable"] is True and on["daxctl"]["online_memblocks"] == len(blocks)
    assert on["mem_total_gain"] == size
    # the data that sat in the device survived its removal and return
    assert facts["node1_shmem_kb"] >= 8 * 1024 * 9 // 10
    assert off["data_md5"] == facts["data_md5_after"] == facts["data_md5"]
    assert facts["workload_final"]["errors"] == 0


@pytest.mark.timeout(600)
def test_dynamic_capacity_reaches_qemu_but_not_the_612_kernel(dcd_lab: DcdLab) -> None:
    report = run_scenario(dcd_lab, "cxl-dcd", quick=True)
    print(show(report))
    assert report.ok, show(report)
    facts = report.facts
    assert facts["kernel"].startswith("6.12.")
    assert not any(a.startswith("dynamic_ram") for a in facts["memdev_attributes"])
    assert facts["add_reply"] == {} and facts["dmesg_after_add"] == []
    assert "pending" in facts["release_refused"]
    assert facts["memras_dynamic_capacity"]["supported"] is False
