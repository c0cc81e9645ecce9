"""pstore dumps (memras.host.pstore), the before-boot sources (memras.ingest.before_boot),
``memras import bert|pstore|vmcore-dmesg`` and ``watch``: idempotent, dated by the
previous boot's own clock, deduplicated with what a watcher stored live, and a UE that
rebooted the machine moves the DIMM's verdict.

Log text: the sb_edac CE line is real (https://github.com/grondo/edac-utils/issues/10,
quoted in /work/shared/reference/kernel-error-sources.md §4); its UE form (no syndrome,
as edac_mc.c prints a UE), the mce core lines (mce/core.c format strings) and the
pstore wrapping (fs/pstore/platform.c ``"%s#%d Part%u\\n"``, then
``kmsg_dump_get_buffer(syslog=true)``'s ``<level>[uptime] text``) are synthesized.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from memras.cli import main
from memras.health.config import Config
from memras.health.engine import ChangeKind, HealthEngine
from memras.host import Host
from memras.ingest.before_boot import BeforeBootSource, read_pstore, seen_digests
from memras.records import ErrorType, Source, TimeSource
from memras.store import Store
from memras.watcher.watch import Watcher

CE_REAL = ("EDAC MC0: 1 CE memory read error on CPU_SrcID#0_Ha#0_Chan#2_DIMM#0 (channel:2 "
           "slot:0 page:0x849923 offset:0x380 grain:32 syndrome:0x0 -  area:DRAM "
           "err_code:0001:0092 socket:0 ha:0 channel_mask:4 rank:0)")
UE_SYNTH = ("EDAC MC0: 1 UE memory read error on CPU_SrcID#0_Ha#0_Chan#2_DIMM#0 (channel:2 "
            "slot:0 page:0x849924 offset:0x40 grain:32 -  area:DRAM err_code:0001:0092 "
            "socket:0 ha:0 channel_mask:4 rank:0)")
PANIC = [
    "mce: [Hardware Error]: CPU 3: Machine Check Exception: 5 Bank 7: be00000000800090",
    "mce: [Hardware Error]: Machine check: Processor context corrupt",
    "Kernel panic - not syncing: Fatal machine check",
]
WRITTEN = datetime(2026, 12, 6, 21, 0, 0, tzinfo=UTC)  # the dump's file time


def dump_text(lines: list[tuple[float, str]], header: str = "Panic#1 Part1") -> str:
    return header + "\n" + "".join(f"<{0 if 'panic' in t.lower() else 3}>[{u:12.6f}] {t}\n"
                                   for u, t in lines)


def write_dump(root: Path, name: str, text: str | bytes, when: datetime | None = WRITTEN
               ) -> Path:
    d = root / "sys/fs/pstore"
    d.mkdir(parents=True, exist_ok=True)
    path = d / name
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    stamp = 0 if when is None else when.timestamp()
    os.utime(path, (stamp, stamp))
    return path


CRASH = [(500.25, CE_REAL), (812.100000, UE_SYNTH), (812.300000, PANIC[0]),
         (812.300100, PANIC[1]), (812.300200, PANIC[2])]


# ---- the host reader --------------------------------------------------------------------

def test_dumps_listed_with_header_compressed_noted_and_parts_oldest_first(tmp_path):
    write_dump(tmp_path, "dmesg-efi-2", dump_text([(10.0, "newest")], "Oops#1 Part1"))
    write_dump(tmp_path, "dmesg-efi-3", dump_text([(9.0, "older")], "Oops#1 Part2"))
    write_dump(tmp_path, "dmesg-ramoops-0.enc.z", b"\x78\x9c\x01\x02garbage")
    write_dump(tmp_path, "console-ramoops-0", "not a dmesg dump")
    dumps = Host(tmp_path).pstore.dumps()
    assert [d.name for d in dumps] == ["dmesg-efi-3", "dmesg-efi-2", "dmesg-ramoops-0.enc.z"]
    assert (dumps[0].reason, dumps[0].count, dumps[0].part) == ("Oops", 1, 2)
    assert dumps[0].text.startswith("<3>[    9.000000] older")
    assert dumps[1].mtime == WRITTEN
    assert dumps[2].compressed and "compressed" in dumps[2].problem and dumps[2].text == ""


def test_no_pstore_is_no_dumps(tmp_path):
    host = Host(tmp_path)
    assert host.pstore.dumps() == [] and not host.pstore.present


# ---- the previous boot's clock ----------------------------------------------------------

def test_records_are_dated_by_the_dump_time_minus_the_last_uptime(tmp_path):
    write_dump(tmp_path, "dmesg-ramoops-0", dump_text(CRASH))
    found = read_pstore(Host(tmp_path), [])
    assert found.skipped == []
    by_type = {r.error_type: r for r in found.records}
    assert set(by_type) == {ErrorType.CORRECTED, ErrorType.FATAL}
    boot = WRITTEN - timedelta(seconds=812.3002)
    ce = by_type[ErrorType.CORRECTED]
    assert ce.source is Source.PSTORE and ce.time_source is TimeSource.UPTIME_BOOT
    assert abs((ce.timestamp - (boot + timedelta(seconds=500.25))).total_seconds()) < 1e-3
    ue = by_type[ErrorType.FATAL]  # the EDAC UE and the fatal MCE: one fault
    assert ue.location.channel == 2 and ue.location.slot == 0
    assert ue.timestamp < WRITTEN  # never this boot's clock


def test_a_dump_without_a_file_time_stays_undated(tmp_path):
    write_dump(tmp_path, "dmesg-ramoops-0", dump_text(CRASH), when=None)
    found = read_pstore(Host(tmp_path), [])
    assert found.records and all(r.timestamp is None for r in found.records)
    assert any("stored at import time" in n for n in found.notes)


def test_garbage_dump_never_raises(tmp_path):
    write_dump(tmp_path, "dmesg-ramoops-0", bytes(range(256)) * 40)
    write_dump(tmp_path, "dmesg-ramoops-1", "Panic#1 Part1\n" + "EDAC MC0: 1 UE (" * 500)
    found = read_pstore(Host(tmp_path), [])  # must not raise
    # binary: nothing; the mangled line: at most what the parser can be sure of, kept raw
    assert all(r.source is Source.PSTORE and r.raw.startswith("Panic#1") is False
               for r in found.records)
    assert len(found.records) <= 1


# ---- import ------------------------------------------------------------------------------

def run(capsys, *argv: str) -> tuple[int, dict | str]:
    code = main(list(argv))
    out = capsys.readouterr().out
    try:
        return code, json.loads(out)
    except ValueError:
        return code, out


def counts(report: dict) -> tuple[int, int, int]:
    return report["inserted"], report["duplicates"], report["skipped"]


def test_import_pstore_twice_stores_once(tmp_path, capsys):
    write_dump(tmp_path, "dmesg-ramoops-0", dump_text(CRASH))
    write_dump(tmp_path, "dmesg-ramoops-1.enc.z", b"\x00\x01")
    db = str(tmp_path / "m.db")
    code, report = run(capsys, "--root", str(tmp_path), "--db", db, "--json", "import", "pstore")
    assert code == 0 and counts(report) == (2, 0, 1)
    assert "compressed" in report["skipped_samples"][0]
    code, report = run(capsys, "--root", str(tmp_path), "--db", db, "--json", "import", "pstore")
    assert code == 0 and counts(report) == (0, 2, 1)
    # a copy of the directory is the same dumps: not stored again either
    code, report = run(capsys, "--db", db, "--json", "import", "pstore",
                       str(tmp_path / "sys/fs/pstore"))
    assert counts(report)[:2] == (0, 2)


def test_import_pstore_single_copied_file(tmp_path, capsys):
    copy = tmp_path / "crash-from-node7.txt"
    copy.write_text(dump_text(CRASH))
    os.utime(copy, (WRITTEN.timestamp(), WRITTEN.timestamp()))
    code, report = run(capsys, "--db", str(tmp_path / "m.db"), "--json", "import", "pstore",
                       str(copy))
    assert code == 0 and counts(report) == (2, 0, 0)


def test_import_needs_a_path_except_bert_and_pstore(tmp_path, capsys):
    code = main(["--db", str(tmp_path / "m.db"), "import", "dmesg"])
    err = capsys.readouterr().err
    assert code == 2 and "import dmesg needs a PATH" in err and "Traceback" not in err


def test_vmcore_dmesg_is_dated_by_kdumps_directory(tmp_path, capsys):
    crash_dir = tmp_path / "127.0.0.1-2026-12-06-21:00:00"
    crash_dir.mkdir()
    vmcore = crash_dir / "vmcore-dmesg.txt"
    vmcore.write_text("".join(f"[{u:12.6f}] {t}\n" for u, t in CRASH))
    db = str(tmp_path / "m.db")
    code, report = run(capsys, "--db", db, "--json", "import", "vmcore-dmesg", str(vmcore))
    assert code == 0 and counts(report) == (2, 0, 0)
    assert any("kdump's capture time" in n for n in report["notes"])
    with Store.open(db) as store:
        rows = store.errors()
    captured = datetime(2026, 12, 6, 21, 0, 0).astimezone().astimezone(UTC)
    boot = captured - timedelta(seconds=812.3002)
    ce = next(r for r in rows if r.type == "Corrected")
    when = ce.time if ce.time.tzinfo else ce.time.replace(tzinfo=UTC)
    assert abs((when - (boot + timedelta(seconds=500.25))).total_seconds()) < 1
    assert ce.time_source == "uptime+boot"


# ---- watch: read once, never stored twice; deduplicated with the live kmsg ---------------

def test_watch_reads_before_boot_sources_once_across_restarts(tmp_path):
    write_dump(tmp_path, "dmesg-ramoops-0", dump_text(CRASH))
    db = tmp_path / "m.db"
    for expected in (2, 0):
        with Store.open(str(db), create=True) as store:
            stats = Watcher(store, [BeforeBootSource(Host(tmp_path), "pstore")]).run(once=True)
            assert stats.sources["pstore"].inserted == expected
            assert len(store.errors()) == 2
            assert len(seen_digests(store.get_cursor("pstore"))) == 1


def test_pstore_copy_of_an_error_the_watcher_stored_live_is_one_row(tmp_path):
    """The previous boot's watcher stored the UE from /dev/kmsg before the panic; the
    pstore's line of it is another road's report, not a second error."""
    db = tmp_path / "m.db"
    boot = WRITTEN - timedelta(seconds=812.3002)
    with Store.open(str(db), create=True) as store:
        from memras.ingest.parsers.kernel_log import KernelLogParser

        parser = KernelLogParser()
        live = []
        for seq, (u, t) in enumerate(CRASH[:2]):
            live += parser.feed(f"3,{seq},{int(u * 1e6)},-;{t}")
        live += parser.flush()
        from memras.ingest.sources import with_wall_time

        assert store.add_events(with_wall_time(live, boot)).inserted == 2
        write_dump(tmp_path, "dmesg-ramoops-0", dump_text(CRASH))
        stats = Watcher(store, [BeforeBootSource(Host(tmp_path), "pstore")]).run(once=True)
        assert stats.sources["pstore"].inserted == 0
        assert stats.sources["pstore"].duplicates == 2
        assert len(store.errors()) == 2


# ---- the verdict after the reboot ----------------------------------------------------------

def test_ue_that_rebooted_the_machine_moves_the_dimms_verdict(tmp_path):
    write_dump(tmp_path, "dmesg-ramoops-0", dump_text(CRASH))
    found = read_pstore(Host(tmp_path), [])
    engine = HealthEngine(Config(), None, None, record=False)
    changes = engine.process(found.records)
    assert any(c.kind == ChangeKind.UE for c in changes)
    verdicts = engine.verdicts()
    dimm = "mc0:2:0:-1"  # EDAC mc0, channel 2 slot 0: the sb_edac line's DIMM
    assert dimm in verdicts and verdicts[dimm].state.value != "ok"
    # the same dump without its UE line and panic: the CE alone is no replace verdict
    ce_only = tmp_path / "ce"
    write_dump(ce_only, "dmesg-ramoops-0", dump_text(CRASH[:1]))
    engine = HealthEngine(Config(), None, None, record=False)
    engine.process(read_pstore(Host(ce_only), []).records)
    assert engine.verdicts()[dimm].state.value not in ("replace-now", "replace-soon")


@pytest.mark.parametrize("where", ["bert", "pstore"])
def test_sim_inject_before_boot_then_import_moves_the_verdict(tmp_path, capsys, where):
    code, made = run(capsys, "sim", "create", "skylake-2s", str(tmp_path / "srv"), "--json")
    root, db = made["root"], made["db"]
    code, shot = run(capsys, "--root", root, "--json", "sim", "inject", "P1-DIMMA1",
                     "--before-boot", where)
    assert code == 0 and shot["before_boot"] == where
    code, report = run(capsys, "--root", root, "--db", db, "--json", "import", where)
    assert code == 0 and counts(report) == (1, 0, 0)
    code, verdicts = run(capsys, "--root", root, "--db", db, "--json", "verdicts")
    rows = verdicts["verdicts"] if isinstance(verdicts, dict) else verdicts
    mine = [v for v in rows if "P1-DIMMA1" in json.dumps(v)]
    assert mine and mine[0]["verdict"] == "replace-now"
    code, again = run(capsys, "--root", root, "--db", db, "--json", "import", where)
    assert counts(again) == (0, 1, 0)
