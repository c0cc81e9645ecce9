"""ACPI memory devices: /sys/bus/acpi/devices/PNP0C80:XX (drivers/acpi/acpi_memhotplug.c).

Firmware declares one PNP0C80 device per hot-replaceable memory unit. Its
``physical_node``, ``physical_node1``… links point at the memory blocks it added;
``status`` is 15 when present and enabled, 0 when the slot is empty; ``uid`` is
the firmware's unit id (in QEMU the DIMM slot number); writing 1 to ``eject``
asks the kernel to offline and remove it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from memras.host._fs import KernelFs

ACPI_DEVICES_DIR = "/sys/bus/acpi/devices"
MEMORY_DEVICE_HID = "PNP0C80"
_NODE_LINK_RE = re.compile(r"physical_node(\d*)$")


@dataclass(frozen=True, slots=True)
class AcpiMemoryDevice:
    name: str  # "PNP0C80:00"
    uid: str
    status: int  # _STA bits: 0x1 present, 0x2 enabled, 0x8 functioning
    path: str  # ACPI namespace path, e.g. \_SB_.MHPC.MP00
    blocks: tuple[int, ...]  # memory block indexes linked as physical_node*
    ejectable: bool

    @property
    def present(self) -> bool:
        return bool(self.status & 0x1)


class AcpiMemoryDevices:
    def __init__(self, fs: KernelFs) -> None:
        self.fs = fs

    def names(self) -> list[str]:
        return [n for n in self.fs.listdir(ACPI_DEVICES_DIR)
                if n.startswith(MEMORY_DEVICE_HID + ":")]

    def read(self, name: str) -> AcpiMemoryDevice:
        base = f"{ACPI_DEVICES_DIR}/{name}"
        blocks = []
        for entry in self.fs.listdir(base):
            if _NODE_LINK_RE.match(entry):
                target = self.fs.readlink_name(f"{base}/{entry}")
                if target and target.startswith("memory") and target[6:].isdigit():
                    blocks.append(int(target[6:]))
        return AcpiMemoryDevice(
            name=name,
            uid=self.fs.read(f"{base}/uid", default=""),
            status=self.fs.read_int(f"{base}/status", default=0),
            path=self.fs.read(f"{base}/path", default=""),
            blocks=tuple(sorted(blocks)),
            ejectable=self.fs.exists(f"{base}/eject"),
        )

    def all(self) -> list[AcpiMemoryDevice]:
        return [self.read(n) for n in self.names()]

    def eject(self, name: str) -> None:
        """Ask the kernel to offline and remove the device (ACPI _EJ0)."""
        self.fs.write(f"{ACPI_DEVICES_DIR}/{name}/eject", "1")
