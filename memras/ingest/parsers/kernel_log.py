"""Kernel log text (dmesg, journal, syslog, /dev/kmsg) → memory error records.

Decides which printks are memory errors and which lines describe the same fault.
Formats mirrored (prefixes in :mod:`prefixes`):

- drivers/edac/edac_mc.c ``edac_ce_error``/``edac_ue_error`` (3.5+, same shape since):
  ``EDAC MC%d: %d CE %s%son %s (%s page:0x%lx offset:0x%lx grain:%ld syndrome:0x%lx%s%s)``
  (UE: no syndrome); pre-3.5 ``CE page 0x%lx, offset 0x%lx, grain %d, syndrome 0x%lx,
  row %d, channel %d, label "%s": %s``; pre-3.10 sb_edac ``CE row %d, channel %d,
  label "%s": <msg>`` (type from the CE/UE token only: "FATAL" in msg is not a type).
  ``page:`` is in kernel pages: address = page << page_shift | offset.
- driver context: ``EDAC <drv> MC%d: HANDLING MCE MEMORY ERROR``, ``CPU %d: Machine
  Check Event: %Lu Bank %d: %016Lx`` (sb_edac/skx_common.c) and TSC/ADDR/MISC/PROCESSOR.
- arch/x86/kernel/cpu/mce/core.c ``__print_mce``: ``CPU %d: Machine Check[ Exception]:
  %Lx Bank %d: %016Lx``, ``TSC %llx [ADDR %llx ][MISC %llx ]``, ``PROCESSOR %u:%x TIME
  %llu SOCKET %u APIC %x microcode %x`` → decoded by :mod:`memras.ingest.mca`.
- drivers/edac/mce_amd.c ``[Hardware Error]: CPU:%d (%x:%x:%x) MC%d_STATUS[…]: 0x%016llx``,
  ``Error Addr: 0x%016llx`` (UMC-normalized: kept as ``normalized_address``),
  ``IPID: 0x%016llx, Syndrome: 0x%016llx``.
- arch/powerpc/kernel/mce.c ``machine_check_print_event_info`` (5.2+): ``MCE: CPU%d:
  machine check (%s) [Host|Guest] %s %s [DAR: %016llx [paddr: %016llx ]][%s]``, then
  ``MCE: CPU%d: [PID: %d Comm: %s ]NIP: [%016llx]…[ paddr: %016llx]`` (the physical
  address of an instruction fetch), ``Initiator %s`` and the error class. Only ``UE``
  is a memory error; SLB/ERAT/TLB/cache errors are counted as non-memory checks.
- GHES/CPER blocks (:mod:`ghes`) and mm/memory-failure.c ``Memory failure: %#lx:
  recovery action for %s: %s`` (older ``MCE %#lx: %s page recovery: %s``).

One fault, several lines: lines are collected in a *group* (driver context, MCE lines,
the mce_amd block, a GHES block) holding at most one EDAC record. The group closes on
the next fault's first line, on a gap of more than ``GROUP_WINDOW_S`` kernel seconds,
after ``MAX_UNRELATED`` foreign lines, or on :meth:`flush`; it then yields ONE record
(the EDAC line enriched with the MCE registers and AMD normalized address; else the
decoded MCE; else one per GHES memory section, with ghes_edac's EDAC line folded in).
All lines of the group are kept in ``raw``. So a record is returned up to one fault
later than its line: the watcher calls :meth:`flush` when the source goes idle.

Decoys produce nothing and are counted: "Machine check events logged", EDAC fake
injection ("Generating N CE fake error…" and the EDAC line after it), driver banners,
mcelog/rasdaemon status lines. An EDAC line spliced by a concurrent printk keeps only
the fields whose text is intact (counted as salvaged).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from memras.ingest.mca import (
    MISC_ADDR_MODE_PHYS,
    mce_to_memory_error,
    misc_address_lsb,
    misc_address_mode,
)
from memras.ingest.parsers._common import (
    ParserStats,
    edac_error_count,
    grain_bits_from_bytes,
    hex_int,
    walltime_to_datetime,
)
from memras.ingest.parsers.cxl import EVENTS as CXL_EVENTS
from memras.ingest.parsers.cxl import memory_error, parse_cxl_event
from memras.ingest.parsers.ghes import BERT_START, GHES_LINE, GHES_START, GhesBlock
from memras.ingest.parsers.locations import (
    layers_from_edac_location,
    location_from_label,
    location_from_pairs,
)
from memras.ingest.parsers.prefixes import Prefixed, strip_prefixes
from memras.records import (
    DimmLocation,
    ErrorType,
    MceRegisters,
    MemoryErrorEvent,
    MemoryFailureEvent,
    Record,
    Source,
)

GROUP_WINDOW_S = 1.0
REPEATS_TRACKED = 4096  # distinct raw texts remembered for `repeat` numbering
_FaultId = tuple[int, int | None, int, int | None]  # status, bank, TSC, ADDR
MAX_UNRELATED = 8
DEFAULT_PAGE_SHIFT = 12
_X86_VENDOR_AMD = 2

_EDAC = re.compile(
    r"^EDAC MC(?P<mc>\d+): (?:(?P<count>\d+) )?(?P<type>CE|UE) (?:(?P<msg>.*?) )?on (?P<label>.*?)"
    r" \((?P<loc>.*?) ?page:0x(?P<page>[0-9a-fA-F]+) offset:0x(?P<off>[0-9a-fA-F]+)"
    r" grain:(?P<grain>\d+)(?: syndrome:0x(?P<synd>[0-9a-fA-F]+))?(?: - ?(?P<detail>.*))?\)\s*$"
)
_EDAC_OLD = re.compile(
    r"^EDAC MC(?P<mc>\d+): (?P<type>CE|UE) page 0x(?P<page>[0-9a-fA-F]+), offset"
    r" 0x(?P<off>[0-9a-fA-F]+), grain (?P<grain>\d+),(?: syndrome 0x(?P<synd>[0-9a-fA-F]+),)?"
    r" row (?P<row>\d+),(?: channel (?P<chan>\d+),?)? (?:labels? )?\"(?P<label>[^\"]*)\":"
    r" ?(?P<detail>.*)$"
)
_EDAC_ROW = re.compile(
    r"^EDAC MC(?P<mc>\d+): (?P<type>CE|UE) row (?P<row>\d+), channel (?P<chan>\d+),"
    r" label \"(?P<label>[^\"]*)\": ?(?P<detail>.*)$"
)
_EDAC_HEAD = re.compile(r"^EDAC MC(?P<mc>\d+): (?:(?P<count>\d+) )?(?P<type>CE|UE) ")
# pre-3.5 edac_mc_handle_fbd_ue and the *_no_info reports
_EDAC_FBD_UE = re.compile(
    r"^EDAC MC(?P<mc>\d+): (?P<type>UE) row (?P<row>\d+), channel-a= ?(?P<chan>\d+)"
    r" channel-b= ?\d+ labels? \"(?P<label>[^\"]*)\": ?(?P<detail>.*)$"
)
_EDAC_NO_INFO = re.compile(
    r"^EDAC MC(?P<mc>\d+): (?P<type>CE|UE) - no information available: ?(?P<detail>.*)$"
)
_EDAC_DRIVER = re.compile(r"^EDAC (?P<drv>\w+) MC\d+: (?P<text>.*)$")
_MCE_HEAD = re.compile(
    r"CPU (?P<cpu>\d+): Machine Check(?: Exception| Event)?: (?:0x)?(?P<mcg>[0-9a-fA-F]+)"
    r" Bank (?P<bank>\d+): (?:0x)?(?P<status>[0-9a-fA-F]+)"
)
_MCE_REG = re.compile(
    r"\b(TSC|ADDR|MISC|SYND|IPID|PPIN|RIP|TIME|SOCKET|APIC|microcode) (?:0x)?([0-9a-fA-F:<>]+)"
)
_PROCESSOR = re.compile(r"PROCESSOR (\d+):(?:0x)?([0-9a-fA-F]+)")  # skx_common: "0:0x806f8"
_AMD_STATUS = re.compile(
    r"CPU:(?P<cpu>\d+) \((?P<fam>[0-9a-f]+):[0-9a-f]+:[0-9a-f]+\) MC(?P<bank>\d+)_STATUS"
    r"\[[^\]]*\]: 0x(?P<status>[0-9a-fA-F]+)"
)
_AMD_ADDR = re.compile(r"Error Addr: 0x([0-9a-fA-F]+)")
_AMD_PPIN = re.compile(r"^PPIN: 0x([0-9a-fA-F]+)")
_AMD_IPID = re.compile(r"IPID: 0x([0-9a-fA-F]+)(?:, Syndrome: 0x([0-9a-fA-F]+))?")
# mm/memory-failure.c's prefix: "Memory failure: " (pr_fmt, 4.x+), "MCE " (2.6.32-3.x);
# some captures keep a leading "mce: " or write "Memory failure:0x…"
_MF_PREFIX = r"^(?:mce: )?(?:Memory failure: ?|MCE:? )(?:pfn )?(?P<pfn>0x[0-9a-fA-F]+|\d+):? "
_MF = re.compile(
    _MF_PREFIX + r"(?:recovery action for (?P<type>.+): |(?P<oldtype>.+) page recovery: )"
    r"(?P<result>\w+)\.?\s*$"
)
# kill_proc(): "Sending SIGBUS to %s:%d" (5.x+), "Killing %s:%d" (≤4.x, "early" for AO);
# x86 kill_me_maybe 5.1x: "Memory error may not recovered: %#lx: Sending SIGBUS to…";
# drivers/acpi/apei/ghes.c memory_failure_cb() (arm64 SEA, 6.x), no pr_fmt:
# "%#llx: Sending SIGBUS to %s:%d due to hardware memory corruption"
_MF_KILL = re.compile(
    r"^(?:(?:mce: )?(?:Memory failure: ?|MCE:? |Memory error may not recovered: )"
    r"(?P<pfn>0x[0-9a-fA-F]+|\d+)|(?P<bare>0x[0-9a-fA-F]+)): (?:Sending SIGBUS to|Killing)"
    r" (?P<task>.+):(?P<pid>\d+)(?: early)? due to hardware memory corruption"
)
_BARE_KILL = re.compile(r"^0x[0-9a-fA-F]+: Sending SIGBUS to ")
# powerpc: the first line of a machine check (arch/powerpc/kernel/mce.c); "Host" was
# dropped in 5.6 (an empty field: two spaces)
_PPC_MCE = re.compile(
    r"^MCE: CPU(?P<cpu>\d+): machine check \((?P<sev>\w+)\) +(?:(?:Host|Guest) +)?"
    r"(?P<type>UE|SLB|ERAT|TLB|User|Real address|Link|D-Cache|I-Cache|Unknown) ?(?P<sub>.*?) *"
    r"(?:DAR: [0-9a-fA-F]+ (?:paddr: (?P<pa>[0-9a-fA-F]+) )?)?\[(?P<disp>Recovered|Not recovered)\]"
)
_PPC_MCE_CPU = re.compile(r"^MCE: CPU(\d+): ")
_PPC_PADDR = re.compile(r" paddr: ([0-9a-fA-F]+)$")
_MF_OTHER = re.compile(_MF_PREFIX + r"(?P<text>.*)$")  # outcome lines ("unhandlable page.")
# drivers/ras/cec.c (pr_fmt "RAS: "): the CE collector soft-offlines a page past its threshold
_CEC_OFFLINE = re.compile(r"^RAS: Soft-offlining pfn: (?P<pfn>0x[0-9a-fA-F]+|\d+)")
# arch/x86/kernel/cpu/mce/core.c kill_me_maybe()/do_memory_failure(): an SRAR in user space
_USER_ACCESS = re.compile(
    r"Uncorrected hardware memory error in user-access at (?P<addr>[0-9a-fA-F]+)")
# A fatal MCE: mce_panic() prints "Machine check: <severity message>", then panics.
_FATAL_LINES = ("Machine check: ", "Kernel panic - not syncing: Fatal")
# The kernel's page size, where a capture names it: arm64 "+64k"/"-64k" kernel builds
# (RHEL/Rocky "aarch64+64k", Ubuntu "-generic-64k"), ppc64 (64 KiB everywhere), and
# ppc's "Page orders: … virtual = 16". A bare "aarch64" says nothing: 4 KiB is common.
_PAGE_MARKER = re.compile(
    r"(?:aarch64\+|generic-|arm64[+-]|\+)(?P<k>64|16)k\b|(?P<ppc>\bppc64(?:le)?\b)"
    r"|Page orders: linear mapping = \d+, virtual = (?P<order>\d+)"
)
_PAGE_SHIFTS = (12, 14, 16)  # 4, 16 and 64 KiB
_DECIMAL_REGS = {"TIME", "SOCKET"}
_REG_FIELD = {
    "TSC": "tsc", "ADDR": "addr", "MISC": "misc", "SYND": "synd", "IPID": "ipid",
    "PPIN": "ppin", "TIME": "walltime", "SOCKET": "socketid", "APIC": "apicid",
    "microcode": "microcode",
}  # fmt: skip
_DECOYS = ("Machine check events logged", "Run the above through 'mcelog --ascii'")


@dataclass(slots=True)
class _Group:
    """Lines believed to describe one fault."""

    first: Prefixed
    lines: list[str] = field(default_factory=list)
    regs: dict[str, int] = field(default_factory=dict)
    normalized_address: int | None = None
    record: MemoryErrorEvent | None = None
    ghes: GhesBlock | None = None
    unrelated: int = 0
    fatal: bool = False  # the kernel panicked on this machine check
    fatal_text: str = ""  # mce_panic()'s "Machine check: <why>"
    ppc_cpu: int | None = None  # a powerpc machine check's CPU: its later lines join

    def within_window(self, p: Prefixed) -> bool:
        return _within(self.first, p)


@dataclass(slots=True)
class _PageAction:
    """A page action waiting for the line that completes it: a process kill (the
    recovery line for the same pfn usually follows; none does when the page was
    already poisoned) or a CE-collector soft offline (a failure line may follow)."""

    pfn: int
    kind: str  # "kill" | "soft"
    first: Prefixed
    lines: list[str]
    tasks: list[str] = field(default_factory=list)
    outcome: str = ""  # a soft offline's "Memory failure: 0x…: <outcome>" text
    unrelated: int = 0


def _within(first: Prefixed, p: Prefixed) -> bool:
    if p.uptime_s is None or first.uptime_s is None:
        return True
    return abs(p.uptime_s - first.uptime_s) <= GROUP_WINDOW_S


@dataclass(slots=True)
class KernelLogParser:
    """Feed lines one at a time; records come back when their fault's group closes.

    ``page_shift`` is log2 of the logging kernel's page size, which EDAC's ``page:``
    field counts in. None (the default) infers it from the capture — a 64K/16K kernel
    build name or ppc64 (:data:`_PAGE_MARKER`), or a GHES block whose address pins
    down ghes_edac's page:offset — and uses 12 until then."""

    page_shift: int | None = None
    source: Source = Source.KMSG
    stats: ParserStats = field(default_factory=ParserStats)
    _group: _Group | None = None
    _skip_next_edac: bool = False
    _previous_fault: _FaultId | None = None
    _inferred_shift: int | None = None
    _action: _PageAction | None = None
    _repeats: dict[int, int] = field(default_factory=dict)
    _recent_ue: tuple[Prefixed, frozenset[int]] | None = None  # last UE fault's 4K pages
    _recent_ghes: tuple[Prefixed, frozenset[int]] | None = None  # last GHES block's pages
    # a user-access line no fault's lines have claimed yet: the GHES block or MCE it
    # belongs to may follow it (SRAR handled before the firmware's record is printed)
    _consumed: tuple[Prefixed, MemoryErrorEvent] | None = None

    @property
    def effective_page_shift(self) -> int:
        """The page shift EDAC page numbers are read with now."""
        if self.page_shift is not None:
            return self.page_shift
        return self._inferred_shift or DEFAULT_PAGE_SHIFT

    @property
    def pfn_page_shift(self) -> int | None:
        """What a memory_failure PFN is in: the page size the caller gave or the log
        showed; None (4 KiB) when nothing said otherwise."""
        shift = self.page_shift if self.page_shift is not None else self._inferred_shift
        return None if shift == DEFAULT_PAGE_SHIFT else shift

    def feed(self, line: str) -> list[Record]:
        try:
            return self._feed(line)
        except Exception:  # a parser bug must not kill the watcher: count, keep the text
            self.stats.internal_errors += 1
            self.stats.note_malformed(line)
            return []

    @property
    def pending(self) -> bool:
        """Lines of an unfinished fault are held: a caller must not checkpoint past them."""
        return self._group is not None or self._action is not None or self._consumed is not None

    def flush(self) -> list[Record]:
        """Close the open group (end of input, or the source went idle)."""
        out = self._close() + self._release_consumed() + self._close_action()
        out = self._number_repeats(out)
        self.stats.records += len(out)
        return out

    def _number_repeats(self, records: list[Record]) -> list[Record]:
        """Identical text printed twice is two errors: number the copies (``repeat``)."""
        seen = self._repeats
        for i, record in enumerate(records):
            key = hash(record.raw)
            n = seen.get(key, 0)
            if n == 0 and len(seen) >= REPEATS_TRACKED:
                seen.clear()  # bounded: texts with stamps repeat within one stamp only
            seen[key] = n + 1
            if n:
                records[i] = replace(record, repeat=n)
        return records

    # -- dispatch -------------------------------------------------------------
    def _feed(self, line: str) -> list[Record]:
        line = line.rstrip("\r\n")
        p = strip_prefixes(line)
        if p is None:
            self.stats.ignored += 1
            return []
        out: list[Record] = []
        if (self._group is not None and not self._group.within_window(p)
                and not self._continues_ghes(p)):
            out += self._close()
        if self._action is not None and not _within(self._action.first, p):
            out += self._close_action()
        if self._consumed is not None and not _within(self._consumed[0], p):
            out += self._release_consumed()
        msg = p.message
        if msg.startswith("EDAC "):
            out += self._edac(p, line)
        elif "[Hardware Error]" in msg:
            out += self._hardware_error(p, line)
        elif msg.startswith(BERT_START):
            out += self._bert(p, line)
        elif msg.startswith(_BARE_MCE) and (self._group is not None or msg.startswith("CPU ")):
            out += self._mce_line(p, line, msg)  # 2.6-era core and sb_edac, no prefix
        elif msg.endswith("HANDLING MCE MEMORY ERROR"):
            out += self._edac_driver_line(p, line, "HANDLING MCE MEMORY ERROR")
        elif msg.startswith("MCE: CPU"):
            out += self._ppc_mce(p, line)
        elif msg.startswith(_MF_STARTS) or _BARE_KILL.match(msg):
            out += self._memory_failure(p, line)
        elif msg.startswith("RAS: Soft-offlining"):
            out += self._cec_offline(p, line)
        elif "user-access at" in msg:
            out += self._user_access(p, line)
        elif msg.startswith(_FATAL_LINES) and self._group is not None and self._group.regs:
            self._group.lines.append(line)
            self._group.fatal = True
        elif msg.startswith("cxl_") and ": memdev=" in msg:
            out += self._cxl(p, line)
        elif "fake error to" in msg and msg.startswith("Generating"):
            self._skip_next_edac = True
            self.stats.ignored += 1
        else:
            out += self._unrelated(msg)
        out = self._number_repeats(out)
        self.stats.records += len(out)
        return out

    def _cxl(self, p: Prefixed, line: str) -> list[Record]:
        """A CXL trace event printed to the log (``tp_printk`` on the kernel command
        line: ``cxl_general_media: memdev=…``): a media error is its memory error
        (memras.ingest.parsers.cxl); the other CXL records are not memory errors and a
        log has no road to memras_cxl_event, so they are counted as ignored."""
        event, _, body = p.message.partition(": ")
        ev = parse_cxl_event(event, body, uptime_s=p.uptime_s, raw=line, source=self.source)
        if ev is None:
            if event in CXL_EVENTS:
                self.stats.note_malformed(line)
            else:
                self.stats.ignored += 1
            return []
        error = memory_error(ev)
        if error is None:
            self.stats.ignored += 1
            return []
        return [replace(error, timestamp=p.timestamp, kmsg_seq=p.kmsg_seq)]

    def _unrelated(self, msg: str = "") -> list[Record]:
        """A foreign line; too many of them end the open group (its fault is over)."""
        self.stats.ignored += 1
        if msg and self.page_shift is None and self._inferred_shift is None:
            self._infer_page_shift(msg)
        out: list[Record] = []
        action = self._action
        if action is not None:
            action.unrelated += 1
            if action.unrelated > MAX_UNRELATED:
                out += self._close_action()
        if self._group is None:
            return out
        self._group.unrelated += 1
        return out + self._close() if self._group.unrelated > MAX_UNRELATED else out

    def _infer_page_shift(self, msg: str) -> None:
        m = _PAGE_MARKER.search(msg)
        if m is None:
            return
        if m["k"]:
            self._inferred_shift = 16 if m["k"] == "64" else 14
        elif m["ppc"]:
            self._inferred_shift = 16
        elif int(m["order"]) in _PAGE_SHIFTS:
            self._inferred_shift = int(m["order"])

    def _continues_ghes(self, p: Prefixed) -> bool:
        """A numbered GHES block is one record however long the kernel took to print it."""
        g = self._group
        if g is None or g.ghes is None or g.ghes.seq is None:
            return False
        m = GHES_LINE.match(p.message)
        return m is not None and m["seq"] == g.ghes.seq and not m["text"].startswith(GHES_START)

    # -- groups -----------------------------------------------------------------
    def _open(self, p: Prefixed, line: str) -> tuple[list[Record], _Group]:
        out = self._close()
        self._group = _Group(first=p, lines=[line])
        return out, self._group

    def _join(self, p: Prefixed, line: str) -> tuple[list[Record], _Group]:
        if self._group is None:
            return self._open(p, line)
        self._group.lines.append(line)
        return [], self._group

    def _close(self) -> list[Record]:
        group, self._group = self._group, None
        if group is None:
            return []
        if self._repeats_previous(group):
            self.stats.context += len(group.lines)
            return []
        self._previous_fault = _fault_identity(group.regs)
        records = self._group_records(group)
        if self._echoes_ghes(group, records):
            self.stats.context += len(group.lines)
            return []
        pages = _pages(records, uncorrected=True)
        if pages:
            self._recent_ue = (group.first, pages)
            records = self._claim_consumed(records)
        if group.ghes is not None and records:
            self._recent_ghes = (group.first, _pages(records))
        used = len(group.lines) if records else 0
        self.stats.context += max(0, used - len(records))
        self.stats.ignored += len(group.lines) - used
        return records

    def _echoes_ghes(self, g: _Group, records: list[Record]) -> bool:
        """An EDAC driver's decode of pseudo-bank 255: the kernel's MCE copy of the CPER
        record just printed (apei_mce_report_mem_error), not a fault of its own."""
        recent = self._recent_ghes
        if g.ghes is not None or g.regs.get("bank") != _APEI_BANK or recent is None:
            return False
        pages = _pages(records)
        return bool(pages) and pages <= recent[1] and _within(recent[0], g.first)

    def _claim_consumed(self, records: list[Record]) -> list[Record]:
        """A held user-access line whose page a UE of this fault names is that fault
        being consumed: its line joins the UE's raw text (first: it was printed first)."""
        held = self._consumed
        if held is None or held[1].address is None:
            return records
        page = held[1].address >> 12
        for i, r in enumerate(records):
            if (type(r) is MemoryErrorEvent and r.error_type.is_uncorrected
                    and r.address is not None and r.address >> 12 == page):
                self._consumed = None
                self.stats.context += 1
                records[i] = replace(r, raw=f"{held[1].raw}\n{r.raw}")
                break
        return records

    def _release_consumed(self) -> list[Record]:
        """No fault claimed the user-access line: it is the record of its own."""
        held, self._consumed = self._consumed, None
        return [] if held is None else [held[1]]

    def _close_action(self) -> list[Record]:
        """A page action whose completing line never came: record what is known."""
        action, self._action = self._action, None
        if action is None:
            return []
        if action.kind == "kill":
            page_type, result = "process page", "Killed"  # poisoned, its user signalled
        else:
            page_type, result = "soft offline (CE collector)", _soft_result(action.outcome)
        return [MemoryFailureEvent(
            pfn=action.pfn, page_type=page_type, action_result=result, source=self.source,
            timestamp=action.first.timestamp, uptime_s=action.first.uptime_s,
            kmsg_seq=action.first.kmsg_seq, raw="\n".join(action.lines),
            page_shift=self.pfn_page_shift,
        )]  # fmt: skip

    def _repeats_previous(self, g: _Group) -> bool:
        """Registers only, identical to the fault just closed (same TSC): printed twice."""
        identity = _fault_identity(g.regs)
        return (g.record is None and g.ghes is None and identity is not None
                and identity == self._previous_fault)

    def _group_records(self, g: _Group) -> list[Record]:
        raw = "\n".join(g.lines)
        regs = _registers(g.regs)
        if g.ghes is not None and g.ghes.memory_sections:
            uptime, when = g.first.uptime_s, g.first.timestamp
            if g.ghes.driver == "bert":
                uptime, when = _boot_instant(g.first)
            # BERT: the block dates each section, by its own stamp or as inferred
            recs = g.ghes.records(uptime_s=uptime, kmsg_seq=g.first.kmsg_seq, timestamp=when)
            if g.record is not None and recs:
                self._learn_page_shift(g.record, recs[0].address)
            out: list[Record] = [_merge_edac(r, g.record, raw, regs, g.regs) for r in recs]
            if regs is not None and regs.addr >> 12 not in {a >> 12 for a in g.ghes.addresses()}:
                out += self._mce_records(g, regs, raw)  # an MCE of another fault
            return out
        if g.record is not None:
            record = g.record
            if _amd_deferred(regs) and record.error_type is ErrorType.UNCORRECTED:
                record = replace(record, error_type=ErrorType.DEFERRED)  # EDAC prints "UE"
            return [_fatal_if(g, replace(record, mce=regs or record.mce, raw=raw,
                                         normalized_address=g.normalized_address))]
        if regs is None:
            return self._panic_record(g, raw)
        return self._mce_records(g, regs, raw)

    def _panic_record(self, g: _Group, raw: str) -> list[Record]:
        """A panic on consumed poison whose STATUS line is missing (out-of-order or cut
        captures): the panic reason names a data load or fetch, ADDR (masked to MISC's
        LSB when MISC says physical) is the poisoned memory."""
        addr = g.regs.get("addr")
        if not g.fatal or addr is None or not _POISON_PANIC.search(g.fatal_text):
            return []
        misc = g.regs.get("misc")
        if misc is not None and misc_address_mode(misc) == MISC_ADDR_MODE_PHYS:
            addr &= ~((1 << misc_address_lsb(misc)) - 1)
        return [MemoryErrorEvent(
            error_type=ErrorType.FATAL, source=self.source, timestamp=_walltime_or(g),
            uptime_s=g.first.uptime_s, address=addr, message="memory error consumed",
            driver="mce", driver_detail=g.fatal_text, kmsg_seq=g.first.kmsg_seq, raw=raw,
        )]  # fmt: skip

    def _mce_records(self, g: _Group, regs: MceRegisters, raw: str) -> list[Record]:
        event = mce_to_memory_error(
            regs, source=self.source, timestamp=_walltime_or(g), uptime_s=g.first.uptime_s,
            socket_known="socketid" in g.regs, kmsg_seq=g.first.kmsg_seq, raw=raw,
        )  # fmt: skip
        if event is None:
            self.stats.non_memory_mce += 1
            return []
        if g.normalized_address is not None:
            event = replace(event, normalized_address=g.normalized_address)
        return [_fatal_if(g, event)]

    def _learn_page_shift(self, edac: MemoryErrorEvent, address: int | None) -> None:
        """ghes_edac prints the GHES address as page:offset in kernel pages: the shift
        that turns one into the other is the kernel's (arm64 logs carry no other)."""
        m = _PAGE_OFFSET.search(edac.raw)
        if address is None or m is None or self.page_shift is not None:
            return
        page, offset = int(m[1], 16), int(m[2], 16)
        for shift in _PAGE_SHIFTS:
            if page and (page << shift | offset) == address:
                self._inferred_shift = shift
                return

    # -- EDAC -------------------------------------------------------------------
    def _edac(self, p: Prefixed, line: str) -> list[Record]:
        msg = p.message
        drv = _EDAC_DRIVER.match(msg)
        if drv:
            return self._edac_driver_line(p, line, drv["text"])
        record = self._edac_record(p, line)
        if record is None:
            return self._unrelated(msg)
        if self._skip_next_edac:
            self._skip_next_edac = False
            self.stats.ignored += 1
            return []
        g = self._group
        if g is not None and g.ghes is not None and g.record is None:
            g.lines.append(line)  # ghes_edac's echo of the GHES block just printed
            g.record = record
            return []
        if g is not None and g.record is None and g.ghes is None and _same_page(g, record):
            g.lines.append(line)
            g.record = record
            return []
        out, g = self._open(p, line)
        g.record = record
        return out

    def _edac_driver_line(self, p: Prefixed, line: str, text: str) -> list[Record]:
        if text.startswith("HANDLING MCE MEMORY ERROR"):
            g = self._group
            if g is not None and g.ghes is not None and not g.regs:
                g.lines.append(line)  # the driver decoding the GHES record's MCE
                return []
            out, _ = self._open(p, line)
            return out
        if _MCE_HEAD.search(text) or text.startswith(("TSC ", "ADDR ", "MISC ", "PROCESSOR ")):
            return self._mce_line(p, line, text)
        return self._unrelated()

    def _edac_record(self, p: Prefixed, line: str) -> MemoryErrorEvent | None:
        msg = p.message
        m = _EDAC.match(msg)
        if m:
            return self._edac_new(m, p, line)
        m = _EDAC_OLD.match(msg) or _EDAC_ROW.match(msg) or _EDAC_FBD_UE.match(msg)
        if m:
            return self._edac_old(m, p, line)
        if m := _EDAC_NO_INFO.match(msg):
            return self._base(p, line, _type(m["type"]), driver_detail=m["detail"].strip(),
                              location=DimmLocation(mc=int(m["mc"])))
        head = _EDAC_HEAD.match(msg)
        if head:
            return self._edac_salvage(head, p, line)
        return None

    def _base(self, p: Prefixed, line: str, error_type: ErrorType, **kw) -> MemoryErrorEvent:
        return MemoryErrorEvent(
            error_type=error_type, source=self.source, timestamp=p.timestamp,
            uptime_s=p.uptime_s, kmsg_seq=p.kmsg_seq, raw=line, **kw,
        )  # fmt: skip

    def _edac_new(self, m: re.Match[str], p: Prefixed, line: str) -> MemoryErrorEvent:
        detail = (m["detail"] or "").strip()
        page, offset = int(m["page"], 16), int(m["off"], 16)
        # page:0x0 offset:0x0 is how drivers say "no address" (amd64_edac "Cannot decode
        # normalized address", i7core_edac): address 0 would name a real page.
        known = page != 0 or offset != 0
        shift = self.effective_page_shift
        error_type = _type(m["type"])
        location = (
            location_from_label(m["label"])
            .merged(location_from_pairs(m["loc"]))
            .merged(location_from_pairs(detail))
            .merged(layers_from_edac_location(m["loc"]))
        )
        return self._base(
            p, line, error_type,
            count=edac_error_count(int(m["count"] or 1), error_type),
            address=(page << shift) | offset if known else None,
            page_shift=shift if known else None,
            grain_bits=grain_bits_from_bytes(int(m["grain"])),
            syndrome=hex_int(m["synd"]),
            message=m["msg"] or "",
            driver=_driver_of(m["label"], detail),
            driver_detail=detail,
            location=replace(location, mc=int(m["mc"])),
        )  # fmt: skip

    def _edac_old(self, m: re.Match[str], p: Prefixed, line: str) -> MemoryErrorEvent:
        groups = m.groupdict()
        detail = (groups.get("detail") or "").strip()
        address = None
        shift = self.effective_page_shift
        if groups.get("page") is not None:
            address = (int(groups["page"], 16) << shift) | int(groups["off"], 16)
        elif (addr := re.search(r"addr(?: =)? 0x([0-9a-fA-F]+)", detail)) is not None:
            address = int(addr[1], 16)
        chan = groups.get("chan")
        location = DimmLocation(
            mc=int(m["mc"]), csrow=int(m["row"]), channel=None if chan is None else int(chan),
            label=groups["label"] or None,
        ).merged(location_from_label(groups["label"]))  # fmt: skip
        return self._base(
            p, line, _type(m["type"]),
            address=address,
            page_shift=shift if groups.get("page") is not None else None,
            grain_bits=grain_bits_from_bytes(int(groups["grain"])) if groups.get("grain") else None,
            syndrome=hex_int(groups.get("synd")),
            driver=detail if re.fullmatch(r"\w+_edac", detail) else "",
            driver_detail=detail,
            location=location,
        )  # fmt: skip

    def _edac_salvage(self, head: re.Match[str], p: Prefixed, line: str) -> MemoryErrorEvent:
        """A damaged EDAC line: keep count, type, MC and only intact ``key:0x…`` fields."""
        self.stats.note_malformed(line)
        self.stats.salvaged += 1
        msg = p.message
        page = re.search(r" page:0x([0-9a-fA-F]+) offset:0x([0-9a-fA-F]+) ", msg)
        synd = re.search(r" syndrome:0x([0-9a-fA-F]+)[ )]", msg)
        shift, error_type = self.effective_page_shift, _type(head["type"])
        return self._base(
            p, line, error_type,
            count=edac_error_count(int(head["count"] or 1), error_type),
            address=(int(page[1], 16) << shift) | int(page[2], 16) if page else None,
            page_shift=shift if page else None,
            syndrome=hex_int(synd[1]) if synd else None,
            location=DimmLocation(mc=int(head["mc"])),
        )  # fmt: skip

    # -- machine checks ---------------------------------------------------------
    def _hardware_error(self, p: Prefixed, line: str) -> list[Record]:
        ghes = GHES_LINE.match(p.message)  # GHES lines carry no "mce: " prefix
        seq = ghes["seq"] if ghes else None
        at = p.message.find("[Hardware Error]")
        text = p.message[at + len("[Hardware Error]:") :].strip()
        if text.startswith(GHES_START):
            g = self._group
            if g is not None and g.ghes is None and not g.regs and g.record is not None \
                    and g.record.driver == "ghes":
                # ghes_edac's line came first (arm64 Phytium log): same fault, one group
                g.lines.append(line)
                g.ghes = GhesBlock(seq=seq, lines=g.lines)
                return []
            out, g = self._open(p, line)
            g.ghes = GhesBlock(seq=seq, lines=g.lines)
            return out
        g = self._group
        if g is not None and g.ghes is not None and g.ghes.belongs(seq) and ghes is not None:
            g.lines.append(line)
            g.ghes.add(text)
            return []
        if any(text.startswith(d) for d in _DECOYS):
            self.stats.ignored += 1
            return []
        return self._mce_line(p, line, text)

    def _bert(self, p: Prefixed, line: str) -> list[Record]:
        """bert.c's header: the boot error region's CPER records follow, printed as a
        GHES block without ``{N}`` (drivers/acpi/apei/bert.c, cper_estatus_print)."""
        out, g = self._open(p, line)
        g.ghes = GhesBlock(seq=None, driver="bert", lines=g.lines)
        return out

    def _mce_line(self, p: Prefixed, line: str, text: str) -> list[Record]:
        head = _MCE_HEAD.search(text)
        amd = _AMD_STATUS.search(text)
        out: list[Record] = []
        if head or amd:
            new: re.Match[str] = head or amd  # type: ignore[assignment]  # not None: in `if head or amd`
            status = int(new["status"], 16)
            g = self._group
            # same fault: a group without registers yet (driver context, or an EDAC
            # record before mce=print_all lines), or the same status repeated before any
            # TSC line. Once the group has its TSC, a head line starts another fault:
            # polled CEs with one status can be logged well inside GROUP_WINDOW_S, and
            # joining them would keep only the last one's ADDR. A fault printed twice
            # (driver, then core) is dropped when its group closes (_repeats_previous).
            # A GHES block's first MCE is the kernel's decode of the same CPER record
            # (apei_mce_report_mem_error: bank 1, or 255 since 5.x): same group.
            if g is not None and ((g.ghes is None and "tsc" not in g.regs
                                   and g.regs.get("status", status) == status)
                                  or (g.ghes is not None and not g.regs)):
                out, g = self._join(p, line)
            else:
                out, g = self._open(p, line)
            g.regs.update(status=status, bank=int(new["bank"]), cpu=int(new["cpu"]))
            if head:
                g.regs["mcgstatus"] = int(head["mcg"], 16)
            else:
                g.regs["cpuvendor"] = _X86_VENDOR_AMD
            return out
        fatal = text.startswith(_FATAL_LINES[0])
        if _is_amd_block_start(text):
            out, g = self._open(p, line)  # mce_amd's first line of a new error
        elif self._group is None and not fatal:
            return self._unrelated()
        else:
            out, g = self._join(p, line)
        if fatal:  # mce_panic(): "Machine check: Data load in unrecoverable area of kernel"
            g.fatal, g.fatal_text = True, text
        _fold_mce_text(g, text)
        return out

    def _ppc_mce(self, p: Prefixed, line: str) -> list[Record]:
        """A powerpc machine check (module doc): a UE is a memory error, its physical
        address from the first line (load/store) or the NIP line (instruction fetch);
        the other lines of the same CPU's check are its context."""
        msg = p.message
        head = _PPC_MCE.match(msg)
        g = self._group
        if head is None:
            cpu = _PPC_MCE_CPU.match(msg)
            if g is None or g.ppc_cpu is None or cpu is None or int(cpu[1]) != g.ppc_cpu:
                return self._unrelated()
            g.lines.append(line)
            pa = _PPC_PADDR.search(msg)
            if pa and g.record is not None and g.record.address is None:
                g.record = replace(g.record, address=int(pa[1], 16))
            return []
        if head["type"] != "UE":  # an SLB/ERAT/TLB/cache check: no memory error
            out = self._close()
            self.stats.non_memory_mce += 1
            self.stats.ignored += 1
            return out
        out, g = self._open(p, line)
        g.ppc_cpu = int(head["cpu"])
        g.record = self._base(
            p, line, ErrorType.FATAL if head["sev"] == "Fatal" else ErrorType.UNCORRECTED,
            address=int(head["pa"], 16) if head["pa"] else None, driver="mce",
            message=f"UE {head['sub']}".strip(), driver_detail=msg.split(": ", 2)[2],
        )  # fmt: skip
        return out

    def _memory_failure(self, p: Prefixed, line: str) -> list[Record]:
        msg = p.message
        m = _MF.match(msg)
        if m is not None:
            return self._recovery(p, line, m)
        if (kill := _MF_KILL.match(msg)) is not None:
            return self._kill(p, line, kill)
        other = _MF_OTHER.match(msg)
        action = self._action
        if other is not None and action is not None and action.pfn == _pfn(other["pfn"]):
            action.lines.append(line)  # the soft offline's outcome, "already poisoned"…
            if action.kind == "soft":
                action.outcome = other["text"]
            return []
        if self._group is not None:
            self._group.lines.append(line)  # "already hardware poisoned", SIGBUS…
            return []
        return self._unrelated()

    def _recovery(self, p: Prefixed, line: str, m: re.Match[str]) -> list[Record]:
        """action_result(): the page's outcome; a kill just before it is its context."""
        pfn, lines = _pfn(m["pfn"]), [line]
        action = self._action
        if action is not None and action.kind == "kill" and action.pfn == pfn:
            self._action, lines = None, [*action.lines, line]
        return [MemoryFailureEvent(
            pfn=pfn, page_type=m["type"] or m["oldtype"], action_result=m["result"],
            source=self.source, timestamp=p.timestamp, uptime_s=p.uptime_s,
            kmsg_seq=p.kmsg_seq, raw="\n".join(lines), page_shift=self.pfn_page_shift,
        )]  # fmt: skip

    def _kill(self, p: Prefixed, line: str, m: re.Match[str]) -> list[Record]:
        pfn, task = _pfn(m["pfn"] or m["bare"]), f"{m['task']}:{m['pid']}"
        action = self._action
        if action is not None and action.kind == "kill" and action.pfn == pfn:
            action.lines.append(line)  # every process mapping the page is signalled
            action.tasks.append(task)
            return []
        out = self._close_action()
        self._action = _PageAction(pfn=pfn, kind="kill", first=p, lines=[line], tasks=[task])
        return out

    def _cec_offline(self, p: Prefixed, line: str) -> list[Record]:
        m = _CEC_OFFLINE.match(p.message)
        if m is None:
            return self._unrelated()
        out = self._close_action()
        self._action = _PageAction(pfn=_pfn(m["pfn"]), kind="soft", first=p, lines=[line])
        return out

    def _user_access(self, p: Prefixed, line: str) -> list[Record]:
        """x86's line for poison consumed by a user-space load (SRAR): the address is the
        physical one the MCE reported; the MCE's own lines, if printed, are the same fault."""
        m = _USER_ACCESS.search(p.message)
        if m is None:
            return self._unrelated()
        address = int(m["addr"], 16)
        g, page = self._group, address >> 12
        if g is not None and (g.regs.get("addr", -1) >> 12 == page or (
                g.ghes is not None and page in {a >> 12 for a in g.ghes.addresses()})):
            g.lines.append(line)  # the MCE's or the GHES block's fault, being consumed
            return []
        recent = self._recent_ue
        if recent is not None and page in recent[1] and _within(recent[0], p):
            self.stats.context += 1  # the fault just recorded
            return []
        out = self._release_consumed()
        self._consumed = (p, self._base(
            p, line, ErrorType.UNCORRECTED, address=address, driver="mce",
            message="memory error consumed in user access",
            driver_detail="Uncorrected hardware memory error in user-access"))
        return out


