"""Page offlining at a page's CE threshold, as rasdaemon and mcelog do, but remembered.

What it decides
    What to do with a 4 KiB page whose CE bucket fired: ``off`` (nothing),
    ``account`` (record only), ``soft`` (migrate the data, then isolate the page:
    /sys/devices/system/memory/soft_offline_page), ``hard`` (poison it:
    hard_offline_page; users of the page may be killed) or ``soft-then-hard``
    (soft, and if that fails, hard). The page address is written through
    :class:`memras.host.Host`, never by opening the file here.

Outcomes
    ``done``; the kernel's errno name on refusal (``EBUSY`` page in use and not
    migratable, ``ENXIO`` not a valid pfn, ``EIO`` migration failed, ``EINVAL``…);
    ``unsupported`` when the sysfs file does not exist (no CONFIG_MEMORY_FAILURE);
    ``not-permitted`` when memras's own safety rules refuse the write;
    ``accounted``/``off`` for those actions; ``already-done`` when the page was
    done before (never written twice). HardwareCorrupted (/proc/meminfo) is read
    before and after, the kernel's own count of poisoned bytes, as proof.

State
    A :class:`PageBook` remembers every page acted on. :class:`StorePageBook` keeps
    it in ``memras_page_state``, so a restart does not offline a done page again
    (rasdaemon's rbtree is RAM-only). Its rows are per module: a module that
    replaced another at the same addresses starts with no page state. A failed page
    is tried again at its next threshold crossing (mcelog's memory-ce-offline-retry,
    without the doubling).

Cost
    Two /proc/meminfo reads and one sysfs write per crossing; soft offlining
    migrates one page in the kernel (microseconds to milliseconds).
"""

from __future__ import annotations

import enum
import errno
import json
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from memras.errors import KernelInterfaceError, NotPermitted

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from memras.health.models import PageStateRow
    from memras.host import Host
    from memras.store.store import Store


class PageAction(enum.StrEnum):
    OFF = "off"
    ACCOUNT = "account"
    SOFT = "soft"
    HARD = "hard"
    SOFT_THEN_HARD = "soft-then-hard"


DONE = "done"
ALREADY_DONE = "already-done"


@dataclass(frozen=True, slots=True)
class PageOutcome:
    page: int
    action: PageAction
    outcome: str  # done | already-done | accounted | off | EBUSY | ENXIO | unsupported …
    time: datetime
    dimm_id: str | None = None
    steps: tuple[tuple[str, str], ...] = ()  # (soft|hard, outcome) in order tried
    attempts: int = 1
    hw_corrupted_before: int | None = None
    hw_corrupted_after: int | None = None

    @property
    def done(self) -> bool:
        return self.outcome in (DONE, ALREADY_DONE)

    def to_dict(self) -> dict[str, Any]:
        return {"page": f"{self.page:#x}", "action": self.action.value, "outcome": self.outcome,
                "time": self.time.isoformat(), "dimm": self.dimm_id,
                "steps": [list(s) for s in self.steps], "attempts": self.attempts,
                "hw_corrupted_before": self.hw_corrupted_before,
                "hw_corrupted_after": self.hw_corrupted_after}


class PageBook(Protocol):
    def get(self, page: int) -> PageOutcome | None: ...

    def put(self, outcome: PageOutcome) -> None: ...


class MemoryPageBook:
    """A PageBook in RAM (for replays that must not touch the database)."""

    def __init__(self) -> None:
        self.pages: dict[int, PageOutcome] = {}

    def get(self, page: int) -> PageOutcome | None:
        return self.pages.get(page)

    def put(self, outcome: PageOutcome) -> None:
        self.pages[outcome.page] = outcome


# EHWPOISON (asm-generic/errno.h 133, "memory page has hardware error": a hard offline of a
# page already poisoned) is missing from Python's errno table
_ERRNO_NAMES = {133: "EHWPOISON", **errno.errorcode}


def _steps_for(action: PageAction) -> tuple[str, ...]:
    return {PageAction.SOFT: ("soft",), PageAction.HARD: ("hard",),
            PageAction.SOFT_THEN_HARD: ("soft", "hard")}.get(action, ())


def _write(host: Host, method: str, page: int) -> str:
    """One write through Host; the outcome as a word."""
    try:
        if method == "soft":
            host.memory.soft_offline_page(page)
        else:
            host.memory.hard_offline_page(page)
    except NotPermitted:
        return "not-permitted"
    except FileNotFoundError:
        return "unsupported"
    except PermissionError:
        return "EPERM"
    except OSError as exc:
        return _ERRNO_NAMES.get(exc.errno or 0, "E?")
    except KernelInterfaceError:
        return "failed"
    return DONE


def _hardware_corrupted(host: Host) -> int | None:
    try:
        return int(host.meminfo.read().hardware_corrupted)
    except (KernelInterfaceError, OSError):
        return None


