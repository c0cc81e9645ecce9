"""``numa-replace``: ``memras replace`` of a DIMM on NUMA node 1 of a two-node guest while
a workload bound to node 1 runs (issue 18, deliverable 5).

The guest (:func:`numa_config`, ``memras lab up --numa``): node 0 holds the 1 GiB boot RAM
and CPU 0; node 1 has CPU 1 and no memory of its own but two 256 MiB pc-dimms cold-plugged
with ``node=1`` (slots 0 and 1). The workload is the checksumming one
(memras/lab/workload.py) started through :mod:`memras.lab.numa_bind` —
``set_mempolicy(MPOL_BIND, {1})`` and CPU 1, as ``numactl --membind=1 --physcpubind=1``
would, since the initramfs has no numactl.

Then, in the guest, ``memras replace <slot 1's PNP0C80> --backend qemu`` must close with
the preflight's per-node figures (node 1's MemAvailable before and after, its reserve) in
its JSON, the workload alive with no checksum error, and the new DIMM on node 1 (the qemu
backend passes the old DIMM's ``node`` to ``device_add``). Where the workload's pages
were (``/proc/PID/numa_maps`` N0/N1) and how many pages the kernel migrated
(``/proc/vmstat``) are recorded around the replacement and around the offline below:
the kernel's offline migration (``do_migrate_range`` in mm/memory_hotplug.c) asks for a
target on another node than the one being offlined and does not consult the task's
policy, so what happens to a node-bound workload is measured, not assumed.

Last, on the real kernel: with slot 0's blocks offlined by hand, slot 1's module is
node 1's last Movable memory, and ``replace --dry-run`` must refuse it (node movable)
unless ``--force-node``; slot 0's blocks are onlined Movable again afterwards.
"""

from __future__ import annotations

import re
import time
from typing import Any

from memras.lab import actions
from memras.lab.guest import DimmSpec, Lab, LabConfig, checkout_root
from memras.lab.scenarios.common import GUEST_WORK
from memras.lab.scenarios.registry import ScenarioReport, scenario
from memras.lab.scenarios.replace import (
    GUEST_QMP,
    RESERVE,
    GuestMemras,
    _migrated,
    migration_counters,
    online_movable,
)
from memras.lab.scenarios.workload import LabWorkload

NODE_DIR = "/sys/devices/system/node"
NUMA_DIMMS = (DimmSpec("dimm0", 256, 0, node=1), DimmSpec("dimm1", 256, 1, node=1))
BIND = str(checkout_root() / "memras" / "lab" / "numa_bind.py")
WORKLOAD_MIB = 96  # all of it on node 1 (512 MiB): part of it sits in the pulled DIMM


def numa_config(**overrides: Any) -> LabConfig:
    """The two-node guest: boot RAM on node 0, two pc-dimms on memory-less node 1."""
    fields: dict[str, Any] = {"name": "memras-lab-numa", "numa_nodes": 2, "cpus": 2,
                              "dimms": NUMA_DIMMS, "virtio_mem_mib": 0}
    return LabConfig(**{**fields, **overrides})


def node_meminfo_kb(lab: Lab, node: int) -> dict[str, int]:
    """``nodeN/meminfo`` of the guest, values in kB (the "Node N " prefix dropped)."""
    out = lab.check(f"cat {NODE_DIR}/node{node}/meminfo")
    return {m[1]: int(m[2]) for m in re.finditer(r"Node \d+ (\S+):\s+(\d+)", out)}


def node_blocks(lab: Lab, node: int) -> list[str]:
    out = lab.check(f"ls {NODE_DIR}/node{node}")
    return sorted((n for n in out.split() if re.fullmatch(r"memory\d+", n)),
                  key=lambda n: int(n[6:]))


def pages_per_node(lab: Lab, pid: int) -> dict[str, Any]:
    """Pages of ``pid`` per node (the ``N<node>=<pages>`` fields of numa_maps), with the
    policy the kernel shows for its anonymous mappings."""
    out = lab.run(f"cat /proc/{pid}/numa_maps").output
    pages: dict[str, int] = {}
    policies = set()
    for line in out.splitlines():
        fields = line.split()
        if len(fields) > 1 and "anon=" in line:
            policies.add(fields[1])
            for name, count in re.findall(r"\b(N\d+)=(\d+)", line):
                pages[name] = pages.get(name, 0) + int(count)
    return {**pages, "policies": sorted(policies)}


def _check(doc: dict[str, Any], name: str) -> dict[str, Any]:
    return next((c for c in doc.get("checks") or [] if c.get("name") == name), {})


@scenario("numa-replace", "memras replace of a DIMM on node 1 of a two-node guest while a "
                          "workload bound to node 1 runs (boot it with memras lab up --numa)")
