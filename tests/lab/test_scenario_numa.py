"""Issue 18, deliverable 5 on a real kernel: a two-node guest (boot RAM on node 0, two
pc-dimms on node 1), a workload bound to node 1 (set_mempolicy MPOL_BIND + CPU 1), and
``memras replace`` of one node-1 DIMM: the preflight reports node 1's MemAvailable before
and after, the workload survives with no checksum error, the replacement closes, the new
DIMM is on node 1, and node 1's last Movable memory is refused unless --force-node.

The guest is this module's own (``numa_config``), not the shared default guest."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from memras.errors import LabError
from memras.lab.guest import Lab, qemu_argv
from memras.lab.scenarios import run_scenario
from memras.lab.scenarios import show_report as show
from memras.lab.scenarios.numa import figures, numa_config
from tests.lab.loud import lab_unavailable


@pytest.fixture(scope="module")
def numa_guest(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    guest = Lab(numa_config(), state_dir=tmp_path_factory.mktemp("numa-state"))
    try:
        try:
            guest.boot()
        except LabError as exc:
            if "apt-get" in f"{exc.msg} {exc.hint or ''}":
                lab_unavailable(f"the NUMA guest cannot boot: {exc.msg} ({exc.hint})")
            raise
        assert guest.state is not None
        print(f"\nNUMA guest booted in {guest.state.boot_seconds:.1f} s under "
              f"{guest.state.accel}")
        yield guest
    finally:
        guest.shutdown()


@pytest.mark.lab
@pytest.mark.timeout(2400)
def test_replace_a_node1_dimm_under_a_node1_workload(numa_guest: Lab) -> None:
    report = run_scenario(numa_guest, "numa-replace", quick=True)
    print(show(report))
    print(figures(report))
    assert report.ok, show(report)
    f = report.facts
    assert f["replace_status"] == 0 and f["replace_state"] == "closed"
    [node] = f["node_reserve"]["nodes"]
    assert node["node"] == 1 and node["removing"] == 256 << 20
    assert node["mem_available_after"] == max(node["mem_available_before"] - node["removing"],
                                              0)
    assert node["mem_available_after"] >= node["reserve"] > 0
    assert f["node_movable"]["ok"] is True
    assert f["workload_alive"] is True and f["workload_final"]["errors"] == 0
    assert f["workload_cpus"] == "1"
    assert f["workload_pages_before"]["policies"] == ["bind:1"]
    # the new DIMM went into slot 1 on node 1, and the old one's blocks came back there
    assert set(f["qemu_nodes_after"].values()) == {1}
    assert set(f["new_blocks"]) <= set(f["node1_blocks_after"])
    assert f["last_movable_status"] == 3 and f["last_movable_check"]["ok"] is False
    assert "last online Movable memory" in f["last_movable_check"]["detail"]
    assert f["forced_status"] == 0


def test_numa_guest_command_line(tmp_path) -> None:
    """The -numa arguments QEMU gets (no guest needed): node 0 with the boot RAM as its
    memdev, node 1 memory-less with CPU 1, both DIMMs with node=1."""
    from memras.lab.kernel import Kernel

    kernel = Kernel(version="6.1.0-test", root=tmp_path)
    argv = qemu_argv("qemu", numa_config(), kernel, tmp_path / "initrd", "tcg", tmp_path)
    joined = " ".join(argv)
    assert "-object memory-backend-ram,id=ram-node0,size=1024M" in joined
    assert "-numa node,nodeid=0,cpus=0,memdev=ram-node0 -numa node,nodeid=1,cpus=1" in joined
    assert "pc-dimm,id=dimm0,memdev=mem-dimm0,slot=0,node=1" in joined
    assert "pc-dimm,id=dimm1,memdev=mem-dimm1,slot=1,node=1" in joined
    assert "-numa" not in qemu_argv("qemu", numa_config(numa_nodes=1, dimms=()), kernel,
                                    tmp_path / "i", "tcg", tmp_path)
