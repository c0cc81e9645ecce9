"""The wizard's preflight overrides, driven by Pilot on simulated servers.

A refusal `memras replace` lifts with a flag (--force-zone, --force-node, --reserve,
--whole-region) offers a key per flag in the wizard: it states the risk, takes the
module's name typed (the reserve also a size), and runs preflight again as a new
replacement whose select row in the audit trail holds the option and who chose it. A
refusal no flag lifts offers no key. A CXL memdev is named as the rest of memras names
it (mem0, its serial and PCI function), not by its PCI function alone.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from memras.tui.app import MemrasApp
from memras.tui.screens.help import HelpScreen
from memras.tui.screens.override import OverrideScreen
from memras.tui.screens.wizard import WizardScreen

from memras.audit.service import AuditTrail
from memras.host import Host
from memras.sim import profiles
from memras.sim.actions import set_unmovable
from memras.store import Store
from memras.workflow.runner import ReplaceOptions
from tests.tui.conftest import settle, wait_until
from tests.tui.helpers import static_text
from tests.tui.test_half_done import screen_lines
from tests.tui.world import PINNED_NOW, World, build

DIMM = "P1-DIMMB1"  # the demo's memory32-memory63, PNP0C80:00
FAST = {"backoff_initial_s": 0.01, "backoff_max_s": 0.02, "max_attempts": 4}
OVERRIDE_KEYS = ("z", "n", "w", "s")


@pytest.fixture
def quiet_world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> World:
    return build(tmp_path, monkeypatch, with_data=False)


def make_app(root: Path, db: Path) -> MemrasApp:
    return MemrasApp(root, str(db), read_only=False, clock=lambda: PINNED_NOW,
                     poll_interval_s=60)


def kernel_zone(root: Path, block: int, *, movable_pages: bool = True) -> None:
    """Online ``block`` in ZONE_NORMAL (the simulator's kernel takes the writes). The
    simulator then marks it as holding unmovable pages, as a kernel zone soon does;
    ``movable_pages`` clears that: a kernel-zone block that still offlines, the case
    --force-zone is for."""
    memory = Host(root, allow_real_writes=True).memory
    memory.set_state(block, "offline")
    memory.set_state(block, "online_kernel")
    assert memory.read(block).zone == "Normal"
    if movable_pages:
        set_unmovable(root, block, False)


def cxl_app(tmp_path: Path, profile: str) -> tuple[MemrasApp, Path]:
    """An app on a fresh simulated server of ``profile`` and an empty database (its path)."""
    srv = profiles.create(profile, tmp_path / "root")
    db = tmp_path / "memras.db"
    Store.open(db).close()
    return make_app(srv.root, db), db


async def open_wizard(app: MemrasApp, pilot: Any, dimm: str, **options: Any) -> WizardScreen:
    await pilot.pause()
    wizard = WizardScreen(dimm, options=ReplaceOptions(operator="Ada", policy=FAST,
                                                       detect_timeout_s=10, **options))
    app.push_screen(wizard)
    await reach(pilot, wizard, ("done", "confirm"))
    return wizard


async def reach(pilot: Any, wizard: WizardScreen, phases: tuple[str, ...],
                timeout_s: float = 60) -> None:
    await wait_until(pilot, lambda: wizard.phase in (*phases, "error", "done"), timeout_s)
    assert wizard.phase in phases, static_text(wizard, "#wizard-main")


def shown_keys(app: MemrasApp) -> set[str]:
    """The override keys the footer shows now."""
    return {key for key, binding in app.active_bindings.items()
            if key in OVERRIDE_KEYS and binding.enabled}


async def accept(pilot: Any, key: str, *typed: str) -> OverrideScreen:
    """Press the override ``key`` and type ``typed`` into its fields, each with enter."""
    app = pilot.app
    await pilot.press(key)
    await wait_until(pilot, lambda: isinstance(app.screen, OverrideScreen))
    modal = app.screen
    assert isinstance(modal, OverrideScreen)
    for text in typed:
        await pilot.press(*text, "enter")
        await pilot.pause()
    return modal


def selects(db: Path) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(options, actor) of every replacement's select row, oldest first."""
    with Store.open(db) as store:
        return [(e.data["options"], e.actor) for e in AuditTrail(store).list()
                if e.action == "select"]


async def test_force_zone_after_a_kernel_zone_refusal_replaces_the_module(
        quiet_world: World) -> None:
    root = quiet_world.root
    kernel_zone(root, 40)
    app = make_app(root, quiet_world.db)
    async with app.run_test(size=(120, 40)) as pilot:
        wizard = await open_wizard(app, pilot, DIMM)
        assert wizard.phase == "done"
        refused = static_text(wizard, "#wizard-main")
        assert "REFUSED" in refused and "memory40 (Normal)" in refused, refused
        assert " z  --force-zone: try to offline blocks" in refused, refused
        assert shown_keys(app) == {"z"}
        first = wizard.latest.snapshot["id"] if wizard.latest else None

        modal = await accept(pilot, "z", "P1-DIMMA1")  # another module's label: refused
        assert app.screen is modal
        risk = static_text(modal, "#override-detail")
        assert "may refuse to offline them or take long" in risk, risk
        assert f"type the slot label {DIMM}" in risk, risk
        assert "not the slot label P1-DIMMB1" in static_text(modal, "#override-error")
        await pilot.press(*DIMM.lower(), "enter")  # case folded, as the wizard's own

        await reach(pilot, wizard, ("confirm",))
        main = static_text(wizard, "#wizard-main")
        assert "PASS  zones: --force-zone: not Movable: memory40 (Normal)" in main, main
        assert "with --force-zone: the checks above were told to go on" in main, main
        assert wizard.latest is not None and wizard.latest.snapshot["id"] != first
        assert not shown_keys(app)
        await pilot.press(*DIMM, "enter")
        await reach(pilot, wizard, ("swap",))
        await pilot.press("t")
        await reach(pilot, wizard, ("done",))
        summary = static_text(wizard, "#wizard-main")
    assert "REPLACED" in summary, summary
    assert wizard.latest is not None and wizard.latest.snapshot["state"] == "closed"
    host = Host(root)
    assert all(host.memory.read(b).state == "online" for b in range(32, 64))
    (plain, _), (forced, actor) = selects(quiet_world.db)
    assert not plain["force_zone"] and forced["force_zone"]
    assert actor["operator"] == "Ada" and actor["user"]  # who accepted it
    with Store.open(quiet_world.db) as store:
        preflight = [e for e in AuditTrail(store).list(replacement_id=wizard.latest.snapshot["id"])
                     if e.action == "preflight"]
    zones = next(c for c in preflight[0].data["checks"] if c["name"] == "zones")
    assert zones["ok"] and zones["detail"].startswith("--force-zone:")


async def test_a_refusal_no_flag_lifts_offers_no_key(quiet_world: World) -> None:
    """P1-DIMMA1 is boot memory (DMA32, Normal) that no ACPI device ejects: --force-zone
    would lift its zones check, but the backend's refusal stands, so nothing is offered."""
    app = make_app(quiet_world.root, quiet_world.db)
    async with app.run_test(size=(120, 40)) as pilot:
        wizard = await open_wizard(app, pilot, "P1-DIMMA1")
        assert wizard.phase == "done"
        refused = static_text(wizard, "#wizard-main")
        assert "FAIL  zones" in refused and "FAIL  backend simulated" in refused, refused
        assert "go on anyway" not in refused
        assert not shown_keys(app)
        await pilot.press("z")
        await pilot.pause(0.1)
        assert app.screen is wizard and wizard.phase == "done"
    assert len(selects(quiet_world.db)) == 1


async def test_the_reserve_override_takes_a_size(quiet_world: World) -> None:
    app = make_app(quiet_world.root, quiet_world.db)
    async with app.run_test(size=(120, 40)) as pilot:
        wizard = await open_wizard(app, pilot, DIMM, reserve_bytes=1 << 40)
        assert shown_keys(app) == {"s"}
        modal = await accept(pilot, "s", "lots")
        assert "not a size: 'lots'" in static_text(modal, "#override-error")
        assert app.screen is modal
        await pilot.press(*"512M", "enter", *DIMM, "enter")
        await reach(pilot, wizard, ("confirm",))
        main = static_text(wizard, "#wizard-main")
        await pilot.press("escape")  # nothing was changed: the replacement ends
        await reach(pilot, wizard, ("done",))
    assert "reserve 512M" in main and "with --reserve 512M" in main, main
    assert [o["reserve_bytes"] for o, _ in selects(quiet_world.db)] == [1 << 40, 512 << 20]


async def test_escape_in_the_override_changes_nothing(quiet_world: World) -> None:
    kernel_zone(quiet_world.root, 40)
    app = make_app(quiet_world.root, quiet_world.db)
    async with app.run_test(size=(120, 40)) as pilot:
        wizard = await open_wizard(app, pilot, DIMM)
        await accept(pilot, "z")
        await pilot.press("escape")
        await wait_until(pilot, lambda: app.screen is wizard)
        assert wizard.phase == "done" and shown_keys(app) == {"z"}
    assert len(selects(quiet_world.db)) == 1


async def test_a_cxl_memdev_is_named_and_its_refusals_lifted_one_by_one(tmp_path) -> None:
    """cxl-single's mem0 is all of node 1 and 256M: the default reserve and the node checks
    refuse it; n then s (the size and the name typed) get it to the confirmation, which
    still asks the PCI function as `memras replace mem0` does."""
    app, db = cxl_app(tmp_path, "cxl-single")
    async with app.run_test(size=(120, 40)) as pilot:
        wizard = await open_wizard(app, pilot, "mem0")
        title = static_text(wizard, "#wizard-title")
        assert title.startswith("Replacing mem0 (serial 0x0, 0000:0d:00.0)  (replacement #1")
        target = static_text(wizard, "#wizard-target")
        assert target.startswith("Module  mem0 (serial 0x0, 0000:0d:00.0)\n"), target
        assert "CXL memdev, PCIe slot 2" in target and "memory82–memory83" in target
        assert shown_keys(app) == {"n", "s"}
        asked = wizard.confirmation().name
        assert asked == "0000:0d:00.0"
        modal = await accept(pilot, "n")
        assert "mem0 (serial 0x0, 0000:0d:00.0)" in static_text(modal, "#override-detail")
        await pilot.press(*asked, "enter")
        await reach(pilot, wizard, ("done",))
        assert shown_keys(app) == {"s"}  # --force-node is carried: the reserve is left
        await accept(pilot, "s", "128M", asked)
        await reach(pilot, wizard, ("confirm",))
        main = static_text(wizard, "#wizard-main")
    assert "with --force-node, --reserve 128M" in main, main
    options = [o for o, _ in selects(db)]
    assert [(o["force_node"], o["reserve_bytes"]) for o in options] == [
        (False, None), (True, None), (True, 128 << 20)]


async def test_two_overrides_and_help_fit_the_footer_at_80x24(tmp_path: Path) -> None:
    """cxl-single's mem0 is refused on the reserve and on node 1: n and s are offered at
    once. At 80 columns the footer (the screen's last line) still shows both with their
    flags, q Quit and ? Help; the navigation keys cut at the edge are listed by ?."""
    app, _ = cxl_app(tmp_path, "cxl-single")
    async with app.run_test(size=(80, 24)) as pilot:
        wizard = await open_wizard(app, pilot, "mem0")
        assert shown_keys(app) == {"n", "s"}
        await settle(pilot)
        footer = screen_lines(app)[-1]
        for shown in ("esc Cancel/Back", "q Quit", "n --force-node", "s --reserve", "? Help"):
            assert shown in footer, footer
        await pilot.press("question_mark")
        await wait_until(pilot, lambda: isinstance(app.screen, HelpScreen))
        listed = static_text(app.screen, "#help Static")
        await pilot.press("escape")
        await wait_until(pilot, lambda: app.screen is wizard)
    for ident in ("wizard.force_node", "wizard.reserve_bytes", "screen.dashboard",
                  "screen.map", "screen.alerts", "screen.audit"):
        assert ident in listed, listed


async def test_whole_region_is_offered_for_an_interleaved_memdev(tmp_path) -> None:
    """The cxl profile's region0 interleaves mem0 with mem1: only --whole-region lifts
    the mapping (the checks that need blocks are skipped, not counted)."""
    app, db = cxl_app(tmp_path, "cxl")
    async with app.run_test(size=(120, 40)) as pilot:
        wizard = await open_wizard(app, pilot, "mem0", reserve_bytes=128 << 20,
                                   force_node=True)
        assert shown_keys(app) == {"w"}, static_text(wizard, "#wizard-main")
        modal = await accept(pilot, "w")
        assert "every memdev in the region" in static_text(modal, "#override-detail")
        await pilot.press(*wizard.confirmation().name, "enter")
        await reach(pilot, wizard, ("confirm",))
        main = static_text(wizard, "#wizard-main")
        target = static_text(wizard, "#wizard-target")
    assert "goes out whole" in main and "4 memory blocks: memory82–memory85" in target, main
    assert [o["whole_region"] for o, _ in selects(db)] == [False, True]


async def test_a_wizard_opened_with_r_runs_under_the_apps_config(quiet_world: World,
                                                                 tmp_path: Path) -> None:
    """The wizard `r` opens has no options of its own: it takes the app's --config, as
    `memras replace --config` does — here a node reserve no node can keep, so the
    refusal names it and offers --force-node; the replacement's options keep the file."""
    config = tmp_path / "memras.toml"
    config.write_text('[workflow]\nnode_reserve = "99%"\n')
    app = MemrasApp(quiet_world.root, str(quiet_world.db), read_only=False,
                    clock=lambda: PINNED_NOW, poll_interval_s=60, config_path=config)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        wizard = WizardScreen(DIMM)
        app.push_screen(wizard)
        await reach(pilot, wizard, ("done",))
        refused = static_text(wizard, "#wizard-main")
        assert "FAIL  node reserve" in refused, refused
        assert shown_keys(app) == {"n"}
    [(options, _)] = selects(quiet_world.db)
    assert options["node_reserve"] == "99%" and options["alerts_config"] == str(config)
