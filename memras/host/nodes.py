"""NUMA nodes: /sys/devices/system/node (drivers/base/node.c).

``nodeN/meminfo`` has no MemAvailable line (only /proc/meminfo does), so a node's
available memory is estimated the way ``si_mem_available()`` (mm/show_mem.c) builds the
global one, without the watermarks it cannot see from here: free pages, plus half the
file pages (Active(file) + Inactive(file)) and half the reclaimable kernel memory
(KReclaimable, or SReclaimable on kernels before 4.20). The halves are what the kernel
keeps back at most; the estimate therefore errs low, which is the safe side for a reserve.
"""

from __future__ import annotations

from dataclasses import dataclass

from memras.host._fs import KernelFs
from memras.host.meminfo import parse_meminfo

NODE_DIR = "/sys/devices/system/node"


@dataclass(frozen=True, slots=True)
class NumaNode:
    index: int
    mem_total: int  # bytes, from nodeN/meminfo ("Node 0 MemTotal: … kB")
    mem_free: int
    cpulist: str
    file_pages: int = 0  # Active(file) + Inactive(file)
    reclaimable: int = 0  # KReclaimable (SReclaimable before 4.20)

    @property
    def available(self) -> int:
        """MemAvailable estimated for this node (see the module docstring)."""
        return self.mem_free + self.file_pages // 2 + self.reclaimable // 2

    def as_dict(self) -> dict[str, object]:
        return {"node": self.index, "mem_total": self.mem_total, "mem_free": self.mem_free,
                "mem_available": self.available, "cpulist": self.cpulist}


def parse_node_meminfo(text: str) -> dict[str, int]:
    """``Node 0 MemTotal:  123 kB`` lines -> {MemTotal: bytes}."""
    return parse_meminfo("\n".join(line.split(" ", 2)[-1] for line in text.splitlines()))


class Nodes:
    def __init__(self, fs: KernelFs) -> None:
        self.fs = fs

    def indexes(self) -> list[int]:
        return sorted(int(n[4:]) for n in self.fs.listdir(NODE_DIR)
                      if n.startswith("node") and n[4:].isdigit())

    def read(self, index: int) -> NumaNode:
        values = parse_node_meminfo(self.fs.read(f"{NODE_DIR}/node{index}/meminfo", default=""))
        return NumaNode(
            index=index,
            mem_total=values.get("MemTotal", 0),
            mem_free=values.get("MemFree", 0),
            cpulist=self.fs.read(f"{NODE_DIR}/node{index}/cpulist", default=""),
            file_pages=values.get("Active(file)", 0) + values.get("Inactive(file)", 0),
            reclaimable=values.get("KReclaimable", values.get("SReclaimable", 0)),
        )

    def all(self) -> list[NumaNode]:
        return [self.read(i) for i in self.indexes()]
