"""Preflight per NUMA node (issue 18, deliverable 5): a node the module is on keeps its
``[workflow] node_reserve`` and its last online Movable memory unless --force-node, and
the checks report every touched node's MemAvailable before and after, in text and JSON.

The ``qemu-numa`` simulator profile is the lab's two-node guest: boot RAM on node 0, the
two 512 MiB pc-dimms (PNP0C80:00 over blocks 32-35, PNP0C80:01 over 36-39) on node 1."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from memras.cli import main
from memras.config import parse_node_reserve
from memras.errors import UsageError
from memras.host import Host
from memras.host.nodes import parse_node_meminfo
from memras.sim import profiles
from memras.workflow.preflight import node_reserve_bytes

MiB = 1 << 20


def numa_server(tmp_path: Path) -> tuple[Path, Path]:
    srv = profiles.create("qemu-numa", tmp_path / "root")
    return srv.root, tmp_path / "m.db"


def dry_run(root: Path, db: Path, capsys, *extra: str, config: Path | None = None,
            as_json: bool = True) -> tuple[int, dict | str]:
    capsys.readouterr()
    head = ["--root", str(root), "--db", str(db)]
    if config is not None:
        head += ["--config", str(config)]
    code = main([*head, *(["--json"] if as_json else []), "replace", "PNP0C80:01",
                 "--dry-run", "--reserve", "256M", *extra])
    out = capsys.readouterr().out
    return code, json.loads(out) if as_json else out


def check(doc: dict, name: str) -> dict:
    return next(c for c in doc["checks"] if c["name"] == name)


def test_two_node_profile_places_dimms_on_node_1(tmp_path: Path) -> None:
    root, _ = numa_server(tmp_path)
    host = Host(root)
    assert host.nodes.indexes() == [0, 1]
    node_of = host.memory.node_map()
    assert {node_of[b] for b in range(32, 40)} == {1}
    assert {node_of[b] for b in range(0, 8)} == {0}
    node1 = host.nodes.read(1)
    assert node1.mem_total > 0 and 0 < node1.available <= node1.mem_total
    assert node1.cpulist == "1"


def test_node_meminfo_estimate_counts_half_the_file_and_reclaimable_pages() -> None:
    # the layout of a real nodeN/meminfo (drivers/base/node.c node_read_meminfo)
    text = ("Node 0 MemTotal:       24683784 kB\nNode 0 MemFree:         9752452 kB\n"
            "Node 0 Active(file):    4096800 kB\nNode 0 Inactive(file):  3382968 kB\n"
            "Node 0 KReclaimable:    4869264 kB\nNode 0 HugePages_Total:     0\n")
    values = parse_node_meminfo(text)
    assert values["MemTotal"] == 24683784 * 1024 and values["HugePages_Total"] == 0
    from memras.host.nodes import NumaNode
    node = NumaNode(0, values["MemTotal"], values["MemFree"], "0-1",
                    file_pages=values["Active(file)"] + values["Inactive(file)"],
                    reclaimable=values["KReclaimable"])
    assert node.available == (9752452 + (4096800 + 3382968) // 2 + 4869264 // 2) * 1024


def test_passes_with_figures_before_and_after(tmp_path: Path, capsys) -> None:
    root, db = numa_server(tmp_path)
    code, doc = dry_run(root, db, capsys)
    assert code == 0, doc
    reserve = check(doc, "node reserve")
    assert reserve["ok"] and reserve["detail"].startswith("node 1: MemAvailable ")
    [node] = reserve["nodes"]
    assert node["node"] == 1 and node["removing"] == 512 * MiB
    assert node["mem_available_after"] == node["mem_available_before"] - 512 * MiB
    assert node["reserve"] == node["mem_total"] // 10  # the default: 10 % of the node
    assert node["movable_left"] == 512 * MiB  # PNP0C80:00 stays
    assert check(doc, "node movable")["ok"]
    code, text = dry_run(root, db, capsys, as_json=False)
    assert "PASS  node reserve: node 1: MemAvailable" in text
    assert "PASS  node movable: node 1 keeps 512M online Movable" in text


def test_refuses_a_nodes_last_movable_memory_unless_forced(tmp_path: Path, capsys) -> None:
    root, db = numa_server(tmp_path)
    host = Host(root)
    for block in range(32, 36):  # the other module on node 1 goes offline
        host.memory.set_state(block, "offline")
    code, doc = dry_run(root, db, capsys)
    assert code != 0 and not doc["ok"]
    movable = check(doc, "node movable")
    assert not movable["ok"]
    assert "node 1's last online Movable memory" in movable["detail"]
    assert "--force-node" in movable["detail"]
    code, doc = dry_run(root, db, capsys, "--force-node")
    movable = check(doc, "node movable")
    assert movable["ok"] and movable["detail"].startswith("--force-node: ")


def test_node_reserve_from_config_size_and_percentage(tmp_path: Path, capsys) -> None:
    root, db = numa_server(tmp_path)
    config = tmp_path / "memras.toml"
    config.write_text('[workflow]\nnode_reserve = "600M"\n')
    code, doc = dry_run(root, db, capsys, config=config)
    reserve = check(doc, "node reserve")
    assert code != 0 and not reserve["ok"]
    assert reserve["nodes"][0]["reserve"] == 600 * MiB
    assert "(below)" in reserve["detail"] and "node_reserve" in reserve["detail"]
    code, doc = dry_run(root, db, capsys, "--force-node", config=config)
    assert code == 0 and check(doc, "node reserve")["detail"].startswith("--force-node: ")
    config.write_text('[workflow]\nnode_reserve = "1%"\n')
    code, doc = dry_run(root, db, capsys, config=config)
    node = check(doc, "node reserve")["nodes"][0]
    assert code == 0 and node["reserve"] == node["mem_total"] // 100


def test_bad_node_reserve_is_one_line(tmp_path: Path, capsys) -> None:
    root, db = numa_server(tmp_path)
    config = tmp_path / "memras.toml"
    config.write_text('[workflow]\nnode_reserve = "lots"\n')
    code = main(["--root", str(root), "--db", str(db), "--config", str(config), "replace",
                 "PNP0C80:01", "--dry-run"])
    err = capsys.readouterr().err
    assert code == 2 and "node_reserve" in err and "Traceback" not in err


def test_a_single_node_host_has_no_node_problem(tmp_path: Path, capsys) -> None:
    srv = profiles.create("qemu-guest", tmp_path / "root")
    code, doc = dry_run(srv.root, tmp_path / "m.db", capsys)
    assert check(doc, "node reserve")["ok"] and check(doc, "node movable")["ok"]
    assert [n["node"] for n in check(doc, "node reserve")["nodes"]] == [0]


@pytest.mark.parametrize(("value", "parsed"), [
    ("512M", (512 * MiB, None)), ("2G", (2 << 30, None)), (1048576, (1048576, None)),
    ("10%", (None, 0.10)), ("0%", (None, 0.0)), ("12.5 %", (None, 0.125)),
])
def test_parse_node_reserve(value: object, parsed: tuple) -> None:
    assert parse_node_reserve(value) == parsed


@pytest.mark.parametrize("value", ["lots", "101%", True, "-1G", ""])
def test_parse_node_reserve_refuses(value: object) -> None:
    with pytest.raises(UsageError):
        parse_node_reserve(value)


def test_node_reserve_bytes_default_is_ten_percent() -> None:
    assert node_reserve_bytes(None, 1000 * MiB) == 100 * MiB
    assert node_reserve_bytes("64M", 1000 * MiB) == 64 * MiB
