"""An uncorrected error that crashed the machine, reported before and after the reboot,
is one row (issue 14, one error one row; issue 18, errors from before this boot).

The next kernel logs the bank's left-over error again while it boots (mce/core.c
__mcheck_cpu_init_generic: "Log the machine checks left over from the previous reset",
machine_check_poll(MCP_UC) without MCP_TIMESTAMP: TSC 0, no MCIP). The lab's pstore
scenario saw it 15 s after the crash's own entry; the lines below have the kernel's
__print_mce shapes of both.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from memras.ingest.before_boot import parse_log
from memras.ingest.mca import is_left_over
from memras.records import MemoryErrorEvent, Source, TimeSource
from memras.store import Store

CRASH = 1765000000  # the crashing kernel's TIME
# the crashed boot's last lines, as pstore (or a live watcher) has them: found by #MC
BEFORE = """\
<0>[  101.234567] mce: [Hardware Error]: CPU 0: Machine Check Exception: 4 Bank 9: be0000000000009f
<0>[  101.234570] mce: [Hardware Error]: TSC 5a3c1b2d0 ADDR 12345000 MISC 8c
<0>[  101.234574] mce: [Hardware Error]: PROCESSOR 0:663 TIME {t} SOCKET 0 APIC 0 microcode 1
"""
# the next boot's copy from the bank: the boot poll (TSC 0, MCG_STATUS 0)
AFTER = """\
[    2.012345] mce: [Hardware Error]: Machine check events logged
[    2.012400] mce: [Hardware Error]: CPU 0: Machine Check: 0 Bank 9: be0000000000009f
[    2.012401] mce: [Hardware Error]: TSC 0 ADDR 12345000 MISC 8c
[    2.012402] mce: [Hardware Error]: PROCESSOR 0:663 TIME {t} SOCKET 0 APIC 0 microcode 1
"""


def _records(text: str, source: Source, t: int) -> list[MemoryErrorEvent]:
    records, _ = parse_log(text.format(t=t), source)
    events = [r for r in records if isinstance(r, MemoryErrorEvent)]
    assert len(events) == 1, records
    return events


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    url = (request.getfixturevalue("pg_url") if request.param == "postgresql"
           else tmp_path / "memras.db")
    s = Store.open(url)
    yield s
    s.close()


def before() -> list[MemoryErrorEvent]:
    return _records(BEFORE, Source.PSTORE, CRASH)


def after(seconds_later: int = 15) -> list[MemoryErrorEvent]:
    return _records(AFTER, Source.KMSG, CRASH + seconds_later)


def test_the_boot_copy_is_recognised() -> None:
    assert [is_left_over(r) for r in after()] == [True]
    assert [is_left_over(r) for r in before()] == [False]  # found by the #MC handler


@pytest.mark.parametrize("order", ["before first", "after first", "one batch"])
def test_one_row_whatever_the_order(store: Store, order: str) -> None:
    if order == "one batch":
        results = [store.add_events([*before(), *after()])]
    else:
        batches = [before(), after()] if order == "before first" else [after(), before()]
        results = [store.add_events(b) for b in batches]
    assert sum(r.inserted for r in results) == 1
    assert sum(r.duplicates for r in results) == 1
    assert len(store.errors()) == 1


def test_a_left_over_alone_is_dated_at_its_boot_as_inferred(store: Store) -> None:
    result = store.add_events(after())
    (row,) = store.errors()
    assert result.inserted == 1
    boot = datetime.fromtimestamp(CRASH + 15, UTC) - timedelta(seconds=2.012400)
    assert abs(row.time.replace(tzinfo=UTC) - boot) < timedelta(seconds=1)
    assert row.time_source == TimeSource.INFERRED.value


def test_the_same_address_failing_later_is_another_error(store: Store) -> None:
    store.add_events(before())
    # an hour and more after the crash's reboot: not its copy
    later = after(seconds_later=2 * 3600)
    assert store.add_events(later).inserted == 1
    # and a live UE during the boot that was not left over (found by #MC) is its own
    live = _records(BEFORE.replace("101.23", "3.23"), Source.KMSG, CRASH + 20)
    assert store.add_events(live).inserted == 1
