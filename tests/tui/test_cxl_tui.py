"""A CXL memdev in the TUI, on the simulator's ``cxl-single`` profile (issue 20).

cxl-single: one 256 MiB memdev mem0 (serial 0x0, PCI 0000:0d:00.0) in a 1-way
region0, dax0.0 onlined Movable as blocks 82-83 on node 1 (its own node: the node
checks refuse it unless forced, as `memras replace mem0` without --force-node does).

The database holds three lines the 6.12 CXL lab guest really wrote (tests/unit/
test_cxl_parsers.py: a general media ECC error, a DRAM ECC error, a poison list
entry), re-dated before a pinned clock and judged by the real health engine: the
dashboard lists mem0 after the DIMMs with the verdict `memras dimms` gives it
(memras.health.cxl.memdev_verdicts), ``r`` on it opens the same wizard, which
replaces it to CLOSED, and Enter shows its memdev detail.

Update the snapshot after an intended change: ``pytest tests/tui/test_cxl_tui.py
--snapshot-update``, then look at the SVG.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from memras.tui.app import MemrasApp
from memras.tui.screens.dimm_detail import DimmDetailScreen
from memras.tui.screens.wizard import WizardScreen

from memras.health.api import HealthEngine
from memras.health.dimm_names import attribute_from_host
from memras.host import Host
from memras.ingest.parsers.ftrace import parse_trace_line
from memras.sim import profiles
from memras.store import Store
from memras.workflow.runner import ReplaceOptions
from tests.tui.conftest import settle, wait_until
from tests.tui.helpers import dashboard_ready, static_text, table_rows
from tests.unit.test_cxl_parsers import REAL_612, REAL_612_DRAM, REAL_612_POISON

PINNED_NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
FAST = {"backoff_initial_s": 0.01, "backoff_max_s": 0.02, "max_attempts": 3}


def build(tmp_path: Path, *, with_data: bool = True) -> tuple[Path, Path]:
    srv = profiles.create("cxl-single", tmp_path / "root")
    db = tmp_path / "memras.db"
    with Store.open(db) as store:
        if with_data:
            lines = (REAL_612, REAL_612_DRAM, REAL_612_POISON)
            evs = [replace(parse_trace_line(line),
                           timestamp=PINNED_NOW - timedelta(hours=5 - i))
                   for i, line in enumerate(lines)]
            store.add_events(evs)
            host = srv.host()
            attribute_from_host(store, host)
            HealthEngine(None, store, host).process(evs[:2])
    return srv.root, db


def make_app(root: Path, db: Path, **kw: Any) -> MemrasApp:
    kw.setdefault("clock", lambda: PINNED_NOW)
    kw.setdefault("poll_interval_s", 60)
    return MemrasApp(root, str(db), **kw)


def cli_dimms(root: Path, db: Path) -> dict[str, Any]:
    out = subprocess.run([sys.executable, "-m", "memras", "--root", str(root), "--db",
                          str(db), "--json", "dimms"], capture_output=True, text=True,
                         timeout=120, check=True)
    return json.loads(out.stdout)


async def ready(pilot: Any) -> None:
    await wait_until(pilot, lambda: dashboard_ready(pilot.app))
    await settle(pilot)


async def select_row(pilot: Any, name: str) -> None:
    rows = table_rows(pilot.app.screen, "#dimms")
    index = [r[0] for r in rows].index(name)
    pilot.app.screen.query_one("#dimms").move_cursor(row=index)
    await pilot.pause()


async def test_the_dashboard_lists_the_memdev_as_memras_dimms_judges_it(tmp_path) -> None:
    root, db = build(tmp_path)
    cli = cli_dimms(root, db)["cxl"]
    assert [c["id"] for c in cli] == ["mem0"]
    async with make_app(root, db).run_test(size=(160, 40)) as pilot:
        await ready(pilot)
        rows = {r[0]: r for r in table_rows(pilot.app.screen, "#dimms")}
    mem0 = rows["mem0"]
    # the verdict `memras dimms` gives it: the poison list (cxl-poison) outranks the
    # two corrected media errors
    assert cli[0]["verdict"] == "repair-by-page-offlining" and "cxl-poison" in cli[0]["rules"]
    assert mem0[1].strip() == "~ REPAIR: offline pages", mem0
    # two CEs stored for mem0, and its poison record: an uncorrected error, as `memras
    # summary --dimm mem0` counts it
    assert (mem0[2].strip(), mem0[3].strip()) == ("2", "1")
    assert mem0[5].strip() == "256M"
    assert mem0[6] == "0000:0d:00.0"
    assert mem0[7] == "region0 dax0.0 blocks 82-83 node 1"
    assert len(rows) == len(cli_dimms(root, db)["dimms"]) + 1  # the DIMMs too


async def test_enter_on_the_memdev_shows_its_detail(tmp_path) -> None:
    root, db = build(tmp_path)
    async with make_app(root, db).run_test(size=(120, 60)) as pilot:
        await ready(pilot)
        await select_row(pilot, "mem0")
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(pilot.app.screen, DimmDetailScreen)
                         and pilot.app.screen.detail is not None)
        screen = pilot.app.screen
        identity = static_text(screen, "#identity")
        verdict = static_text(screen, "#verdict")
        timeline = static_text(screen, "#timeline")
        cells = static_text(screen, "#cells")
    assert "CXL memdev mem0" in identity and "0000:0d:00.0" in identity
    assert "region0" in identity and "dax0.0" in identity and "82-83" in identity
    assert "stored CE/UE  2 / 1" in identity  # the poison record is the UE
    assert "1 page(s) listed now, from 1 record(s)" in identity
    assert "cxl-poison" in verdict and "mem0 holds poisoned media (DPA 0x40000)" in verdict
    assert "2 newest events read" in timeline and "2 CE  0 UE" in timeline
    # the DRAM record's bank group 1, bank 3, row 0x42 (rank 1)
    assert "1.1.3×1" in cells and "0x42×1" in cells


async def test_r_on_the_memdev_opens_the_wizard_which_replaces_it(tmp_path) -> None:
    """``r`` pushes the same WizardScreen with ``mem0``; with the default options its
    preflight refuses (the 2G memory reserve; the node checks would too: cxl-single's
    memdev is all of node 1), as `memras replace mem0` does without --reserve and
    --force-node, and says to run `memras replace mem0` (its name, not the PCI function
    it asks to confirm). The same screen with those options set (ReplaceOptions, as the
    CLI's flags set them) then replaces mem0 to CLOSED; the wizard's keys for them are
    test_wizard_overrides.py's."""
    root, db = build(tmp_path, with_data=False)
    app = make_app(root, db, read_only=False, poll_interval_s=0.2)
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(pilot)
        await select_row(pilot, "mem0")
        await pilot.press("r")
        await wait_until(pilot, lambda: isinstance(app.screen, WizardScreen))
        wizard = app.screen
        assert isinstance(wizard, WizardScreen) and wizard.dimm_id == "mem0"
        await wait_until(pilot, lambda: wizard.phase in ("done", "error", "confirm"), 60)
        refused = static_text(wizard, "#wizard-main")
        assert wizard.phase != "confirm", refused
        # the default 2G reserve (the CLI test passes --reserve 128M) refuses first
        assert "REFUSED: nothing was changed" in refused, refused
        assert "memory reserve" in refused and "all 2 blocks" in refused, refused
        assert "try again (or r on the DIMM): memras replace mem0\n" in refused, refused
        # named as the rest of memras names it: mem0, its serial and PCI function (the
        # confirmation still asks the PCI function, as the CLI's does)
        assert static_text(wizard, "#wizard-title").startswith(
            "Replacing mem0 (serial 0x0, 0000:0d:00.0)  ")
        await pilot.press("escape")
        await wait_until(pilot, lambda: not isinstance(app.screen, WizardScreen))

        forced = WizardScreen("mem0", options=ReplaceOptions(
            operator="Ada", policy=FAST, reserve_bytes=128 << 20, force_node=True,
            detect_timeout_s=5))
        app.push_screen(forced)
        await wait_until(pilot, lambda: forced.phase in ("confirm", "error", "done"), 60)
        assert forced.phase == "confirm", static_text(forced, "#wizard-main")
        await pilot.press(*forced.confirmation().name, "enter")
        await wait_until(pilot, lambda: forced.phase in ("swap", "error", "done"), 60)
        assert forced.phase == "swap", static_text(forced, "#wizard-main")
        await pilot.press("t")
        await wait_until(pilot, lambda: forced.phase in ("done", "error"), 60)
        summary = static_text(forced, "#wizard-main")
    assert forced.latest is not None and forced.latest.snapshot["state"] == "closed", summary
    assert "REPLACED" in summary
    host = Host(root)
    assert {m.serial for m in host.cxl.memdevs()} == {0x1}  # the new device
    for index in (82, 83):
        block = host.memory.read(index)
        assert (block.state, block.zone) == ("online", "Movable")


async def test_a_host_without_cxl_gets_no_memdev_rows(tmp_path, monkeypatch) -> None:
    from tests.tui.world import build as build_demo

    world = build_demo(tmp_path, monkeypatch)
    async with make_app(world.root, world.db).run_test(size=(160, 40)) as pilot:
        await ready(pilot)
        names = [r[0] for r in table_rows(pilot.app.screen, "#dimms")]
    assert names and not any(n.startswith("mem") for n in names)


def test_dashboard_snapshot_with_the_memdev(snap_compare, tmp_path) -> None:
    root, db = build(tmp_path)
    assert snap_compare(make_app(root, db), terminal_size=(80, 24), run_before=ready)
