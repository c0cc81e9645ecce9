"""Bodies of the RAS trace events (the text after ``<event>: `` in tracefs output).

Each function mirrors one TP_printk:

- ``ras:mc_event`` (include/ras/ras_event.h): ``"%d %s error%s:%s%s on %s (mc:%d
  location:%d:%d:%d address:0x%08lx grain:%d syndrome:0x%08lx%s%s)"``. The grain is
  printed in bytes (``1 << grain_bits``); the address is the system physical address.
  The label may hold spaces and " or "; msg may be empty; driver_detail follows the
  syndrome after one space (skx's detail starts with a space, so two). The detail is
  stored without that separator, otherwise verbatim.
- ``mce:mce_record`` (include/trace/events/mce.h): ``Key: value`` pairs joined by
  ", "; ≤6.9 combines ``ADDR/MISC/SYND`` and ``MCGc/s`` with slashes and has
  ``PROCESSOR: vendor:cpuid``, ``TIME``, ``SOCKET``; 6.10+ splits ADDR, MISC, SYND and
  adds PPIN, vendor, CPUID, time, socket, microcode and optionally ``vendor data``
  (last, free text). Older kernels lack IPID and SYND. The registers are decoded by
  :mod:`memras.ingest.mca`; a non-memory MCE comes back as :class:`NonMemoryMce`.
- ``ras:memory_failure_event``: ``"pfn %#lx: recovery action for %s: %s"``.
- ``ras:extlog_mem_event``: ``"{%d} %s error: %s physical addr: %016llx (mask lsb:
  %x) %sFRU: %pUl %.20s"``, the location from cper.c (``node:0`` or old ``node: 0``).
"""

from __future__ import annotations

import dataclasses
import re
from datetime import datetime

from memras.ingest.mca import mce_to_memory_error
from memras.ingest.parsers._common import (
    NonMemoryMce,
    dec_int,
    grain_bits_from_bytes,
    hex_int,
    walltime_to_datetime,
)
from memras.ingest.parsers.locations import location_from_label, location_from_pairs
from memras.records import (
    CPER_SEVERITY,  # cper_severity_str(): the words the extlog event prints
    DimmLocation,
    ErrorType,
    MceRegisters,
    MemoryErrorEvent,
    MemoryFailureEvent,
    Source,
)

MC_EVENT_BODY = (
    r"(?P<count>\d+) (?P<type>\w+) errors?:(?: (?P<msg>.*?))? on (?P<label>.*?)"
    r" \(mc:(?P<mc>\d+) location:(?P<top>-?\d+):(?P<mid>-?\d+):(?P<low>-?\d+)"
    r" address:0x(?P<addr>[0-9a-fA-F]+) grain:(?P<grain>\d+)"
    r" syndrome:0x(?P<synd>[0-9a-fA-F]+)(?: (?P<detail>.*))?\)\s*$"
)
_MC_EVENT = re.compile(MC_EVENT_BODY)
# The first mc_event (commit 53f2d0289875, 3.5): "1 Corrected error:memory read on …
# (mc:0 location:0:0:0 page:0x586b6e offset:0xa66 grain:32 syndrome:0x0 area:DMA)" —
# no space after "error:", "memory stick" before the label, the page and offset
# instead of the address, unpadded syndrome. Tried only when the current form does not
# match (off the hot path).
_MC_EVENT_OLD = re.compile(
    r"(?:(?P<count>\d+) )?(?P<type>\w+) errors?: ?(?P<msg>.*?) ?on (?:memory stick )?(?P<label>.*?)"
    r" \(mc:(?P<mc>\d+) location:(?P<top>-?\d+):(?P<mid>-?\d+):(?P<low>-?\d+)"
    r" (?:address:0x(?P<addr>[0-9a-fA-F]+)|page:0x(?P<page>[0-9a-fA-F]+)"
    r" offset:0x(?P<off>[0-9a-fA-F]+)) grain:(?P<grain>\d+)"
    r" syndrome:0x(?P<synd>[0-9a-fA-F]+)(?: (?P<detail>.*))?\)\s*$"
)
OLD_MC_EVENT_PAGE_SHIFT = 12  # 3.5-era EDAC drivers were all x86/ppc 4 KiB-page ones
_UNCORRECTED_TYPES = frozenset(t for t in ErrorType if t.is_uncorrected)

_TYPE_BY_NAME = {t.value: t for t in ErrorType}


def _layer(text: str) -> int | None:
    value = int(text)
    return None if value < 0 else value


# The location decoded from an mc_event's label, detail and layers, by those strings.
# A storm repeats the same few DIMMs, so decoding (two regexes, a merge and a replace:
# most of a line's parse cost) is done once per distinct text. Bounded: cleared when
# full, so a stream of all-different details costs only the decode it always did.
_LOCATION_CACHE: dict[tuple[str, str, str, str, str, str], DimmLocation] = {}
LOCATION_CACHE_MAX = 4096


