"""Hostile input through the real import and watch paths: never a crash, never a lost
batch, nothing silent (memras.store.bounds, Store.add_events, memras.watcher).

The valid line is real: sb_edac's OVERFLOW report from
https://github.com/illinois-scicomp/machine-shop-maintenance/issues/66 ; the hostile ones
are that line with a value no row can hold put in, or a byte no kernel line carries.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from memras.cli import main
from memras.ingest.sources import KmsgSource
from memras.records import (
    DimmLocation,
    ErrorType,
    MceRegisters,
    MemoryErrorEvent,
    MemoryFailureEvent,
    Source,
)
from memras.sim import profiles
from memras.store import Store
from memras.store.bounds import COUNT_MAX, BoundsChecker
from memras.watcher.importing import MAX_LINE_CHARS, TOO_LONG, run_import
from memras.watcher.watch import Watcher

REAL = ("EDAC MC1: 262 CE memory read error on CPU_SrcID#0_Ha#0_Chan#1_DIMM#0 (channel:1 "
        "slot:0 page:0x2031c14 offset:0x940 grain:32 syndrome:0x0 -  OVERFLOW area:DRAM "
        "err_code:0001:0091 socket:0 ha:0 channel_mask:2 rank:1)")
HUGE_PAGE = REAL.replace("page:0x2031c14", "page:0xffffffffffffffff")
HUGE_COUNT = REAL.replace("262 CE", "18446744073709551616 CE")
BAD_PFN = "Memory failure: 0xffffffffffffffff: recovery action for free buddy page: Recovered"


def _valid(i: int) -> str:
    """The real line on another page, one per ``i`` (distinct errors, none a duplicate)."""
    return REAL.replace("page:0x2031c14", f"page:{0x2031c14 + i:#x}")


def _dmesg(lines: list[str]) -> str:
    return "".join(f"[{100 + i:6d}.000000] {line}\n" for i, line in enumerate(lines))


def _import(capsys, tmp_path: Path, kind: str, data: bytes) -> dict:
    path = tmp_path / f"{kind}.log"
    path.write_bytes(data)
    capsys.readouterr()
    code = main(["import", kind, str(path), "--db", str(tmp_path / "m.db"), "--json"])
    out = capsys.readouterr().out
    assert code == 0
    return json.loads(out)


def _rows(db: Path, sql: str) -> list[tuple]:
    with sqlite3.connect(db) as conn:
        return conn.execute(sql).fetchall()


# ---- the check: one hostile line, then 1,000 valid ones ---------------------

def test_import_keeps_1000_valid_lines_after_an_unstorable_page(tmp_path, capsys) -> None:
    report = _import(capsys, tmp_path, "dmesg",
                     _dmesg([HUGE_PAGE] + [_valid(i) for i in range(1000)]).encode())
    assert (report["inserted"], report["flagged"], report["skipped"]) == (1001, 1, 0)
    assert report["flag_reasons"] == {"address:too-large": 1}
    db = tmp_path / "m.db"
    assert _rows(db, "SELECT count(*) FROM memras_error WHERE flags IS NULL") == [(1000,)]
    assert _rows(db, "SELECT address, page, count, flags FROM memras_error "
                     "WHERE flags IS NOT NULL") == [(None, None, 262, "address:too-large")]
    # the rasdaemon mirror has the same (blanked) value, not a wrapped one
    assert _rows(db, "SELECT address FROM mc_event WHERE id = 1") == [(None,)]


def test_import_text_output_names_every_reason(tmp_path, capsys) -> None:
    path = tmp_path / "d.log"
    path.write_text(_dmesg([HUGE_COUNT, BAD_PFN, _valid(1)]))
    capsys.readouterr()
    assert main(["import", "dmesg", str(path), "--db", str(tmp_path / "m.db")]) == 0
    out = capsys.readouterr().out
    assert out.startswith("2 inserted, 0 duplicates, 1 skipped, 0 ignored, 0 non-memory "
                          "machine checks, 1 flagged (dmesg)")
    assert "  flagged 1: count:too-large" in out
    assert "  skipped 1: pfn beyond physical memory" in out


# ---- each kind of hostile input, in import ------------------------------------------

HOSTILE_LINES = [
    # (id, line bytes, what is stored: (inserted, flagged, skipped))
    ("count>=2^64", HUGE_COUNT.encode(), (1, 1, 0)),
    ("page>=2^64", HUGE_PAGE.encode(), (1, 1, 0)),
    ("pfn>=2^64", BAD_PFN.encode(), (0, 0, 1)),
    ("nul-in-label", REAL.replace("DIMM#0 (", "DIMM#0\x00 (").encode(), (1, 0, 0)),
    ("cr-inside", REAL.replace("area:DRAM", "area:\rDRAM").encode(), (1, 0, 0)),
    ("invalid-utf8", REAL.encode().replace(b"DIMM#0", b"DIMM#\xff\xfe"), (1, 0, 0)),
    ("crlf", REAL.encode() + b"\r", (1, 0, 0)),
]


@pytest.mark.parametrize("line", [h[1] for h in HOSTILE_LINES], ids=[h[0] for h in HOSTILE_LINES])
def test_import_each_hostile_line_then_a_valid_one(tmp_path, capsys, line: bytes) -> None:
    expected = next(h[2] for h in HOSTILE_LINES if h[1] == line)
    data = b"[   100.000000] " + line + b"\n" + _dmesg([_valid(7)]).encode()
    report = _import(capsys, tmp_path, "dmesg", data)
    assert (report["inserted"] - 1, report["flagged"], report["skipped"]) == expected
    assert _rows(tmp_path / "m.db", "SELECT count(*) FROM memras_error WHERE page = "
                 f"{0x2031c14 + 7}") == [(1,)]


def test_a_cr_no_longer_splits_a_line_into_two_records(tmp_path, capsys) -> None:
    report = _import(capsys, tmp_path, "dmesg",
                     b"[   100.000000] " + REAL.replace(" (channel", "\r (channel").encode())
    assert report["inserted"] == 1
    with Store.open(tmp_path / "m.db") as store:  # the raw text may be stored packed
        (raw,) = [e.raw for e in store.errors()]
    assert "\r (channel:1" in raw and "page:0x2031c14" in raw


def test_a_1mb_line_is_skipped_with_its_reason_and_the_next_line_kept(tmp_path, capsys) -> None:
    long_line = "[   100.000000] " + REAL + " x" * (512 * 1024)
    for kind, text in (("dmesg", long_line + "\n" + _dmesg([_valid(3)])),
                       ("trace", "A" * (1 << 20) + "\n")):
        report = _import(capsys, tmp_path, kind, text.encode())
        assert report["skipped_reasons"] == {TOO_LONG: 1}, kind
        assert len(report["skipped_samples"][0]) <= 500
    assert len(long_line) > MAX_LINE_CHARS


def test_invalid_utf8_from_stdin_is_replaced_not_a_crash(tmp_path, capsys, monkeypatch) -> None:
    import io
    import sys

    data = _dmesg([_valid(1)]).encode().replace(b"DIMM#0", b"DIMM#\xff")
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data), encoding="ascii"))
    capsys.readouterr()
    assert main(["import", "dmesg", "-", "--db", str(tmp_path / "m.db"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["inserted"] == 1


def test_mcelog_counts_what_it_does_not_store(tmp_path, capsys) -> None:
    """mcelog's parser stats reach the report: a record without STATUS is malformed, a
    cache error non-memory; before, both vanished."""
    head = "Hardware event. This is not a software error.\n"
    malformed = head + "CPU 1 BANK 8\nTIME 1700000000 Tue Nov 14 22:13:20 2023\n"
    cache = head + ("CPU 0 BANK 1\nTIME 1700000000 Tue Nov 14 22:13:20 2023\n"
                    "STATUS 9000004000010005 MCGSTATUS 0\n"
                    "CPUID Vendor Intel Family 6 Model 85\n")
    report = _import(capsys, tmp_path, "mcelog", (malformed + cache).encode())
    assert (report["inserted"], report["skipped"], report["non_memory"]) == (0, 1, 1)
    assert report["skipped_reasons"] == {"malformed": 1}


# ---- the store: values clamped, flagged; a failing record isolated ----------------------

BOUNDS = [
    # (id, record, expected fields after the check, flags)
    ("in-range", MemoryErrorEvent(ErrorType.CORRECTED, Source.KMSG, count=3, address=0x1000),
     {"count": 3, "address": 0x1000}, None),
    ("count-negative", MemoryErrorEvent(ErrorType.CORRECTED, Source.RASDAEMON, count=-5),
     {"count": 0}, "count:negative"),
    ("count-2^63", MemoryErrorEvent(ErrorType.CORRECTED, Source.RASDAEMON, count=1 << 63),
     {"count": COUNT_MAX}, "count:too-large"),
    ("u64-address-kept", MemoryErrorEvent(ErrorType.CORRECTED, Source.TRACE,
                                          address=(1 << 64) - 1, syndrome=(1 << 64) - 1),
     {"address": (1 << 64) - 1, "syndrome": (1 << 64) - 1}, None),
    ("address-2^64", MemoryErrorEvent(ErrorType.CORRECTED, Source.KMSG, address=1 << 64),
     {"address": None}, "address:too-large"),
    ("layer-negative", MemoryErrorEvent(ErrorType.CORRECTED, Source.KMSG,
                                        location=DimmLocation(mc=0, top_layer=-2)),
     {"location": DimmLocation(mc=0)}, "top_layer:negative"),
    ("uptime-nan", MemoryErrorEvent(ErrorType.CORRECTED, Source.KMSG, uptime_s=float("nan")),
     {"uptime_s": None}, "uptime_s:invalid"),
    ("surrogate", MemoryErrorEvent(ErrorType.CORRECTED, Source.KMSG, raw="a\udcffb"),
     {"raw": "a\\udcffb"}, "raw:invalid-unicode"),
    ("register-2^64", MemoryErrorEvent(ErrorType.CORRECTED, Source.MCELOG,
                                       mce=MceRegisters(status=1 << 64, bank=300)),
     {"mce": MceRegisters(status=(1 << 64) - 1, bank=0xFF)},
     "mce.status:too-large,mce.bank:too-large"),
]


@pytest.mark.parametrize("record, fields, flags", [b[1:] for b in BOUNDS],
                         ids=[b[0] for b in BOUNDS])
def test_bounds_table(record, fields, flags) -> None:
    checked = BoundsChecker().check_batch([record])
    (out,) = checked.records
    assert {name: getattr(out, name) for name in fields} == fields
    assert checked.flags.get(id(out)) == flags
    assert (out is record) == (flags is None)  # an in-range record is not copied


def test_every_hostile_record_is_stored_and_reads_back(tmp_path) -> None:
    records = [b[1] for b in BOUNDS] + [
        MemoryFailureEvent(pfn=1 << 64, page_type="x", action_result="Recovered",
                           source=Source.KMSG, raw="bad pfn"),
        MemoryFailureEvent(pfn=0x1234, page_type="x", action_result="Recovered",
                           source=Source.KMSG, raw="good pfn")]
    records = [r if r.raw else _with_raw(r, i) for i, r in enumerate(records)]
    # keyed by the text alone: these made-up records are distinct errors, none a duplicate
    with Store.open(tmp_path / "m.db", key_fn=lambda e: (str(e.source), e.raw)) as store:
        result = store.add_events(records, cursor=("test", "42"))
        assert (result.inserted, result.skipped) == (len(records) - 1, 1)
        assert result.flagged == sum(1 for b in BOUNDS if b[3] is not None)
        assert result.skip_reasons == {"pfn beyond physical memory": 1}
        assert store.get_cursor("test") == "42"
        assert store.skipped() == {"store:kmsg": 1}
        stored = store.errors()
        assert len(stored) == len(records) - 1
        assert {e.flags for e in stored} >= {"count:negative", "address:too-large", None}


def _with_raw(record, i: int):
    from dataclasses import replace

    return replace(record, raw=f"record {i}")


def test_a_record_that_fails_its_insert_loses_only_itself(tmp_path, monkeypatch) -> None:
    """The safety net under the bounds: whatever a record's insert raises, the batch is
    retried record by record under savepoints; the others and the cursor are stored."""
    from memras.store import rasdaemon_schema as rs
    from memras.store import rows

    real = rs.mc_event_row

    def fragile(row_id, stamp, event):
        if event.raw == "poison":
            raise OverflowError("Python int too large to convert to SQLite INTEGER")
        return real(row_id, stamp, event)

    monkeypatch.setitem(rows.ROW_BUILDERS, "mc_event", (fragile, rs.MC_EVENT_COLUMNS))
    regs = MceRegisters(status=0x9C00004001010091, bank=7)
    records = [MemoryErrorEvent(ErrorType.CORRECTED, Source.TRACE, raw=raw, mce=regs,
                                location=DimmLocation(label="A1", mc=0, top_layer=0),
                                address=0x1000 * (i + 1))
               for i, raw in enumerate(["one", "poison", "three"])]
    with Store.open(tmp_path / "m.db") as store:
        result = store.add_events(records, cursor=("trace", "7"))
        assert (result.inserted, result.skipped) == (2, 1)
        assert list(result.skip_reasons) == [
            "insert: OverflowError: Python int too large to convert to SQLite INTEGER"]
        assert [e.raw for e in store.errors()] == ["one", "three"]
        assert store.summary().totals[0].events == 2  # the counts rolled back with it
        assert store.get_cursor("trace") == "7"
    assert _rows(tmp_path / "m.db", "SELECT count(*) FROM mc_event") == [(2,)]


# ---- the live watcher on a simulated root ---------------------------------------------

def _kmsg(root: Path, lines: list[bytes], first_seq: int = 5000) -> int:
    """Append /dev/kmsg records (pri 4: warning, as EDAC's CE lines) to the simulated
    ring; returns the last sequence number."""
    seq = first_seq
    with open(root / ".memras-sim" / "kmsg", "ab") as f:
        for seq, line in enumerate(lines, first_seq):
            f.write(b"4,%d,%d,-;" % (seq, 100_000_000 + seq) + line + b"\n")
    return seq


WATCH_HOSTILE = [
    ("page>=2^64", HUGE_PAGE.encode()),
    ("count>=2^64", HUGE_COUNT.encode()),
    ("pfn>=2^64", BAD_PFN.encode()),
    ("nul", REAL.replace("slot:0", "slot:0\x00").encode()),
    ("cr", REAL.replace("area:DRAM", "area:\rDRAM").encode()),
    ("invalid-utf8", REAL.encode().replace(b"DIMM#0", b"DIMM#\xc3\x28")),
    ("1mb", REAL.encode() + b" x" * (512 * 1024)),
]


@pytest.mark.parametrize("line", [w[1] for w in WATCH_HOSTILE], ids=[w[0] for w in WATCH_HOSTILE])
def test_watcher_moves_its_cursor_past_a_hostile_line(tmp_path, line: bytes) -> None:
    root = tmp_path / "root"
    host = profiles.create("demo", root).host()
    (root / ".memras-sim" / "kmsg").write_bytes(b"")
    last = _kmsg(root, [line, _valid(9).encode()])
    with Store.open(tmp_path / "m.db") as store:
        stats = Watcher(store, [KmsgSource(host)], flush_interval_s=0.0).run(once=True)
        kmsg = stats.sources["kmsg"]
        assert kmsg.errors == 0 and stats.hook_errors == 0
        assert store.get_cursor("kmsg") == str(last)
        pages = [e.page for e in store.errors()]
        assert 0x2031c14 + 9 in pages  # the line after it is stored
        assert kmsg.inserted + kmsg.skipped >= 2 and kmsg.inserted >= 1
        # a restart resumes after the line instead of dying on it again
        again = Watcher(store, [KmsgSource(host)], flush_interval_s=0.0).run(once=True)
        assert again.sources["kmsg"].read == 0 and again.sources["kmsg"].errors == 0


# ---- rasdaemon: what its rows do not say is flagged, not invented -----------------------

RAS_ROWS = [
    # (id, timestamp, err_count, err_type, label, flags of the stored row)
    ("good", "2024-12-19 03:52:38 +0000", 1, "Corrected", "A1", None),
    ("unparsable-time", "yesterday", 1, "Corrected", "A1", "timestamp:unparsable"),
    ("negative-count", "2024-12-19 03:52:39 +0000", -5, "Corrected", "A1", "count:negative"),
    ("count-2^63-1", "2024-12-19 03:52:40 +0000", (1 << 63) - 1, "Corrected", "A1",
     "count:too-large"),
    ("unknown-type", "2024-12-19 03:52:41 +0000", 1, "Bogus", "A1", "err_type:unknown"),
    ("no-count", "2024-12-19 03:52:42 +0000", None, "Corrected", "A1", "err_count:missing"),
    ("invalid-utf8-label", "2024-12-19 03:52:43 +0000", 1, "Corrected", b"A\xff1", None),
]


def _ras_db(path: Path) -> Path:
    from memras.store import rasdaemon_schema as rs

    with sqlite3.connect(path) as db:
        db.execute(rs.create_table_sql("mc_event"))
        for i, (_, stamp, count, kind, label, _) in enumerate(RAS_ROWS, 1):
            db.execute("INSERT INTO mc_event (id, timestamp, err_count, err_type, err_msg, "
                       "label, mc, top_layer, middle_layer, lower_layer, address, grain, "
                       "syndrome, driver_detail) VALUES (?, ?, ?, ?, 'memory read error', "
                       "CAST(? AS TEXT), 0, 0, 0, -1, ?, 6, 0, '')",
                       (i, stamp, count, kind, label, 0x1000 * i))
    return path


def test_rasdaemon_import_flags_what_it_cannot_take_as_given(tmp_path) -> None:
    source = _ras_db(tmp_path / "ras-mc_event.db")
    with Store.open(tmp_path / "m.db") as store:
        report = run_import(store, "rasdaemon", str(source))
        assert (report.inserted, report.skipped) == (len(RAS_ROWS), 0)
        assert report.flagged == sum(1 for r in RAS_ROWS if r[5] is not None)
        by_address = {e.address: e for e in store.errors()}
    for i, (name, _, _, _, _, flags) in enumerate(RAS_ROWS, 1):
        stored = by_address[0x1000 * i]
        assert stored.flags == flags, name
    assert by_address[0x3000].count == 0 and by_address[0x4000].count == COUNT_MAX
    assert by_address[0x5000].type == "Info"
    assert by_address[0x2000].time_source == "import"  # dated at import, and says so
    assert by_address[0x7000].label == "A\ufffd1"


def test_watcher_stores_rasdaemon_rows_with_impossible_counts_flagged(tmp_path) -> None:
    """Negative and 2^63-1 counts, an unknown type and bytes that are not UTF-8 arrive
    through the live RasdaemonSource too: stored flagged, and its cursor moves on."""
    from memras.ingest.sources import RasdaemonSource

    source = _ras_db(tmp_path / "ras-mc_event.db")
    with Store.open(tmp_path / "m.db") as store:
        stats = Watcher(store, [RasdaemonSource(str(source))],
                        flush_interval_s=0.0).run(once=True)
        ras = stats.sources["rasdaemon"]
        assert (ras.errors, ras.inserted, ras.skipped) == (0, len(RAS_ROWS), 0)
        assert ras.flagged == sum(1 for r in RAS_ROWS if r[5] is not None)
        assert json.loads(store.get_cursor("rasdaemon") or "{}") == {"mc_event": len(RAS_ROWS)}
        flags = sorted(e.flags or "" for e in store.errors())
    assert flags == sorted(r[5] or "" for r in RAS_ROWS)


def test_watch_once_reads_past_a_slice_of_lines_that_are_not_errors(tmp_path) -> None:
    """`watch --once` drains a source: a read slice (256 KiB) holding only other kernel
    messages parses to no record, and is not the end of the ring (it stopped there)."""
    root = tmp_path / "root"
    host = profiles.create("demo", root).host()
    (root / ".memras-sim" / "kmsg").write_bytes(b"")
    chatter = [b"usb 1-1: new high-speed USB device number %d using xhci_hcd" % i
               for i in range(6000)]  # ~400 KiB: more than one slice
    last = _kmsg(root, [*chatter, _valid(3).encode()])
    with Store.open(tmp_path / "m.db") as store:
        Watcher(store, [KmsgSource(host)], flush_interval_s=0.0).run(once=True)
        assert store.get_cursor("kmsg") == str(last)
        assert 0x2031c14 + 3 in [e.page for e in store.errors()]
