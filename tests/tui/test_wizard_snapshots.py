"""The wizard's look at every phase a user sees, at 80x24 and 120x40.

Preflight running and refused (one override offered, and two), the typed
confirmation, offlining in progress, the physical swap, an interrupted replacement
offered for resuming, waiting for the new module, REPLACED (the new module onlined and
the verify checks), rolled back, and stopped with the blocks left offline (where the
memory is and the command to continue): each must show the slot label (P1-DIMMB1).
Onlining has no screen of its own: the simulated insert comes back online (Movable)
and the wizard shows the wait text until REPLACED.

Deterministic: the demo profile with no errors, a pinned clock, a fresh database (so
replacement #1). A phase that is over in a blink is frozen where a user would see it:
a kernel write (or the preflight) is held until the app closes (the wizard's cancel,
which closing it sets, lets it go), and the clocks that make its timing text are
pinned: the offline engine's (its ETA is elapsed / done × left) advances a fixed step
a call, the wizard's (elapsed while waiting) reads 2:05 after the wait starts. Running
the file twice without ``--snapshot-update`` after recording shows it is stable.

Update after an intended change: ``pytest tests/tui/test_wizard_snapshots.py
--snapshot-update``, then look at the SVGs.
"""

from __future__ import annotations

import errno
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from memras.tui.app import MemrasApp
from memras.tui.screens import wizard as wizard_module
from memras.tui.screens.wizard import WizardScreen
from memras.tui.widgets.wizard_panels import next_commands
from textual.widgets import Input

from memras.host.memory_blocks import MemoryBlocks
from memras.sim.actions import set_busy
from memras.workflow import offline as offline_module
from memras.workflow import runner as runner_module
from memras.workflow.runner import ReplaceOptions
from tests.tui.conftest import settle, wait_until
from tests.tui.world import PINNED_NOW, build

SIZES = [(80, 24), (120, 40)]
DIMM = "P1-DIMMB1"
FIRST = 32  # the demo's P1-DIMMB1 is memory32–memory63
FAST = {"backoff_initial_s": 0.01, "backoff_max_s": 0.02, "max_attempts": 4}
HOLD_LIMIT_S = 60.0  # a held write lets go by itself if the app never closes


