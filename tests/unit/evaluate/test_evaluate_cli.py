"""``memras evaluate`` end to end through ``memras.cli.main`` on committed and built inputs."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest

from memras.cli import main
from memras.store import rasdaemon_schema as rs

DATA = Path(__file__).parents[2] / "data" / "evaluate"

# Hand-checked from tests/data/evaluate/errors.csv (see README.md there for each DIMM).
EXPECTED_TABLE = """\
66 events on 7 DIMMs of 2 host(s); 5 failed DIMM(s), 1 with no events
RULE                                 FLAGGED TP FP FN PRECISION RECALL LEAD  P10  P90
memras watch                               7  4  3  1      0.57   0.80 4.5d 3.4d 6.4d
memras repair-by-page-offlining            6  4  2  1      0.67   0.80 4.2d 3.2d 5.7d
memras replace-at-next-maintenance         4  1  0  4      1.00   0.20 2.0d 2.0d 2.0d
memras replace-now                         4  0  0  5         -   0.00    -    -    -
mcelog DIMM 10 / 24h CE | 1 / 24h UE       6  2  2  3      0.50   0.40 4.0d 3.2d 4.8d
rasdaemon page 50 / 24h CE                 1  1  0  4      1.00   0.20 5.0d 5.0d 5.0d
"""


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _committed(*extra: str) -> list[str]:
    return ["evaluate", "--csv", str(DATA / "errors.csv"), "--tickets",
            str(DATA / "tickets.csv"), *extra]


def test_committed_history_gives_the_hand_checked_table(capsys) -> None:
    # --wide: the whole table (85 columns); at 80 the last optional column, P90, goes
    code, out, err = _run(capsys, "--wide", *_committed())
    assert (code, err) == (0, "")
    assert out == EXPECTED_TABLE


def test_json_has_the_same_figures_and_lead_hours(capsys) -> None:
    code, out, _ = _run(capsys, "--json", *_committed("--per-dimm"))
    data = json.loads(out)
    assert code == 0
    assert (data["dimms"], data["hosts"], data["failures"]) == (7, 2, 5)
    rules = {r["rule"]: r for r in data["rules"]}
    replace = rules["memras-replace-at-next-maintenance"]
    assert (replace["tp"], replace["fp"], replace["fn"], replace["late"]) == (1, 0, 4, 3)
    assert replace["lead_h"] == {"median": 48.0, "p10": 48.0, "p90": 48.0}
    assert rules["mcelog-dimm"]["precision"] == pytest.approx(2 / 4)
    per_dimm = {(d["host"], d["dimm"]): d for d in data["per_dimm"]}
    cell = per_dimm[("web-01", "S1:C0:D0")]  # a repeating cell: repaired, never replace
    assert "memras-replace-at-next-maintenance" not in cell["flags"]
    assert cell["flags"]["mcelog-dimm"] == "2024-03-15T04:30:00+00:00"
    # a stable bank fault past mcelog's and Sun's counts: repair, not replace
    bank = per_dimm[("web-01", "S0:C3:D0")]
    assert "mcelog-dimm" in bank["flags"]
    assert "memras-replace-at-next-maintenance" not in bank["flags"]
    assert "srds22-bank" in bank["why"]["memras-repair-by-page-offlining"]
    # a row fault spreading to other rows of its bank: replace 48 h before its UE
    grown = per_dimm[("db-02", "S1:C0:D0")]
    assert grown["flags"]["memras-replace-at-next-maintenance"] == "2024-03-12T00:00:00+00:00"
    assert "memras-fault-growing" in grown["why"]["memras-replace-at-next-maintenance"]


def test_horizon_turns_older_flags_into_misses(capsys) -> None:
    code, out, _ = _run(capsys, "--json", *_committed("--horizon", "4d"))
    rules = {r["rule"]: r for r in json.loads(out)["rules"]}
    # leads 74 h, 96 h, 120 h, 168 h: two are older than 96 h (96 h itself is in)
    watch = rules["memras-watch"]
    assert (code, watch["tp"], watch["early"], watch["fn"]) == (0, 2, 2, 3)
    assert json.loads(out)["horizon_h"] == 96


def test_bad_rows_are_counted_and_skipped_with_their_reason(tmp_path: Path, capsys) -> None:
    errors = tmp_path / "errors.csv"
    errors.write_text(
        "log_time,serial_number,cpuid,channelid,dimmid,rankid,bankid,rowid,columnid,error_type\n"
        "1709251200,h1,0,0,0,0,1,0x10,0x40,read\n"
        "yesterday,h1,0,0,0,0,1,0x10,0x40,read\n"
        "1709251260,h1,0,0,0,0,1,ten,0x40,read\n"
        "1709251320,h1,0,0,0,0,1,0x10,0x40,sparkles\n"
        "1709251380,,0,0,0,0,1,0x10,0x40,scrub\n"
        "1709251440,h1,0,0,0,0,1,0x11,0x40,scrub\n")
    tickets = tmp_path / "tickets.csv"
    tickets.write_text("host,dimm,failure_time\nh1,S0:C0:D0,2024-03-02\nh1,,2024-03-02\n")
    code, out, _ = _run(capsys, "evaluate", "--csv", str(errors), "--tickets", str(tickets))
    assert code == 0
    assert out.splitlines()[0].startswith("2 events on 1 DIMMs of 1 host(s); 1 failed DIMM(s)")
    assert "not judged: 5 row(s) skipped" in out
    for reason in ("errors.csv:3: time 'yesterday' is not ISO 8601 or epoch seconds",
                   "errors.csv:4: row 'ten' is not a number",
                   "errors.csv:5: error type 'sparkles' is not CE or UE",
                   "errors.csv:6: no host", "tickets.csv:3: no DIMM"):
        assert f"  skipped {reason}" in out


@pytest.mark.parametrize(("text", "message"), [
    ("time,host,socket\n", "no column for dimm (dimm or dimmid or dimm_id)"),
    ("", "is empty"),
])
def test_unreadable_csv_is_one_line_and_exit_2(tmp_path: Path, capsys, text: str,
                                               message: str) -> None:
    errors = tmp_path / "errors.csv"
    errors.write_text(text)
    code, out, err = _run(capsys, "evaluate", "--csv", str(errors), "--tickets",
                          str(DATA / "tickets.csv"))
    assert (code, out) == (2, "")
    assert message in err and len(err.strip().splitlines()) == 1


def test_bad_horizon_is_a_usage_error(capsys) -> None:
    code, _, err = _run(capsys, *_committed("--horizon", "soon"))
    assert code == 2 and "--horizon 'soon': not a duration" in err


# rasdaemon.md §2: a trace_pipe mc_event as rasdaemon stores it (area/socket/rank detail)
LABEL = "CPU_SrcID#0_Ha#0_Chan#0_DIMM#0"


def _rasdaemon_db(path: Path, times: list[datetime], address: int) -> Path:
    conn = sqlite3.connect(path)
    for statement in rs.all_create_statements():
        conn.execute(statement)
    for i, when in enumerate(times, 1):
        conn.execute(rs.insert_sql("mc_event", rs.MC_EVENT_COLUMNS), (
            i, when.strftime("%Y-%m-%d %H:%M:%S +0000"), 1, "Corrected", "memory read error",
            LABEL, 0, 0, 0, -1, address, 5, 0, "area:DRAM socket:0 rank:0"))
    conn.commit()
    conn.close()
    return path


def test_rasdaemon_database_input(tmp_path: Path, capsys) -> None:
    times = [datetime(2024, 5, 1, 0, minute, tzinfo=UTC) for minute in range(0, 55, 5)]
    db = _rasdaemon_db(tmp_path / "ras-mc_event.db", times, 0x12345000)
    tickets = tmp_path / "tickets.csv"
    tickets.write_text("host,dimm,failure_time\nnode7,mc0:0:0:-1,2024-05-02T00:50:00Z\n")
    code, out, _ = _run(capsys, "--json", "evaluate", "--rasdaemon-db", str(db), "--tickets",
                        str(tickets), "--host", "node7")
    data = json.loads(out)
    rules = {r["rule"]: r for r in data["rules"]}
    assert (code, data["dimms"], data["events"]) == (0, 1, 11)
    # the 10th CE (00:45) crossed mcelog's 10/24h: 24 h 5 min before the failure
    assert rules["mcelog-dimm"]["tp"] == 1
    assert rules["mcelog-dimm"]["lead_h"]["median"] == pytest.approx(24 + 5 / 60)
    assert rules["rasdaemon-page"]["flagged"] == 0  # 11 CEs on the page, below 50


def test_not_a_rasdaemon_database_is_one_line(tmp_path: Path, capsys) -> None:
    bogus = tmp_path / "x.db"
    bogus.write_text("not sqlite")
    code, _, err = _run(capsys, "evaluate", "--rasdaemon-db", str(bogus), "--tickets",
                        str(DATA / "tickets.csv"))
    assert code != 0 and len(err.strip().splitlines()) == 1 and "x.db" in err


def test_memras_database_memory_failure_ue_is_the_dimms_failure_signal(tmp_path: Path,
                                                                      capsys) -> None:
    """A UE the kernel reported only through memory_failure (its page, no DIMM) counts on
    the DIMM whose CEs were at that page: replace-now, and mcelog's UE bucket, flag it."""
    from datetime import timedelta

    from memras.records import DimmLocation, ErrorType, MemoryErrorEvent, MemoryFailureEvent
    from memras.records import Source as Src
    from memras.store import Store

    t0 = datetime(2024, 3, 1, tzinfo=UTC)
    page = 0x7F1234000
    loc = DimmLocation(socket=0, channel=1, slot=0, rank=0, bank=1, row=0x10, column=0x20)
    ces = [MemoryErrorEvent(ErrorType.CORRECTED, Src.TRACE, timestamp=t0 + timedelta(hours=i),
                            address=page + 0x40, location=loc) for i in range(2)]
    poison = MemoryFailureEvent(pfn=page >> 12, page_type="dirty LRU page",
                                action_result="Recovered", source=Src.TRACE,
                                timestamp=t0 + timedelta(days=2))
    db = tmp_path / "memras.db"
    with Store.open(db) as store:
        store.add_events([*ces, poison])
    tickets = tmp_path / "tickets.csv"
    tickets.write_text("host,dimm,failure_time\nh1,S0:C1:D0,2024-03-04T00:00:00Z\n")
    code, out, _ = _run(capsys, "--json", "evaluate", "--memras", str(db), "--host", "h1",
                        "--tickets", str(tickets), "--per-dimm")
    data = json.loads(out)
    assert code == 0 and data["events"] == 3 and data["unattributed"] == 0
    dimm = {d["dimm"]: d for d in data["per_dimm"]}["S0:C1:D0"]
    assert (dimm["ces"], dimm["ues"]) == (2, 1)
    assert dimm["flags"]["memras-replace-now"] == "2024-03-03T00:00:00+00:00"
    assert dimm["flags"]["mcelog-dimm"] == "2024-03-03T00:00:00+00:00"


