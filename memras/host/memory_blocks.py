"""Memory blocks: /sys/devices/system/memory (drivers/base/memory.c).

A memory block is the hot(un)plug unit: ``memoryN`` covers physical bytes
``[N * block_size, (N + 1) * block_size)``. Reads are done with plain ``os``
calls because a large host has 16,384 blocks and ``memras blocks`` must keep
pace with util-linux ``lsmem`` (bench/blocks_vs_lsmem.py).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from memras.host._fs import KernelFs

MEMORY_DIR = "/sys/devices/system/memory"
NODE_DIR = "/sys/devices/system/node"
_BLOCK_RE = re.compile(r"memory(\d+)$")

# States memoryN/state may be set to; reading can also give "going-offline".
ONLINE_STATES = ("online", "online_kernel", "online_movable")


@dataclass(frozen=True, slots=True)
class MemoryBlock:
    index: int
    start: int  # first physical byte
    size: int  # block_size_bytes
    state: str  # online | offline | going-offline
    removable: bool | None  # legacy file; None when absent
    valid_zones: tuple[str, ...]  # for an online block: its zone, or ("none",)
    node: int | None
    phys_device: int | None = None

    @property
    def end(self) -> int:
        """Last physical byte (inclusive), as lsmem prints ranges."""
        return self.start + self.size - 1

    @property
    def online(self) -> bool:
        return self.state == "online"

    @property
    def zone(self) -> str | None:
        """The zone of an online block (``Movable``, ``Normal``…), None if offline/mixed."""
        if self.state != "online" or not self.valid_zones or self.valid_zones[0] == "none":
            return None
        return self.valid_zones[0]

    def contains(self, address: int) -> bool:
        return self.start <= address <= self.end


def _read_small(path: str) -> str | None:
    return _read_at(path, None)


def _read_at(name: str, dir_fd: int | None) -> str | None:
    """A small sysfs file's stripped text, or None if it is absent or unreadable."""
    try:
        fd = os.open(name, os.O_RDONLY, dir_fd=dir_fd)
    except OSError:
        return None
    try:
        return os.read(fd, 4096).decode(errors="replace").strip()
    except OSError:
        return None
    finally:
        os.close(fd)


class MemoryBlocks:
    """Reader (and guarded writer) for /sys/devices/system/memory."""

    def __init__(self, fs: KernelFs) -> None:
        self.fs = fs

    @property
    def present(self) -> bool:
        return self.fs.exists(f"{MEMORY_DIR}/block_size_bytes")

    def block_size(self) -> int:
        return self.fs.read_int(f"{MEMORY_DIR}/block_size_bytes", base=16)

    def auto_online_blocks(self) -> str | None:
        value = self.fs.read(f"{MEMORY_DIR}/auto_online_blocks", default="")
        return value or None

    def has_soft_offline(self) -> bool:
        return self.fs.exists(f"{MEMORY_DIR}/soft_offline_page")

    def has_hard_offline(self) -> bool:
        return self.fs.exists(f"{MEMORY_DIR}/hard_offline_page")

    def indexes(self) -> list[int]:
        out = []
        for name in os.listdir(self.fs.path(MEMORY_DIR)) if self.present else []:
            m = _BLOCK_RE.match(name)
            if m:
                out.append(int(m.group(1)))
        out.sort()
        return out

    def node_map(self) -> dict[int, int]:
        """Block index -> NUMA node, from the node directories' ``memoryN`` links.

        Listing each node directory once is far cheaper than scanning every block
        directory for its ``nodeN`` link, which is what lsmem does.
        """
        mapping: dict[int, int] = {}
        node_root = self.fs.path(NODE_DIR)
        try:
            nodes = [n for n in os.listdir(node_root) if n.startswith("node") and n[4:].isdigit()]
        except OSError:
            nodes = []
        if not nodes:
            return self._node_map_from_blocks()
        for node in nodes:
            for name in os.listdir(node_root / node):
                m = _BLOCK_RE.match(name)
                if m:
                    mapping[int(m.group(1))] = int(node[4:])
        return mapping

    def _node_map_from_blocks(self) -> dict[int, int]:
        mapping: dict[int, int] = {}
        base = self.fs.path(MEMORY_DIR)
        for index in self.indexes():
            for name in os.listdir(base / f"memory{index}"):
                if name.startswith("node") and name[4:].isdigit():
                    mapping[index] = int(name[4:])
        return mapping

    def state(self, index: int) -> str:
        """One block's ``state`` alone: one sysfs read where :meth:`read` makes four."""
        return _read_small(str(self.fs.path(f"{MEMORY_DIR}/memory{index}/state"))) or "unknown"

    def read(self, index: int, *, block_size: int | None = None,
             node: int | None = None) -> MemoryBlock:
        bs = block_size if block_size is not None else self.block_size()
        d = str(self.fs.path(f"{MEMORY_DIR}/memory{index}"))
        state = _read_small(f"{d}/state") or "unknown"
        removable = _read_small(f"{d}/removable")
        zones = _read_small(f"{d}/valid_zones")
        phys = _read_small(f"{d}/phys_device")
        return MemoryBlock(
            index=index,
            start=index * bs,
            size=bs,
            state=state,
            removable=None if removable is None else removable == "1",
            valid_zones=tuple(zones.split()) if zones else (),
            node=node,
            phys_device=int(phys) if phys and phys.isdigit() else None,
        )

    def all(self) -> list[MemoryBlock]:
        """Every block, sorted by index.

        The hot path of ``memras blocks``: each block directory is opened once and
        its attributes are read relative to it (``dir_fd``), so the kernel resolves
        the long sysfs path once per block instead of once per attribute.
        ``phys_device`` (an s390 leftover, always 0 elsewhere) is left out here;
        :meth:`read` still reads it.
        """
        if not self.present:
            return []
        bs = self.block_size()
        nodes = self.node_map()
        base = str(self.fs.path(MEMORY_DIR))
        out = []
        for index in self.indexes():
            try:
                dfd = os.open(f"{base}/memory{index}", os.O_RDONLY | os.O_DIRECTORY)
            except OSError:
                continue  # removed between listing and reading (hot-remove race)
            try:
                state = _read_at("state", dfd) or "unknown"
                removable = _read_at("removable", dfd)
                zones = _read_at("valid_zones", dfd)
            finally:
                os.close(dfd)
            out.append(MemoryBlock(
                index=index, start=index * bs, size=bs, state=state,
                removable=None if removable is None else removable == "1",
                valid_zones=tuple(zones.split()) if zones else (),
                node=nodes.get(index)))
        return out

    def index_of(self, address: int) -> int:
        return address // self.block_size()

    # --- writes (guarded by KernelFs) ---------------------------------------------
    def set_state(self, index: int, state: str) -> None:
        """Write ``online_movable``/``online_kernel``/``online``/``offline``.

        Raises OSError with the kernel's errno (EBUSY, EINVAL…) on refusal.
        """
        if state not in (*ONLINE_STATES, "offline"):
            raise ValueError(f"not a memory block state: {state}")
        self.fs.write(f"{MEMORY_DIR}/memory{index}/state", state)

    def soft_offline_page(self, address: int) -> None:
        """Migrate and isolate the page holding ``address`` (a physical byte address)."""
        self.fs.write(f"{MEMORY_DIR}/soft_offline_page", f"{address:#x}")

    def hard_offline_page(self, address: int) -> None:
        """Poison the page holding ``address``; its users may be killed."""
        self.fs.write(f"{MEMORY_DIR}/hard_offline_page", f"{address:#x}")