_POISON_PANIC = re.compile(r"Data load|Instruction fetch|[Mm]emory")
_APEI_BANK = 255  # arch/x86 apei_mce_report_mem_error(): m.bank = -1 (5.x+)
_BARE_MCE = ("CPU ", "TSC ", "ADDR ", "MISC ", "PROCESSOR ")
_MF_STARTS = ("Memory failure:", "MCE ", "MCE:", "mce: Memory failure",
              "Memory error may not recovered")
_PAGE_OFFSET = re.compile(r"page:0x([0-9a-fA-F]+) offset:0x([0-9a-fA-F]+)")
_SOFT_FAILED = ("fail", "unhandlable", "busy")


def _pages(records: list[Record], *, uncorrected: bool = False) -> frozenset[int]:
    """The 4 KiB pages the memory errors among ``records`` name (only UEs if asked)."""
    return frozenset(r.address >> 12 for r in records if type(r) is MemoryErrorEvent
                     and r.address is not None
                     and (not uncorrected or r.error_type.is_uncorrected))


def _pfn(text: str) -> int:
    return int(text, 16) if text.startswith("0x") else int(text)


def _soft_result(outcome: str) -> str:
    """A soft offline's result from the line memory-failure.c printed after it: nothing
    on success (the page migrated), "…failed…"/"unhandlable page." on failure, "page
    already poisoned" when another path had taken it."""
    if any(word in outcome for word in _SOFT_FAILED):
        return "Failed"
    return "Ignored" if "already" in outcome else "Recovered"


