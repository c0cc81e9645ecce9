"""A CXL memdev's records in ``memras errors`` and ``memras summary``: its poison list,
health, AER and overflow records (memras_cxl_event) beside its media errors
(memras_error), under the same filters, on the simulator's ``cxl`` profile (mem0 and
mem1 interleaved in region0)."""

from __future__ import annotations

import json
from dataclasses import asdict, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import memras.health.models  # noqa: F401  (its tables, which `memras watch` creates)
from memras.cli import main
from memras.ingest.parsers.ftrace import parse_trace_line
from memras.records import CxlEvent, MemoryErrorEvent
from memras.sim import profiles
from memras.store import Store
from memras.store.cxl import cxl_records, error_summary
from tests.unit.test_cxl_parsers import AER_UE_612, GM_612, MODULE_612, POISON_612

T0 = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
# mem0's poison at DPA 0x1000 (64 bytes), the kernel's HPA for it, flags More|Overflow
POISON = POISON_612.replace("flags= ", "flags=More|Overflow ")


def dated(line: str, minutes: int, **changes: str) -> CxlEvent | MemoryErrorEvent:
    for old, new in changes.items():
        line = line.replace(old, new)
    record = parse_trace_line(line)
    assert isinstance(record, CxlEvent | MemoryErrorEvent), line
    return replace(record, timestamp=T0 + timedelta(minutes=minutes))


@pytest.fixture
def cxl(tmp_path: Path) -> tuple[str, str]:
    """mem0: a media CE (t+0), its poison (t+1), a health record (t+2), an AER UE (t+3);
    mem1: a poison record (t+4) and nothing else."""
    root, db = tmp_path / "srv", tmp_path / "memras.db"
    profiles.create("cxl", root)
    with Store.open(db) as store:
        store.add_events([
            dated(GM_612, 0), dated(POISON, 1), dated(MODULE_612, 2), dated(AER_UE_612, 3),
            dated(POISON_612, 4, **{"memdev=mem0 host=0000:0d:00.0 serial=0":
                                    "memdev=mem1 host=0000:0e:00.0 serial=1",
                                    "dpa=0x1000": "dpa=0x2000"})])
    return str(root), str(db)


