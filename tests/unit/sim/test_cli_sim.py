"""``memras sim``: a simulated server made from the command line, errors injected into it
reach the store through the ordinary watcher, and nothing is written to a real root."""

from __future__ import annotations

import json

import pytest

from memras.cli import main
from memras.sim import profiles


def run(capsys, *args: str) -> tuple[int, dict | str, str]:
    code = main(list(args))
    out = capsys.readouterr()
    try:
        return code, json.loads(out.out), out.err
    except ValueError:
        return code, out.out, out.err


def test_profiles_lists_every_profile_with_what_it_is(capsys):
    code, data, _ = run(capsys, "sim", "profiles", "--json")
    assert code == 0
    assert [p["name"] for p in data["profiles"]] == list(profiles.PROFILES)
    assert all(p["about"] for p in data["profiles"])


def test_create_inject_watch_errors_round_trip(capsys, tmp_path):
    code, made, _ = run(capsys, "sim", "create", "skylake-2s", str(tmp_path / "srv"), "--json")
    assert code == 0 and made["root"] == str(tmp_path / "srv" / "root")
    root, db = made["root"], made["db"]
    code, shot, _ = run(capsys, "--root", root, "sim", "inject", "P1-DIMMB1", "--count", "4",
                        "--json")
    assert code == 0 and shot["count"] == 4 and shot["type"] == "corrected"
    code, _, _ = run(capsys, "--root", root, "sim", "inject", "P1-DIMMB1", "--ue", "--json")
    assert code == 0
    assert run(capsys, "--root", root, "--db", db, "--json", "watch", "--once")[0] == 0
    code, rows, _ = run(capsys, "--root", root, "--db", db, "--json", "errors")
    stored = rows["errors"] if isinstance(rows, dict) else rows
    assert sorted((e["type"], e["count"]) for e in stored) == [("Corrected", 4),
                                                                 ("Uncorrected", 1)]
    assert {e["address"] for e in stored} >= {shot["address"]}


def test_insert_plugs_a_module_into_an_empty_slot(capsys, tmp_path):
    code, made, _ = run(capsys, "sim", "create", "qemu-guest", str(tmp_path / "g"), "--json")
    code, plugged, _ = run(capsys, "--root", made["root"], "sim", "insert", "2", "--serial",
                           "NEW-1", "--json")
    assert code == 0 and len(plugged["blocks"]) > 0


@pytest.mark.parametrize("argv, says", [
    (["sim", "create", "no-such-profile", "{tmp}/x"], "unknown simulator profile"),
    (["sim", "create", "demo", "{tmp}/full"], "not an empty directory"),
    (["sim", "inject", "P1-DIMMA1", "--count", "0", "--root", "{tmp}/s/root"], "at least one"),
])
def test_refusals_are_one_line_and_exit_2(capsys, tmp_path, argv, says):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("")
    profiles.create("skylake-2s", tmp_path / "s" / "root")
    code = main([a.replace("{tmp}", str(tmp_path)) for a in argv])
    err = capsys.readouterr().err
    assert code == 2 and says in err and len(err.strip().splitlines()) == 1


def test_a_real_root_is_refused_in_one_line_exit_3(capsys):
    code = main(["--root", "/", "sim", "inject", "P1-DIMMA1"])
    err = capsys.readouterr().err
    assert code == 3 and "not a simulated server" in err and len(err.strip().splitlines()) == 1