def _boot_instant(p: Prefixed) -> tuple[float | None, datetime | None]:
    """Where a BERT record (a fault of the previous boot) is placed: this boot's start,
    as the binary BERT reader places a section without its own stamp (memras/host/bert.py),
    never the moment the kernel printed it. Uptime 0, and the wall clock of that instant
    when the line carries both clocks; nothing when it has no uptime."""
    if p.uptime_s is None:
        return None, None
    when = None if p.timestamp is None else p.timestamp - timedelta(seconds=p.uptime_s)
    return 0.0, when


def _fatal_if(g: _Group, event: MemoryErrorEvent) -> MemoryErrorEvent:
    """The kernel panicked on this fault: whatever the severity grade, it was fatal."""
    if g.fatal and event.error_type.is_uncorrected and event.error_type is not ErrorType.FATAL:
        return replace(event, error_type=ErrorType.FATAL)
    return event


def _amd_deferred(regs: MceRegisters | None) -> bool:
    """SMCA MCA_STATUS[44] Deferred: amd64_edac reports it as HW_EVENT_ERR_DEFERRED (the
    trace event says "Deferred") while edac_mc's printk says "UE"."""
    return regs is not None and regs.cpuvendor == _X86_VENDOR_AMD and bool(regs.status >> 44 & 1)


