"""The fleet screen on a real central PostgreSQL that three simulated hosts shipped to.

Each host is the TUI tests' world (tests/tui/world.py: fixed-time errors judged by the
real health engine, alerts through the real alert service, a short audit trail), shipped
by memras.fleet.ship with its contact time pinned: rack1-host1 two minutes before the
pinned now, with a replacement; a host with a hostile name and slot label three hours
before; rack3-host3, no errors, two days before. Nothing depends on this machine's clock.

Update the snapshots after an intended change: ``pytest tests/tui/test_fleet_screen.py
--snapshot-update``, then look at the SVGs.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from memras.tui.app import FLEET_UNSET, MemrasApp
from memras.tui.screens.dashboard import DashboardScreen
from memras.tui.screens.fleet import VIEWS, FleetDimmScreen, FleetScreen, fit
from rich.text import Text
from textual.widgets import DataTable

from memras.cli import main
from memras.fleet import read
from memras.fleet import ship as ship_module
from memras.fleet.identity import HostIdentity
from memras.fleet.ship import FleetConfig, Shipper, central_engine
from memras.health.verdict import VerdictState
from memras.store import Store
from memras.text import escape
from tests.fixtures.postgres import PgCluster
from tests.tui import world as world_module
from tests.tui.conftest import settle, wait_until
from tests.tui.helpers import static_text, table_rows
from tests.tui.world import FAILING, HOSTILE_LABEL, PINNED_NOW, build

SIZES = [(80, 24), (120, 40)]
WORLD_EVENTS = world_module.events
CENTRAL_DB = "fleet"
HOSTILE_HOST = "rack2-\x1b[31m[bold]db[/]"
NOW = PINNED_NOW.replace(tzinfo=None)
HOSTS = [  # (machine id, hostname, last contact, the world's build options)
    (f"{1:032x}", "rack1-host1", NOW - timedelta(minutes=2), {}),
    (f"{2:032x}", HOSTILE_HOST, NOW - timedelta(hours=3), {"hostile": True}),
    (f"{3:032x}", "rack3-host3", NOW - timedelta(days=2), {"with_data": False}),
]


def _hostile_events() -> list[Any]:
    """The world's errors with the failing DIMM's kernel label made hostile."""
    out = []
    for e in WORLD_EVENTS():
        if e.location is not None and e.location.label == "CPU_SrcID#0_MC#0_Chan#1_DIMM#0":
            e = replace(e, location=replace(e.location, label=HOSTILE_LABEL))
        out.append(e)
    return out


def _add_replacement(db: Path) -> None:
    """Replacement #1 on host 1, the one the world's audit trail records."""
    from memras.workflow.models import ReplacementRow

    at = NOW - timedelta(days=2, hours=3)
    with Store.open(db) as store, store.session() as s:
        s.connection().execute(ReplacementRow.__table__.insert().values(
            id=1, dimm_id="mc1/dimm2", dimm_label="P1-DIMME1", state="done",
            backend="simulated", on_failure="rollback", uid=0, user="root", host="h",
            root="/", options={}, target={}, created_at=at, updated_at=at,
            finished_at=at + timedelta(minutes=40)))


def fill_central(url: str, tmp: Path) -> None:
    assert main(["fleet", "--url", url, "init"]) == 0
    for host_id, hostname, contact, options in HOSTS:
        with pytest.MonkeyPatch.context() as mp:
            if options.get("hostile"):
                mp.setattr(world_module, "events", _hostile_events)
            w = build(tmp / host_id[-1], mp, with_data=options.get("with_data", True))

            class Clock(datetime):
                @classmethod
                def now(cls, tz: Any = None, at: datetime = contact) -> Any:
                    return at.replace(tzinfo=tz)

            mp.setattr(ship_module, "datetime", Clock)  # the host's last contact, pinned
            mp.setattr(ship_module, "__version__", "0.1.0")  # as is the version it sends
            if host_id.endswith("1"):
                _add_replacement(w.db)
            engine = central_engine(url)
            with Store.open(w.db) as local:
                Shipper(local, engine, HostIdentity(host_id, hostname)).ship_once()
            engine.dispose()


