"""The replacement wizard driven by Pilot on a simulated demo server.

Happy path, wrong confirmation, EBUSY → rollback, cancel → rollback, and resume after a
real kill -9 (the engine's crash hook in a `memras replace` subprocess).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from memras.tui.app import MemrasApp
from memras.tui.screens.wizard import WizardScreen

from memras.audit.service import AuditTrail
from memras.host import Host
from memras.sim import actions
from memras.store import Store
from memras.workflow.runner import ReplaceOptions
from tests.tui.conftest import wait_until
from tests.tui.helpers import static_text
from tests.tui.world import PINNED_NOW, World, build

DIMM = "P1-DIMMB1"
FAST = {"backoff_initial_s": 0.01, "backoff_max_s": 0.02, "max_attempts": 4}


@pytest.fixture
def quiet_world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> World:
    return build(tmp_path, monkeypatch, with_data=False)


def make_app(world: World) -> MemrasApp:
    return MemrasApp(world.root, str(world.db), read_only=False, clock=lambda: PINNED_NOW,
                     poll_interval_s=0.2)


async def open_wizard(app: MemrasApp, pilot: Any, dimm: str | None = DIMM,
                      policy: dict | None = None) -> WizardScreen:
    await pilot.pause()
    wizard = WizardScreen(dimm, options=ReplaceOptions(operator="Ada", policy=policy or FAST))
    app.push_screen(wizard)
    await wait_until(pilot, lambda: wizard.phase not in ("opening", "preflight"))
    return wizard


async def reach(pilot: Any, wizard: WizardScreen, phase: str, timeout_s: float = 60) -> None:
    """Wait for the wizard to reach ``phase`` (a simulated swap took 20-27 s on the shared
    2-core machine at load 10: the timeout is for a hang, not a measure)."""
    await wait_until(pilot, lambda: wizard.phase in (phase, "error"), timeout_s)
    assert wizard.phase == phase, static_text(wizard, "#wizard-main")


def module_blocks(wizard: WizardScreen) -> list[int]:
    assert wizard.latest is not None
    return list(wizard.latest.snapshot["target"]["target"]["blocks"])


def audit_actions(world: World) -> list[tuple[str, str]]:
    with Store.open(world.db) as store:
        return [(e.action, e.data.get("outcome", "")) for e in AuditTrail(store).list()
                if e.replacement_id is not None]


async def test_happy_path_replaces_the_module(quiet_world: World) -> None:
    app = make_app(quiet_world)
    host = Host(quiet_world.root)
    async with app.run_test(size=(120, 40)) as pilot:
        wizard = await open_wizard(app, pilot)
        await reach(pilot, wizard, "confirm")
        main = static_text(wizard, "#wizard-main")
        assert "PASS  zones" in main and "FAIL" not in main
        assert f"Type the slot label {DIMM} to go on" in main
        blocks = module_blocks(wizard)
        await pilot.press(*"P1-DIMMA1", "enter")  # the wrong label changes nothing
        await pilot.pause(0.2)
        assert wizard.phase == "confirm"
        assert all(host.memory.read(b).state == "online" for b in blocks)
        await pilot.press(*DIMM, "enter")
        await reach(pilot, wizard, "swap")
        swap = static_text(wizard, "#wizard-main")
        assert "PHYSICAL SWAP" in swap and "Pull exactly this module" in swap
        assert DIMM in swap and "PNP0C80" in swap and "press t" in swap
        assert all(host.memory.read(b).state == "offline" for b in blocks)
        await pilot.press("t")
        await reach(pilot, wizard, "done")
        summary = static_text(wizard, "#wizard-main")
        assert "REPLACED" in summary and "new module detected: 32 blocks" in summary
    assert wizard.latest is not None and wizard.latest.snapshot["state"] == "closed"
    for index in blocks:
        block = host.memory.read(index)
        assert (block.state, block.zone) == ("online", "Movable")
    assert [a for a, _ in audit_actions(quiet_world)] == [
        "select", "preflight", "soft_offline_pages", "offline_blocks", "remove_module",
        "insert_module", "online_blocks", "verify", "close"]


async def test_confirmation_takes_the_slot_label_as_the_cli_does(quiet_world: World) -> None:
    """One rule with `memras replace`: the slot label printed on the board (case folded);
    the EDAC label or the id, though they name the same module, do not confirm."""
    app = make_app(quiet_world)
    async with app.run_test(size=(120, 40)) as pilot:
        wizard = await open_wizard(app, pilot, dimm="mc0/dimm2")  # named by id
        await reach(pilot, wizard, "confirm")
        title = static_text(wizard, "#wizard-title")
        target = static_text(wizard, "#wizard-target")
        assert title.startswith(f"Replacing {DIMM} ") and "CPU_SrcID" not in title
        assert target.startswith(f"Module  {DIMM}   serial D3A5F1DD3")
        assert "\n        CPU_SrcID#0_MC#0_Chan#1_DIMM#0\n        id mc0/dimm2" in target
        for wrong in ("CPU_SrcID#0_MC#0_Chan#1_DIMM#0", "mc0/dimm2", "P1-DIMMB"):
            await pilot.press(*wrong, "enter")
            await pilot.pause(0.1)
            assert wizard.phase == "confirm", wrong
        await pilot.press(*DIMM.lower(), "enter")
        await reach(pilot, wizard, "swap")


async def test_ebusy_rolls_back_and_the_blocks_are_online_again(quiet_world: World) -> None:
    app = make_app(quiet_world)
    host = Host(quiet_world.root)
    async with app.run_test(size=(120, 40)) as pilot:
        wizard = await open_wizard(app, pilot)
        await reach(pilot, wizard, "confirm")
        blocks = module_blocks(wizard)
        actions.set_busy(quiet_world.root, blocks[5], 1000)
        await pilot.press(*DIMM, "enter")
        await reach(pilot, wizard, "done")
        summary = static_text(wizard, "#wizard-main")
        assert "ROLLED BACK" in summary and "EBUSY" in summary
        assert "all 32 blocks of the old module are online" in summary
    for index in blocks:
        block = host.memory.read(index)
        assert (block.state, block.zone) == ("online", "Movable"), index
    trail = audit_actions(quiet_world)
    assert ("offline_blocks", "failed") in trail and trail[-1] == ("rollback", "ok")


async def test_cancel_while_offlining_rolls_back(quiet_world: World) -> None:
    app = make_app(quiet_world)
    host = Host(quiet_world.root)
    slow = {"backoff_initial_s": 0.2, "backoff_max_s": 0.2, "max_attempts": 500}
    async with app.run_test(size=(120, 40)) as pilot:
        wizard = await open_wizard(app, pilot, policy=slow)
        await reach(pilot, wizard, "confirm")
        blocks = module_blocks(wizard)
        actions.set_busy(quiet_world.root, blocks[3], 10_000)  # stuck retrying block 4
        await pilot.press(*DIMM, "enter")
        await wait_until(pilot, lambda: "block 4 of 32" in
                         static_text(wizard, "#wizard-progress-label"))
        assert wizard.query_one("#wizard-progress").display
        await pilot.press("c")
        await reach(pilot, wizard, "done")
        assert "ROLLED BACK" in static_text(wizard, "#wizard-main")
        assert "cancelled" in static_text(wizard, "#wizard-log")
    assert all(host.memory.read(b).state == "online" for b in blocks)
    assert audit_actions(quiet_world)[-1] == ("rollback", "ok")


def crash_mid_offline(world: World) -> None:
    """`memras replace` killed as by kill -9 right after the 10th block went offline."""
    blocks = [b.index for b in Host(world.root).memory.all() if b.zone == "Movable"]
    env = {**os.environ, "MEMRAS_TEST_CRASH_AT": f"block:{blocks[9]}:offline:after"}
    proc = subprocess.run([sys.executable, "-m", "memras", "--root", str(world.root), "--db",
                           str(world.db), "replace", DIMM, "--yes"],
                          env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 137, proc.stderr


async def test_interrupted_replacement_is_offered_and_resumed(quiet_world: World) -> None:
    crash_mid_offline(quiet_world)
    host = Host(quiet_world.root)
    offline = [b.index for b in host.memory.all() if b.state == "offline"]
    assert len(offline) == 10
    app = make_app(quiet_world)
    async with app.run_test(size=(120, 40)) as pilot:
        wizard = await open_wizard(app, pilot, dimm=None)
        await reach(pilot, wizard, "interrupted")
        text = static_text(wizard, "#wizard-main")
        assert "INTERRUPTED REPLACEMENT" in text and "offline_blocks" in text
        assert "10 of 32 blocks" in text
        await pilot.press("enter")
        await reach(pilot, wizard, "swap")
        await pilot.press("t")
        await reach(pilot, wizard, "done")
        assert "REPLACED" in static_text(wizard, "#wizard-main")
    assert all(host.memory.read(b).state == "online" for b in offline)
    assert audit_actions(quiet_world)[-1] == ("close", "ok")


async def test_interrupted_replacement_can_be_aborted(quiet_world: World) -> None:
    crash_mid_offline(quiet_world)
    app = make_app(quiet_world)
    async with app.run_test(size=(120, 40)) as pilot:
        wizard = await open_wizard(app, pilot, dimm=None)
        await reach(pilot, wizard, "interrupted")
        await pilot.press("a")
        await reach(pilot, wizard, "done")
        assert "ROLLED BACK" in static_text(wizard, "#wizard-main")
    host = Host(quiet_world.root)
    assert all(b.state == "online" for b in host.memory.all() if b.zone == "Movable")


async def test_hostile_label_renders_as_plain_text(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    world = build(tmp_path, monkeypatch, label="[bold]red[/]EVIL", with_data=False)
    app = make_app(world)
    async with app.run_test(size=(120, 40)) as pilot:
        wizard = await open_wizard(app, pilot, dimm="mc0/dimm2")
        await reach(pilot, wizard, "confirm")
        assert "[bold]red[/]EVIL" in static_text(wizard, "#wizard-target")