def _same_page(g: _Group, record: MemoryErrorEvent) -> bool:
    """False only when the group's MCE ADDR and the EDAC address name different pages."""
    addr = g.regs.get("addr")
    if addr is None or record.address is None or g.regs.get("cpuvendor") == _X86_VENDOR_AMD:
        return True  # unknown, or AMD's normalized ADDR that cannot be compared
    return addr >> 12 == record.address >> 12


def _is_amd_block_start(text: str) -> bool:
    return text.startswith(("Corrected error", "Uncorrected", "Deferred error"))


def _fold_mce_text(g: _Group, text: str) -> None:
    """TSC/ADDR/MISC/PROCESSOR lines and the mce_amd block's address/IPID lines."""
    if m := _AMD_ADDR.search(text):
        g.normalized_address = int(m[1], 16)
        return
    if m := _AMD_PPIN.match(text):
        g.regs["ppin"] = int(m[1], 16)
        return
    if m := _AMD_IPID.search(text):
        g.regs["ipid"] = int(m[1], 16)
        if m[2]:
            g.regs["synd"] = int(m[2], 16)
        return
    if m := _PROCESSOR.search(text):
        g.regs["cpuvendor"], g.regs["cpuid"] = int(m[1]), int(m[2], 16)
    for key, value in _MCE_REG.findall(text):
        if key == "RIP":
            continue
        number = hex_int(value) if key not in _DECIMAL_REGS else _dec(value)
        if number is not None:
            g.regs[_REG_FIELD[key]] = number