@pytest.fixture(scope="module")
def central(pg_cluster: PgCluster, tmp_path_factory: pytest.TempPathFactory) -> str:
    """One central store for the whole file (the screen only reads it), named by a URL
    with nothing random in it, so the snapshots' top line is stable: the cluster's socket
    directory comes from PGHOST (libpq's own variable; the ``pg_host`` fixture)."""
    pg_cluster.execute(f'CREATE DATABASE "{CENTRAL_DB}"')
    url = f"postgresql+psycopg://memras@/{CENTRAL_DB}"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PGHOST", str(pg_cluster.base))
        fill_central(url, tmp_path_factory.mktemp("hosts"))
    return url


@pytest.fixture
def pg_host(pg_cluster: PgCluster, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PGHOST", str(pg_cluster.base))


@pytest.fixture
def fleet_app(tmp_path: Path, central: str, pg_host: None
              ) -> Iterator[Callable[..., MemrasApp]]:
    local = build(tmp_path / "here", pytest.MonkeyPatch(), with_data=False)

    def factory(url: str | None = central, **kwargs: Any) -> MemrasApp:
        kwargs.setdefault("start_mode", "fleet")
        return MemrasApp(local.root, str(local.db), clock=lambda: PINNED_NOW,
                         poll_interval_s=60, fleet=FleetConfig(url) if url else None,
                         **kwargs)

    yield factory


def cell(value: str, cap: int, middle: bool = False) -> str:
    """A host's string as a table cell shows it: escaped, then ellipsized."""
    return fit(Text(escape(value)), cap, middle=middle).plain


def loaded(app: MemrasApp) -> bool:
    screen = app.screen
    return isinstance(screen, FleetScreen) and (screen.overview is not None
                                                or screen.problem is not None)


def screen_text(app: MemrasApp) -> str:
    """What the terminal shows, as text (from Textual's own SVG export)."""
    spans = re.findall(r"<text[^>]*>(.*?)</text>", app.export_screenshot(), flags=re.S)
    return html.unescape("".join(spans)).replace("\xa0", " ")


async def test_dimms_most_urgent_first_then_the_hosts(fleet_app: Any, central: str) -> None:
    app = fleet_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_until(pilot, lambda: loaded(app))
        await settle(pilot)
        screen = app.screen
        assert screen.problem is None
        rows = table_rows(screen, "#fleet-table")
        engine = central_engine(central)
        with engine.connect() as conn:
            expected = read.dimms(conn)
        engine.dispose()
        assert len(rows) == len(expected) == 6  # two hosts with errors, three DIMMs each
        ranks = [VerdictState(d.verdict).rank for d in expected]
        assert ranks == sorted(ranks, reverse=True) and ranks[0] > ranks[-1]
        for d, r in zip(expected, rows, strict=True):  # the order memras.fleet.read gives
            shown = escape(d.hostname)
            assert r[0] == (shown if len(shown) <= 12 else shown[:11] + "…")
        assert rows[0][0] == "rack1-host1" and "REPLACE NOW" in rows[0][2]
        assert "REPLACE NOW" in rows[1][2] and "REPAIR" in rows[2][2]
        assert rows[0][3] == "2024-05-14"  # since: the UE's time
        assert "rack3-host3" not in [r[0] for r in rows]  # no errors, no verdict
        await pilot.press("2")  # hosts
        await settle(pilot)
        hosts = table_rows(screen, "#fleet-table")
        assert [h[0] for h in hosts] == ["rack1-host1", cell(HOSTILE_HOST, 24), "rack3-host3"]
        assert [h[2] for h in hosts] == ["2m ago", "3h ago", "2d 0h ago"]
        assert [h[1] for h in hosts][0] == "2024-05-14 11:58"
        await pilot.press("s")  # sorted by silence: the longest silent first
        await settle(pilot)
        assert table_rows(screen, "#fleet-table")[0][0] == "rack3-host3"
        await pilot.press("4")  # replacements: the one of host 1, its audit head
        await settle(pilot)
        [rep] = table_rows(screen, "#fleet-table")
        assert (rep[0], rep[1], rep[2], rep[3], rep[5]) == (
            "rack1-host1", "1", "P1-DIMME1", "done", "3")
        assert "audit head" in static_text(screen, "#fleet-detail")
        await pilot.press("3")  # failure rates
        await settle(pilot)
        [rate] = table_rows(screen, "#fleet-table")
        [expected_rate] = screen.overview.failures
        assert rate[:4] == ["Samsung", "M393A1K43BB1-CTD", str(expected_rate.modules), "2"]


async def test_a_shows_the_dimms_judged_ok_too(fleet_app: Any, central: str) -> None:
    app = fleet_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_until(pilot, lambda: loaded(app))
        await settle(pilot)
        screen = app.screen
        engine = central_engine(central)
        # a DIMM its host judged ok (a verdict that went back to ok), removed after: the
        # file's other tests share the central store
        ok_row = {"host_id": HOSTS[0][0], "local_id": 10**9, "dimm_id": "mc9/dimm9",
                  "time": PINNED_NOW.replace(tzinfo=None), "state": "ok",
                  "previous_state": "watch", "rules": "[]", "reasons": "[]",
                  "evidence": "{}"}
        with engine.begin() as conn:
            conn.execute(read.VERDICTS.insert().values(**ok_row))
        try:
            with engine.connect() as conn:
                worse, every = read.dimms(conn), read.dimms(conn, include_ok=True)
            assert len(every) == len(worse) + 1
            assert len(table_rows(screen, "#fleet-table")) == len(worse)
            await pilot.press("a")
            await wait_until(pilot, lambda: len(screen.overview.dimms) == len(every))
            await settle(pilot)
            assert len(table_rows(screen, "#fleet-table")) == len(every)
            assert "DIMMs in all" in static_text(screen, "#fleet-state")
            await pilot.press("a")  # and back
            await wait_until(pilot, lambda: len(screen.overview.dimms) == len(worse))
            await settle(pilot)
            assert "worse than ok" in static_text(screen, "#fleet-state")
        finally:
            with engine.begin() as conn:
                conn.execute(read.VERDICTS.delete().where(
                    read.VERDICTS.c.local_id == ok_row["local_id"]))
            engine.dispose()


async def test_enter_on_a_dimm_shows_its_reasons(fleet_app: Any) -> None:
    app = fleet_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: loaded(app))
        await settle(pilot)
        await pilot.press("down", "down", "enter")  # the third: host 1's row fault
        await wait_until(pilot, lambda: isinstance(app.screen, FleetDimmScreen)
                         and app.screen.verdicts is not None)
        detail = app.screen
        assert (detail.dimm.hostname, detail.dimm.dimm_id) == ("rack1-host1", FAILING)
        assert detail.verdicts and detail.verdicts[0].state == detail.dimm.verdict
        shown = static_text(detail, "#fleet-dimm-verdicts")
        assert all(reason in shown for reason in detail.verdicts[0].reasons)
        assert "CEs crossed its threshold" in shown
        assert "rack1-host1" in static_text(detail, "#fleet-dimm-identity")
        await pilot.press("escape")
        assert isinstance(app.screen, FleetScreen)


