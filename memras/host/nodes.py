"""NUMA nodes: /sys/devices/system/node (drivers/base/node.c)."""

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


class Nodes:
    def __init__(self, fs: KernelFs) -> None:
        self.fs = fs

    def indexes(self) -> list[int]:
        return sorted(int(n[4:]) for n in self.fs.listdir(NODE_DIR)
                      if n.startswith("node") and n[4:].isdigit())

    def read(self, index: int) -> NumaNode:
        text = self.fs.read(f"{NODE_DIR}/node{index}/meminfo", default="")
        # "Node 0 MemTotal:  123 kB": drop the "Node N" prefix before parsing.
        values = parse_meminfo("\n".join(line.split(" ", 2)[-1] for line in text.splitlines()))
        return NumaNode(
            index=index,
            mem_total=values.get("MemTotal", 0),
            mem_free=values.get("MemFree", 0),
            cpulist=self.fs.read(f"{NODE_DIR}/node{index}/cpulist", default=""),
        )

    def all(self) -> list[NumaNode]:
        return [self.read(i) for i in self.indexes()]
