"""``memras capacity --node N`` (issue 18): only that NUMA node's blocks are chosen, a
RANGE's blocks on other nodes are skipped by name, an unknown node is one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from memras.cli import main
from memras.host import Host
from memras.sim import profiles


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return profiles.create("demo", tmp_path / "root").root  # two nodes, Movable DIMMs on each


def dry(root: Path, tmp_path: Path, capsys, *argv: str) -> tuple[int, dict]:
    capsys.readouterr()
    code = main(["--root", str(root), "--db", str(tmp_path / "m.db"), "--json", "capacity",
                 *argv, "--dry-run"])
    return code, json.loads(capsys.readouterr().out)


def test_size_offline_takes_the_named_nodes_blocks(root: Path, tmp_path: Path,
                                                   capsys) -> None:
    node_of = Host(root).memory.node_map()
    code, anywhere = dry(root, tmp_path, capsys, "offline", "512M")
    assert code == 0 and {node_of[b] for b in anywhere["blocks"]} == {1}  # highest first
    code, on0 = dry(root, tmp_path, capsys, "offline", "512M", "--node", "0")
    assert code == 0 and len(on0["blocks"]) == 4
    assert {node_of[b] for b in on0["blocks"]} == {0}
    assert on0["blocks"] == sorted(on0["blocks"], reverse=True)  # chmem's order, downward


def test_range_skips_other_nodes_by_name(root: Path, tmp_path: Path, capsys) -> None:
    node_of = Host(root).memory.node_map()
    last0 = max(b for b, n in node_of.items() if n == 0)
    first1 = min(b for b, n in node_of.items() if n == 1)
    code, data = dry(root, tmp_path, capsys, "offline", "--blocks", f"{last0}-{first1}",
                     "--node", "1")
    assert data["blocks"] == [first1]
    reasons = {s["block"]: s["reason"] for s in data["skipped"]}
    assert reasons[last0] == "on node 0, not node 1"
    assert all(r != "no such memory block" for b, r in reasons.items() if b in node_of)


def test_unknown_node_is_one_line(root: Path, tmp_path: Path, capsys) -> None:
    code = main(["--root", str(root), "--db", str(tmp_path / "m.db"), "capacity", "offline",
                 "512M", "--node", "7", "--dry-run"])
    err = capsys.readouterr().err
    assert code == 2 and "no NUMA node 7" in err and "nodes: 0, 1" in err
    assert "Traceback" not in err


def node_check(doc: dict) -> dict:
    [check] = [c for c in doc["preflight"] if c["name"] == "node reserve"]
    return check


def test_offline_on_a_node_keeps_that_nodes_reserve(root: Path, tmp_path: Path,
                                                   capsys) -> None:
    code, small = dry(root, tmp_path, capsys, "offline", "512M", "--node", "1")
    check = node_check(small)
    [node] = check["nodes"]
    assert code == 0 and check["ok"] and node["node"] == 1
    assert node["mem_available_after"] == node["mem_available_before"] - (512 << 20)
    # all four of node 1's 4 GiB Movable DIMMs: the host could spare them, node 1 cannot
    code, big = dry(root, tmp_path, capsys, "offline", "16G", "--node", "1")
    failed = [c["name"] for c in big["preflight"] if not c["ok"]]
    assert code == 3 and failed == ["node reserve"]
    assert "use --force-node" in node_check(big)["detail"]


def test_offline_anywhere_keeps_every_touched_nodes_reserve(root: Path, tmp_path: Path,
                                                            capsys) -> None:
    """Without --node the blocks come from the highest node first: that node's reserve
    holds all the same (it used to be checked only with --node)."""
    code, anywhere = dry(root, tmp_path, capsys, "offline", "512M")
    assert code == 0 and [n["node"] for n in node_check(anywhere)["nodes"]] == [1]
    code, big = dry(root, tmp_path, capsys, "offline", "16G")
    check = node_check(big)
    assert code == 3 and not check["ok"] and "node 1" in check["detail"]
    code, forced = dry(root, tmp_path, capsys, "offline", "16G", "--force-node")
    assert code == 0 and node_check(forced)["detail"].startswith("--force-node: ")


def test_offline_keeps_the_configured_node_reserve(root: Path, tmp_path: Path,
                                                   capsys) -> None:
    """[workflow] node_reserve (the one `memras replace` keeps) holds for capacity too."""
    config = tmp_path / "memras.toml"
    config.write_text('[workflow]\nnode_reserve = "99%"\n')
    code, doc = dry(root, tmp_path, capsys, "offline", "512M")
    assert code == 0 and node_check(doc)["ok"]
    capsys.readouterr()
    code = main(["--root", str(root), "--db", str(tmp_path / "m.db"), "--config",
                 str(config), "--json", "capacity", "offline", "512M", "--dry-run"])
    check = node_check(json.loads(capsys.readouterr().out))
    assert code == 3 and not check["ok"]
    assert check["nodes"][0]["reserve"] == int(check["nodes"][0]["mem_total"] * 0.99)
    config.write_text('[workflow]\nnode_reserve = "lots"\n')
    code = main(["--root", str(root), "--db", str(tmp_path / "m.db"), "--config",
                 str(config), "capacity", "offline", "512M", "--dry-run"])
    err = capsys.readouterr().err
    assert code == 2 and "node_reserve" in err and "Traceback" not in err
