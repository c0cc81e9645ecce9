"""``memras capacity`` end to end on a simulated qemu-guest: exit statuses, JSON, audit."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from memras.audit.service import AuditTrail
from memras.cli import main
from memras.sim import actions, profiles
from memras.store import Store


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return profiles.create("qemu-guest", tmp_path / "root").root


def cli(capsys, *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def block_states(root: Path) -> dict[int, str]:
    base = root / "sys/devices/system/memory"
    return {int(d.name[6:]): (d / "state").read_text().strip()
            for d in base.glob("memory[0-9]*")}


def test_dry_run_json_changes_nothing(root: Path, tmp_path: Path, capsys) -> None:
    before = block_states(root)
    status, out, _ = cli(capsys, "capacity", "offline", "512M", "--dry-run", "--json",
                         "--root", str(root), "--db", str(tmp_path / "m.db"))
    data = json.loads(out)
    assert status == 0 and data["dry_run"] is True
    assert data["blocks"] == [39, 38, 37, 36]
    assert block_states(root) == before
    assert not (tmp_path / "m.db").exists()


def test_partial_offline_exits_64_and_audits_every_block(root: Path, tmp_path: Path,
                                                         capsys) -> None:
    actions.set_unmovable(root, 33)
    db = tmp_path / "m.db"
    status, out, _ = cli(capsys, "capacity", "offline", "--blocks", "32-34", "--yes",
                         "--json", "--max-attempts", "1", "--root", str(root), "--db", str(db))
    data = json.loads(out)
    assert status == 64 and data["exit_status"] == 64
    assert data["changed"] == [32, 34]
    with Store.open(db) as store:
        entries = AuditTrail(store).list()
        assert [e.action for e in entries] == [
            "capacity.offline.start", "capacity.offline.block", "capacity.offline.block",
            "capacity.offline.block", "capacity.offline.result"]
        assert [e.data["ok"] for e in entries[1:4]] == [True, False, True]
        assert AuditTrail(store).verify().ok


def test_rollback_undoes_a_partial_run(root: Path, tmp_path: Path, capsys) -> None:
    actions.set_unmovable(root, 33)
    status, out, _ = cli(capsys, "capacity", "offline", "--blocks", "32-34", "--yes",
                         "--on-failure", "rollback", "--max-attempts", "1", "--root", str(root),
                         "--db", str(tmp_path / "m.db"))
    assert status == 1
    assert "rolled back: memory34, memory32" in out
    assert {block_states(root)[b] for b in (32, 33, 34)} == {"online"}


def test_offline_without_yes_and_terminal_is_refused(root: Path, tmp_path: Path, capsys,
                                                     monkeypatch) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    before = block_states(root)
    status, _, err = cli(capsys, "capacity", "offline", "256M", "--root", str(root),
                         "--db", str(tmp_path / "m.db"))
    assert status == 3 and "without confirmation" in err  # refused
    assert block_states(root) == before


def test_reserve_refusal_is_one_line(root: Path, tmp_path: Path, capsys) -> None:
    status, _, err = cli(capsys, "capacity", "offline", "1G", "--yes", "--reserve", "1G",
                         "--root", str(root), "--db", str(tmp_path / "m.db"))
    assert status == 3  # refused
    assert err.count("\n") == 1 and "memory reserve" in err


@pytest.mark.parametrize("argv", [
    ["capacity", "offline"],
    ["capacity", "offline", "256M", "--blocks", "3"],
    ["capacity", "online", "100M"],
    ["capacity", "online", "256M", "--zone", "Bogus"],
])
def test_bad_input_is_a_usage_error(root: Path, capsys, argv: list[str]) -> None:
    status, out, err = cli(capsys, *argv, "--root", str(root), "--dry-run")
    assert status == 2 and out == "" and err.startswith("memras: ")
    assert "Traceback" not in err
