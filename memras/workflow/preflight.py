"""Preflight: every reason to refuse a replacement, checked before anything changes.

Each check gives one pass/fail line. The memory reserve is the one tunable:
after the module's online blocks are gone, ``MemAvailable`` must stay at or above
``reserve_bytes``, by default ``max(2 GiB, 10 % of MemTotal)`` — enough for the kernel
to keep migrating pages and for the workload not to be pushed into reclaim or OOM.

NUMA: the global figure hides a node emptied by the removal, and a workload bound to
that node (``numactl --membind``, ``set_mempolicy``) is then pushed into reclaim or OOM
though the host as a whole has memory to spare. So each node the module's online blocks
are on keeps its own reserve after them (``[workflow] node_reserve``: a size, or a share
of the node's MemTotal, default 10 %), and on a host with more than one memory node the
removal may not take a node's last online Movable memory (its movable pages would have to
leave for another node: the kernel's offline migration prefers one). ``--force-node``
overrides both node checks. Both report every node's MemAvailable before and after (the
node's is estimated: memras.host.nodes).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from memras.config import parse_node_reserve
from memras.errors import UsageError
from memras.text import format_bytes
from memras.topology.units import GOES_OUT_WHOLE
from memras.workflow.backends import Backend, Target

if TYPE_CHECKING:
    from memras.host import Host

GiB = 1 << 30
MIN_RESERVE_BYTES = 2 * GiB
RESERVE_FRACTION = 0.10
DEFAULT_NODE_RESERVE = "10%"
# a check that needs blocks, on a target with none (it fails with the mapping)
SKIPPED = "skipped: no memory blocks to check"


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    ok: bool
    detail: str
    data: dict[str, Any] | None = None  # figures behind the detail (--json), if any

    def line(self) -> str:
        return f"{'PASS' if self.ok else 'FAIL'}  {self.name}: {self.detail}"

    def as_dict(self) -> dict[str, Any]:
        out = {"name": self.name, "ok": self.ok, "detail": self.detail}
        return out if self.data is None else {**out, **self.data}


def default_reserve(mem_total: int) -> int:
    """max(2 GiB, 10 % of MemTotal)."""
    return max(MIN_RESERVE_BYTES, int(mem_total * RESERVE_FRACTION))


@dataclass
class PreflightInput:
    host: Host
    target: Target
    mapping_status: str  # mapped | interleaved | unmapped
    mapping_reason: str
    backend: Backend
    force_zone: bool = False
    reserve_bytes: int | None = None
    other_replacement: int | None = None  # id of another replacement holding the lock
    force_node: bool = False  # --force-node: the node checks warn instead of refusing
    node_reserve: str | int | None = None  # [workflow] node_reserve; None: 10 %
    _figures: list[NodeFigures] | None = field(default=None, init=False, repr=False)


def check_privileges(inp: PreflightInput) -> Check:
    if inp.host.is_simulated:
        return Check("privileges", True, "simulated root: writes go to the simulator")
    if inp.host.can_write():
        return Check("privileges", True, "running as root")
    return Check("privileges", False, "memras must run as root to change memory blocks")


def check_mapping(inp: PreflightInput) -> Check:
    t = inp.target
    if t.cxl:  # a CXL memdev (memras.workflow.cxl): its regions' blocks, or none
        ok = inp.mapping_status == "mapped"
        span = (f"{len(t.blocks)} blocks memory{t.blocks[0]}-memory{t.blocks[-1]} "
                f"({format_bytes(t.size)}); " if ok and t.blocks else "")
        return Check("mapping", ok, span + inp.mapping_reason)
    if inp.mapping_status == "mapped" and t.blocks:
        whole = GOES_OUT_WHOLE in inp.mapping_reason  # a unit of several modules
        return Check("mapping", True, f"{len(t.blocks)} blocks memory{t.blocks[0]}-"
                     f"memory{t.blocks[-1]} ({format_bytes(t.size)}) " +
                     (inp.mapping_reason if whole else "belong to this DIMM only"))
    if inp.mapping_status == "interleaved":
        return Check("mapping", False,
                     "this DIMM is interleaved with others, so no memory block belongs to it "
                     "alone; interleaved DIMMs can only be replaced as their whole interleave "
                     f"set / memory device ({inp.mapping_reason})")
    return Check("mapping", False, f"the DIMM's memory blocks are not known: "
                 f"{inp.mapping_reason or 'no mapping found'}")


def check_zones(inp: PreflightInput) -> Check:
    host, bad = inp.host, []
    for block in inp.target.blocks:
        b = host.memory.read(block)
        if b.state == "offline":
            continue  # already offline (a resumed run): nothing to migrate
        if b.zone != "Movable":
            bad.append(f"memory{block} ({b.zone or 'mixed zones'})")
    if not bad:
        return Check("zones", True, "every block is online in ZONE_MOVABLE or already offline")
    text = ", ".join(bad[:4]) + (" …" if len(bad) > 4 else "")
    if inp.force_zone:
        return Check("zones", True, f"--force-zone: not Movable: {text}; offlining may fail")
    return Check("zones", False, f"not in ZONE_MOVABLE: {text}; kernel-zone blocks hold "
                 "unmovable pages and usually cannot be offlined (use --force-zone to try)")


def check_reserve(inp: PreflightInput) -> Check:
    info = inp.host.meminfo.read()
    reserve = inp.reserve_bytes if inp.reserve_bytes is not None else default_reserve(
        info.total)
    online = [b for b in inp.target.blocks if inp.host.memory.state(b) != "offline"]
    removing = len(online) * inp.target.block_size
    after = info.available - removing
    detail = (f"MemAvailable {format_bytes(info.available)} - {format_bytes(removing)} = "
              f"{format_bytes(max(after, 0))}, reserve {format_bytes(reserve)}")
    return Check("memory reserve", after >= reserve, detail)


@dataclass(frozen=True, slots=True)
class NodeFigures:
    """One node the removal touches: its memory now and once the module's blocks are gone."""

    node: int
    mem_total: int
    available_before: int
    removing: int  # bytes of the module's online blocks on this node
    reserve: int
    movable_left: int  # online Movable bytes on the node outside the module
    removing_movable: int = 0  # of ``removing``, the bytes in ZONE_MOVABLE
    memory_nodes: int = 1  # nodes of the host with memory blocks

    @property
    def available_after(self) -> int:
        return max(self.available_before - self.removing, 0)

    @property
    def emptied(self) -> bool:
        """All of the node's memory goes (a CXL node given back whole): MemTotal, which
        leaves out what the kernel reserved, is at most what is removed."""
        return self.removing >= self.mem_total

    def as_dict(self) -> dict[str, Any]:
        return {"node": self.node, "mem_total": self.mem_total,
                "mem_available_before": self.available_before, "removing": self.removing,
                "mem_available_after": self.available_after, "reserve": self.reserve,
                "movable_left": self.movable_left, "removing_movable": self.removing_movable}


