"""The DCD variant of the CXL lab guest's QEMU command line (memras.lab.cxl_dcd): the
default CXL guest's device set plus dynamic capacity regions on the same Type-3 device."""

from __future__ import annotations

from memras.lab.cxl import CXL_DEVICE, CxlLab, cxl_argv
from memras.lab.cxl_dcd import DC_BACKEND, DC_MIB, DC_REGIONS, DcdLab, dcd_argv

BASE = ["qemu-system-x86_64", "-machine", "pc,accel=tcg", "-cpu", "Nehalem", "-m", "1G"]


def test_the_type3_device_gets_dc_regions_and_its_backend_comes_first() -> None:
    plain, dcd = cxl_argv(BASE), dcd_argv(BASE)
    device = next(a for a in dcd if a.startswith("cxl-type3,"))
    assert device == next(a for a in plain if a.startswith("cxl-type3,")) + (
        f",volatile-dc-memdev={DC_BACKEND},num-dc-regions={DC_REGIONS}")
    assert f"id={CXL_DEVICE}" in device and "volatile-memdev=cxl-vmem0" in device
    backend = dcd.index(f"memory-backend-ram,id={DC_BACKEND},share=on,size={DC_MIB}M")
    assert dcd[backend - 1] == "-object" and backend < dcd.index(device)
    # everything else is the default CXL guest's, in its order
    rest = dcd[:backend - 1] + dcd[backend + 1:]
    assert rest == [device if a.startswith("cxl-type3,") else a for a in plain]
    assert DC_MIB % DC_REGIONS == 0 and (DC_MIB // DC_REGIONS) % 256 == 0  # QEMU's rule


def test_the_variant_changes_only_the_command_line() -> None:
    assert DcdLab.machine_argv is not CxlLab.machine_argv
    assert DcdLab.boot is CxlLab.boot
