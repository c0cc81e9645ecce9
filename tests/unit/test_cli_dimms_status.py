"""memras locate / dimms / status through main(), on simulator profiles."""

from __future__ import annotations

import json

import pytest

from memras.cli import main
from memras.host import Host
from memras.sim import profiles


@pytest.fixture
def qemu(tmp_path):
    profiles.create("qemu-guest", tmp_path)
    return str(tmp_path)


def test_locate_text_and_json(qemu, capsys):
    assert main(["--root", qemu, "locate", "0x100000005"]) == 0
    out = capsys.readouterr().out
    assert "memory32" in out and "PNP0C80:00" in out and "Movable" in out
    assert main(["--root", qemu, "--json", "locate", str(0x100000005)]) == 0
    data = json.loads(capsys.readouterr().out)
    assert (data["block"], data["status"], data["acpi_uid"]) == (32, "mapped", "0")


def test_locate_bad_address_is_one_line(qemu, capsys):
    assert main(["--root", qemu, "locate", "xyz"]) == 2
    err = capsys.readouterr().err
    assert err.strip() == ("memras: 'xyz' is not an address "
                           "(give hex like 0x100201000 or decimal)")


def test_locate_reverse_json(qemu, capsys):
    assert main(["--root", qemu, "--json", "locate", "--dimm", "PNP0C80:01"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["status"] == "mapped" and data["blocks"] == [36, 37, 38, 39]


def test_dimms_json_and_table_escape_labels(tmp_path, capsys):
    profiles.create("ghes", tmp_path)
    label = tmp_path / "sys/devices/system/edac/mc/mc0/dimm0/dimm_label"
    label.write_text("N0 DIMM_A0\x1b[2J\n")
    assert main(["--root", str(tmp_path), "--wide", "dimms"]) == 0  # LABEL: 80 drops it
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\\x1b[2J" in out and "VERDICT" in out
    assert main(["--root", str(tmp_path), "--json", "dimms"]) == 0
    rows = json.loads(capsys.readouterr().out)["dimms"]
    assert len(rows) == 12 and all(r["verdict"] == "-" or r["verdict"] for r in rows)


def test_status_json(tmp_path, capsys):
    profiles.create("skylake-2s", tmp_path)
    assert main(["--root", str(tmp_path), "--json", "status"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["memory"]["offline_bytes"] == data["memory"]["block_size"]  # block 94
    present = len(Host(tmp_path).memory.indexes())
    assert present == 96 and sum(b["count"] for b in data["blocks"]) == present
    assert len(data["dimms"]) == 12
    assert main(["--root", str(tmp_path), "status"]) == 0
    assert "DIMMs    12 found" in capsys.readouterr().out
