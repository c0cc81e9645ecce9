"""``Host(root)``: the only object that touches kernel files.

Each attribute is the reader for one kernel interface, named after what it reads;
all share one :class:`KernelFs` rooted at ``root`` (``/`` for the real machine, a
temporary directory for tests and the demo, a captured tree for offline analysis).
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from memras.host._fs import SIM_MARKER, KernelFs
from memras.host.acpi import AcpiMemoryDevices
from memras.host.bert import Bert
from memras.host.cxl import Cxl
from memras.host.edac import Edac
from memras.host.kmsg import Kmsg
from memras.host.meminfo import MemInfoReader
from memras.host.memory_blocks import MemoryBlocks
from memras.host.nodes import Nodes
from memras.host.pstore import Pstore
from memras.host.tracefs import Tracefs

if TYPE_CHECKING:
    from memras.host.smbios import Smbios

__all__ = ["SIM_MARKER", "Host"]


class Host:
    def __init__(self, root: str | Path = "/", *, allow_real_writes: bool = False) -> None:
        self.fs = KernelFs(root, allow_real_writes=allow_real_writes)
        self.root = self.fs.root
        self.memory = MemoryBlocks(self.fs)
        self.nodes = Nodes(self.fs)
        self.meminfo = MemInfoReader(self.fs)
        self.edac = Edac(self.fs)
        self.acpi = AcpiMemoryDevices(self.fs)
        self.kmsg = Kmsg(self.fs)
        self.tracefs = Tracefs(self.fs)
        self.bert = Bert(self.fs)  # errors the firmware logged before this boot
        self.pstore = Pstore(self.fs)  # the previous kernel's last log
        self.cxl = Cxl(self.fs)  # CXL memdevs, regions, DAX devices

    @cached_property
    def smbios(self) -> Smbios:
        # lazy: its table decoders are a quarter of this package's import time, and only
        # commands that name DIMMs read SMBIOS (every command builds a Host)
        from memras.host.smbios import Smbios

        return Smbios(self.fs)

    @property
    def is_real(self) -> bool:
        return self.fs.is_real_root

    @property
    def is_simulated(self) -> bool:
        return self.fs.is_simulated

    def hostname(self) -> str:
        name = self.fs.read("/proc/sys/kernel/hostname", default="")
        return name or os.uname().nodename

    def boot_time(self) -> datetime | None:
        """Wall-clock time of boot, to date events that carry only kernel uptime.

        ``btime`` from /proc/stat (what ps and dmesg -T use); else now - /proc/uptime.
        Like ``dmesg -T`` this ignores suspend time, so it is an estimate.
        """
        for line in self.fs.read("/proc/stat", default="").splitlines():
            if line.startswith("btime "):
                return datetime.fromtimestamp(int(line.split()[1]), UTC)
        uptime = self.fs.read("/proc/uptime", default="").split()
        if uptime:
            return datetime.now(UTC) - timedelta(seconds=float(uptime[0]))
        return None

    def boot_id(self) -> str | None:
        """This boot's random id (/proc/sys/kernel/random/boot_id, drivers/char/random.c):
        a /dev/kmsg sequence number or a trace offset means something only within the
        boot it was read in, so cursors are keyed by it. None when the file is absent
        (a simulated or captured tree without it)."""
        text = self.fs.read("/proc/sys/kernel/random/boot_id", default="").strip()
        return text or None

    def can_write(self) -> bool:
        """Whether kernel writes would be allowed (root user, or a simulated tree)."""
        return self.is_simulated or not self.is_real or os.geteuid() == 0

    def __repr__(self) -> str:
        return f"Host(root={str(self.root)!r})"
