"""A replaced module starts clean even at the same physical addresses (lab scenario d).

Errors and page states are found by physical address, and a new module in the slot
has the old one's addresses: nothing the old module did (pages soft-offlined, errors
stored) may be re-applied to or counted against its successor, and the old module's
page states stay in the database for audit. qemu-guest profile, simulated backend,
replaced three times in a row with one database, as ``memras replace dimm1 --backend
qemu`` is in the lab.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from memras.audit.service import AuditTrail
from memras.health.config import parse_config
from memras.health.engine import ChangeKind, HealthEngine
from memras.health.module_registry import module_history
from memras.health.page_action import StorePageBook
from memras.records import ErrorType, MemoryErrorEvent, Source
from memras.sim import profiles
from memras.store import Store
from memras.workflow.runner import Replacement, ReplaceOptions
from memras.workflow.states import State

FAST = {"backoff_initial_s": 0.01, "backoff_max_s": 0.02, "max_attempts": 4}
SLOT = "PNP0C80:00"  # the qemu-guest profile's hot-pluggable DIMM at 4 GiB
PAGE = 0x100001000
CONFIG = "[page]\naction = 'soft'\n"


def ce(at: datetime, address: int = PAGE + 0x40) -> MemoryErrorEvent:
    return MemoryErrorEvent(ErrorType.CORRECTED, Source.TRACE, count=1, timestamp=at,
                            address=address)


def watch(store, host, events: list[MemoryErrorEvent]):
    """What ``memras watch`` does with a batch: store it, then judge the new events."""
    new = store.add_events(events).new_events
    engine = HealthEngine(parse_config(CONFIG), store, host)
    return engine, engine.process(new)


def replace(host, store) -> Replacement:
    rep = Replacement.start(host, store, SLOT, ReplaceOptions(
        operator="Ada", policy=FAST, reserve_bytes=1 << 28))
    rep.run()
    assert rep.state is State.CLOSED, rep._row().error
    return rep


def soft_offlined(store, rep: Replacement) -> list[str]:
    step = next(e for e in AuditTrail(store).list(replacement_id=rep.id)
                if e.action == "soft_offline_pages")
    return step.data.get("pages", [])


def offlines(changes) -> list[str]:
    return [c.evidence["outcome"] for c in changes if c.kind == ChangeKind.PAGE_OFFLINED]


@pytest.fixture
def guest(tmp_path):
    srv = profiles.create("qemu-guest", tmp_path / "root")
    with Store.open(tmp_path / "memras.db") as store:
        yield srv.host(), store


def test_old_modules_pages_are_not_offlined_again_by_later_replacements(guest) -> None:
    host, store = guest
    t0 = datetime.now(UTC) - timedelta(hours=1)
    _, changes = watch(store, host, [ce(t0), ce(t0 + timedelta(seconds=1))])
    assert offlines(changes) == ["done"]  # the old module's bad page, offlined by health
    first = replace(host, store)
    assert soft_offlined(store, first) == [hex(PAGE)]  # the old module's page, before removal
    # Rounds 2 and 3: the new modules had no error; none of their pages is touched.
    second = replace(host, store)
    assert soft_offlined(store, second) == []
    third = replace(host, store)
    assert soft_offlined(store, third) == []
    assert len(module_history(store, SLOT)) == 4


def test_the_new_module_starts_with_no_page_state_and_the_old_one_stays(guest) -> None:
    host, store = guest
    t0 = datetime.now(UTC) - timedelta(hours=1)
    watch(store, host, [ce(t0), ce(t0 + timedelta(seconds=1))])
    replace(host, store)
    book = StorePageBook(store)
    assert book.get(PAGE) is None  # the new module's page has no history
    # The watcher again: one CE on the new module's page is below the page threshold,
    # the old module's errors do not count, nothing is offlined or accounted.
    later = datetime.now(UTC) + timedelta(seconds=5)
    engine, changes = watch(store, host, [ce(later)])
    assert offlines(changes) == []
    assert book.get(PAGE) is None
    # Its own second CE crosses its own threshold: the page is offlined for real (not
    # "already-done" because the old module's page at that address was).
    changes = engine.process(store.add_events([ce(later + timedelta(seconds=1))]).new_events)
    assert offlines(changes) == ["done"]
    new_state = book.get(PAGE)
    assert new_state is not None and new_state.attempts == 1
    second = replace(host, store)
    assert soft_offlined(store, second) == [hex(PAGE)]  # the new module's own bad page
    # History: the old modules' states are all still in the database.
    history = [(o.page, o.outcome, o.dimm_id) for o in book.all()]
    assert history == [(PAGE, "done", SLOT), (PAGE, "done", SLOT)]
    assert book.get(PAGE) is None  # the third module starts clean, too


def test_replaying_old_errors_in_a_new_watcher_offlines_nothing(guest) -> None:
    host, store = guest
    t0 = datetime.now(UTC) - timedelta(hours=1)
    old = [ce(t0), ce(t0 + timedelta(seconds=1))]
    watch(store, host, old)
    replace(host, store)
    engine = HealthEngine(parse_config(CONFIG), store, host)
    assert offlines(engine.process(old)) == []  # a restart re-reading the old records
    assert engine.skipped_removed_module == 2
    assert StorePageBook(store).get(PAGE) is None