async def test_an_unreachable_store_is_one_line_and_the_app_keeps_running(
        fleet_app: Any, tmp_path: Path) -> None:
    nowhere = f"postgresql+psycopg://memras@/fleet?host={tmp_path}/no-server"
    app = fleet_app(nowhere)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: loaded(app))
        state = static_text(app.screen, "#fleet-state")
        assert state.startswith("central database: cannot read: ")
        assert "check [fleet] url and that the server is up" in state
        assert "Traceback" not in screen_text(app)
        await pilot.press("d")  # the host's own screens still work
        await wait_until(pilot, lambda: isinstance(app.screen, DashboardScreen))
        await pilot.press("f")
        await wait_until(pilot, lambda: isinstance(app.screen, FleetScreen))


async def test_rows_read_before_stay_when_the_server_goes_away(
        fleet_app: Any, tmp_path: Path) -> None:
    app = fleet_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: loaded(app))
        await settle(pilot)
        before = table_rows(app.screen, "#fleet-table")
        # the server is gone: the same database name, on a socket no server listens on
        gone = FleetConfig(f"postgresql+psycopg://memras@/{CENTRAL_DB}?host={tmp_path}")
        app.fleet_engine().dispose()
        app.fleet, app._fleet_engine = gone, central_engine(gone.url)
        await pilot.press("f5")
        await wait_until(pilot, lambda: app.screen.problem is not None)
        state = static_text(app.screen, "#fleet-state").splitlines()
        assert state[0].startswith("central database: cannot read: ")
        assert "the rows below are as read at 2024-05-14 12:00:00" in state
        assert table_rows(app.screen, "#fleet-table") == before