def _mc_event_location(label: str, detail: str, mc: str, top: str, mid: str,
                       low: str) -> DimmLocation:
    key = (label, detail, mc, top, mid, low)
    location = _LOCATION_CACHE.get(key)
    if location is None:
        location = location_from_label(label).merged(location_from_pairs(detail))
        location = dataclasses.replace(location, mc=int(mc), top_layer=_layer(top),
                                       middle_layer=_layer(mid), lower_layer=_layer(low))
        if len(_LOCATION_CACHE) >= LOCATION_CACHE_MAX:
            _LOCATION_CACHE.clear()
        _LOCATION_CACHE[key] = location
    return location


_MATCH_GROUPS = ("count", "type", "msg", "label", "mc", "top", "mid", "low", "addr", "grain",
                 "synd", "detail")


def mc_event_from_match(
    m: re.Match[str], *, source: Source, uptime_s: float | None, raw: str,
    timestamp: datetime | None = None,
) -> MemoryErrorEvent:
    """Build the record from a match of :data:`MC_EVENT_BODY`."""
    return mc_event_from_groups(m.group(*_MATCH_GROUPS), source=source, uptime_s=uptime_s,
                                raw=raw, timestamp=timestamp)


def mc_event_from_groups(
    groups: tuple[str, ...], *, source: Source, uptime_s: float | None, raw: str,
    timestamp: datetime | None = None,
) -> MemoryErrorEvent:
    """Build the record from :data:`MC_EVENT_BODY`'s groups in order (_MATCH_GROUPS):
    the trace fast path slices them out of one ``Match.groups()`` call."""
    count, kind, msg, label, mc, top, mid, low, addr, grain, synd, detail = groups
    detail = detail.strip() if detail else ""
    error_type = _TYPE_BY_NAME.get(kind, ErrorType.INFO)
    n = int(count)
    if n < 1 or error_type in _UNCORRECTED_TYPES:
        n = 1  # _common.edac_error_count, inlined on the hot path
    # Positional: about half the cost of the keyword call (order checked at import).
    return MemoryErrorEvent(
        error_type, source, n, timestamp, uptime_s,
        int(addr, 16), None, None, _grain_bits(grain), int(synd, 16), msg or "", "", detail,
        _mc_event_location(label, detail, mc, top, mid, low), None, None, raw)


# The positional call above follows MemoryErrorEvent's field order.
assert tuple(f.name for f in dataclasses.fields(MemoryErrorEvent)) == (
    "error_type", "source", "count", "timestamp", "uptime_s", "address", "normalized_address",
    "page_shift", "grain_bits", "syndrome", "message", "driver", "driver_detail", "location",
    "mce", "kmsg_seq", "raw", "repeat", "time_source", "flags"), "update mc_event_from_match"


_GRAIN_BITS: dict[str, int | None] = {}


def _grain_bits(text: str) -> int | None:
    bits = _GRAIN_BITS.get(text, -1)
    if bits == -1:
        bits = grain_bits_from_bytes(int(text))
        if len(_GRAIN_BITS) < 64:  # the kernel prints powers of two: a handful of values
            _GRAIN_BITS[text] = bits
    return bits


def parse_mc_event(
    body: str, *, uptime_s: float | None = None, raw: str | None = None
) -> MemoryErrorEvent | None:
    m = _MC_EVENT.match(body)
    text = body if raw is None else raw
    if m is None:
        return _old_mc_event(body, uptime_s=uptime_s, raw=text)
    return mc_event_from_match(m, source=Source.TRACE, uptime_s=uptime_s, raw=text)


def _old_mc_event(body: str, *, uptime_s: float | None, raw: str) -> MemoryErrorEvent | None:
    m = _MC_EVENT_OLD.match(body)
    if m is None:
        return None
    page = m["page"]
    addr = (f"{int(page, 16) << OLD_MC_EVENT_PAGE_SHIFT | int(m['off'], 16):x}"
            if page is not None else m["addr"])
    groups = (m["count"] or "1", m["type"], m["msg"], m["label"], m["mc"], m["top"],
              m["mid"], m["low"], addr, m["grain"], m["synd"], m["detail"])
    event = mc_event_from_groups(groups, source=Source.TRACE, uptime_s=uptime_s, raw=raw)
    return event if page is None else dataclasses.replace(
        event, page_shift=OLD_MC_EVENT_PAGE_SHIFT)


# mce_record keys (lowercased; slash-joined keys are split first) → MceRegisters field
_MCE_KEYS = {
    "cpu": "cpu",
    "mcgc": "mcgcap",
    "s": "mcgstatus",
    "ipid": "ipid",
    "addr": "addr",
    "misc": "misc",
    "synd": "synd",
    "tsc": "tsc",
    "ppin": "ppin",
    "vendor": "cpuvendor",
    "cpuid": "cpuid",
    "time": "walltime",
    "socket": "socketid",
    "apic": "apicid",
    "microcode": "microcode",
}
_DECIMAL_MCE_KEYS = frozenset({"cpu", "vendor", "time", "socket"})
FIRMWARE_MCE_BANK = 255  # struct mce.bank of an APEI-reported memory error (u8 -1)
_MC_BANK = re.compile(r"MC(\d+)$")
_RIP = re.compile(r"([0-9a-fA-F]+):<([0-9a-fA-F]+)>")