def node_reserve_bytes(setting: str | int | None, mem_total: int) -> int:
    """The reserve ``setting`` asks of a node of ``mem_total`` bytes."""
    size, fraction = parse_node_reserve(DEFAULT_NODE_RESERVE if setting is None else setting)
    return size if size is not None else int(mem_total * (fraction or 0.0))


def node_figures(inp: PreflightInput) -> list[NodeFigures]:
    """Per node the target's online blocks are on; [] on a host without node directories.
    Read once per preflight (both node checks use them)."""
    if inp._figures is None:
        inp._figures = removal_node_figures(inp.host, inp.target.blocks, inp.node_reserve)
    return inp._figures


def removal_node_figures(host: Host, blocks: Iterable[int],
                         setting: str | int | None) -> list[NodeFigures]:
    """Per node that ``blocks``' online ones are on, its memory now and once they are
    gone, with the reserve ``setting`` (``[workflow] node_reserve``) asks of it; [] on a
    host without node directories. `memras replace` (a module's blocks) and `memras
    capacity offline` (the blocks it picked) both ask it."""
    mine = set(blocks)
    node_of = host.memory.node_map()
    removing: dict[int, int] = {}
    movable: dict[int, int] = {}
    left: dict[int, int] = {}
    nodes = {node_of[b] for b in mine if b in node_of}
    memory_nodes = len(set(node_of.values()))
    for block, node in node_of.items():
        if node not in nodes:
            continue
        b = host.memory.read(block)
        if block in mine and b.state != "offline":
            removing[node] = removing.get(node, 0) + b.size
            if b.zone == "Movable":
                movable[node] = movable.get(node, 0) + b.size
        elif block not in mine and b.zone == "Movable":
            left[node] = left.get(node, 0) + b.size
    out = []
    for index in sorted(removing):
        numa = host.nodes.read(index)
        out.append(NodeFigures(index, numa.mem_total, numa.available, removing[index],
                               node_reserve_bytes(setting, numa.mem_total),
                               left.get(index, 0), movable.get(index, 0), memory_nodes))
    return out


