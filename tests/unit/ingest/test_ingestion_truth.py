"""Ingestion truth: time is never invented, one error is one row, kmsg across reboots.

Lines are real kernel output where a public capture has them (cited beside each);
the trace lines of the GHES + skx_edac pair are the mc_event form (TP_printk of
include/ras/ras_event.h) of the error mcelog#74 shows reported both ways.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

from memras.health.config import Config
from memras.health.engine import ChangeKind, HealthEngine
from memras.host import Host
from memras.ingest.clock import ImportClock, import_clock, syslog_time
from memras.ingest.parsers import parse_trace_line
from memras.ingest.parsers.rasdaemon_rows import from_mc_event_row
from memras.ingest.sources import KmsgSource, resume_position, with_wall_time
from memras.records import DimmLocation, ErrorType, MemoryErrorEvent, Source, TimeSource
from memras.store import Store
from memras.watcher.importing import run_import

# openstreetmap/operations#300 (errol, 2019): syslog + uptime stacked, no year
ERROL = [
    "May  7 06:45:12 errol kernel: [21584690.529877] EDAC MC0: 4 CE error on "
    "CPU#0Channel#2_DIMM#0 (channel:2 slot:0 page:0x0 offset:0x0 grain:8 syndrome:0x0)",
    "May  7 06:45:13 errol kernel: [21584691.723198] EDAC MC0: 2 CE error on "
    "CPU#0Channel#2_DIMM#0 (channel:2 slot:0 page:0x0 offset:0x0 grain:8 syndrome:0x0)",
]
# radiasoft/devops#134 (2018): the skx-era EDAC line behind a host-less syslog stamp
RADIASOFT = ("Feb 23 03:28:16  kernel: EDAC MC1: 1 CE memory scrubbing error on "
             "CPU_SrcID#1_Ha#0_Chan#0_DIMM#0 (channel:0 slot:0 page:0xee30a0 offset:0x0 "
             "grain:32 syndrome:0x0 -  area:DRAM err_code:0008:00c2 socket:1 ha:0 "
             "channel_mask:1 rank:0)")
EDAC_UPTIME = ("[{t:>12.6f}] EDAC MC1: 1 CE memory scrubbing error on "
               "CPU_SrcID#1_Ha#0_Chan#0_DIMM#0 (channel:0 slot:0 page:{page:#x} offset:0x0 "
               "grain:32 syndrome:0x0 -  area:DRAM err_code:0008:00c2 socket:1 ha:0 "
               "channel_mask:1 rank:0)")
NOW = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)


def _import(tmp_path: Path, text: str, kind: str = "dmesg", **kw: object) -> tuple[Store, list]:
    path = tmp_path / f"capture.{kind}"
    path.write_text(text)
    store = Store.open(tmp_path / "m.db")
    report = run_import(store, kind, str(path), **kw)  # type: ignore[arg-type]
    return store, report


# ---- 1. time is never invented ------------------------------------------------------------

def test_uptime_only_dmesg_takes_its_boot_time_from_a_syslog_line_in_the_file(tmp_path):
    lines = [EDAC_UPTIME.format(t=21584000.0 + i, page=0x1000 + i) for i in range(3)]
    store, report = _import(tmp_path, "\n".join([*lines, *ERROL]) + "\n", year=2019)
    rows = store.errors()
    assert len(rows) == 5 and {r.time_source for r in rows} == {"uptime+boot", "syslog"}
    boot = datetime(2019, 5, 7, 6, 45, 12).astimezone() - timedelta(seconds=21584690.529877)
    uptime_rows = [r for r in rows if r.time_source == "uptime+boot"]
    assert uptime_rows[0].time == (boot + timedelta(seconds=21584000.0)).astimezone(UTC)
    assert any("booted at" in n for n in report.notes)


def test_uptime_only_dmesg_pairs_a_dmesg_T_copy_of_one_message(tmp_path):
    anchor = "[Tue May  7 06:45:12 2019] EDAC MC1: 1 CE memory scrubbing error on X (page:0x5)"
    copy = "[21584690.529877] EDAC MC1: 1 CE memory scrubbing error on X (page:0x5)"
    clock = ImportClock("dmesg", now=NOW)
    clock.scan([copy, anchor])
    clock.observe(copy)
    record = MemoryErrorEvent(ErrorType.CORRECTED, Source.KMSG, uptime_s=100.0, raw="x")
    dated = clock.date(record)
    expected = datetime(2019, 5, 7, 6, 45, 12).astimezone() - timedelta(seconds=21584590.529877)
    assert dated.time_source is TimeSource.UPTIME_BOOT and dated.timestamp == expected


def test_year_less_syslog_takes_year_from_flag_or_mtime_with_a_note(tmp_path):
    store, report = _import(tmp_path, RADIASOFT + "\n", year=2018)
    (row,) = store.errors()
    assert row.time == datetime(2018, 2, 23, 3, 28, 16).astimezone().astimezone(UTC)
    assert row.time_source == "syslog" and not any("--year" in n for n in report.notes)
    store.close()
    path = tmp_path / "capture.dmesg"
    stamp = datetime(2019, 1, 10, 12, 0).timestamp()  # modified in January 2019
    os.utime(path, (stamp, stamp))
    clock = import_clock("dmesg", str(path))
    assert clock is not None
    record = MemoryErrorEvent(ErrorType.CORRECTED, Source.KMSG, raw=RADIASOFT)
    assert clock.date(record).timestamp == datetime(2019, 2, 23, 3, 28, 16) - timedelta(
        days=365)  # Feb 23 is after the file's mtime: last year's
    assert any("pass --year" in n for n in clock.notes())
    assert syslog_time("Feb 29 00:00:00 h kernel: x", 2023) is None  # no such day: not dated


def test_no_clock_rows_are_import_time_flagged_and_never_a_storm(tmp_path):
    """Twelve CEs over twelve days (uptime only, no boot time anywhere in the capture)."""
    lines = [EDAC_UPTIME.format(t=86400.0 * d + 5, page=0x2000) for d in range(12)]
    store, report = _import(tmp_path, "\n".join(lines) + "\n")
    rows = store.errors()
    assert len(rows) == 12 and {r.time_source for r in rows} == {"import"}
    assert any("no clock" in n and "--boot-time" in n for n in report.notes)
    from memras.health.api import record_from_stored

    config = Config()
    unclocked = HealthEngine(config, None, None, record=False).process(
        [record_from_stored(r) for r in rows])
    assert not [c for c in unclocked if c.kind == ChangeKind.THRESHOLD_CROSSED]
    assert not [c for c in unclocked if c.kind == ChangeKind.VERDICT_CHANGED]
    # the same twelve at one instant with a real clock: the test can fail
    clocked = HealthEngine(config, None, None, record=False).process(
        [MemoryErrorEvent(ErrorType.CORRECTED, Source.KMSG, timestamp=NOW, address=0x2000000,
                          location=DimmLocation(mc=1, channel=0, slot=0, socket=1,
                                                label="CPU_SrcID#1_Ha#0_Chan#0_DIMM#0"),
                          raw=f"ce {i}") for i in range(12)])
    assert [c for c in clocked if c.kind == ChangeKind.THRESHOLD_CROSSED]


# kernel's own mce_record line: tests/unit/parsers (Ubuntu 6.x guest); its TIME is its clock
MCE_RECORD = ("kworker/1:0-22 [001] ..... {t}: mce_record: CPU: 0, MCGc/s: 0/0, MC7:"
              " 9c0000000000009f, IPID: 0000000000000000, ADDR/MISC/SYND:"
              " 0000000100201000/0000000000000086/0000000000000000, RIP: 00:<0000000000000000>,"
              " TSC: 52db3942f, PROCESSOR: 2:60fb1, TIME: {time}, SOCKET: 0, APIC: 0")
MC_EVENT = ("kworker/0:1-12 [000] .... {t}: mc_event: 1 Corrected error: memory read error on"
            " CPU_SrcID#0_MC#0_Chan#0_DIMM#0 (mc:0 location:0:0:-1 address:{addr:#x} grain:5"
            " syndrome:0x00000000 err_code:0000:009f socket:0 imc:0 rank:0)")


def test_trace_file_from_another_machine_never_lands_in_the_future(tmp_path):
    now = datetime.now(UTC)
    this_boot = now - timedelta(hours=1)  # this machine is up an hour; the file says 30 days
    text = MC_EVENT.format(t=30 * 86400.0, addr=0x5000) + "\n"
    store, report = _import(tmp_path, text, "trace", this_boot=this_boot)
    (row,) = store.errors()
    assert row.time <= datetime.now(UTC) and row.time_source == "import"
    assert any("another boot or machine" in n for n in report.notes)
    store.close()
    # its own clock (an mce_record's TIME) places the file, mc_events included
    walltime = int((now - timedelta(days=40)).timestamp())
    text = (MCE_RECORD.format(t="4.868755", time=walltime) + "\n"
            + MC_EVENT.format(t="6.0", addr=0x9000) + "\n")
    (tmp_path / "m.db").unlink()
    store, report = _import(tmp_path, text, "trace", this_boot=this_boot)
    mc = next(r for r in store.errors() if r.address == 0x9000)
    assert mc.time_source == "uptime+boot"
    assert abs((mc.time - datetime.fromtimestamp(walltime + 6.0 - 4.868755, UTC))
               .total_seconds()) < 1e-3


def test_trace_file_that_fits_this_boot_is_inferred_and_out_of_rates(tmp_path):
    this_boot = datetime.now(UTC) - timedelta(hours=1)
    store, report = _import(tmp_path, MC_EVENT.format(t=60.0, addr=0x5000) + "\n", "trace",
                            this_boot=this_boot)
    (row,) = store.errors()
    assert row.time_source == "inferred" and row.time == this_boot + timedelta(seconds=60)
    assert TimeSource(row.time_source).is_real is False


# ---- 2. one error, one row ------------------------------------------------------------------

def test_rasdaemon_rows_beside_kmsg_are_n_rows_not_2n(tmp_path):
    """The watcher beside a running rasdaemon: kmsg lines dated boot + uptime (UTC), and
    rasdaemon's mc_event rows of the same CEs in its local wall clock, whole seconds,
    up to a second late (its own boot estimate)."""
    boot = datetime(2024, 5, 1, 8, 0, tzinfo=UTC)
    tz = datetime.now().astimezone().tzinfo
    kmsg, rasdaemon = [], []
    for i in range(6):
        uptime = 1000.0 + 30 * i + 0.75
        kmsg.append(MemoryErrorEvent(
            ErrorType.CORRECTED, Source.KMSG, uptime_s=uptime, address=0x10000 + i * 0x1000,
            location=DimmLocation(mc=0, top_layer=0, middle_layer=0,
                                  label="CPU_SrcID#0_MC#0_Chan#0_DIMM#0"),
            raw=f"6,{100 + i},{int(uptime * 1e6)},-;EDAC MC0: 1 CE … page:{0x10 + i:#x}"))
        local = (boot + timedelta(seconds=int(uptime) + 1)).astimezone(tz)
        rasdaemon.append(from_mc_event_row({
            "id": i + 1, "timestamp": local.strftime("%Y-%m-%d %H:%M:%S %z"), "err_count": 1,
            "err_type": "Corrected", "err_msg": "memory read error",
            "label": "CPU_SrcID#0_MC#0_Chan#0_DIMM#0", "mc": 0, "top_layer": 0,
            "middle_layer": 0, "lower_layer": -1, "address": 0x10000 + i * 0x1000,
            "grain": 32, "syndrome": 0, "driver_detail": ""}))
    store = Store.open(tmp_path / "m.db")
    store.add_events(with_wall_time(kmsg, boot))  # type: ignore[arg-type]
    result = store.add_events(rasdaemon)
    assert (result.inserted, result.duplicates) == (0, 6)
    assert store.count() == 6 and store.summary().totals[0].events == 6


# mcelog#74 (2019): firmware-first UE at 0xe16677000 reported by GHES and by skx_edac
GHES_MC_EVENT = ("kworker/0:1-12 [000] .... 261.273235: mc_event: 1 Uncorrected error: on "
                 "unknown label (mc:0 location:-1:-1:-1 address:0xe16677000 grain:1 "
                 "syndrome:0x00000000 APEI location: node:0 card:0 module:0 rank:0 bank:2 "
                 "device:0 row:56265 column:696 DIMM location: CPU 1 DIMM 5 "
                 "status(0x0000000000000000): Unknown)")
SKX_MC_EVENT = ("kworker/0:1-12 [000] .... 261.273301: mc_event: 1 Uncorrected error: memory "
                "read error on CPU_SrcID#0_MC#0_Chan#0_DIMM#0 (mc:0 location:0:0:-1 "
                "address:0xe16677000 grain:5 syndrome:0x00000000 err_code:0000:009f socket:0 "
                "imc:0 rank:0 bg:0 ba:3 row:dad3 col:3c0)")


def test_ghes_and_skx_report_of_one_error_is_one_row(tmp_path):
    boot = datetime(2019, 8, 19, 8, 14, tzinfo=UTC)
    records = [parse_trace_line(line, boot_time=boot) for line in (GHES_MC_EVENT, SKX_MC_EVENT)]
    store = Store.open(tmp_path / "m.db")
    result = store.add_events(records)  # type: ignore[arg-type]
    assert (result.inserted, result.duplicates) == (1, 1)
    # two UEs the one EDAC driver printed on that page are two rows
    again = SKX_MC_EVENT.replace("261.273301", "261.900000")
    assert store.add_events([parse_trace_line(again, boot_time=boot)]).inserted == 1  # type: ignore[list-item]
    assert store.count() == 2


def test_identical_lines_in_one_second_are_kept_distinct(tmp_path):
    line = ERROL[0]  # printed twice by the kernel in one second (same stamp, same text)
    store, report = _import(tmp_path, f"{line}\n{line}\n", year=2019)
    assert store.count() == 2
    store.close()
    store = Store.open(tmp_path / "m.db")  # the same file again: nothing new
    again = run_import(store, "dmesg", str(tmp_path / "capture.dmesg"), year=2019)
    assert (again.inserted, again.duplicates) == (0, 2)


# ---- 6. kmsg across reboots ----------------------------------------------------------------

def _boot(root: Path, boot_id: str, first_seq: int, count: int, t0: float) -> None:
    (root / "proc/sys/kernel/random").mkdir(parents=True, exist_ok=True)
    (root / "proc/sys/kernel/random/boot_id").write_text(boot_id + "\n")
    (root / "proc/stat").write_text("btime 1700000000\n")
    (root / "dev").mkdir(exist_ok=True)
    records = [f"6,{first_seq + i},{int((t0 + i) * 1e6)},-;"
               + EDAC_UPTIME.format(t=t0 + i, page=0x100 + first_seq + i).split("] ", 1)[1]
               for i in range(count)]
    (root / "dev/kmsg").write_text("\n".join(records) + "\n")


def _drain(host: Host, store: Store) -> KmsgSource:
    source = KmsgSource(host)
    source.start(store.get_cursor("kmsg"))
    batch = source.poll(0.0)
    drained = source.drain_pending()  # the last fault's lines, held for a continuation
    batch.records += drained.records
    batch.cursor = drained.cursor or batch.cursor
    for gap in batch.gaps:
        store.add_gap(gap.source, gap.subject, gap.count, gap.error_type, message=gap.message)
    store.add_events(batch.records, cursor=("kmsg", batch.cursor or ""))
    source.stop()
    return source


def test_kmsg_after_a_reboot_reads_the_new_boots_records(tmp_path):
    root = tmp_path / "root"
    store = Store.open(tmp_path / "m.db")
    _boot(root, "aaaa-1", 0, 6, 100.0)
    _drain(Host(root), store)
    assert store.count() == 6 and store.get_cursor("kmsg") == "aaaa-1:5"
    _drain(Host(root), store)  # same boot, restarted: nothing twice
    assert store.count() == 6
    _boot(root, "bbbb-2", 0, 4, 50.0)  # rebooted: sequence restarts at 0, below the cursor
    _drain(Host(root), store)
    assert store.count() == 10 and store.get_cursor("kmsg") == "bbbb-2:3"
    assert not store.gaps()
    _boot(root, "cccc-3", 7, 2, 900.0)  # rebooted and the ring wrapped before the first read
    _drain(Host(root), store)
    assert store.count() == 12
    (gap,) = store.gaps()
    assert gap["count"] == 7 and gap["subject"] == "kmsg"


def test_resume_position_table():
    cases = [
        (None, "b", (None, False)),
        ("b:17", "b", (17, False)),
        ("a:17", "b", (None, True)),  # another boot's sequence: start at the ring's first
        ("17", "b", (None, True)),  # an older memras's bare sequence: its boot is unknown
        ("17", None, (17, False)),  # a tree without a boot id: as before
        ("b:x", "b", (None, False)),
    ]
    for cursor, boot_id, expected in cases:
        assert resume_position(cursor, boot_id) == expected, cursor


def test_a_full_mce_pool_is_a_gap_not_silence(tmp_path):
    """mce/genpool.c drops machine checks with 'MCE records pool full!' before any log
    shows them (seen in the lab at ~1,000 injected CEs/s): the watcher records a gap."""
    root = tmp_path / "root"
    store = Store.open(tmp_path / "m.db")
    _boot(root, "aaaa-1", 0, 2, 100.0)
    with (root / "dev/kmsg").open("a") as kmsg:
        kmsg.write("4,2,102500000,-;mce: MCE records pool full!\n")
    _drain(Host(root), store)
    assert store.count() == 2
    (gap,) = store.gaps()
    assert gap["subject"] == "mce" and "pool was full" in gap["message"]