def test_tickets_naming_no_dimm_score_hosts(tmp_path: Path, capsys) -> None:
    """PAKDD'21 (address log: serial_number, memory, rankid, bankid, row, col,
    collect_time; tickets: serial_number, failure_time) names the failed server only."""
    rows = ["serial_number,memory,rankid,bankid,row,col,collect_time"]
    rows += [f"s1,{d},0,1,{16 + i},64,2019-08-0{1 + i} 00:00:00"
             for d in (0, 1) for i in range(3)]
    rows += ["s2,0,0,1,16,64,2019-08-01 00:00:00"]
    errors = tmp_path / "address_log.csv"
    errors.write_text("\n".join(rows) + "\n")
    tickets = tmp_path / "failure_tag.csv"
    tickets.write_text("serial_number,failure_time,tag\ns1,2019-08-20 00:00:00,0\n"
                       "s3,2019-08-21 00:00:00,1\n")
    code, out, _ = _run(capsys, "--json", "evaluate", "--csv", str(errors),
                        "--tickets", str(tickets))
    data = json.loads(out)
    assert (code, data["unit"], data["dimms"], data["hosts"]) == (0, "host", 3, 2)
    assert (data["failures"], data["failures_without_events"]) == (2, 1)  # s1, and s3
    for rule in data["rules"]:  # s2 never failed: flagged, it is the one FP at most
        assert rule["tp"] + rule["fn"] == 2 and rule["fp"] <= 1
