"""memras_error.texts: message, driver detail and raw packed (memras.store.packed_texts)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from memras.cli import main
from memras.records import DimmLocation, ErrorType, MemoryErrorEvent, MemoryFailureEvent, Source
from memras.store import Store
from memras.store.migrations import LATEST_VERSION
from memras.store.packed_texts import MIN_BYTES, pack, unpack
from tests.unit.store.conftest import T0

# A line of the public corpus (tests/corpus/real/sb_edac-kernel-doc-einj-rst.toml:
# https://www.kernel.org/doc/html/latest/firmware-guide/acpi/apei/einj.html)
EDAC = ("EDAC MC0: 1 CE memory read error on CPU_SrcID#0_Ha#0_Chan#0_DIMM#0 (channel:0 "
        "slot:0 page:0x12345 offset:0x0 grain:32 syndrome:0x0 - area:DRAM err_code:0001:0090 "
        "socket:0 ha:0 channel_mask:1 rank:0)")
DETAIL = "area:DRAM err_code:0001:0090 socket:0 ha:0 channel_mask:1 rank:0"


def test_round_trip_and_smaller() -> None:
    packed = pack("memory read error", DETAIL, EDAC)
    assert packed is not None
    assert len(packed) < len(EDAC) // 2  # the dictionary knows the kernel's wording
    assert unpack(packed) == ("memory read error", DETAIL, EDAC)


@pytest.mark.parametrize("texts", [
    ("", "", "x" * 200),
    ("m", "", "caf\u00e9 \udcff raw with an undecodable byte kept " * 4),  # surrogateescape
    ("a,b:c", "1,2:", "text with the separators , and : " * 5),
    ("", "", "\x00\r\n\t" * 40),
])
def test_any_text_survives(texts: tuple[str, str, str]) -> None:
    packed = pack(*texts)
    assert packed is None or unpack(packed) == texts


def test_short_texts_stay_plain() -> None:
    assert pack("m", "d", "r" * (MIN_BYTES - 3)) is None
    assert pack("m", "d", "r" * MIN_BYTES) is not None


def test_a_text_that_is_not_a_str_is_left_to_the_plain_columns() -> None:
    assert pack(None, DETAIL, EDAC) is None  # type: ignore[arg-type]


def test_unknown_version_is_refused() -> None:
    packed = pack("", "", EDAC)
    assert packed is not None
    with pytest.raises(ValueError, match="version"):
        unpack(b"\x09" + packed[1:])


def _events() -> list[MemoryErrorEvent | MemoryFailureEvent]:
    return [
        MemoryErrorEvent(ErrorType.CORRECTED, Source.KMSG, timestamp=T0, address=0x12345000,
                         message="memory read error", driver="sb_edac", driver_detail=DETAIL,
                         location=DimmLocation(label="CPU_SrcID#0_Ha#0_Chan#0_DIMM#0", mc=0,
                                               top_layer=0, middle_layer=0), raw=EDAC),
        MemoryErrorEvent(ErrorType.CORRECTED, Source.TRACE, timestamp=T0, address=0x2000,
                         message="short", raw="short"),
        MemoryFailureEvent(pfn=0x54321, page_type="dirty LRU page", action_result="Recovered",
                           source=Source.KMSG, timestamp=T0,
                           raw="[  183.645940] Memory failure: 0x54321: recovery action for "
                               "dirty LRU page: Recovered"),
    ]


def test_store_reads_back_what_it_was_given(tmp_path: Path) -> None:
    with Store.open(tmp_path / "m.db") as store:
        store.add_events(_events())
        got = {e.raw: e for e in store.errors()}
    db = sqlite3.connect(tmp_path / "m.db")
    rows = dict(db.execute("SELECT address, texts IS NOT NULL FROM memras_error"))
    assert rows == {0x12345000: 1, 0x2000: 0, 0x54321 << 12: 1}  # long ones packed
    edac = got[EDAC]
    assert (edac.message, edac.driver, edac.driver_detail) == (
        "memory read error", "sb_edac", DETAIL)
    assert got["short"].message == "short"
    failure = next(e for raw, e in got.items() if "Memory failure" in raw)
    assert failure.message == "dirty LRU page: Recovered"


def test_rows_from_before_migration_7_read_as_before(tmp_path: Path, capsys) -> None:
    path = tmp_path / "old.db"
    with Store.open(path) as store:
        store.add_events(_events()[:1])
    db = sqlite3.connect(path)
    # the database as memras 6 left it: no texts column, the texts plain
    db.execute("ALTER TABLE memras_error DROP COLUMN texts")
    db.execute("UPDATE memras_error SET message = 'memory read error', driver_detail = ?, "
               "raw = ?", (DETAIL, EDAC))
    db.execute("DELETE FROM memras_schema WHERE version = 7")
    db.commit()
    db.close()
    with Store.open(path) as store:  # migration 7 adds the column; old rows stay plain
        store.add_events(_events()[2:])
        got = store.errors()
    assert [e.raw for e in got][0] == EDAC and got[0].driver_detail == DETAIL
    db = sqlite3.connect(path)
    assert db.execute("SELECT max(version) FROM memras_schema").fetchone() == (LATEST_VERSION,)
    assert [r[0] for r in db.execute("SELECT texts IS NULL FROM memras_error ORDER BY id")] \
        == [1, 0]
    assert main(["--db", str(path), "--json", "errors"]) == 0
    assert EDAC in capsys.readouterr().out


def test_config_check_validates_store(tmp_path: Path, capsys) -> None:
    config = tmp_path / "memras.toml"
    config.write_text('[store]\nkeep = "400d"\n')
    assert main(["--config", str(config), "config", "check"]) == 0
    config.write_text('[store]\nkeep = "soon"\n')
    assert main(["--config", str(config), "config", "check"]) == 2
    assert "keep = 'soon' is not a duration" in capsys.readouterr().err
