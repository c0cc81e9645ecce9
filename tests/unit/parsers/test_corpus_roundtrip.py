"""Every corpus record survives the store, and reads the same in rasdaemon.

1. The decoys of the public real-log corpus (tests/corpus/real, loaded by
   tests/corpus/loader.py; its records are checked in test_real_corpus.py) give no
   record from the kernel-log parser and are counted.
2. Every memory error of every corpus (trace, kernel log, real logs) goes through
   ``Store.open``/``add_events`` and comes back from ``store.errors()`` with each field
   intact (grain_bits and syndrome, which StoredError does not carry, are read from
   the memras_error row).
3. The mc_event rows are read by the REAL Debian ``ras-mc-ctl --errors`` (private
   mount namespace, see tests/unit/store/ras_mc_ctl_runner.py), whose lines are parsed
   back with :func:`parse_ras_mc_ctl_error`: label, location, address and grain must be
   what memras shows. Skipped with the reason when the tool cannot run; failed under CI.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from memras.ingest.parsers import (
    ParserStats,
    parse_kernel_log,
    parse_ras_mc_ctl_error,
    parse_trace_line,
)
from memras.ingest.parsers.cxl import cxl_event_of
from memras.records import MemoryErrorEvent, MemoryFailureEvent, Record
from memras.store import Store
from tests.corpus.check import parse_like_import
from tests.corpus.loader import load_all
from tests.unit.parsers.corpus_kernel_log import KLOG_CORPUS
from tests.unit.parsers.corpus_trace import TRACE_CORPUS

sys.path.insert(0, str(Path(__file__).parents[1] / "store"))
import ras_mc_ctl_runner as ras  # noqa: E402

REAL_LOGS = load_all()


def test_real_corpus_decoys_give_nothing_and_are_counted() -> None:
    decoys = [d for log in REAL_LOGS if log.kind == "dmesg" for d in log.decoys]
    assert len(decoys) >= 6
    stats = ParserStats()
    assert list(parse_kernel_log(decoys, stats=stats)) == []
    assert stats.records == 0 and stats.malformed == 0
    assert stats.ignored + stats.context == len(decoys)


def _all_records() -> list[tuple[str, Record]]:
    out: list[tuple[str, Record]] = []
    for name, line, _ in TRACE_CORPUS:
        record = parse_trace_line(line)
        if isinstance(record, MemoryErrorEvent | MemoryFailureEvent):
            out.append((name, record))
    for name, block, _ in KLOG_CORPUS:
        out += [(name, r) for r in parse_kernel_log(block.splitlines())]
    for log in REAL_LOGS:
        out += [(log.id, r) for r in parse_like_import(log.kind, log.text)]
    # The sections of one CPER block share their raw text; the checks below find a
    # stored row by its raw, so one record per raw text goes through the store.
    seen: set[str] = set()
    return [(n, r) for n, r in out if not (r.raw in seen or seen.add(r.raw))]


RECORDS = _all_records()
ERRORS = [(n, r) for n, r in RECORDS if isinstance(r, MemoryErrorEvent)]


def _unique_key(record: Any) -> tuple:
    return (str(record.source), record.raw, repr(record))  # one row per corpus record


@pytest.fixture(scope="module")
def stored(tmp_path_factory: pytest.TempPathFactory) -> tuple[Store, dict[str, Any]]:
    store = Store.open(tmp_path_factory.mktemp("corpus") / "memras.db", key_fn=_unique_key)
    result = store.add_events([r for _, r in RECORDS])
    assert result.inserted == len(RECORDS)
    by_raw = {e.raw: e for e in store.errors()}
    with store.engine.connect() as conn:  # raw may be packed (memras.store.packed_texts)
        by_id = {row.id: row for row in conn.execute(
            text("SELECT id, grain_bits, syndrome FROM memras_error"))}  # fmt: skip
    extra = {raw: by_id[e.id] for raw, e in by_raw.items()}
    return store, {"errors": by_raw, "extra": extra}


@pytest.mark.parametrize("record", [r for _, r in ERRORS], ids=[n for n, _ in ERRORS])
def test_memory_error_survives_the_store(stored: tuple[Store, dict], record: MemoryErrorEvent
                                         ) -> None:  # fmt: skip
    _, found = stored
    e = found["errors"][record.raw]
    assert (e.type, e.count, e.source) == (str(record.error_type), record.count,
                                           str(record.source))  # fmt: skip
    assert (e.address, e.normalized_address) == (record.address, record.normalized_address)
    assert e.page == (None if record.address is None else record.address >> 12)
    assert e.location == record.location
    assert (e.message, e.driver, e.driver_detail) == (
        record.message, record.driver, record.driver_detail)  # fmt: skip
    assert e.uptime == record.uptime_s
    if record.timestamp is not None and record.timestamp.tzinfo is not None:
        assert e.time == record.timestamp
    row = found["extra"][record.raw]
    assert (row.grain_bits, row.syndrome) == (record.grain_bits, record.syndrome)
    # rasdaemon stores an EDAC-decoded error as mc_event even when its machine-check
    # registers came with it (those also go to mce_record); a bare MCE is mce_record only;
    # a CXL media error is its event's own table (cxl_general_media_event, cxl_dram_event).
    edac_decoded = bool(record.location.label) or record.location.top_layer is not None
    cxl = cxl_event_of(record)
    if cxl is not None:
        assert e.rasdaemon_table == f"cxl_{cxl.event}_event"
    else:
        assert e.rasdaemon_table == ("mc_event" if record.mce is None or edac_decoded
                                     else "mce_record")


def test_memory_failures_survive_the_store(stored: tuple[Store, dict]) -> None:
    _, found = stored
    failures = [r for _, r in RECORDS if isinstance(r, MemoryFailureEvent)]
    assert len(failures) >= 4
    for record in failures:
        e = found["errors"][record.raw]
        assert (e.page, e.message) == (record.pfn, f"{record.page_type}: {record.action_result}")
        assert e.rasdaemon_table == "memory_failure_event"


@pytest.mark.rasdaemon
def test_real_ras_mc_ctl_prints_what_memras_shows(stored: tuple[Store, dict],
                                                  tmp_path: Path) -> None:  # fmt: skip
    ras.require_ras_mc_ctl()
    store, found = stored
    mine = {e.rasdaemon_id: e for e in found["errors"].values()
            if e.rasdaemon_table == "mc_event"}  # fmt: skip
    assert len(mine) >= 20
    db_dir = ras.checkpointed_copy(Path(str(store.engine.url.database)), tmp_path / "ras")
    lines = [ln for ln in ras.run(db_dir, "--errors").splitlines() if " error(s): " in ln]
    theirs = {int(ln.split(" ", 1)[0]): ln for ln in lines}
    assert set(theirs) == set(mine)
    for row_id, line in theirs.items():
        parsed = parse_ras_mc_ctl_error(line)
        assert parsed is not None, line
        e = mine[row_id]
        row = found["extra"][e.raw]
        where = (e.location.mc, e.location.top_layer, e.location.middle_layer,
                 e.location.lower_layer)  # fmt: skip
        assert parsed.location.label == e.label, line
        assert (parsed.location.mc, parsed.location.top_layer, parsed.location.middle_layer,
                parsed.location.lower_layer) == where, line  # fmt: skip
        assert parsed.address == e.address, line
        assert parsed.grain_bits == row.grain_bits, line
        assert (str(parsed.error_type), parsed.count, parsed.message) == (e.type, e.count,
                                                                          e.message), line
        assert parsed.driver_detail == e.driver_detail.strip(), line
