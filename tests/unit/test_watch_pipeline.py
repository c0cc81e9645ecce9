"""End to end on a simulated server: a recorded error stream goes through `memras watch`
→ store → verdict → alert, once, and an exec hook sees rasdaemon-compatible variables.

The stream (tests/fixtures/streams/demo-row-fault.*) is twelve corrected errors on one
row of P1-DIMMA1 as skx_edac reports them, both as /dev/kmsg records and as
ras:mc_event trace lines: the same errors from two sources, which must be stored once.
"""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path

import pytest

from memras.cli import main
from memras.sim import profiles


@pytest.fixture
def env_recorder(tmp_path: Path) -> tuple[Path, Path]:
    """A real trigger script that appends its environment (one JSON object per run)."""
    out = tmp_path / "env.jsonl"
    script = tmp_path / "trigger.py"
    script.write_text(
        f"#!{sys.executable}\nimport json, os\n"
        f"with open({str(out)!r}, 'a') as f:\n"
        "    f.write(json.dumps(dict(os.environ)) + '\\n')\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script, out


def memras(*args: str) -> int:
    return main(list(args))


def run_json(capsys, *args: str):
    capsys.readouterr()
    assert memras(*args, "--json") == 0
    return json.loads(capsys.readouterr().out)


def test_stream_is_stored_once_judged_and_alerted(server, tmp_path, env_recorder, capsys):
    script, env_out = env_recorder
    config = tmp_path / "memras.toml"
    config.write_text(f'[alerts.hooks.exec]\ncommand = ["{script}"]\ntimeout = "10s"\n'
                      '[page]\naction = "off"\n')
    db = str(tmp_path / "memras.db")
    common = ["--root", str(server), "--db", db, "--config", str(config)]

    stats = run_json(capsys, "watch", "--once", *common)
    sources = stats["sources"]
    assert sources["kmsg"]["read"] == 12 and sources["trace"]["read"] == 12
    assert sources["kmsg"]["inserted"] + sources["trace"]["inserted"] == 12
    assert sources["kmsg"]["duplicates"] + sources["trace"]["duplicates"] == 12

    errors = run_json(capsys, "errors", "--db", db)
    assert len(errors) == 12
    verdicts = run_json(capsys, "verdicts", *common)
    text = json.dumps(verdicts)
    assert "repair-by-page-offlining" in text or "replace" in text

    alerts = run_json(capsys, "alerts", "list", "--state", "all", "--db", db)
    row_alerts = [a for a in alerts if a.get("kind") == "verdict-changed"
                  and "row" in a.get("message", "")]
    assert len(row_alerts) == 1, alerts

    runs = [json.loads(line) for line in env_out.read_text().splitlines()]
    assert runs, "the exec hook never ran"
    env = runs[-1]
    # rasdaemon's mc_event trigger variables, with its value formats.
    assert env["TYPE"] == "Corrected"
    assert env["LABEL"] == "CPU_SrcID#0_MC#0_Chan#0_DIMM#0"
    assert env["MC_INDEX"] == "0" and env["TOP_LAYER"] == "0" and env["MIDDLE_LAYER"] == "0"
    assert env["LOWER_LAYER"] == "-1"
    assert env["ADDRESS"] and not env["ADDRESS"].startswith("0x")
    int(env["ADDRESS"], 16)
    assert env["GRAIN"] == "5"  # log2(32): rasdaemon passes grain_bits
    assert env["TIMESTAMP"][:4].isdigit()
    # mcelog's DIMM trigger variables.
    assert int(env["CECOUNT"]) >= 1 and env["UCCOUNT"] == "0"
    assert env["MEMRAS_ALERT_ID"].isdigit()


def test_second_watch_run_resumes_without_duplicates(server, tmp_path, capsys):
    db = str(tmp_path / "memras.db")
    run_json(capsys, "watch", "--once", "--no-health", "--root", str(server), "--db", db)
    again = run_json(capsys, "watch", "--once", "--no-health", "--root", str(server), "--db", db)
    assert all(s["inserted"] == 0 for s in again["sources"].values())
    assert again["sources"]["kmsg"]["read"] == 0  # resumed after the last stored seq
    assert len(run_json(capsys, "errors", "--db", db)) == 12


def test_malformed_lines_are_counted_not_fatal(server, tmp_path, capsys):
    trace = server / ".memras-sim" / "trace"
    with open(trace, "a") as f:
        f.write("  kworker/0:1-311 [000] ..... 9999.000001: mc_event: garbage \x1b[2J here\n")
        f.write("\x00\xff not even a trace line\n")
    db = str(tmp_path / "memras.db")
    stats = run_json(capsys, "watch", "--once", "--no-health", "--root", str(server), "--db", db)
    assert stats["sources"]["trace"]["skipped"] == 1
    assert stats["sources"]["trace"]["errors"] == 0
    assert len(run_json(capsys, "errors", "--db", db)) == 12


def test_watch_refuses_unknown_source(server, tmp_path, capsys):
    rc = memras("watch", "--once", "--sources", "kmsg,bogus", "--root", str(server),
                "--db", str(tmp_path / "m.db"))
    assert rc == 2
    assert "unknown source(s): bogus" in capsys.readouterr().err


def test_nothing_written_outside_root(server, tmp_path, capsys):
    def memras_tmp() -> dict[Path, float]:
        # the lab's lock and guest directories belong to lab runs that may be going on
        # beside this test (a developer's bench); they are not this watcher's writes
        return {p: p.stat().st_mtime for p in Path("/tmp").glob("memras*")
                if not p.name.startswith(("memras-lab", "memras-latency-lab"))}

    before = memras_tmp()
    run_json(capsys, "watch", "--once", "--root", str(server), "--db", str(tmp_path / "m.db"))
    after = memras_tmp()
    assert before == after
    assert os.environ["MEMRAS_FORBID_REAL_WRITES"] == "1"


def test_capacity_policy_becomes_a_watch_task_when_configured(tmp_path):
    """[capacity] gives the watcher a task that offlines standby memory once memory has
    stayed plentiful for the hold time (driven here with explicit clock values)."""
    from memras.cli.context import Context
    from memras.cli.watch import capacity_tasks
    from memras.host import Host
    from memras.store import Store

    root = tmp_path / "guest"
    profiles.create("qemu-guest", root)
    host = Host(root)
    standby = [b.index for b in host.memory.all() if "Movable" in b.valid_zones][-2:]
    assert all(host.memory.read(i).online for i in standby)
    config = tmp_path / "memras.toml"
    config.write_text('[capacity]\nstandby = "256M"\non_available_below = "64M"\n'
                      'off_available_above = "128M"\nhold_s = 10\nmin_dwell_s = 5\n')
    ctx = Context(root=root, db=str(tmp_path / "m.db"), json=False, config=str(config))
    store = Store.open(ctx.db)
    (task,) = capacity_tasks(ctx, store, None)
    for now in (1000.0, 1005.0, 1011.0, 1012.0):
        task(now)
    assert [host.memory.read(i).state for i in standby] == ["offline", "offline"]
    ctx.config = None
    assert capacity_tasks(ctx, store, None) == []