def app_for(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> MemrasApp:
    world = build(tmp_path, monkeypatch, with_data=False)
    return MemrasApp(world.root, str(world.db), read_only=False, clock=lambda: PINNED_NOW,
                     poll_interval_s=60)


@dataclass
class Freeze:
    """Holds one engine call until the wizard is closed; ``reached`` once it is held."""

    wizard: WizardScreen | None = None
    reached: threading.Event = field(default_factory=threading.Event)

    def hold(self) -> None:
        self.reached.set()
        cancel = self.wizard.driver.cancel if self.wizard and self.wizard.driver else None
        if cancel is not None:
            cancel.wait(HOLD_LIMIT_S)


def hold_write(monkeypatch: pytest.MonkeyPatch, freeze: Freeze, block: int,
               state: str) -> None:
    """The first write of ``state`` (offline / online…) to ``block`` waits for ``freeze``,
    then fails with EBUSY (the app is closing; the wizard's cancel stops the step)."""
    real = MemoryBlocks.set_state

    def set_state(self: MemoryBlocks, index: int, new: str) -> None:
        if index == block and new.startswith(state) and not freeze.reached.is_set():
            freeze.hold()
            raise OSError(errno.EBUSY, "held by the snapshot test")
        real(self, index, new)

    monkeypatch.setattr(MemoryBlocks, "set_state", set_state)


def pin_engine_clock(monkeypatch: pytest.MonkeyPatch, step_s: float = 0.75) -> None:
    """The offline engine's monotonic clock advances ``step_s`` a call (its only caller
    is the wizard's one worker thread, so the ETA it computes is the same every run)."""
    now = [1000.0]

    def monotonic() -> float:
        now[0] += step_s
        return now[0]

    monkeypatch.setattr(offline_module, "time", SimpleNamespace(monotonic=monotonic))


def pin_wizard_clock(monkeypatch: pytest.MonkeyPatch, elapsed_s: float = 125.0) -> None:
    """The wizard's clock for "elapsed": its first reading starts the wait, every later
    one is ``elapsed_s`` after it (the text ticks every second and stays the same)."""
    readings: list[float] = []

    def monotonic() -> float:
        readings.append(500.0 if not readings else 500.0 + elapsed_s)
        return readings[-1]

    monkeypatch.setattr(wizard_module, "time", SimpleNamespace(monotonic=monotonic))


async def still(pilot: Any) -> None:
    """Settled enough for a phase whose worker is held (settle() waits for workers)."""
    await pilot.pause()
    await pilot.wait_for_scheduled_animations()
    await pilot.pause(0.1)
    await pilot.pause()


def to_phase(phase: str, *, options: ReplaceOptions | None = None,
             freeze: Freeze | None = None,
             ready: Callable[[WizardScreen], bool] | None = None):
    """Open the wizard on P1-DIMMB1 and walk it to ``phase``: type the slot label at the
    confirmation, then at the swap step press t (simulated technician) or enter (any
    other backend)."""
    order = ["preflight", "confirm", "offlining", "swap", "swapping", "done"]

    async def run_before(pilot: Any) -> None:
        wizard = WizardScreen(DIMM, options=options or ReplaceOptions(operator="Ada",
                                                                      policy=FAST))
        if freeze is not None:
            freeze.wizard = wizard
        pilot.app.push_screen(wizard)
        target = order.index(phase) if phase in order else len(order)
        if target >= order.index("confirm"):
            await wait_until(pilot, lambda: wizard.phase in ("confirm", "done"), 20)
        if wizard.phase == "confirm":
            wizard.query_one(Input).cursor_blink = False  # a blinking cursor is no regression
            if target > order.index("confirm"):
                await pilot.press(*DIMM, "enter")
                await wait_until(pilot, lambda: wizard.phase != "confirm", 20)
        if target > order.index("swap"):
            await wait_until(pilot, lambda: wizard.phase in ("swap", "done"), 20)
            if wizard.phase == "swap":
                simulated = wizard.latest and wizard.latest.snapshot["backend"] == "simulated"
                await pilot.press("t" if simulated else "enter")
        if ready is not None:
            await wait_until(pilot, lambda: ready(wizard), 20)
        if freeze is not None:
            await wait_until(pilot, freeze.reached.is_set, 20)
        if freeze is None and phase not in ("swapping",):
            await wait_until(pilot, lambda: wizard.phase == phase, 20)
            await settle(pilot)  # the wizard's worker done, its messages shown, frame drawn
        else:
            await still(pilot)
        assert wizard.phase == phase, wizard.phase

    return run_before


def snap(snap_compare: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
         size: tuple[int, int], run_before: Any) -> bool:
    return bool(snap_compare(app_for(tmp_path, monkeypatch), terminal_size=size,
                             run_before=run_before))


size_ids = pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")


@size_ids
def test_preflight_running(snap_compare, tmp_path, monkeypatch, size) -> None:
    """The checks are running (held inside them): the slot label in the line saying so."""
    freeze = Freeze()
    real = runner_module.run_preflight

    def held(inp: Any) -> Any:
        freeze.hold()
        return real(inp)

    monkeypatch.setattr(runner_module, "run_preflight", held)
    assert snap(snap_compare, tmp_path, monkeypatch, size,
                to_phase("preflight", freeze=freeze))


@size_ids
def test_preflight_refused(snap_compare, tmp_path, monkeypatch, size) -> None:
    """A reserve larger than the machine: preflight refuses, nothing was changed."""
    options = ReplaceOptions(operator="Ada", policy=FAST, reserve_bytes=1 << 40)
    assert snap(snap_compare, tmp_path, monkeypatch, size, to_phase("done", options=options))


@size_ids
def test_preflight_refused_with_two_overrides(snap_compare, tmp_path, monkeypatch,
                                              size) -> None:
    """The reserve and a node reserve no node keeps refuse: n and s offered at once; at
    80x24 the footer still shows both with their flags, q Quit and ? Help."""
    options = ReplaceOptions(operator="Ada", policy=FAST, reserve_bytes=1 << 40,
                             node_reserve="99%")
    assert snap(snap_compare, tmp_path, monkeypatch, size, to_phase("done", options=options))


@size_ids
def test_confirmation_step(snap_compare, tmp_path, monkeypatch, size) -> None:
    assert snap(snap_compare, tmp_path, monkeypatch, size, to_phase("confirm"))


@size_ids
def test_offlining_in_progress(snap_compare, tmp_path, monkeypatch, size) -> None:
    """Block 11 of 32 held: the progress bar, the per-block strip and a pinned ETA."""
    freeze = Freeze()
    hold_write(monkeypatch, freeze, FIRST + 10, "offline")
    pin_engine_clock(monkeypatch)
    assert snap(snap_compare, tmp_path, monkeypatch, size,
                to_phase("offlining", freeze=freeze))


@size_ids
def test_physical_swap_step(snap_compare, tmp_path, monkeypatch, size) -> None:
    assert snap(snap_compare, tmp_path, monkeypatch, size, to_phase("swap"))


@size_ids
def test_waiting_for_the_new_module(snap_compare, tmp_path, monkeypatch, size) -> None:
    """The manual backend waits for a person: 2:05 elapsed of its 10:00 timeout."""
    pin_wizard_clock(monkeypatch)
    options = ReplaceOptions(operator="Ada", policy=FAST, backend="manual",
                             detect_timeout_s=600)
    assert snap(snap_compare, tmp_path, monkeypatch, size, to_phase(
        "swapping", options=options,
        ready=lambda w: "2:05 elapsed" in str(w.query_one("#wizard-main").render())))


@size_ids
def test_interrupted_replacement_offered(snap_compare, tmp_path, monkeypatch, size) -> None:
    """`memras replace` killed (kill -9) after the 10th block went offline: reopening the
    wizard offers to resume or abort, and says where the memory is."""
    from tests.tui.test_wizard import crash_mid_offline

    world = build(tmp_path, monkeypatch, with_data=False)
    crash_mid_offline(world)
    app = MemrasApp(world.root, str(world.db), read_only=False, clock=lambda: PINNED_NOW,
                    poll_interval_s=60)

    async def run_before(pilot: Any) -> None:
        wizard = WizardScreen(None, options=ReplaceOptions(operator="Ada", policy=FAST))
        pilot.app.push_screen(wizard)
        await wait_until(pilot, lambda: wizard.phase == "interrupted", 20)
        await settle(pilot)

    assert snap_compare(app, terminal_size=size, run_before=run_before)


@size_ids
def test_replaced(snap_compare, tmp_path, monkeypatch, size) -> None:
    """REPLACED: the new module's blocks online and the verify checks passed."""
    assert snap(snap_compare, tmp_path, monkeypatch, size, to_phase("done"))


@size_ids
def test_rolled_back(snap_compare, tmp_path, monkeypatch, size) -> None:
    """Block 6 stays busy: offlining fails, the blocks go back online, and the summary
    says where the memory is and why."""
    def busy_block_six(pilot: Any) -> Any:
        set_busy(pilot.app.host.root, FIRST + 5, 1000)
        return to_phase("done")(pilot)

    assert snap(snap_compare, tmp_path, monkeypatch, size, busy_block_six)


@size_ids
def test_stopped_with_blocks_left_offline(snap_compare, tmp_path, monkeypatch, size) -> None:
    """--on-failure leave: block 6 stays busy, the five before it stay offline; the
    summary says where the memory is and the command to continue or roll back."""
    options = ReplaceOptions(operator="Ada", policy=FAST, on_failure="leave")

    def busy_block_six(pilot: Any) -> Any:
        set_busy(pilot.app.host.root, FIRST + 5, 1000)
        return to_phase("done", options=options)(pilot)

    assert snap(snap_compare, tmp_path, monkeypatch, size, busy_block_six)


async def test_the_command_the_stopped_screen_gives_brings_the_blocks_back(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What the left-offline summary tells the engineer to run works: the blocks the
    wizard left offline are online (Movable) again, and nothing else changed."""
    from memras.cli import main
    from memras.host import Host

    app = app_for(tmp_path, monkeypatch)
    set_busy(app.host.root, FIRST + 5, 1000)
    options = ReplaceOptions(operator="Ada", policy=FAST, on_failure="leave")
    async with app.run_test(size=(80, 24)) as pilot:
        await to_phase("done", options=options)(pilot)
        wizard = app.screen
        assert isinstance(wizard, WizardScreen) and wizard.latest is not None
        commands = next_commands(wizard.latest.snapshot, DIMM)
        shown = str(wizard.query_one("#wizard-main").render())
    assert commands == [f"memras capacity online --blocks {FIRST}-{FIRST + 4} --zone Movable"]
    assert commands[0] in shown and "5 of 32 blocks of the old module are offline" in shown
    host = Host(app.host.root)
    assert [host.memory.read(b).state for b in range(FIRST, FIRST + 6)] == \
        ["offline"] * 5 + ["online"]
    argv = commands[0].split()[1:]
    assert main(["--root", str(app.host.root), "--db", app.db_url, *argv, "--yes"]) == 0
    assert all((host.memory.read(b).state, host.memory.read(b).zone) == ("online", "Movable")
               for b in range(FIRST, FIRST + 32))
