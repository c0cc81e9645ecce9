"""CXL poison -> its pages out of service, or the memdev's verdict as the action.

What poison is
    A ``cxl_poison`` record (type List: the device's poison list, read by the kernel
    when asked; Inject: the kernel's own debugfs injection) names media whose data is
    already lost: the device returns poison to whoever reads those bytes. It is not a
    corrected error that may turn bad; it is bad now, and whatever consumes it next (a
    process: SIGBUS; the kernel: an oops or panic) pays.

The action, and why hard
    When the poisoned range lies in an online system-ram region (kmem onlined its DAX
    device: memory blocks online, normally ZONE_MOVABLE), each of its 4 KiB pages is
    written to ``/sys/devices/system/memory/hard_offline_page``: memory_failure() takes
    the page out of service at once — a free page is just taken, a clean page-cache page
    dropped (re-read from its file), a dirty or anonymous page's users are signalled
    (SIGBUS, at once with vm.memory_failure_early_kill, else when they next touch it).
    Not ``soft_offline_page``: it migrates the contents, that is it reads the poison
    (on real hardware a machine check while the kernel copies), and its ABI
    (Documentation/ABI/testing/sysfs-memory-page-offline) says "the page must be still
    accessible, not poisoned". The data is gone either way; hard offlining only decides
    that the loss is reported now, to the page's users, rather than consumed later.
    The action follows ``[page] action``, the DIMM page action's knob: ``off`` does
    nothing, ``account`` records only, and ``soft``, ``hard`` and ``soft-then-hard``
    all mean hard here (those choose how to retire a page that still holds good data).

Without a page
    Poison outside any online region (no region maps the DPA, a devdax region, blocks
    offline) has no page to act on: the record is stored, the memdev judged
    (memras.health.cxl: cxl-poison repairs, poison spread over many pages or an
    overflowed list replaces), and that verdict is the action. A Clear record is logged
    (the device rewrote the media; a page the kernel poisoned stays out of service
    until reboot).

Idempotent
    A page is written at most once: the page book (memras_page_state, shared with the
    DIMM page action) remembers it, and /proc/kpageflags' HWPOISON bit or the kernel's
    EHWPOISON answer say a page is poisoned already; neither writes again. A poison
    list read again lists the same entries; they act on nothing new.

Cost
    Per record: the CXL regions read once, per page one block state, one kpageflags
    word, two /proc/meminfo reads and one sysfs write.
"""

from __future__ import annotations

import errno
import logging
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from memras.errors import KernelInterfaceError, MemrasError
from memras.health.cxl import POISON_LISTED, CxlVerdict, memdev_verdicts
from memras.health.engine import VERDICT_SEVERITY, ChangeKind, HealthChange
from memras.health.page_action import (
    ALREADY_DONE,
    DONE,
    PageAction,
    PageBook,
    PageOutcome,
    act_on_page,
)
from memras.health.verdict import VerdictState
from memras.host.cxl import CxlRegion, dpa_to_hpa
from memras.ingest.parsers.cxl import POISON_FLAGS
from memras.records import CxlEvent

if TYPE_CHECKING:
    from memras.health.config import Config
    from memras.host import Host
    from memras.store.store import Store

log = logging.getLogger("memras.health.cxl_poison")

PAGE = 4096
MAX_PAGES_PER_RECORD = 256  # 1 MiB of poison acted on per record; more is the verdict's
RULE = "cxl-poison"
EHWPOISON = getattr(errno, "EHWPOISON", 133)  # asm-generic/errno.h; "page already poisoned"
ALREADY_POISONED = errno.errorcode.get(EHWPOISON, "EHWPOISON")
ALREADY_ACCOUNTED = "already-accounted"  # [page] action = account, this page recorded before


def poison_action(page_action: PageAction) -> PageAction:
    """What ``[page] action`` means for poison: off and account as they say, any
    offlining as hard (see the module docstring)."""
    return page_action if page_action in (PageAction.OFF, PageAction.ACCOUNT) \
        else PageAction.HARD


@dataclass(frozen=True, slots=True)
class PoisonOutcome:
    """What memras did about one poison record."""

    memdev: str
    dpa: int | None
    length: int | None
    trace_type: str | None
    time: datetime
    # offlined | already-offlined | accounted | dry-run | off | failed | no-page |
    # not-system-ram | cleared | ignored
    outcome: str
    hpa: int | None = None
    region: str = ""
    pages: tuple[PageOutcome, ...] = ()
    overflow: bool = False
    detail: str = ""

    @property
    def new_pages(self) -> tuple[PageOutcome, ...]:
        """The pages this record changed or tried to (not those done before)."""
        return tuple(p for p in self.pages if p.outcome not in (ALREADY_DONE,
                                                                 ALREADY_ACCOUNTED))

    def to_dict(self) -> dict[str, Any]:
        return {"memdev": self.memdev, "dpa": _hex(self.dpa), "length": self.length,
                "trace_type": self.trace_type, "time": self.time.isoformat(),
                "outcome": self.outcome, "hpa": _hex(self.hpa), "region": self.region,
                "pages": [p.to_dict() for p in self.pages], "overflow": self.overflow,
                "detail": self.detail}


