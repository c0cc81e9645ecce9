"""What several scenarios share: the guest's work directory and the DIMMs they act on."""

from __future__ import annotations

from memras.errors import LabError
from memras.lab.guest import DimmSpec, Lab

GUEST_WORK = "/tmp/memras-lab"  # the guest's tmpfs


def dimm_spec(lab: Lab, dimm_id: str) -> DimmSpec:
    """The lab's DIMM ``dimm_id``: from the config, else from a running guest's state."""
    for dimm in lab.config.dimms:
        if dimm.id == dimm_id:
            return dimm
    if lab.state:
        for data in lab.state.dimms:
            if data["id"] == dimm_id:
                return DimmSpec(str(data["id"]), int(str(data["size_mib"])),
                                int(str(data["slot"])))
    raise LabError(f"the lab has no DIMM {dimm_id}")


def ce_address(lab: Lab, dimm_id: str, offset: int) -> int:
    """A physical address ``offset`` bytes into a DIMM, from QEMU's view of it."""
    return int(lab.qmp.dimm(dimm_id)["addr"]) + offset