def act_on_page(host: Host | None, page: int, action: PageAction, book: PageBook, *,
                time: datetime, dimm_id: str | None = None) -> PageOutcome:
    """Apply ``action`` to ``page`` (its 4 KiB-aligned address) and record the outcome."""
    page &= ~0xFFF
    previous = book.get(page)
    attempts = 1 if previous is None else previous.attempts + 1
    if previous is not None and previous.done:
        return replace(previous, outcome=ALREADY_DONE, time=time, steps=(), attempts=attempts)
    base = PageOutcome(page, action, "", time, dimm_id, attempts=attempts)
    if action in (PageAction.OFF, PageAction.ACCOUNT) or host is None:
        word = {PageAction.OFF: "off", PageAction.ACCOUNT: "accounted"}.get(action, "no-host")
        outcome = replace(base, outcome=word)
        if action != PageAction.OFF:
            book.put(outcome)
        return outcome
    before = _hardware_corrupted(host)
    steps: list[tuple[str, str]] = []
    for method in _steps_for(action):
        result = _write(host, method, page)
        steps.append((method, result))
        if result == DONE or result in ("not-permitted", "unsupported"):
            break
    outcome = replace(base, outcome=steps[-1][1], steps=tuple(steps),
                      hw_corrupted_before=before, hw_corrupted_after=_hardware_corrupted(host))
    book.put(outcome)
    return outcome


class StorePageBook:
    """A PageBook in the memras database (``memras_page_state``).

    A row belongs to the module that held the page's slot when it was written (the
    registry's :func:`memras.health.module_registry.module_at`): a replacement module sits at
    the old one's physical addresses, so :meth:`get` answers only with a state of a
    module still in its slot, and :meth:`put` never overwrites a removed module's row
    (kept for audit; :meth:`all` lists every module's).
    """

    def __init__(self, store: Store) -> None:
        self.store = store

    # The table imports below are lazy: health.config imports this module for PageAction,
    # and `memras config` (and every config load) must not pay for SQLAlchemy.
    def get(self, page: int) -> PageOutcome | None:
        from sqlalchemy import select

        from memras.health.models import PageStateRow as P  # lazy: see above get

        with self.store.session() as s:
            row = s.scalars(select(P).where(P.page == _signed(page))
                            .order_by(P.time.desc(), P.module_id.desc())).first()
            if row is None or _of_removed_module(s, row):
                return None
            return _from_row(row)

    def put(self, outcome: PageOutcome) -> None:
        from memras.health.models import PageStateRow  # lazy: see above get

        time = outcome.time.astimezone(UTC).replace(tzinfo=None)
        with self.store.session() as s:
            s.merge(PageStateRow(
                page=_signed(outcome.page), module_id=_module_id(s, outcome.dimm_id, time),
                dimm_id=outcome.dimm_id,
                action=outcome.action.value, outcome=outcome.outcome,
                steps=json.dumps([list(x) for x in outcome.steps]), attempts=outcome.attempts,
                hw_corrupted_before=outcome.hw_corrupted_before,
                hw_corrupted_after=outcome.hw_corrupted_after, time=time))

    def all(self) -> list[PageOutcome]:
        from sqlalchemy import select

        from memras.health.models import PageStateRow  # lazy: see above get

        with self.store.session() as s:
            return [_from_row(r) for r in s.scalars(select(PageStateRow).order_by(
                PageStateRow.time, PageStateRow.module_id))]


def _module_id(s: Session, dimm_id: str | None, time: datetime) -> int:
    """The registry id of the module in ``dimm_id``'s slot at ``time`` (0: unknown)."""
    from memras.health.module_registry import history_in, module_at  # lazy: SQLAlchemy

    if dimm_id is None:
        return 0
    module = module_at(history_in(s, dimm_id), time.replace(tzinfo=UTC))
    return 0 if module is None else module.id


def _of_removed_module(s: Session, row: PageStateRow) -> bool:
    """Whether ``row`` is a page state of a module no longer in its slot."""
    # lazy, as the table imports above: SQLAlchemy
    from memras.health.models import DimmModuleRow
    from memras.health.module_registry import history_in, of_removed_module

    if row.module_id:
        module = s.get(DimmModuleRow, row.module_id)
        return module is not None and module.removed_at is not None
    if row.dimm_id is None:
        return False  # no slot known: nothing tells its module from a successor
    return of_removed_module(history_in(s, row.dimm_id), row.time.replace(tzinfo=UTC))


def _signed(page: int) -> int:
    return page - (1 << 64) if page >= 1 << 63 else page


def _from_row(row: PageStateRow) -> PageOutcome:
    return PageOutcome(
        page=row.page & ((1 << 64) - 1), action=PageAction(row.action), outcome=row.outcome,
        time=row.time.replace(tzinfo=UTC), dimm_id=row.dimm_id,
        steps=tuple(tuple(x) for x in json.loads(row.steps or "[]")), attempts=row.attempts,
        hw_corrupted_before=row.hw_corrupted_before, hw_corrupted_after=row.hw_corrupted_after)