def _hex(value: int | None) -> str | None:
    return None if value is None else f"{value:#x}"


def _region_of(regions: list[CxlRegion], ev: CxlEvent) -> CxlRegion | None:
    """The region decoding the record's DPA of its memdev (the one it names first)."""
    if ev.dpa is None:
        return None
    named = [r for r in regions if r.name == ev.region] if ev.region else []
    for region in [*named, *regions]:
        if dpa_to_hpa(region, ev.memdev, ev.dpa) is not None:
            return region
    return None


def poison_hpas(host: Host, ev: CxlEvent) -> tuple[list[int], str, str]:
    """The HPAs of the 4 KiB pages a poison record covers, the region, and a note.

    The kernel's HPA (given when a region mapped the DPA as it read the list) is the
    truth; the host's region tables give the pages of a longer range (interleaving
    scatters them) or of a record read before its region existed. When the two
    disagree on the first page only the kernel's is used."""
    try:
        regions = host.cxl.regions()
    except (KernelInterfaceError, OSError):
        regions = []
    region = _region_of(regions, ev)
    length = max(ev.dpa_length or 1, 1)
    if region is None or ev.dpa is None:
        if ev.hpa is None:
            return [], "", "no region maps the DPA"
        count = (ev.hpa % PAGE + length + PAGE - 1) // PAGE
        return [ev.hpa // PAGE * PAGE + i * PAGE for i in range(count)], ev.region, \
            "no region in the host's tables: pages from the kernel's HPA"
    first = dpa_to_hpa(region, ev.memdev, ev.dpa)
    if ev.hpa is not None and first is not None and first // PAGE != ev.hpa // PAGE:
        log.warning("cxl poison %s DPA %#x: the kernel says HPA %#x, %s decodes %#x; "
                    "only the kernel's page is acted on", ev.memdev, ev.dpa, ev.hpa,
                    region.name, first)
        return [ev.hpa // PAGE * PAGE], region.name, \
            f"{region.name} disagrees with the kernel's HPA: its page only"
    step = max(1, min(region.granularity, PAGE))
    pages: list[int] = []
    d = ev.dpa - ev.dpa % step
    while d < ev.dpa + length:
        hpa = dpa_to_hpa(region, ev.memdev, d)
        if hpa is not None and hpa // PAGE * PAGE not in pages:
            pages.append(hpa // PAGE * PAGE)
        d += step
    return pages, region.name, ""


def _page(host: Host, page: int, action: PageAction, book: PageBook, *, time: datetime,
          dimm_id: str, dry_run: bool) -> PageOutcome:
    previous = book.get(page)
    if previous is not None and previous.done:
        return replace(previous, outcome=ALREADY_DONE, time=time, steps=())
    if previous is not None and previous.outcome == "accounted" and action == \
            PageAction.ACCOUNT:
        return replace(previous, outcome=ALREADY_ACCOUNTED, time=time, steps=())
    if dry_run:
        return PageOutcome(page, action, "dry-run", time, dimm_id)
    if action == PageAction.HARD and host.cxl.page_hwpoisoned(page):
        outcome = PageOutcome(page, action, ALREADY_DONE, time, dimm_id)
        book.put(outcome)  # the kernel's poison (kpageflags HWPOISON): never written
        return outcome
    outcome = act_on_page(host, page, action, book, time=time, dimm_id=dimm_id)
    if outcome.outcome == ALREADY_POISONED:  # the kernel: "page already poisoned"
        outcome = replace(outcome, outcome=ALREADY_DONE)
        book.put(outcome)
    return outcome


def act_on_poison(host: Host | None, ev: CxlEvent, action: PageAction, book: PageBook, *,
                  time: datetime, dry_run: bool = False) -> PoisonOutcome:
    """Take the pages of one poison record out of service (see the module docstring);
    ``action`` is ``[page] action`` (:func:`poison_action` maps it); ``dry_run``
    decides and reports but writes nothing, not even the page book."""
    action = poison_action(action)
    base = PoisonOutcome(ev.memdev, ev.dpa, ev.dpa_length, ev.trace_type, time, "",
                         hpa=ev.hpa, region=ev.region,
                         overflow=bool((ev.poison_flags or 0) & POISON_FLAGS["Overflow"]))
    if ev.trace_type == "Clear":
        return replace(base, outcome="cleared", detail="the device cleared it; a page "
                       "the kernel poisoned stays out of service until reboot")
    if ev.trace_type not in POISON_LISTED:
        return replace(base, outcome="ignored", detail=f"trace type {ev.trace_type!r}")
    if action == PageAction.OFF:
        return replace(base, outcome="off", detail="[page] action = off")
    if host is None:
        return replace(base, outcome="no-page", detail="no host to act on")
    hpas, region, note = poison_hpas(host, ev)
    base = replace(base, region=region or base.region, detail=note)
    if not hpas:
        return replace(base, outcome="no-page")
    if len(hpas) > MAX_PAGES_PER_RECORD:
        base = replace(base, detail=f"{len(hpas)} pages: the first {MAX_PAGES_PER_RECORD} "
                                    "acted on, the verdict judges the rest")
        hpas = hpas[:MAX_PAGES_PER_RECORD]
    try:
        block_size = host.memory.block_size()
    except (KernelInterfaceError, OSError, ValueError):
        return replace(base, outcome="not-system-ram", detail="no memory blocks")
    online = [p for p in hpas if host.memory.state(p // block_size) == "online"]
    if not online:
        return replace(base, outcome="not-system-ram",
                       detail=base.detail or "no online memory block holds it (devdax, "
                                             "or its blocks are offline)")
    dimm_id = f"label:{ev.memdev}"
    pages = tuple(_page(host, p, action, book, time=time, dimm_id=dimm_id, dry_run=dry_run)
                  for p in online)
    return replace(base, pages=pages, outcome=_summary(pages))


def _summary(pages: tuple[PageOutcome, ...]) -> str:
    words = {p.outcome for p in pages}
    if DONE in words:
        return "offlined"
    if words == {ALREADY_DONE}:
        return "already-offlined"
    if words <= {ALREADY_DONE, ALREADY_ACCOUNTED, "accounted"}:
        return "accounted"
    if "dry-run" in words:
        return "dry-run"
    return "failed"


class CxlPoisonWatch:
    """The watcher's poison action: :meth:`process` takes the CXL events of a stored
    batch and returns the health changes it made (page actions, memdev verdicts), which
    the pipeline hands to the journal and the alerts as the engine's own."""

    def __init__(self, store: Store | None, host: Host | None, book: PageBook, *,
                 action: PageAction, config: Config | None = None,
                 dry_run: bool = False) -> None:
        self.store, self.host, self.book = store, host, book
        self.action, self.config, self.dry_run = action, config, dry_run
        self.outcomes = 0
        self._noted: set[tuple[str, int | None, str]] = set()  # no-page records logged
        self._states: dict[str, VerdictState] = {}
        memdevs = self._present()
        if store is not None and memdevs:
            try:
                for name, v in memdev_verdicts(store, memdevs, config=config).items():
                    self._states[name] = v.state
            except MemrasError as exc:  # the watcher starts; a first change may repeat one
                log.warning("CXL memdev verdicts unreadable at start: %s", exc.msg)

    def _present(self) -> list[str]:
        if self.host is None:
            return []
        try:
            return [m.name for m in self.host.cxl.memdevs()]
        except (KernelInterfaceError, OSError):
            return []

    def process(self, events: Iterable[object]) -> list[HealthChange]:
        changes: list[HealthChange] = []
        touched: list[str] = []
        for ev in events:
            if not isinstance(ev, CxlEvent) or ev.event != "poison":
                continue
            outcome = act_on_poison(self.host, ev, self.action, self.book,
                                    time=datetime.now(UTC), dry_run=self.dry_run)
            self.outcomes += 1
            changes += self._report(outcome)
            if ev.memdev not in touched:
                touched.append(ev.memdev)
        if self.store is not None and touched:
            changes += self._verdicts(touched)
        return changes

    def _report(self, o: PoisonOutcome) -> list[HealthChange]:
        where = f"{o.memdev} DPA {o.dpa or 0:#x}+{o.length or 0:#x}"
        if not o.new_pages:
            key = (o.memdev, o.dpa, o.outcome)
            if key not in self._noted and o.outcome != "already-offlined":
                self._noted.add(key)
                log.info("cxl poison %s (%s): %s%s", where, o.trace_type, o.outcome,
                         f": {o.detail}" if o.detail else "")
            return []
        out = []
        for p in o.new_pages:
            done = p.outcome == DONE
            level = logging.INFO if done or p.outcome in ("accounted", "dry-run") \
                else logging.WARNING
            log.log(level, "cxl poison %s: page %#x %s -> %s", where, p.page, p.action,
                    p.outcome)
            out.append(HealthChange(
                ChangeKind.PAGE_OFFLINED, p.dimm_id, p.time,
                "info" if done or p.outcome in ("accounted", "dry-run") else "warning",
                f"page {p.page:#x} ({where}, poisoned): {p.action} -> {p.outcome}",
                {**p.to_dict(), "poison": o.to_dict()}, (RULE,)))
        return out

    def _verdicts(self, memdevs: list[str]) -> list[HealthChange]:
        assert self.store is not None
        out = []
        for name, v in memdev_verdicts(self.store, memdevs, config=self.config).items():
            previous = self._states.get(name, VerdictState.OK)
            self._states[name] = v.state
            if v.state != previous:
                out.append(_verdict_change(v, previous))
        return out


def _verdict_change(v: CxlVerdict, previous: VerdictState) -> HealthChange:
    now = datetime.now(UTC)
    return HealthChange(
        ChangeKind.VERDICT_CHANGED, f"label:{v.memdev}", now, VERDICT_SEVERITY[v.state],
        f"{v.memdev}: {previous} -> {v.state} ({v.reasons[0] if v.reasons else ''})",
        {"verdict": v.state.value, "previous": previous.value, "reasons": list(v.reasons),
         "reached_at": now.isoformat()}, tuple(v.rules), v.state.value)
