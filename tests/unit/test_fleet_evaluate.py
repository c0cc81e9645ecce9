"""`memras fleet evaluate` scores per DIMM on a real central PostgreSQL.

Two simulated demo servers (tests/fixtures/postgres.py's throw-away cluster for the
central store): each gets corrected errors injected by the simulator at chosen kernel
times, ingested, attributed and judged by a real `memras watch --once`, then shipped.
Host 1's failing DIMM is replaced through the workflow engine (`memras replace
--backend simulated`): that replacement names the DIMM, so it is a DIMM-level ticket,
and host 1's other flagged DIMM is a false positive (host-level tickets hid it). Host 2
holds a replacement recorded without a DIMM id (as an older memras wrote them): that one
stays host-level, host 2 is scored as one unit, and the output says so.

Expected values are read from the central rows (the time of a DIMM's 10th CE is when
mcelog's 10 CEs / 24 h fires), never from the evaluation under test.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select

from memras.cli import main
from memras.evaluate import evaluate
from memras.evaluate.history import HOST_LEVEL, Ticket
from memras.evaluate.metrics import evaluate_flags
from memras.evaluate.replay import MCELOG_RULE, DimmFlags
from memras.fleet.evaluate import (
    REPLACEMENTS,
    _HostDimms,
    _why_host_level,
    fleet_history,
    fleet_tickets,
)
from memras.fleet.identity import host_identity
from memras.fleet.schema import CENTRAL
from memras.fleet.ship import Shipper, central_engine
from memras.host import Host
from memras.sim import profiles
from memras.sim.actions import inject_ce
from memras.sim.state import locked_state
from memras.store import Store
from memras.topology.inventory import resolve_dimm
from memras.workflow.models import ReplacementRow

ERRORS = CENTRAL["memras_error"]
FAILING, OTHER, HOST2_DIMM = "P1-DIMMC1", "P2-DIMMB1", "P1-DIMMD1"
HOUR_US = 3600 * 1_000_000
DAYS_AGO = 30  # the simulated boot: errors are weeks old when host 1's DIMM is replaced


@pytest.fixture
def central(pg_url: str) -> str:
    assert main(["fleet", "--url", pg_url, "init"]) == 0
    return pg_url


@pytest.fixture(autouse=True)
def _no_site_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from memras import config

    # this machine's /etc/memras/memras.toml never decides a result
    monkeypatch.setattr(config, "DEFAULT_CONFIG_PATH", tmp_path / "no-such-memras.toml")


def _server(tmp_path: Path, n: int, bursts: list[tuple[str, int, int]]) -> tuple[Path, Path]:
    """A demo server booted DAYS_AGO, with ``(DIMM, first hour after boot, CEs)`` bursts
    (one CE an hour, each on a new row) watched once: (root, database)."""
    root = tmp_path / f"host{n}"
    profiles.create("demo", root)
    (root / "etc").mkdir(exist_ok=True)
    (root / "etc" / "machine-id").write_text(f"{n:032x}\n")
    (root / "etc" / "hostname").write_text(f"rack1-host{n}\n")
    boot = datetime.now(UTC) - timedelta(days=DAYS_AGO)
    (root / "proc" / "stat").write_text(f"btime {int(boot.timestamp())}\n")
    for dimm, hour, count in bursts:
        for i in range(count):
            with locked_state(root) as state:
                state.uptime_us = (hour + i) * HOUR_US
            inject_ce(root, dimm, row=0x100 + 0x40 * i, column=8 * i, bank=i % 4)
    db = tmp_path / f"host{n}.db"
    assert main(["--root", str(root), "--db", str(db), "--json", "watch", "--once"]) == 0
    return root, db


def _ship(root: Path, db: Path, central: str) -> None:
    with Store.open(db) as local:
        result = Shipper(local, central_engine(central), host_identity(root)).ship_once()
    assert result.backlog == 0


def _tenth_ce(conn, host_id: str, dimm_id: str) -> datetime:
    """When mcelog's 10 CEs / 24 h fires on a DIMM: the time of its 10th CE (one CE a row)."""
    times = conn.scalars(select(ERRORS.c.time).where(
        ERRORS.c.host_id == host_id, ERRORS.c.dimm_id == dimm_id).order_by(ERRORS.c.time))
    return list(times)[9].replace(tzinfo=UTC)


def _run(capsys, *argv: str) -> tuple[int, str]:
    capsys.readouterr()
    code = main(list(argv))
    return code, capsys.readouterr().out