def _mce_fields(body: str) -> dict[str, int] | None:
    """The register values named in an mce_record body; None if it is not one."""
    body = body.split(", vendor data: ", 1)[0]
    fields: dict[str, int] = {}
    for pair in body.split(", "):
        key, sep, value = pair.partition(": ")
        if not sep:
            return None
        value = value.strip()
        bank = _MC_BANK.match(key)
        if bank:
            fields["bank"] = int(bank[1])
            status = hex_int(value)
            if status is None:
                return None
            fields["status"] = status
        elif key == "RIP":
            rip = _RIP.match(value)
            if rip:
                fields["cs"], fields["ip"] = int(rip[1], 16), int(rip[2], 16)
        elif key == "PROCESSOR":
            vendor, _, cpuid = value.partition(":")
            fields["cpuvendor"], fields["cpuid"] = dec_int(vendor) or 0, hex_int(cpuid) or 0
        else:
            _store_slash_pairs(fields, key, value)
    return fields if "status" in fields and "bank" in fields else None


def _store_slash_pairs(fields: dict[str, int], key: str, value: str) -> None:
    for name, text in zip(key.split("/"), value.split("/"), strict=False):
        norm = name.lower()
        target = _MCE_KEYS.get(norm)
        number = dec_int(text) if norm in _DECIMAL_MCE_KEYS else hex_int(text)
        if target is not None and number is not None:
            fields[target] = number


def parse_mce_record(
    body: str, *, uptime_s: float | None = None, raw: str | None = None
) -> MemoryErrorEvent | NonMemoryMce | None:
    """A memory error, a NonMemoryMce for other machine checks, None if not mce_record."""
    if not body.startswith("CPU: "):
        return None
    fields = _mce_fields(body)
    if fields is None:
        return None
    regs = MceRegisters(**fields)
    timestamp = walltime_to_datetime(regs.walltime)
    text = body if raw is None else raw
    # apei_mce_report_mem_error() logs firmware's CPER record as bank 255: the same
    # fault the CPU's own bank may have logged just before (Luck 2023), so a road of
    # its own for de-duplication
    source = Source.FIRMWARE if regs.bank == FIRMWARE_MCE_BANK else Source.TRACE
    event = mce_to_memory_error(
        regs, source=source, timestamp=timestamp, uptime_s=uptime_s, raw=text
    )
    if event is None:
        return NonMemoryMce(regs, source, timestamp=timestamp, uptime_s=uptime_s, raw=text)
    return event


_MEMORY_FAILURE = re.compile(
    r"pfn (?P<pfn>0x[0-9a-fA-F]+|\d+): recovery action for (?P<type>.+): (?P<result>\w+)\s*$"
)


def parse_memory_failure_event(
    body: str, *, uptime_s: float | None = None, raw: str | None = None
) -> MemoryFailureEvent | None:
    m = _MEMORY_FAILURE.match(body)
    if m is None:
        return None
    pfn = m["pfn"]
    return MemoryFailureEvent(
        pfn=int(pfn, 16) if pfn.startswith("0x") else int(pfn),
        page_type=m["type"],
        action_result=m["result"],
        source=Source.TRACE,
        uptime_s=uptime_s,
        raw=body if raw is None else raw,
    )


_EXTLOG = re.compile(
    r"\{(?P<seq>\d+)\} (?P<sev>\w+) error: (?P<etype>.*?) physical addr: (?P<pa>[0-9a-fA-F]+)"
    r" \(mask lsb: (?P<lsb>[0-9a-fA-F]+)\) (?P<loc>.*?)FRU: (?P<fru_id>\S*) ?(?P<fru>.*)$"
)


def parse_extlog_mem_event(
    body: str, *, uptime_s: float | None = None, raw: str | None = None
) -> MemoryErrorEvent | None:
    m = _EXTLOG.match(body)
    if m is None:
        return None
    lsb = int(m["lsb"], 16)
    fru = m["fru"].strip()
    location = location_from_pairs(m["loc"])
    return MemoryErrorEvent(
        error_type=CPER_SEVERITY.get(m["sev"], ErrorType.INFO),
        source=Source.TRACE,
        uptime_s=uptime_s,
        address=int(m["pa"], 16) & ~((1 << min(lsb, 63)) - 1),
        grain_bits=lsb or None,
        message=m["etype"],
        driver="extlog",
        driver_detail=m["loc"].strip(),
        location=location.merged(DimmLocation(label=fru or None)),
        raw=body if raw is None else raw,
    )