def _node_text(f: NodeFigures) -> str:
    return (f"node {f.node}: MemAvailable {format_bytes(f.available_before)} - "
            f"{format_bytes(f.removing)} = {format_bytes(f.available_after)}, "
            f"reserve {format_bytes(f.reserve)}")


def _node_check(name: str, force_node: bool, bad: list[str], texts: list[str],
                data: dict[str, Any] | None, why: str) -> Check:
    if not bad:
        return Check(name, True, "; ".join(texts), data)
    if force_node:
        return Check(name, True, f"--force-node: {'; '.join(bad)}", data)
    return Check(name, False, f"{'; '.join(bad)}; {why} (use --force-node to remove anyway)",
                 data)


def check_node_reserve(inp: PreflightInput) -> Check:
    try:
        figures = node_figures(inp)
    except UsageError as exc:
        return Check("node reserve", False, str(exc))
    return node_reserve_check(figures, inp.force_node)


def node_reserve_check(figures: list[NodeFigures], force_node: bool, *,
                       emptied_ok: bool = False) -> Check:
    """Each node keeps its reserve after the removal (``force_node``: a warning).

    ``emptied_ok`` (`memras capacity`, whose request names the memory to give back): a
    node all of whose memory goes keeps nothing to hold a reserve in, so only the
    global reserve (its pages move to other nodes) speaks for it. A replacement keeps
    the refusal: there the operator named a module, not a node."""
    if not figures:
        return Check("node reserve", True, "no NUMA node information; the global reserve holds",
                     {"nodes": []})
    texts = [_node_text(f) + (" (all of the node: the memory reserve covers its pages)"
                              if emptied_ok and f.emptied else "") for f in figures]
    bad = [t + " (below)" for f, t in zip(figures, texts, strict=True)
           if f.available_after < f.reserve and not (emptied_ok and f.emptied)]
    return _node_check("node reserve", force_node, bad, texts,
                       {"nodes": [f.as_dict() for f in figures]},
                       "a workload bound to the node would be pushed into reclaim or OOM; "
                       "lower [workflow] node_reserve if the node can spare it")


def check_node_movable(inp: PreflightInput) -> Check:
    try:
        figures = node_figures(inp)
    except UsageError as exc:
        return Check("node movable", False, str(exc))
    texts = [f"node {f.node} keeps {format_bytes(f.movable_left)} online Movable"
             for f in figures]
    if figures and figures[0].memory_nodes < 2:
        return Check("node movable", True, "one memory node: nothing to lose to another "
                     "node (the memory reserve covers it)")
    bad = [f"this is node {f.node}'s last online Movable memory" for f in figures
           if f.removing_movable and f.movable_left == 0]
    return _node_check("node movable", inp.force_node, bad, texts or ["no NUMA node information"],
                       None, "its movable allocations would have to leave the node")


def check_lock(inp: PreflightInput) -> Check:
    if inp.other_replacement is None:
        return Check("lock", True, "no other replacement in progress")
    return Check("lock", False, f"replacement #{inp.other_replacement} is in progress; "
                 "resume or abort it first")


def check_backend(inp: PreflightInput) -> Check:
    try:
        result = inp.backend.can_remove(inp.target)
    except Exception as exc:  # a plugin's bug is a failed check, not a crash
        return Check(f"backend {inp.backend.name}", False, f"{type(exc).__name__}: {exc}")
    return Check(f"backend {inp.backend.name}", result.ok, result.detail)


CHECKS: tuple[Callable[[PreflightInput], Check], ...] = (
    check_privileges, check_mapping, check_lock, check_zones, check_reserve, check_node_reserve,
    check_node_movable, check_backend,
)


def run_preflight(inp: PreflightInput) -> list[Check]:
    """All checks, in order; the zone/reserve/backend checks need a mapping to mean much
    (a CXL memdev with no online region has no blocks and still goes on: nothing to
    offline)."""
    out = []
    for check in CHECKS:
        if check in (check_zones, check_reserve, check_node_reserve, check_node_movable,
                     check_backend) and not inp.target.blocks and not (
                         inp.target.cxl and inp.mapping_status == "mapped"):
            out.append(Check(check.__name__.removeprefix("check_").replace("_", " "), False,
                             SKIPPED))
            continue
        out.append(check(inp))
    return out
