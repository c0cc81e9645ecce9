"""Ack and resolve from the alerts screen go through the same core call as ``memras alerts``.

The hooks are real: a webhook POSTing to a receiver on 127.0.0.1, the prometheus hook
writing its textfile, and an exec trigger script writing a file. The CLI and the TUI
act on two alerts of the same database with the same ``--config``, and every hook must
have seen the same thing from both.
"""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from memras.tui.screens.alerts import AlertsScreen

from memras.alerts.alert import AlertState
from memras.alerts.service import SqlAlertStore
from memras.cli import main
from memras.store import Store
from tests.tui.conftest import wait_until
from tests.tui.helpers import static_text, table_rows

TRIGGER = f"""#!{sys.executable}
import os, sys
with open(sys.argv[1], "a") as f:
    f.write(os.environ["MEMRAS_ALERT_ID"] + " " + os.environ["MEMRAS_KIND"] + "\\n")
"""


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """A real HTTP server; yields its URL and the JSON bodies it received."""
    bodies: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server naming
            bodies.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook", bodies
    server.shutdown()
    server.server_close()
    thread.join(5)


@pytest.fixture
def hooks_config(tmp_path: Path, receiver: tuple[str, list[dict[str, Any]]]) -> Path:
    trigger = tmp_path / "trigger"
    trigger.write_text(TRIGGER)
    trigger.chmod(0o755)
    (tmp_path / "prom").mkdir()
    config = tmp_path / "memras.toml"
    config.write_text(
        "[alerts.retry]\nattempts = 1\n"
        f'[alerts.hooks.webhook]\nurl = "{receiver[0]}"\n'
        f'[alerts.hooks.prometheus]\ntextfile_dir = "{tmp_path / "prom"}"\n'
        f'[alerts.hooks.exec]\ncommand = ["{trigger}", "{tmp_path / "exec.log"}"]\n')
    return config


def _open_ids(db: Path) -> list[int]:
    with Store.open(db) as store:
        return [a.id for a in SqlAlertStore(store).list(AlertState.OPEN)]


def _hooks_told(db: Path, alert_id: int) -> list[tuple[str, str]]:
    with Store.open(db) as store:
        return sorted((d.hook, d.status) for d in SqlAlertStore(store).deliveries(alert_id))


async def _open_alerts_screen(pilot: Any) -> None:
    await pilot.press("a")
    await wait_until(pilot, lambda: isinstance(pilot.app.screen, AlertsScreen)
                     and pilot.app.screen.query_one("#alert-table").row_count > 0)


async def _select(pilot: Any, alert_id: int) -> None:
    rows = [int(r[0]) for r in table_rows(pilot.app.screen, "#alert-table")]
    pilot.app.screen.query_one("#alert-table").move_cursor(row=rows.index(alert_id))
    await pilot.pause()


def _shown_state(pilot: Any, alert_id: int) -> str | None:
    """The State column of the alert's row (lower case); None when it is not listed."""
    for row in table_rows(pilot.app.screen, "#alert-table"):
        if int(row[0]) == alert_id:
            return str(row[2]).strip().lower()
    return None


async def test_tui_ack_and_resolve_tell_the_configured_hooks_as_the_cli_does(
        make_app, world, hooks_config: Path, tmp_path: Path,
        receiver: tuple[str, list[dict[str, Any]]]) -> None:
    _, bodies = receiver
    by_cli, by_tui, resolved_by_tui = _open_ids(world.db)[:3]
    assert main(["alerts", "ack", str(by_cli), "--note", "cli", "--db", str(world.db),
                 "--config", str(hooks_config)]) == 0

    app = make_app(config_path=str(hooks_config))
    async with app.run_test(size=(120, 40)) as pilot:
        await _open_alerts_screen(pilot)
        await _select(pilot, by_tui)
        await pilot.press("k", *"tui", "enter")
        await wait_until(pilot, lambda: by_tui not in _open_ids(world.db))
        await wait_until(pilot, lambda: len(bodies) == 2)
        # the screen reloads after the ack: select only once the table shows it, or the
        # reload lands after the selection and moves the cursor to another alert
        await wait_until(pilot, lambda: _shown_state(pilot, by_tui) != "open")
        await _select(pilot, resolved_by_tui)
        await pilot.press("r")
        await wait_until(pilot, lambda: len(bodies) == 3)

    # the webhook heard both acks the same way, then the resolve
    assert [(b["id"], b["state"]) for b in bodies] == [
        (by_cli, "acked"), (by_tui, "acked"), (resolved_by_tui, "resolved")]
    assert [b["ack"]["note"] for b in bodies[:2]] == ["cli", "tui"]
    # the same hooks were told, with the same results, whichever front end acked
    assert _hooks_told(world.db, by_tui) == _hooks_told(world.db, by_cli) == [
        ("prometheus", "ok"), ("webhook", "ok")]
    # prometheus rewrote its textfile after each change: 5 open - 2 acked - 1 resolved
    assert "memras_alerts_open 2.0\n" in (tmp_path / "prom" / "memras.prom").read_text()
    # exec triggers run for new alerts only (rasdaemon's trigger contract), from both
    assert not (tmp_path / "exec.log").exists()
    assert main(["alerts", "test", "--hook", "exec", "--config", str(hooks_config)]) == 0
    assert (tmp_path / "exec.log").read_text() == " test\n"  # the same config runs it


async def test_resolve_from_the_alerts_screen(make_app, world) -> None:
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await _open_alerts_screen(pilot)
        assert any(b.binding.description == "Resolve" and b.binding.show
                   for b in app.active_bindings.values())  # shown in the footer
        first = int(table_rows(app.screen, "#alert-table")[0][0])
        await pilot.press("r")
        await wait_until(pilot, lambda: len(table_rows(app.screen, "#alert-table")) == 4)
        assert first not in _open_ids(world.db)
        assert any(n.message == f"alert #{first} resolved" for n in app._notifications)
        await pilot.press("f", "f")  # open -> acked -> resolved
        await wait_until(pilot, lambda: [r[0] for r in table_rows(app.screen, "#alert-table")]
                         == [str(first)])
        assert "resolved" in static_text(app.screen, "#alert-detail")


async def test_resolve_refused_when_read_only(make_app, world) -> None:
    app = make_app(read_only=True)
    async with app.run_test(size=(120, 40)) as pilot:
        await _open_alerts_screen(pilot)
        await pilot.press("r")
        await pilot.pause()
        assert any(n.title == "Cannot resolve" for n in app._notifications)
        assert len(_open_ids(world.db)) == 5