def test_replacements_are_scored_per_dimm_and_unmapped_ones_per_host(
        tmp_path: Path, central: str, capsys, monkeypatch) -> None:
    # host 1: the failing DIMM errs on day 3 (14 CEs), another DIMM on day 6 (12 CEs)
    root1, db1 = _server(tmp_path, 1, [(FAILING, 72, 14), (OTHER, 144, 12)])
    failing = resolve_dimm(Host(root1), FAILING)
    other_id = resolve_dimm(Host(root1), OTHER).id
    # the failing DIMM replaced through the workflow engine, as an operator does it
    code, _ = _run(capsys, "--root", str(root1), "--db", str(db1), "replace", FAILING,
                   "--backend", "simulated", "--yes")
    assert code == 0
    # host 2: one DIMM errs on day 2; its replacement was recorded with no DIMM id
    root2, db2 = _server(tmp_path, 2, [(HOST2_DIMM, 48, 11)])
    host2_failed = datetime.now(UTC).replace(microsecond=0, tzinfo=None) - timedelta(days=5)
    with Store.open(db2) as local, local.session() as s:
        s.connection().execute(ReplacementRow.__table__.insert().values(
            id=1, dimm_id="", dimm_label="", state="done", backend="manual",
            on_failure="rollback", uid=0, user="root", host="rack1-host2", root="/",
            options={}, target={}, created_at=host2_failed, updated_at=host2_failed))
    for root, db in ((root1, db1), (root2, db2)):
        _ship(root, db, central)

    id1, id2 = host_identity(root1).host_id, host_identity(root2).host_id
    engine = create_engine(central)
    with engine.connect() as conn:
        replaced_at = conn.scalar(select(REPLACEMENTS.c.created_at).where(
            REPLACEMENTS.c.host_id == id1)).replace(tzinfo=UTC)
        host2_dimm = conn.scalar(select(ERRORS.c.dimm_id).where(ERRORS.c.host_id == id2))
        flags = {"replaced": _tenth_ce(conn, id1, failing.id),
                 "other": _tenth_ce(conn, id1, other_id),
                 "host2": _tenth_ce(conn, id2, host2_dimm)}
        history = fleet_history(conn)
        labels = fleet_tickets(conn, history)
    engine.dispose()

    # the replay names host 1's DIMMs by the ids its own engine gave them
    assert set(history.dimm_ids["rack1-host1"].values()) == {failing.id, other_id}
    assert labels.tickets == [Ticket("rack1-host2", HOST_LEVEL, host2_failed.replace(
        tzinfo=UTC)), Ticket("rack1-host1", failing.id, replaced_at)]
    [unmapped] = labels.host_level
    assert (unmapped.host, unmapped.replacement_id) == ("rack1-host2", 1)
    assert "names no DIMM" in unmapped.why

    code, out = _run(capsys, "fleet", "--url", central, "--json", "evaluate")
    data = json.loads(out)
    assert code == 0
    assert (data["unit"], data["host_level_tickets"], data["host_units"]) == ("mixed", 1, 1)
    assert (data["hosts"], data["dimms"], data["failures"]) == (2, 3, 2)
    assert data["events"] == 14 + 12 + 11
    assert [h["host"] for h in data["host_level"]] == ["rack1-host2"]
    mcelog = {r["rule"]: r for r in data["rules"]}[MCELOG_RULE]
    # the replaced DIMM and host 2 are caught in time; host 1's other DIMM never failed
    assert (mcelog["flagged"], mcelog["tp"], mcelog["fp"], mcelog["fn"]) == (3, 2, 1, 0)
    leads = sorted([(replaced_at - flags["replaced"]).total_seconds() / 3600,
                    (host2_failed.replace(tzinfo=UTC) - flags["host2"]).total_seconds()
                    / 3600])
    assert mcelog["lead_h"]["p10"] == pytest.approx(
        leads[0] + 0.1 * (leads[1] - leads[0]), abs=1e-6)
    assert mcelog["lead_h"]["p90"] == pytest.approx(
        leads[0] + 0.9 * (leads[1] - leads[0]), abs=1e-6)
    watch = {r["rule"]: r for r in data["rules"]}["memras-watch"]
    assert watch["fp"] >= 1 and watch["tp"] >= 1  # host 1's other DIMM: a false alarm

    # the same history with host 1's replacement host-level: its false alarm is hidden
    hidden, _ = evaluate(history, [Ticket(t.host, HOST_LEVEL, t.time) for t in labels.tickets])
    assert (hidden.unit, hidden.score(MCELOG_RULE).fp) == ("host", 0)
    assert hidden.score(MCELOG_RULE).tp == 2

    # the replaced DIMM alone, per DIMM: its lead is the replacement's start minus the
    # time of its 10th CE
    alone, _ = evaluate(history, [labels.tickets[1]])
    score = alone.score(MCELOG_RULE)
    assert (alone.unit, score.tp, score.fp) == ("dimm", 1, 2)
    assert score.leads_s == ((replaced_at - flags["replaced"]).total_seconds(),)

    # the table says what was host-level and why
    monkeypatch.setenv("COLUMNS", "100")
    code, out = _run(capsys, "fleet", "--url", central, "evaluate")
    assert code == 0
    assert "scored per DIMM, but 1 host(s) as one unit each: 1 ticket(s) name no DIMM" in out
    assert "host-level: rack1-host2 replacement 1: the replacement names no DIMM" in out
    assert "2 failed unit(s)" in out

    # --tickets: a DIMM named by its module's serial and by its EDAC label
    old_serial = failing.smbios.serial if failing.smbios else ""
    assert old_serial
    host2_label = resolve_dimm(Host(root2), HOST2_DIMM).edac.label
    tickets = tmp_path / "tickets.csv"
    tickets.write_text(
        "host,dimm,failure_time\n"
        f"rack1-host1,{old_serial},{replaced_at.isoformat()}\n"
        f"rack1-host2,{host2_label},{host2_failed.isoformat()}\n")
    code, out = _run(capsys, "fleet", "--url", central, "--json", "evaluate",
                     "--tickets", str(tickets))
    data = json.loads(out)
    mcelog = {r["rule"]: r for r in data["rules"]}[MCELOG_RULE]
    assert (code, data["unit"], data["host_level_tickets"], data["host_level"]) == (
        0, "dimm", 0, [])
    assert (data["failures"], data["failures_without_events"]) == (2, 0)
    assert (mcelog["tp"], mcelog["fp"], mcelog["fn"]) == (2, 1, 0)