def test_how_long_a_host_is_silent() -> None:
    from memras.tui.screens.fleet import ago

    def shown(seconds: int) -> tuple[str, str]:
        text = ago(NOW - timedelta(seconds=seconds), PINNED_NOW)
        return text.plain, str(text.style)

    assert shown(59) == ("59s ago", "")
    assert shown(599) == ("9m ago", "")
    assert shown(600) == ("10m ago", "yellow")
    assert shown(86399) == ("23h ago", "yellow")
    assert shown(86400 + 7200) == ("1d 2h ago", "bold red")
    assert shown(936 * 86400 + 3600) == ("936d ago", "bold red")  # fits its column
    assert ago(None, PINNED_NOW).plain == "-"


async def test_a_database_without_the_fleet_schema_says_what_to_run(
        fleet_app: Any, pg_url: str) -> None:
    app = fleet_app(pg_url)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: loaded(app))
        state = static_text(app.screen, "#fleet-state")
        assert "no fleet schema in this database" in state
        assert "memras fleet init" in state


async def test_without_a_url_f_says_how_to_set_one(fleet_app: Any) -> None:
    app = fleet_app(None, start_mode="dashboard")
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, DashboardScreen))
        assert "screen.fleet" not in _footer_ids(app)  # no fleet: no footer entry
        await pilot.press("f")
        await wait_until(pilot, lambda: isinstance(app.screen, FleetScreen))
        assert static_text(app.screen, "#fleet-state") == FLEET_UNSET
        assert "[fleet] table of --config" in FLEET_UNSET and "--fleet-url" in FLEET_UNSET
    with_url = fleet_app(start_mode="dashboard")
    async with with_url.run_test(size=(120, 40)) as pilot:
        await wait_until(pilot, lambda: isinstance(with_url.screen, DashboardScreen))
        assert "screen.fleet" in _footer_ids(with_url)


def _footer_ids(app: MemrasApp) -> set[str]:
    return {b.binding.id or "" for b in app.screen.active_bindings.values()
            if b.binding.show and b.enabled}


async def test_hostile_host_names_and_labels_are_escaped(fleet_app: Any) -> None:
    app = fleet_app()
    async with app.run_test(size=(160, 40)) as pilot:
        await wait_until(pilot, lambda: loaded(app))
        await settle(pilot)
        rows = table_rows(app.screen, "#fleet-table")
        hostile = [r for r in rows if r[0].startswith("rack2-")]
        assert len(hostile) == 3 and all(r[0] == cell(HOSTILE_HOST, 12) for r in hostile)
        labelled = [n for n, r in enumerate(rows) if r[1] == escape(HOSTILE_LABEL)]  # whole
        assert len(labelled) == 1 and rows[labelled[0]][1].startswith("\\x1b[2J[bold]")
        text = screen_text(app)
        assert "\x1b" not in text and "red[/]EVIL" in text  # drawn literally, not as markup
        await pilot.press(*["down"] * labelled[0])
        await settle(pilot)  # the pane under the table: every field, whole
        detail = static_text(app.screen, "#fleet-detail")
        assert escape(HOSTILE_LABEL) in detail and escape(HOSTILE_HOST) in detail
        await pilot.press("2")
        await settle(pilot)
        assert cell(HOSTILE_HOST, 24) in screen_text(app)  # drawn literally, not as markup


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
async def test_every_view_fits_the_terminal(fleet_app: Any, size: tuple[int, int]) -> None:
    app = fleet_app()
    async with app.run_test(size=size) as pilot:
        await wait_until(pilot, lambda: loaded(app))
        for n, _view in enumerate(VIEWS, 1):
            await pilot.press(str(n))
            await settle(pilot)
            table = app.screen.query_one("#fleet-table", DataTable)
            assert table.row_count and table.virtual_size.width <= table.size.width, n


