"""The replacement wizard: preflight, typed confirmation, offline, physical swap, online.

It drives :class:`memras.workflow.runner.Replacement` one call at a time through
:class:`memras.workflow.driver.WizardDriver`; each call is a thin worker
that posts one message, and progress arrives as replaceable ``WizardProgress``
messages. Phases, and the keys that move between them::

    opening ─(interrupted one found)→ interrupted ─enter→ resume │ a→ abort
       └→ preflight ─PASS→ confirm ─type the label→ offlining ─→ swap ─t/enter→ swapping
          ↑       └FAIL→ done         esc→ rollback      c/esc→ rollback   ─→ done
          └── z/n/w/s: accept an override, type the label ─┘

A refusal an option of `memras replace` can lift (blocks not in ZONE_MOVABLE, a NUMA
node's reserve, a CXL memdev's interleaved region, the memory reserve) offers a key per
option (memras.workflow.driver.OVERRIDES): it says the risk, asks the module's name
typed (screens/override.py), and runs preflight again as a new replacement with the
option set, recorded in the audit trail as the CLI's flag is.

Nothing here touches the kernel or the database: the engine does, and persists every
step, so closing the wizard (or kill -9) mid-way leaves a replacement that the next
wizard offers to resume.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from memras.tui.screens.confirm import ConfirmScreen
from memras.tui.screens.override import OverrideScreen
from memras.tui.widgets.format import safe
from memras.tui.widgets.settled import SettledScroll
from memras.tui.widgets.wizard_messages import (
    WizardAdvanced,
    WizardFailed,
    WizardOpened,
    WizardProgress,
    WizardStepDone,
)
from memras.tui.widgets.wizard_panels import (
    block_statuses,
    blocks_strip,
    checks_text,
    eta_text,
    interrupted_text,
    module_name,
    steps_text,
    summary_text,
    swap_text,
    target_text,
)
from rich.text import Text
from textual import getters, on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import Footer, Header, Input, ProgressBar, Static

from memras.errors import MemrasError
from memras.health.dimm_names import host_inventory
from memras.host import Host
from memras.text import escape
from memras.topology.inventory import DimmInfo
from memras.topology.naming import Confirmation, confirmation
from memras.workflow.driver import (
    CONFIRM_AT,
    OVERRIDES,
    PAUSES,
    SWAP_AT,
    Override,
    WizardDriver,
    WizardUpdate,
    configured_options,
    overridden,
    overrides_for,
)
from memras.workflow.pending import ABORT, RESUME
from memras.workflow.runner import ReplaceOptions
from memras.workflow.states import State

if TYPE_CHECKING:
    from memras.tui.app import MemrasApp

REVEAL_POLL_S = 0.02
RUNNING_PHASES = ("opening", "preflight", "offlining", "swapping", "finishing", "aborting")
WAITING_PHASES = ("swapping", "finishing")  # waiting for the module to go and the new one


def clock_text(seconds: float) -> str:
    """``4:05``: minutes and seconds."""
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}:{secs:02d}"


class WizardScreen(Screen[None]):
    if TYPE_CHECKING:  # the app's own type, for its attributes (the app imports this screen)
        app = getters.app(MemrasApp)
    CSS_PATH = "wizard.tcss"
    BINDINGS = [
        Binding("escape", "back", "Cancel/Back", id="wizard.back"),
        Binding("c", "cancel", "Cancel offlining", id="wizard.cancel"),
        Binding("t", "technician", "Simulated technician", id="wizard.technician"),
        Binding("enter", "go", "Go on", id="wizard.go"),
        Binding("a", "abort", "Abort", id="wizard.abort"),
        Binding("q", "quit_wizard", "Quit", id="wizard.quit"),
        *(Binding(o.key, f"override('{o.option}')", o.flag.split()[0], id=f"wizard.{o.option}")
          for o in OVERRIDES),
        # The app's ? again, here: the footer lists this screen's keys before the app's and
        # cuts at the terminal's width, so at 80 columns the app's "? Help" (last) was cut
        # once a step had keys of its own (the swap, two overrides offered). Here it comes
        # right after the step's keys and the navigation keys d m a u are what is cut.
        Binding("question_mark", "app.help", "Help", key_display="?", id="wizard.help"),
    ]
    # Which phase shows which key in the footer (the others are hidden: "c Cancel
    # offlining" on the REPLACED screen was a key that did nothing).
    KEYS_IN = {"cancel": ("offlining",), "technician": ("swap",), "go": ("swap", "interrupted"),
               "abort": ("confirm", "swap", "interrupted")}

    def __init__(self, dimm_id: str | None = None, *,
                 options: ReplaceOptions | None = None) -> None:
        super().__init__()
        self.dimm_id = dimm_id
        self.options = options
        self.driver: WizardDriver | None = None
        self.phase = "opening"
        self.latest: WizardUpdate | None = None
        self.reached: State | None = None  # the state the last step (or update) left
        self.log_lines: list[Text] = []
        self.offered: list[Override] = []  # the overrides a refusal offers (done phase)
        self.running_step: str | None = None
        self.failed_step: str | None = None
        self.settling = False  # a scroll waits for the layout (tests wait for it too)
        self._inventory: list[DimmInfo] | None = None  # read once, for the DIMM's names
        self._waiting: tuple[float, str, Timer] | None = None  # started, text, ticking timer

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(Text("Replacement wizard"), id="wizard-title")
        with Horizontal(id="wizard-columns"):
            yield Static(steps_text(State.NEW, None, None), id="wizard-steps")
            with SettledScroll(id="wizard-body"):
                yield Static("", id="wizard-target")
                yield Static(Text("looking for an interrupted replacement…"), id="wizard-main")
                yield Input(placeholder="type the slot label here", id="wizard-confirm")
                with Vertical(id="wizard-progress"):
                    yield Static("", id="wizard-progress-label")
                    yield ProgressBar(total=1, show_eta=False, id="wizard-overall")
                    yield Static("", id="wizard-blocks")
                yield Static("", id="wizard-log")
        yield Footer(show_command_palette=False)  # ctrl+p still works; q Quit fits 80 cols

    def on_mount(self) -> None:
        self.query_one("#wizard-confirm").display = False
        self.query_one("#wizard-progress").display = False
        self.open_wizard()

    # --- workers: one engine call each ---------------------------------------------------
    def _make_driver(self) -> WizardDriver:
        store = self.app.open_store(write=True)
        if store is None:
            raise MemrasError(self.app.store_note or "no database")
        host = Host(self.app.host.root, allow_real_writes=True)
        # a wizard opened with r runs under the app's --config, as `memras replace` does
        options = self.options or configured_options(self.app.config_path)
        driver = WizardDriver(host, store, options)
        driver.on_progress = lambda p: self.post_message(WizardProgress(p))
        driver.on_step = lambda o: self.post_message(WizardStepDone(o))
        return driver

    def _opened(self) -> WizardDriver:
        """The driver open_wizard made; the keys that move the wizard on come after it."""
        if self.driver is None:
            raise MemrasError("the wizard has not opened a replacement yet")
        return self.driver

    @work(thread=True, exclusive=True, exit_on_error=False, group="wizard")
    def open_wizard(self) -> None:
        try:
            self.driver = self._make_driver()
            self.post_message(WizardOpened(self.driver.interrupted()))
        except MemrasError as exc:
            self.post_message(WizardFailed(exc.msg))

    @work(thread=True, exclusive=True, exit_on_error=False, group="wizard")
    def begin(self, dimm: str) -> None:
        try:
            self.post_message(WizardAdvanced(self._opened().begin(dimm)))
        except MemrasError as exc:
            self.post_message(WizardFailed(exc.msg))

    @work(thread=True, exclusive=True, exit_on_error=False, group="wizard")
    def retry(self, override: Override, value: object) -> None:
        try:
            self.post_message(WizardAdvanced(self._opened().retry(override, value)))
        except MemrasError as exc:
            self.post_message(WizardFailed(exc.msg))

    @work(thread=True, exclusive=True, exit_on_error=False, group="wizard")
    def advance(self, pauses: frozenset[State]) -> None:
        self.post_message(WizardAdvanced(self._opened().run_until(pauses)))

    @work(thread=True, exclusive=True, exit_on_error=False, group="wizard")
    def abort(self) -> None:
        self.post_message(WizardAdvanced(self._opened().abort()))

    # --- messages --------------------------------------------------------------------------
    @on(WizardOpened)
    def opened(self, message: WizardOpened) -> None:
        if message.update is not None:
            self.show(message.update)
            self.set_phase("interrupted")
            self.main(interrupted_text(message.update.snapshot, self.module_name()))
        elif self.dimm_id is None:
            self.set_phase("done")
            self.main(Text("No replacement is in progress. Choose a DIMM and press r."))
        else:
            self.set_phase("preflight")
            self.main(Text(f"running preflight checks for {escape(self.dimm_id)}…"))
            self.begin(self.dimm_id)

    @on(WizardStepDone)
    def step_done(self, message: WizardStepDone) -> None:
        outcome = message.outcome
        self.failed_step = None if outcome.ok else outcome.step
        self.reached = outcome.state
        mark = Text(" ok  " if outcome.ok else " FAIL ",
                    style="green" if outcome.ok else "bold white on red")
        self.log_lines.append(mark + Text(f" {outcome.step}: ") + Text(escape(outcome.message)))
        self.query_one("#wizard-log", Static).update(Text("\n").join(self.log_lines[-12:]))
        self.query_one("#wizard-steps", Static).update(
            steps_text(outcome.state, None, self.failed_step))

    @on(WizardProgress)
    def progressed(self, message: WizardProgress) -> None:
        p = message.progress
        self.query_one("#wizard-progress").display = True
        bar = self.query_one("#wizard-overall", ProgressBar)
        bar.update(total=max(p.total_blocks, 1), progress=p.done_blocks)
        self.running_step = p.step
        if self.reached is not None:  # ▶ on the step the blocks are moving in
            self.query_one("#wizard-steps", Static).update(
                steps_text(self.reached, p.step, self.failed_step))
        label = (f"{p.step}: block {min(p.done_blocks + 1, p.total_blocks)} of "
                 f"{p.total_blocks} ({escape(p.message)})   {eta_text(p.eta_s)}")
        self.query_one("#wizard-progress-label", Static).update(Text(label))
        statuses = ["offline"] * p.done_blocks + ["offlining"] * (p.done_blocks < p.total_blocks)
        statuses += ["online"] * (p.total_blocks - len(statuses))
        self.query_one("#wizard-blocks", Static).update(blocks_strip(statuses))

    @on(WizardFailed)
    def failed(self, message: WizardFailed) -> None:
        self.set_phase("error")
        self.main(Text("The wizard could not go on: ", style="bold red") +
                  Text(escape(message.error)) + Text("\nescape: back"))

    @on(WizardAdvanced)
    def advanced(self, message: WizardAdvanced) -> None:
        update: WizardUpdate = message.update
        self.show(update)
        snap = update.snapshot
        if update.finished:
            self.offered = overrides_for(snap)
            self.set_phase("done")
            body = summary_text(snap, self.confirmation().name, self.offered)
            if update.error:
                body = body + Text("\n") + Text(escape(update.error), style="bold red")
            self.main(body)
        elif update.error:
            self.set_phase("error")
            self.main(Text(escape(update.error), style="bold red") +
                      Text("\nfix the cause; reopening the wizard resumes the replacement"))
        elif update.state in CONFIRM_AT:
            self.ask_confirmation(snap)
        elif update.state in SWAP_AT:
            self.set_phase("swap")
            self.main(swap_text(snap["target"]["target"], snap["backend"],
                                self.confirmation().name))
        else:
            self.resume_from(update.state)

    # --- rendering -------------------------------------------------------------------------
    def set_phase(self, phase: str) -> None:
        self.phase = phase
        if phase != "done":
            self.offered = []
        if self._waiting is not None and phase not in WAITING_PHASES:
            self._waiting[2].stop()
            self._waiting = None
        self.query_one("#wizard-confirm").display = phase == "confirm"
        if phase not in ("offlining",):
            self.query_one("#wizard-progress").display = False
        if phase in ("swap", "done", "interrupted", "error"):  # instructions read from the top
            self.query_one("#wizard-body", VerticalScroll).scroll_home(animate=False)
        self.refresh_bindings()

    def main(self, text: Text) -> None:
        self.query_one("#wizard-main", Static).update(text)

    def show(self, update: WizardUpdate) -> None:
        self.latest = update
        self.reached = update.state
        snap = update.snapshot
        target = snap["target"]["target"]
        self.running_step = None
        self.query_one("#wizard-title", Static).update(
            Text(f"Replacing {escape(self.module_name())}  (replacement #{snap['id']}, "
                 f"backend {escape(snap['backend'])}, state {snap['state']})", style="bold"))
        self.query_one("#wizard-steps", Static).update(
            steps_text(update.state, snap.get("current_step"), self.failed_step))
        blocks = blocks_strip(block_statuses(snap))
        self.query_one("#wizard-target", Static).update(
            target_text(target, self.confirmation().name) + Text("\n        ") + blocks)

    def ask_confirmation(self, snap: dict) -> None:
        self.set_phase("confirm")
        target = snap["target"]["target"]
        asked = self.confirmation()
        body = Text("Preflight passed:\n", style="bold green") + checks_text(snap["checks"])
        flags = overridden(self.replace_options())
        if flags:  # the risk was accepted (an override key, or the options given)
            body.append(f"with {', '.join(flags)}: the checks above were told to go on\n",
                        style="bold yellow")
        body.append(f"\nThis takes {len(target['blocks'])} memory blocks offline and then "
                    f"removes the module.\nType the {asked.what} ")
        body.append(escape(asked.name), style="bold reverse")
        body.append(" to go on (escape: stop, nothing is changed).")
        self.main(body)
        field = self.query_one("#wizard-confirm", Input)
        field.focus(scroll_visible=False)
        self.settling = True
        self.call_after_refresh(self._reveal_confirmation)

    def _reveal_confirmation(self) -> None:
        """Scroll the label field into view once a layout has placed it.

        The phase's text and the field (hidden until now) arrive in one layout, but the
        first refresh after ``ask_confirmation`` may be one scheduled before it: scrolling
        then found no region and did nothing (the 80x24 snapshot caught the body left at
        the top, the field below the fold). So look again every ``REVEAL_POLL_S`` until
        a layout has given the field its region (a timer: re-queuing at once would keep
        the app too busy to lay out), then scroll.
        """
        field = self.query_one("#wizard-confirm", Input)
        if self.phase == "confirm" and field.display and not field.region:
            self.set_timer(REVEAL_POLL_S, self._reveal_confirmation)
            return
        if self.phase == "confirm":
            self.query_one("#wizard-body", VerticalScroll).scroll_to_widget(field, animate=False)
        self.settling = False

    def confirmation(self) -> Confirmation:
        """What the engineer types: the slot label, as `memras replace` asks it
        (:class:`memras.topology.naming.Confirmation`); the inventory is read once."""
        assert self.latest is not None
        target = self.latest.snapshot["target"]["target"]
        if self._inventory is None:
            self._inventory = host_inventory(self.app.host)
        return confirmation(str(target.get("dimm_id") or "?"), self._inventory,
                            locator=target.get("locator") or "", label=target.get("label") or "")

    def module_name(self) -> str:
        """The module as the title names it: a CXL memdev by its name, serial and PCI
        function (wizard_panels.module_name), anything else by its slot label."""
        assert self.latest is not None
        return module_name(self.latest.snapshot["target"]["target"], self.confirmation().name)

    def resume_from(self, state: State) -> None:
        """Go on from a state the wizard does not pause in (a resumed replacement)."""
        if state in (State.NEW, State.PAGES_ISOLATED):
            self.set_phase("offlining" if state is State.PAGES_ISOLATED else "preflight")
            self.advance(PAUSES)
        else:  # REMOVED, INSERTED, ONLINE, VERIFIED: the new module's side
            self.set_phase("finishing")
            self.wait_text("finishing: detecting the new module, onlining and verifying…")
            self.advance(frozenset())

    # --- keys ------------------------------------------------------------------------------
    @on(Input.Submitted, "#wizard-confirm")
    def confirmed(self, event: Input.Submitted) -> None:
        if self.phase != "confirm":
            return
        asked = self.confirmation()
        if not asked.accepts(event.value):
            self.notify(f"That is not the {asked.what} {escape(asked.name)}; nothing was "
                        "changed.", severity="error", title="Confirmation did not match",
                        markup=False)  # the name is firmware text: "[" must stay "["
            event.input.value = ""
            return
        self.set_phase("offlining")
        self.main(Text("taking the module's memory blocks offline… (c: cancel and roll back)"))
        self.query_one("#wizard-progress").display = True
        self.advance(PAUSES)

    def action_cancel(self) -> None:
        if self.phase == "offlining" and self.driver is not None:
            self.driver.cancel.set()
            self.main(Text("cancelling: the blocks already offline go back online…",
                           style="bold yellow"))

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "override":  # only the overrides this refusal offers
            return self.phase == "done" and any(o.option == parameters[0]
                                                for o in self.offered)
        phases = self.KEYS_IN.get(action)
        return phases is None or self.phase in phases

    def action_override(self, option: str) -> None:
        """Say what the override risks, take the module's name typed, then preflight again."""
        override = next((o for o in self.offered if o.option == option), None)
        if override is None or self.phase != "done":
            return

        def accepted(value: object) -> None:
            if value is None or self.phase != "done":
                return
            self.set_phase("preflight")
            self.main(Text(f"running preflight checks again with {override.flag.split()[0]} "
                           f"for {escape(self.module_name())}…"))
            self.retry(override, value)

        self.app.push_screen(OverrideScreen(override, self.confirmation(), self.module_name()),
                             accepted)

    def action_back(self) -> None:
        if self.phase == "offlining":
            self.ask("Stop taking the blocks offline?", self.undo_detail(),
                     yes="stop and roll back", no="go on offlining", then=self.action_cancel)
        elif self.phase == "swap":
            self.ask("Roll back this replacement?", self.undo_detail(),
                     yes="roll back", no="stay at the swap step", then=self.action_abort)
        elif self.phase == "confirm":
            self.action_abort()  # nothing was changed yet: no question
        elif self.phase not in RUNNING_PHASES:
            self.app.pop_screen()

    def action_quit_wizard(self) -> None:
        """``q``: quit memras; with a replacement half-done, ask first and say what stays."""
        snap = self.latest.snapshot if self.latest is not None else None
        if snap is None or self.latest is None or self.latest.finished or \
                self.phase in ("done", "opening"):
            self.app.exit()
            return
        detail = Text("Replacement #{} stays where it is: ".format(snap["id"]))
        detail.append_text(safe(snap.get("where") or ""))
        detail.append(f".\nContinue later with `{RESUME}` (or reopen the wizard: r), or roll "
                      f"back with `{ABORT}`.")
        self.ask(f"Quit with replacement #{snap['id']} in progress?", detail,
                 yes="quit, leave it as it is", no="stay", then=self.app.exit)

    def undo_detail(self) -> Text:
        snap = self.latest.snapshot if self.latest is not None else {}
        blocks = len((snap.get("target") or {}).get("target", {}).get("blocks") or [])
        return Text(f"The old module's {blocks} memory blocks go back online and replacement "
                    f"#{snap.get('id', '?')} ends as rolled back; nothing is removed.")

    def ask(self, question: str, detail: Text, *, yes: str, no: str,
            then: Callable[[], object]) -> None:
        def answered(ok: bool | None) -> None:
            if ok:
                then()

        self.app.push_screen(ConfirmScreen(question, detail, yes=yes, no=no), answered)

    def action_abort(self) -> None:
        if self.phase in ("confirm", "swap", "interrupted"):
            self.set_phase("aborting")
            self.main(Text("rolling back: bringing the old module's blocks online…",
                           style="bold yellow"))
            self.abort()

    def action_technician(self) -> None:
        if self.phase == "swap" and self.latest and self.latest.snapshot["backend"] == "simulated":
            self.swap()

    def action_go(self) -> None:
        if self.phase == "swap":
            self.swap()
        elif self.phase == "interrupted" and self.latest is not None:
            if self.latest.state in CONFIRM_AT:
                self.ask_confirmation(self.latest.snapshot)
            elif self.latest.state in SWAP_AT:
                self.set_phase("swap")
                self.main(swap_text(self.latest.snapshot["target"]["target"],
                                    self.latest.snapshot["backend"], self.confirmation().name))
            else:
                self.resume_from(self.latest.state)

    def swap(self) -> None:
        self.set_phase("swapping")
        self.wait_text("ejecting the old module, waiting for the new one…")
        self.advance(frozenset())

    def replace_options(self) -> ReplaceOptions:
        """The options of the replacement shown (as recorded), else those the wizard got."""
        rep = self.driver.rep if self.driver is not None else None
        return rep.options if rep is not None else self.options or ReplaceOptions()

    def detect_timeout_s(self) -> float:
        """How long the engine waits for the new module (ReplaceOptions.detect_timeout_s)."""
        return self.replace_options().detect_timeout_s

    def wait_text(self, what: str) -> None:
        """``what``, then the time waited so far and when the engine gives up, every second."""
        if self._waiting is not None:
            self._waiting[2].stop()
        self._waiting = (time.monotonic(), what, self.set_interval(1.0, self._tick_wait))
        self._tick_wait()

    def _tick_wait(self) -> None:
        if self._waiting is None:
            return
        started, what, _timer = self._waiting
        self.main(Text(what, style="bold") + Text(
            f"\n{clock_text(time.monotonic() - started)} elapsed; memras gives up after "
            f"{clock_text(self.detect_timeout_s())} (then the replacement stays where it is "
            "and can be resumed)", style="dim"))

    def on_unmount(self) -> None:
        if self.driver is not None:
            self.driver.cancel.set()
            self.driver.close()
