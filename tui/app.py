"""``MemrasApp``: the shell that holds the host, the database and the screens.

Screens are Textual modes (dashboard, map, alerts, audit) so each keeps its state
when you switch away; a DIMM's detail, the help and the replacement wizard are
pushed on top. The app only decides *where* things are read from: the ``Host``
(``host_root``), the database (``db_url``), the config file (``config_path``: the
alert hooks that acks and resolves notify, as ``memras alerts`` loads them), the
clock, and whether it may write.
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

from memras.tui.screens.alerts import AlertsScreen
from memras.tui.screens.audit import AuditScreen
from memras.tui.screens.dashboard import DashboardScreen
from memras.tui.screens.dimm_detail import DimmDetailScreen
from memras.tui.screens.help import HelpScreen
from memras.tui.screens.memory_map import MemoryMapScreen
from memras.tui.screens.wizard import WizardScreen
from textual.app import App
from textual.binding import Binding

from memras.errors import MemrasError
from memras.host import Host
from memras.store import Store

Clock = Callable[[], datetime]

ROOT_NEEDED = ("not running as root: replacing a DIMM (offlining, ejecting and onlining "
               "memory blocks) and acknowledging alerts need root; run `sudo memras`")


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
        Binding("question_mark", "help", "Help", key_display="?", id="app.help"),
    ]

    def __init__(self, host_root: str | Path, db_url: str, *, read_only: bool | None = None,
                 demo: object | None = None, clock: Clock | None = None,
                 poll_interval_s: float = 0.5, config_path: str | Path | None = None) -> None:
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

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen(self.screen))

    def on_unmount(self) -> None:
        for store in (self._store, self._writable):
            if store is not None:
                store.close()