def test_a_replaced_dimm_is_host_level_only_when_it_cannot_be_told() -> None:
    known = _HostDimms(with_errors={"mc0/dimm0", "mc1/dimm2"},
                       inventory={"mc0/dimm0", "mc0/dimm2", "mc1/dimm2"})
    assert _why_host_level("mc0/dimm0", known) is None  # its errors name it
    assert _why_host_level("mc0/dimm2", known) is None  # in the inventory, no errors
    assert "names no DIMM" in (_why_host_level("", known) or "")
    assert "neither in the host's shipped inventory" in (
        _why_host_level("mc3/dimm4", known) or "")
    # an inventory DIMM without errors, while some errors were never attributed to one
    strays = _HostDimms(with_errors={"mc0/dimm0", "mc1:0:1:-1"},
                        inventory={"mc0/dimm0", "mc0/dimm2"})
    why = _why_host_level("mc0/dimm2", strays) or ""
    assert "mc1:0:1:-1" in why and "may be one" in why
    assert _why_host_level("mc1:0:1:-1", strays) is None  # the replay's id for it



def test_mixed_tickets_score_only_their_hosts_as_units() -> None:
    t0 = datetime(2026, 1, 10, tzinfo=UTC)

    def flagged(host: str, dimm: str, hours_before: int) -> DimmFlags:
        d = DimmFlags(host, dimm)
        d.flag("r", t0 - timedelta(hours=hours_before))
        return d

    dimms = {(d.host, d.dimm): d for d in (
        flagged("h1", "mc0/dimm0", 48), flagged("h1", "mc1/dimm2", 24),
        flagged("h2", "mc0/dimm0", 30), flagged("h2", "mc0/dimm2", 10))}
    mixed = evaluate_flags(dimms, [Ticket("h1", "mc0/dimm0", t0), Ticket("h2", HOST_LEVEL, t0)],
                           {"r": "r"})
    s = mixed.score("r")
    assert (mixed.unit, mixed.host_units, mixed.host_level_tickets) == ("mixed", 1, 1)
    # h1's other DIMM is a false alarm; h2 is one unit flagged at its first DIMM's flag
    assert (s.flagged, s.tp, s.fp, s.fn, s.leads_s) == (3, 2, 1, 0, (30 * 3600.0, 48 * 3600.0))
    hosts = evaluate_flags(dimms, [Ticket("h1", HOST_LEVEL, t0), Ticket("h2", HOST_LEVEL, t0)],
                           {"r": "r"})
    assert (hosts.unit, hosts.host_units, hosts.score("r").fp) == ("host", 2, 0)
    per_dimm = evaluate_flags(dimms, [Ticket("h1", "mc0/dimm0", t0)], {"r": "r"})
    assert (per_dimm.unit, per_dimm.host_units, per_dimm.score("r").fp) == ("dimm", 0, 3)