def cli(capsys: pytest.CaptureFixture[str], cxl: tuple[str, str], *args: str
        ) -> tuple[int, str, str]:
    root, db = cxl
    code = main(["--root", root, "--db", db, *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_errors_lists_the_poison_record_with_memdev_dpa_hpa_source_and_flags(cxl, capsys
                                                                             ) -> None:
    code, out, _ = cli(capsys, cxl, "--json", "errors")
    assert code == 0
    listed = json.loads(out)
    assert [(e["record"], e["label"], e["type"]) for e in listed] == [
        ("error", "mem0", "Corrected"), ("cxl", "mem0", "Uncorrected"),
        ("cxl", "mem0", "Info"), ("cxl", "mem0", "Uncorrected"),
        ("cxl", "mem1", "Uncorrected")]  # by time, both tables
    poison = listed[1]
    assert poison["time"].startswith("2026-12-01T10:01:00")
    assert (poison["dimm_id"], poison["dimm_name"], poison["address"]) == (
        "label:mem0", "mem0", 0x290001000)
    got = poison["cxl"]
    assert (got["event"], got["memdev"], got["dpa"], got["dpa_length"], got["hpa"],
            got["trace_type"], got["source_text"], got["flags"]) == (
        "poison", "mem0", 0x1000, 0x40, 0x290001000, "List", "Injected", "More|Overflow")
    code, out, _ = cli(capsys, cxl, "--wide", "errors")
    line = next(x for x in out.splitlines() if "poison" in x)
    for part in ("cxl:1", "2026-12-01", "Uncorrected", "mem0", "DPA 0x1000",
                 "0x290001000", "CXL poison List, 64 bytes, source Injected, "
                 "flags More,Overflow"):
        assert part in line, (part, line)


def test_errors_dimm_selects_one_memdevs_records_through_the_one_filter(cxl, capsys) -> None:
    code, out, _ = cli(capsys, cxl, "--json", "errors", "--dimm", "mem0")
    assert code == 0
    assert {e["label"] for e in json.loads(out)} == {"mem0"}
    assert len(json.loads(out)) == 4
    code, out, _ = cli(capsys, cxl, "--json", "errors", "--dimm", "mem1", "--type", "UE")
    (only,) = json.loads(out)
    assert (only["record"], only["cxl"]["dpa"]) == ("cxl", 0x2000)
    code, out, _ = cli(capsys, cxl, "--json", "errors", "--dimm", "mem0", "--type", "CE")
    assert [e["record"] for e in json.loads(out)] == ["error"]
    code, out, _ = cli(capsys, cxl, "--json", "errors", "--limit", "2")
    assert [e["cxl"]["event"] for e in json.loads(out)] == ["aer_uncorrectable_error",
                                                            "poison"]
    code, out, _ = cli(capsys, cxl, "--json", "errors", "--since", "2026-12-01T10:02:30Z")
    assert [e["label"] for e in json.loads(out)] == ["mem0", "mem1"]


def test_a_memdev_without_records_is_known_and_a_typo_still_exits_2(tmp_path, capsys
                                                                     ) -> None:
    root, db = tmp_path / "srv", tmp_path / "memras.db"
    profiles.create("cxl", root)
    Store.open(db).close()
    code, out, err = cli(capsys, (str(root), str(db)), "errors", "--dimm", "mem1")
    assert (code, out.strip(), err) == (0, "No memory errors stored.", "")
    code, out, err = cli(capsys, (str(root), str(db)), "errors", "--dimm", "mem7")
    assert code == 2 and "no DIMM called 'mem7'" in err
    assert "mem0" in err and "mem1" in err  # the closest names


def test_summary_counts_the_records_by_memdev_and_type(cxl, capsys) -> None:
    code, out, _ = cli(capsys, cxl, "--json", "summary")  # SQLite: the quick read
    assert code == 0
    quick = json.loads(out)
    groups = {(g["type"], g["label"]): (g["events"], g["errors"]) for g in quick["groups"]}
    # mem0's UE: its poison and its AER record; the media CE stays the error table's line
    assert groups == {("Corrected", "mem0"): (1, 1), ("Info", "mem0"): (1, 1),
                      ("Uncorrected", "mem0"): (2, 2), ("Uncorrected", "mem1"): (1, 1)}
    code, out, _ = cli(capsys, cxl, "--json", "summary", "--dimm", "mem0", "--type", "UE")
    (only,) = json.loads(out)["groups"]
    assert (only["label"], only["events"]) == ("mem0", 2)
    with Store.open_readonly(cxl[1]) as store:  # the generic read, any backend
        generic = error_summary(store)
    assert json.loads(json.dumps(asdict(generic))) == quick


def test_media_records_in_the_cxl_table_are_not_listed_twice(tmp_path) -> None:
    """A media event is a memras_error row; its CxlEvent form, were it stored too, is
    neither listed nor counted again."""
    with Store.open(tmp_path / "memras.db") as store:
        media = dated(GM_612, 0)
        assert isinstance(media, MemoryErrorEvent)
        from memras.ingest.parsers.cxl import cxl_event_of

        as_cxl = cxl_event_of(media)
        assert as_cxl is not None
        store.add_events([media, replace(as_cxl, timestamp=T0)])
        assert cxl_records(store) == []
        assert [(t.type, t.events) for t in error_summary(store).totals] == [
            ("Corrected", 1)]


def test_a_poison_list_read_again_is_listed_again_and_counted_once(cxl, capsys) -> None:
    """Each read of the device's poison list prints every entry again: `errors` lists
    each record (when it was read), `summary` counts it as one more event and no more
    errors, and a new DPA as one more error."""
    with Store.open(cxl[1]) as store:
        store.add_events([dated(POISON, 30), dated(POISON, 31, **{"dpa=0x1000": "dpa=0x3000"})])
    code, out, _ = cli(capsys, cxl, "--json", "errors", "--dimm", "mem0", "--type", "UE")
    assert [e["cxl"].get("dpa") for e in json.loads(out)] == [0x1000, None, 0x1000, 0x3000]
    code, out, _ = cli(capsys, cxl, "--json", "summary")
    groups = {(g["type"], g["label"]): (g["events"], g["errors"])
              for g in json.loads(out)["groups"]}
    # poison at 0x1000 twice and at 0x3000 (2 errors) and the AER record
    assert groups[("Uncorrected", "mem0")] == (4, 3)
    with Store.open_readonly(cxl[1]) as store:
        assert json.loads(json.dumps(asdict(error_summary(store)))) == json.loads(out)