def _fault_identity(regs: dict[str, int]) -> _FaultId | None:
    """What tells one machine check from another: its TSC is taken when it is logged."""
    if "tsc" not in regs or "status" not in regs:
        return None
    return regs["status"], regs.get("bank"), regs["tsc"], regs.get("addr")


def _dec(text: str) -> int | None:
    return int(text) if text.isdigit() else None


def _registers(fields: dict[str, int]) -> MceRegisters | None:
    if "status" not in fields or "bank" not in fields:
        return None
    return MceRegisters(**fields)


def _walltime_or(g: _Group) -> datetime | None:
    if g.first.timestamp is not None:
        return g.first.timestamp
    return walltime_to_datetime(g.regs.get("walltime", 0))


def _merge_edac(
    ghes: MemoryErrorEvent, edac: MemoryErrorEvent | None, raw: str,
    regs: MceRegisters | None = None, fields: dict[str, int] | None = None,
) -> MemoryErrorEvent:
    """The GHES record, with the EDAC line's DIMM position (its label if real) and the
    kernel's MCE decode of the same CPER record (same page) as context."""
    location = ghes.location
    if edac is not None:
        label = edac.location.label
        useful = label if label and label not in ("unknown label", "unknown memory") else None
        location = location.merged(replace(edac.location, label=useful, top_layer=None,
                                           middle_layer=None, lower_layer=None))
    mce = None
    if regs is not None and ghes.address is not None and regs.addr >> 12 == ghes.address >> 12:
        mce = regs
        if fields is not None and "socketid" in fields:
            location = location.merged(DimmLocation(socket=regs.socketid))
    return replace(ghes, raw=raw, location=location, mce=mce)