def numa_replace(lab: Lab, report: ScenarioReport) -> None:
    with report.step("two-node guest"):
        nodes = sorted(n for n in lab.check(f"ls {NODE_DIR}").split()
                       if re.fullmatch(r"node\d+", n))
        report.expect(nodes == ["node0", "node1"],
                      f"not the two-node guest (nodes: {nodes}); boot it with "
                      "`memras lab up --numa`")
        keep, pull = (actions.slot_device(lab, d.slot) for d in NUMA_DIMMS)
        on_node1 = node_blocks(lab, 1)
        report.expect(set(keep.blocks) | set(pull.blocks) <= set(on_node1),
                      f"the DIMMs' blocks are not all on node 1: {on_node1}")
        report.facts.update(device=pull.name, blocks=list(pull.blocks),
                            node1_blocks_before=on_node1,
                            node_meminfo_before_kb={n: node_meminfo_kb(lab, n) for n in (0, 1)},
                            qemu_nodes_before={d["id"]: d.get("node")
                                               for d in lab.qmp.memory_devices()})
    lab.check(f"rm -rf {GUEST_WORK}/*; sync; echo 3 > /proc/sys/vm/drop_caches")
    with report.step("workload bound to node 1"):
        workload = LabWorkload(lab, WORKLOAD_MIB, f"{GUEST_WORK}/numa-work",
                               python=f"python3 {BIND} --node 1 --cpu 1 -- python3")
        workload.wait(lambda s: s["passes"] >= 1, "first pass", timeout_s=300)
        before = pages_per_node(lab, workload.pid)
        report.facts["workload_pages_before"] = before
        report.facts["workload_cpus"] = lab.check(
            f"grep Cpus_allowed_list /proc/{workload.pid}/status").split()[-1]
        # its buffer on node 1 (a stray page of the exec on node 0 is no matter)
        report.expect(before.get("N1", 0) >= WORKLOAD_MIB * 256,
                      f"the workload's buffer is not on node 1: {before}")
    memras = GuestMemras(lab, "numa")
    try:
        with report.step("memras replace on node 1"):
            started, counters = time.monotonic(), migration_counters(lab)
            status, doc = memras.json(
                f"replace {pull.name} --backend qemu --qmp {GUEST_QMP} --reserve {RESERVE} "
                "--yes", ok=False, timeout=1200)
            reserve = _check(doc, "node reserve")
            report.facts.update(
                replace_status=status, replace_state=doc.get("state"),
                replace_seconds=round(time.monotonic() - started, 1),
                replace_migrated=_migrated(counters, migration_counters(lab)),
                steps=[s.get("step") for s in doc.get("steps", [])],
                node_reserve=reserve, node_movable=_check(doc, "node movable"))
            report.expect(status == 0 and doc.get("state") == "closed",
                          f"replace exited {status} in state {doc.get('state')}: "
                          f"{doc.get('error')}")
            figures = reserve.get("nodes") or []
            report.expect([f.get("node") for f in figures] == [1],
                          f"the preflight did not report node 1: {reserve}")
            report.expect(all(k in figures[0] for k in (
                "mem_available_before", "mem_available_after", "reserve")),
                f"node 1's MemAvailable before/after missing: {figures}")
        with report.step("after"):
            alive = workload.running()
            report.facts["workload_alive"] = alive
            report.facts["workload_pages_after"] = pages_per_node(lab, workload.pid)
            report.facts["node_meminfo_after_kb"] = {n: node_meminfo_kb(lab, n)
                                                     for n in (0, 1)}
            new = actions.slot_device(lab, pull.uid)
            report.facts["new_blocks"] = list(new.blocks)
            report.facts["node1_blocks_after"] = node_blocks(lab, 1)
            report.facts["qemu_nodes_after"] = {d["id"]: d.get("node")
                                                for d in lab.qmp.memory_devices()}
            report.expect(alive, "the workload bound to node 1 died")
            report.expect(set(new.blocks) <= set(report.facts["node1_blocks_after"]),
                          f"the new module's blocks are not on node 1: {new.blocks}")
        with report.step("last Movable memory of node 1 refused"):
            kept = tuple(keep.blocks)
            counters = migration_counters(lab)
            for block in kept:
                lab.check(f"echo offline > {actions.MEMORY}/{block}/state", timeout=300)
            report.facts["offline_migrated"] = _migrated(counters, migration_counters(lab))
            report.facts["workload_pages_slot0_offline"] = pages_per_node(lab, workload.pid)
            try:
                args = f"replace {pull.name} --dry-run --reserve {RESERVE}"
                # both dry runs in one guest Python (a CLI start-up is ~25 s under TCG)
                plain, with_force = memras.batch([f"{args} --json",
                                                  f"{args} --force-node --json"])
                refused, doc = plain.status, plain.json(args, ok=False)
                forced, forced_doc = with_force.status, with_force.json(args, ok=False)
            finally:
                online_movable(lab, kept)
            movable = _check(doc, "node movable")
            report.facts.update(last_movable_status=refused, last_movable_check=movable,
                                forced_status=forced,
                                forced_check=_check(forced_doc, "node movable"))
            report.expect(refused == 3 and movable.get("ok") is False,
                          f"dry run of node 1's last Movable memory: exit {refused}, {movable}")
            report.expect(forced == 0 and _check(forced_doc, "node movable").get("ok") is True,
                          f"--force-node did not pass: exit {forced}")
    finally:
        final = workload.stop() if workload.running() else workload.status()
        report.facts["workload_final"] = {k: final.get(k) for k in (
            "passes", "errors", "max_stall_ms", "final")}
    report.expect(final.get("errors") == 0 and bool(final.get("final")),
                  f"the workload's last verification: {report.facts['workload_final']}")


def figures(report: ScenarioReport) -> str:
    """One paragraph of what happened, for the test output and the docs."""
    f = report.facts
    node = (f.get("node_reserve", {}).get("nodes") or [{}])[0]
    mib = 1 << 20
    return (f"node 1 MemAvailable {node.get('mem_available_before', 0) // mib} MiB before, "
            f"{node.get('mem_available_after', 0) // mib} MiB after (reserve "
            f"{node.get('reserve', 0) // mib} MiB); replace {f.get('replace_state')} in "
            f"{f.get('replace_seconds')} s, migrated {f.get('replace_migrated')}; workload "
            f"pages before {f.get('workload_pages_before')}, after "
            f"{f.get('workload_pages_after')}, with slot 0 offline "
            f"{f.get('workload_pages_slot0_offline')} (migrated {f.get('offline_migrated')}); "
            f"QEMU nodes after "
            f"{f.get('qemu_nodes_after')}; last-Movable dry run exit "
            f"{f.get('last_movable_status')}, forced {f.get('forced_status')}")
