"""``MemrasApp``: the shell that holds the host, the database and the screens.

Screens are Textual modes (dashboard, map, alerts, audit, fleet) so each keeps its
state when you switch away; a DIMM's detail, the help and the replacement wizard are
pushed on top. The app only decides *where* things are read from: the ``Host``
(``host_root``), the database (``db_url``), the config file (``config_path``: the
alert hooks that acks and resolves notify, as ``memras alerts`` loads them), the
clock, whether it may write, and the fleet's central database (``fleet``: the fleet
screen reads it through ``app.fleet_engine()``; without one, ``f`` shows how to name it).
Screens call the core through thin workers (see tui/messages.py).

``demo`` is the simulated server ``memras demo`` runs beside the app (it drives the
server itself; the app only says DEMO in its title). The replacement wizard
(``WizardScreen(dimm_id)``, pushed by ``r`` on a DIMM) reaches ``app.host``,
``app.open_store()``, ``app.now()`` and ``app.read_only``.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from memras.tui.screens.alerts import AlertsScreen
from memras.tui.screens.audit import AuditScreen
from memras.tui.screens.dashboard import DashboardScreen
from memras.tui.screens.dimm_detail import DimmDetailScreen
from memras.tui.screens.fleet import FleetScreen
from memras.tui.screens.help import HelpScreen
from memras.tui.screens.memory_map import MemoryMapScreen
from memras.tui.screens.wizard import WizardScreen
from textual.app import App
from textual.binding import Binding

from memras.errors import MemrasError
from memras.host import Host
from memras.store import Store

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from memras.fleet.ship import FleetConfig

Clock = Callable[[], datetime]

ROOT_NEEDED = ("not running as root: replacing a DIMM (offlining, ejecting and onlining "
               "memory blocks) and acknowledging alerts need root; run `sudo memras`")
FLEET_UNSET = ("no fleet database: set url in the [fleet] table of --config, or start "
               "`memras tui --fleet-url URL`")


def read_only_reason(host: Host, read_only: bool | None) -> str:
    """Why the app may not write ("" when it may)."""
    if read_only is True:
        return "started read-only: replacing DIMMs and acknowledging alerts are disabled"
    if read_only is False:
        return ""
    if host.is_simulated or os.geteuid() == 0:
        return ""
    return ROOT_NEEDED


class MemrasApp(App[None]):
    TITLE = "memras"
    CSS_PATH = "app.tcss"
    MODES = {
        "dashboard": DashboardScreen,
        "map": MemoryMapScreen,
        "alerts": AlertsScreen,
        "audit": AuditScreen,
        "fleet": FleetScreen,
    }
    DEFAULT_MODE = "dashboard"
    # q first: the footer lists a screen's keys, then these, and cuts at the terminal's
    # width; at 80 columns "q Quit" must not be what is cut.
    BINDINGS = [
        Binding("q", "quit", "Quit", id="app.quit"),
        Binding("d", "show('dashboard')", "Dashboard", id="screen.dashboard"),
        Binding("m", "show('map')", "Map", id="screen.map"),
        Binding("a", "show('alerts')", "Alerts", id="screen.alerts"),
        Binding("u", "show('audit')", "Audit", id="screen.audit"),
        # f: the fleet screen, in the footer only when a fleet database is known; without
        # one the second binding (hidden) opens the screen that says how to name one
        Binding("f", "show('fleet')", "Fleet", id="screen.fleet"),
        Binding("f", "fleet_unset", "Fleet (no URL: what to set)", show=False,
                id="screen.fleet_unset"),
        Binding("question_mark", "help", "Help", key_display="?", id="app.help"),
    ]

    def __init__(self, host_root: str | Path, db_url: str, *, read_only: bool | None = None,
                 demo: object | None = None, clock: Clock | None = None,
                 poll_interval_s: float = 0.5, config_path: str | Path | None = None,
                 fleet: FleetConfig | None = None, fleet_note: str = "",
                 start_mode: str = "dashboard") -> None:
        # read by App.__init__: the first screen shown (an instance's own, by design)
        self.DEFAULT_MODE = start_mode  # type: ignore[misc]
        super().__init__()
        self.host = Host(host_root)
        self.db_url = db_url
        self.config_path = config_path  # None: the default config file, as the CLI reads
        self.read_only_reason = read_only_reason(self.host, read_only)
        self.read_only = bool(self.read_only_reason)
        self.demo = demo
        self.clock: Clock = clock or (lambda: datetime.now(UTC))
        self.poll_interval_s = poll_interval_s
        self._store: Store | None = None
        self._writable: Store | None = None  # opened by the first action that writes
        self._store_note = ""
        self._store_lock = threading.Lock()
        self.fleet = fleet
        # why there is no fleet database: how to name one, or the config's problem
        self.fleet_note = fleet_note or ("" if fleet else FLEET_UNSET)
        self._fleet_engine: Engine | None = None
        if demo is not None:
            self.sub_title = "DEMO (simulated server)"

    # --- what screens use --------------------------------------------------------
    def now(self) -> datetime:
        return self.clock()

    def open_store(self, *, write: bool = False) -> Store | None:
        """The shared Store (opened once, from a worker thread); None when unavailable.

        Viewing opens the database read-only (it works for a user who may only read it,
        and changes nothing); ``write=True`` — the wizard, alert acks — opens a second,
        writable Store the first time an action needs it (never on a read-only app)."""
        with self._store_lock:
            if write:
                if self.read_only:
                    raise MemrasError(self.read_only_reason)
                if self._writable is None:
                    self._writable = Store.open(self.db_url)
                return self._writable
            if self._store is None and not self._store_note:
                try:
                    self._store = Store.open_readonly(self.db_url)
                except MemrasError as exc:
                    self._store_note = exc.msg
            return self._store

    def fleet_engine(self) -> Engine:
        """The central database's engine (made once, from a worker thread: it imports the
        driver). Raises MemrasError with ``fleet_note`` when none is configured, or the
        URL's own problem."""
        from memras.fleet.ship import central_engine

        with self._store_lock:
            if self.fleet is None:
                raise MemrasError(self.fleet_note)
            if self._fleet_engine is None:
                self._fleet_engine = central_engine(self.fleet.url, self.fleet.password_file)
            return self._fleet_engine

    @property
    def store_note(self) -> str:
        return self._store_note

    def open_dimm(self, dimm_id: str) -> None:
        self.push_screen(DimmDetailScreen(dimm_id))

    def replace_dimm(self, dimm_id: str) -> None:
        """Push the replacement wizard, unless the app may not write."""
        if self.read_only:
            self.notify(self.read_only_reason, title="Cannot replace", severity="error")
            return
        self.push_screen(WizardScreen(dimm_id))

    # --- actions -----------------------------------------------------------------
    async def action_show(self, mode: str) -> None:
        await self.switch_mode(mode)
        # `d` is the dashboard itself: a DIMM detail (or help) left stacked on it from
        # before would be stale. A wizard stays: it holds a replacement in progress.
        while mode == "dashboard" and len(self.screen_stack) > 1 and \
                isinstance(self.screen, DimmDetailScreen | HelpScreen):
            await self.pop_screen()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Of the two ``f`` bindings, the one that fits: a fleet database known or not."""
        if action == "show" and parameters == ("fleet",):
            return self.fleet is not None
        if action == "fleet_unset":
            return self.fleet is None
        return True

    async def action_fleet_unset(self) -> None:
        await self.switch_mode("fleet")  # its top line says what to set

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen(self.screen))

    def on_unmount(self) -> None:
        for store in (self._store, self._writable):
            if store is not None:
                store.close()
        if self._fleet_engine is not None:
            self._fleet_engine.dispose()