def _type(token: str) -> ErrorType:
    return ErrorType.CORRECTED if token == "CE" else ErrorType.UNCORRECTED


def _driver_of(label: str, detail: str) -> str:
    """The EDAC driver, when its default label or detail format names it."""
    if "_Ha#" in label or "channel_mask:" in detail:  # pre-Ha# sb_edac: CPU_SrcID#0_Channel#0
        return "sb_edac"
    if "CPU_SrcID#" in label:
        return "skx_edac"
    if detail.startswith("APEI location") or label == "unknown label":
        return "ghes"
    return ""


def page_shift_from_size(page_size: int) -> int:
    """``--page-size 65536`` → 16; a clear error for a size that is no page size."""
    if page_size < 4096 or page_size & (page_size - 1):
        raise ValueError(f"page size {page_size} is not a power of two >= 4096")
    return page_size.bit_length() - 1


def parse_kernel_log(
    lines: Iterable[str], *, page_shift: int | None = None, stats: ParserStats | None = None
) -> Iterator[Record]:
    """Every record in a finished log (flushes at the end); ``page_shift`` as
    :class:`KernelLogParser` (None: inferred from the log, else 12)."""
    parser = KernelLogParser(page_shift=page_shift)
    if stats is not None:
        parser.stats = stats
    for line in lines:
        yield from parser.feed(line)
    yield from parser.flush()
