"""The CXL lab guest with a Dynamic Capacity Device: QEMU 10's ``cxl-type3`` given
dynamic capacity (DC) regions besides its static volatile partition.

:class:`DcdLab` is :class:`memras.lab.cxl.CxlLab` with one change to the command line
(:meth:`DcdLab.machine_argv`): the Type-3 device also gets ``volatile-dc-memdev`` (a
second RAM backend of :data:`DC_MIB` MiB) and ``num-dc-regions`` =
:data:`DC_REGIONS` (QEMU docs/system/devices/cxl.rst, "dynamic capacity device"; each
region's size a multiple of 256 MiB). The static partition stays what
:data:`memras.lab.cxl.CXL_MIB` is, so the device is still ``mem0`` with a 256 MiB ram
partition and every CXL scenario of the default guest runs here too.

:func:`add_dynamic_capacity` and :func:`release_dynamic_capacity` drive QMP's
``cxl-add-dynamic-capacity`` / ``cxl-release-dynamic-capacity`` (QEMU 10's
qapi/cxl.json: ``path``, ``host-id``, ``selection-policy``/``removal-policy``,
``region``, ``extents`` of ``offset``/``len`` within the region). QEMU puts a Dynamic
Capacity event record in the device's DCD event log and raises the event interrupt;
what a host kernel does with it is the kernel's DCD support (not in 6.12: see the
``cxl-dcd`` scenario, :mod:`memras.lab.scenarios.cxl_capacity`).
"""

from __future__ import annotations

from typing import Any

from memras.lab.cxl import CXL_DEVICE, CxlLab, cxl_argv
from memras.lab.guest import Lab

DC_REGIONS = 2
DC_MIB = 512  # two 256 MiB DC regions
DC_BACKEND = "cxl-dcmem0"


def dcd_argv(argv: list[str]) -> list[str]:
    """The CXL guest's command line with DC regions on its Type-3 device."""
    out = cxl_argv(argv)
    i = next(n for n, a in enumerate(out) if a.startswith("cxl-type3,"))
    out[i] += f",volatile-dc-memdev={DC_BACKEND},num-dc-regions={DC_REGIONS}"
    out[i - 1:i - 1] = ["-object",
                        f"memory-backend-ram,id={DC_BACKEND},share=on,size={DC_MIB}M"]
    return out


class DcdLab(CxlLab):
    """The CXL lab guest whose Type-3 device also has dynamic capacity regions."""

    def machine_argv(self, argv: list[str]) -> list[str]:
        return dcd_argv(argv)


def _path() -> str:
    return f"/machine/peripheral/{CXL_DEVICE}"


def _extents(extents: list[tuple[int, int]]) -> list[dict[str, int]]:
    return [{"offset": offset, "len": length} for offset, length in extents]


def add_dynamic_capacity(lab: Lab, *, region: int, extents: list[tuple[int, int]],
                         host_id: int = 0, policy: str = "prescriptive") -> Any:
    """QMP ``cxl-add-dynamic-capacity``: offer ``extents`` (offset, length within DC
    region ``region``) to host ``host_id``."""
    return lab.qmp.cmd("cxl-add-dynamic-capacity", **{
        "path": _path(), "host-id": host_id, "selection-policy": policy,
        "region": region, "extents": _extents(extents)})


def release_dynamic_capacity(lab: Lab, *, region: int, extents: list[tuple[int, int]],
                             host_id: int = 0, policy: str = "prescriptive") -> Any:
    """QMP ``cxl-release-dynamic-capacity``: ask host ``host_id`` to give ``extents`` back."""
    return lab.qmp.cmd("cxl-release-dynamic-capacity", **{
        "path": _path(), "host-id": host_id, "removal-policy": policy,
        "region": region, "extents": _extents(extents)})


def qmp_commands(lab: Lab) -> list[str]:
    """The QMP command names the running QEMU offers (``query-commands``)."""
    return sorted(c["name"] for c in lab.qmp.cmd("query-commands"))