async def _dimms(pilot: Any) -> None:
    await wait_until(pilot, lambda: loaded(pilot.app))
    await settle(pilot)


async def _hosts(pilot: Any) -> None:
    await _dimms(pilot)
    await pilot.press("2")
    await settle(pilot)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("name,run_before", [("dimms", _dimms), ("hosts", _hosts)])
def test_fleet_snapshot(snap_compare: Any, fleet_app: Any, name: str, run_before: Any,
                        size: tuple[int, int]) -> None:
    assert snap_compare(fleet_app(), terminal_size=size, run_before=run_before)


# --- how users get there: memras tui --fleet-url, [fleet] url, memras fleet tui ---------

@pytest.fixture
def started(monkeypatch: pytest.MonkeyPatch, world: Any) -> list[MemrasApp]:
    """The apps the CLI would run (as if in a terminal), not run."""
    from memras.cli import tui as cli_tui

    apps: list[MemrasApp] = []
    monkeypatch.setattr(cli_tui, "require_terminal", lambda ctx: None)
    monkeypatch.setattr(MemrasApp, "run", lambda self, *a, **k: apps.append(self))
    return apps


def test_fleet_tui_and_tui_need_a_terminal(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["fleet", "--url", "postgresql+psycopg://r@db/fleet", "tui"],
                 ["tui", "--fleet-url", "postgresql+psycopg://r@db/fleet"]):
        assert main(argv) == 2  # stdin is no tty under pytest
        err = capsys.readouterr().err
        assert "needs a terminal" in err and "Traceback" not in err


def test_the_fleet_url_is_resolved_as_memras_fleet_resolves_it(
        started: list[MemrasApp], world: Any, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "memras.toml"
    config.write_text('[fleet]\nurl = "postgresql+psycopg://reader@central/fleet"\n')
    local = ["--root", str(world.root), "--db", str(world.db), "--config", str(config)]
    assert main([*local, "tui"]) == 0
    assert main([*local, "tui", "--fleet-url", "postgresql+psycopg://other@db/f"]) == 0
    assert main([*local, "fleet", "tui"]) == 0
    assert [(a.fleet.url if a.fleet else None, a.current_mode) for a in started] == [
        ("postgresql+psycopg://reader@central/fleet", "dashboard"),
        ("postgresql+psycopg://other@db/f", "dashboard"),
        ("postgresql+psycopg://reader@central/fleet", "fleet")]
    # no url anywhere: memras fleet tui refuses as every fleet action does; memras tui
    # starts, and its f says what to set
    plain = ["--root", str(world.root), "--db", str(world.db)]
    assert main([*plain, "fleet", "tui"]) == 2
    assert "[fleet] url is not set" in capsys.readouterr().err
    assert main([*plain, "tui"]) == 0
    assert started[-1].fleet is None and started[-1].fleet_note == FLEET_UNSET
    # a config with a mistake: the host's screens still start, the fleet screen says why
    config.write_text("[fleet]\nurl = 5\n")
    assert main([*local, "tui"]) == 0
    assert started[-1].fleet is None and "url" in started[-1].fleet_note
    assert started[-1].fleet_note != FLEET_UNSET
