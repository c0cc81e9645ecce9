"""CXL memory device trace events (``cxl:cxl_*``) → :class:`memras.records.CxlEvent`.

Source: torvalds/linux ``drivers/cxl/core/trace.h``, read at v6.12 and at master
(commit 02f4f0177d8e, 2025). The event records are the CXL 3.1 spec's (r8.2.9.2.1).
The formats this module reads:

- the common header of the event-log records (``CXL_EVT_TP_printk``): ``memdev=%s
  host=%s serial=%lld log=%s : time=%llu uuid=%pUb len=%d flags='%s' handle=%x
  related_handle=%x maint_op_class=%u[ maint_op_sub_class=%u] : <body>``
  (``maint_op_sub_class`` since 6.14);
- ``cxl_general_media``: ``dpa=%llx dpa_flags='%s' descriptor='%s' type='%s'
  transaction_type='%s' channel=%u rank=%u device=%x comp_id=%s validity_flags='%s'
  hpa=%llx region=%s region_uuid=%pUb`` in 6.12; later kernels add ``sub_type``,
  ``comp_id_pldm_valid_flags``, ``pldm_entity_id``, ``pldm_resource_id``,
  ``hpa_alias0``, ``cme_threshold_ev_flags`` and ``cme_count`` and move ``comp_id``
  after ``validity_flags``;
- ``cxl_dram``: as general media plus ``nibble_mask=%x bank_group=%u bank=%u row=%u
  column=%u cor_mask=%s`` (later: ``sub_channel``, ``cvme_count``);
- ``cxl_memory_module``: ``event_type='%s' health_status='%s' media_status='%s'
  as_life_used=%s as_dev_temp=%s as_cor_vol_err_cnt=%s as_cor_per_err_cnt=%s
  life_used=%u device_temp=%d dirty_shutdown_cnt=%u cor_vol_err_cnt=%u
  cor_per_err_cnt=%u`` (later: ``event_sub_type``, ``validity_flags``, ``comp_id``…);
- ``cxl_generic_event``: the header, then the record's 80 bytes (``__print_hex``);
- ``cxl_poison``: ``memdev=%s host=%s serial=%lld trace_type=%s region=%s
  region_uuid=%pU hpa=0x%llx dpa=0x%llx dpa_length=0x%x source=%s flags=%s
  overflow_time=%llu``;
- ``cxl_aer_uncorrectable_error``: ``memdev=%s host=%s serial=%lld: status: '%s'
  first_error: '%s'``; ``cxl_aer_correctable_error``: ``… serial=%lld: status: '%s'``;
- ``cxl_overflow``: ``memdev=%s host=%s serial=%lld: log=%s : %u records from %llu
  to %llu``.

The kernel prints flags and enumerations as words (``__print_flags`` joined by
``|`` or `` | ``, ``__print_symbolic``); they are turned back into the spec's numbers
(what rasdaemon stores, reading the raw fields), by name. The kernel's 6.12 DRAM
``type`` shared general media's table; the name is mapped to the DRAM record's own
numbering (spec Table 8-46: 1 Scrub Media ECC Error, 2 Invalid Address), which
later kernels print. Fields the record's ``validity_flags`` mark invalid (the kernel
prints them as 0) are None. ``hpa`` all ones (no region maps the DPA) is None.

CE or UE, as the CXL spec means it (CXL 3.1 r8.2.9.2.1.1, the Memory Event
Descriptor's bit 0, Uncorrectable Event: set when the device could not correct the
event, clear when it corrected it; the kernel prints it as ``UNCORRECTABLE_EVENT``
and rasdaemon's handler decodes the same bit): a general media or DRAM event is
Uncorrected when its descriptor has ``UNCORRECTABLE_EVENT``, Corrected otherwise;
any record from the Fatal event log is Fatal. Poison found or injected is
Uncorrected (the data is lost), a poison Clear is Info; AER uncorrectable is
Uncorrected, correctable Corrected; memory module, overflow and generic records
are Info (the health rules read their own fields). Only general media and DRAM
events become memory errors (:func:`memory_error`): a poison ``List`` record is
printed every time the list is read, so it is not a new error each time.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from memras.ingest.parsers.rasdaemon_rows import parse_timestamp
from memras.records import CxlEvent, DimmLocation, ErrorType, MemoryErrorEvent, Source

U64 = (1 << 64) - 1
CXL_DRIVER = "cxl"
EVENTS = ("cxl_general_media", "cxl_dram", "cxl_memory_module", "cxl_generic_event",
          "cxl_poison", "cxl_aer_uncorrectable_error", "cxl_aer_correctable_error",
          "cxl_overflow")
MEDIA_EVENTS = frozenset({"general_media", "dram"})

LOG_TYPES = {"Informational": 0, "Warning": 1, "Failure": 2, "Fatal": 3}
HDR_FLAGS = {"PERMANENT_CONDITION": 1 << 2, "MAINTENANCE_NEEDED": 1 << 3,
             "PERFORMANCE_DEGRADED": 1 << 4, "HARDWARE_REPLACEMENT_NEEDED": 1 << 5,
             "MAINT_OP_SUB_CLASS_VALID": 1 << 6}
DPA_FLAGS = {"VOLATILE": 1, "NOT_REPAIRABLE": 2}
DESCRIPTOR = {"UNCORRECTABLE_EVENT": 1, "THRESHOLD_EVENT": 2, "POISON_LIST_OVERFLOW": 4}
UNCORRECTABLE_EVENT = DESCRIPTOR["UNCORRECTABLE_EVENT"]
GM_TYPES = {"ECC Error": 0, "Invalid Address": 1, "Data Path Error": 2,
            "TE State Violation": 3, "Scrub Media ECC Error": 4,
            "Adv Prog CME Counter Expiration": 5, "CKID Violation": 6}
DRAM_TYPES = {"ECC Error": 0, "Scrub Media ECC Error": 1, "Invalid Address": 2,
              "Data Path Error": 3, "TE State Violation": 4,
              "Adv Prog CME Counter Expiration": 5, "CKID Violation": 6}
TRANSACTIONS = {"Unknown": 0, "Host Read": 1, "Host Write": 2, "Host Scan Media": 3,
                "Host Inject Poison": 4, "Internal Media Scrub": 5,
                "Internal Media Management": 6, "Internal Media Error Check Scrub": 7,
                "Media Initialization": 8}
MEDIA_SUB_TYPES = {"Not Reported": 0, "Internal Datapath Error": 1,
                   "Media Link Command Training Error": 2,
                   "Media Link Control Training Error": 3,
                   "Media Link Data Training Error": 4, "Media Link CRC Error": 5}
GM_VALID = {"CHANNEL": 1, "RANK": 2, "DEVICE": 4, "COMPONENT": 8,
            "COMPONENT PLDM FORMAT": 16}
DRAM_VALID = {"CHANNEL": 1, "RANK": 2, "NIBBLE": 4, "BANK GROUP": 8, "BANK": 16, "ROW": 32,
              "COLUMN": 64, "CORRECTION MASK": 128, "COMPONENT": 256,
              "COMPONENT PLDM FORMAT": 512, "SUB CHANNEL": 1024}
MODULE_EVENT_TYPES = {"Health Status Change": 0, "Media Status Change": 1,
                      "Life Used Change": 2, "Temperature Change": 3, "Data Path Error": 4,
                      "LSA Error": 5, "Unrecoverable Internal Sideband Bus Error": 6,
                      "Memory Media FRU Error": 7, "Power Management Fault": 8}
MODULE_SUB_TYPES = {"Not Reported": 0, "Invalid Config Data": 1,
                    "Unsupported Config Data": 2, "Unsupported Memory Media FRU": 3}
HEALTH_STATUS = {"MAINTENANCE_NEEDED": 1, "PERFORMANCE_DEGRADED": 2,
                 "REPLACEMENT_NEEDED": 4, "MEM_CAPACITY_DEGRADED": 8}
MEDIA_STATUS = {"Normal": 0, "Not Ready": 1, "Write Persistency Lost": 2, "All Data Lost": 3,
                "Write Persistency Loss in the Event of Power Loss": 4,
                "Write Persistency Loss in Event of Shutdown": 5,
                "Write Persistency Loss Imminent": 6,
                "All Data Loss in Event of Power Loss": 7,
                "All Data loss in the Event of Shutdown": 8, "All Data Loss Imminent": 9}
ADDITIONAL_STATUS = {"Normal": 0, "Warning": 1, "Critical": 2}
# add_status bit positions of the four alarm fields (spec Table 8-133)
_ADD_STATUS_SHIFTS = {"as_life_used": 0, "as_dev_temp": 2, "as_cor_vol_err_cnt": 4,
                      "as_cor_per_err_cnt": 5}
POISON_FLAGS = {"More": 1, "Overflow": 2, "Scanning": 4}
AER_UE = {"Cache Data Parity Error": 1 << 0, "Cache Address Parity Error": 1 << 1,
          "Cache Byte Enable Parity Error": 1 << 2, "Cache Data ECC Error": 1 << 3,
          "Memory Data Parity Error": 1 << 4, "Memory Address Parity Error": 1 << 5,
          "Memory Byte Enable Parity Error": 1 << 6, "Memory Data ECC Error": 1 << 7,
          "REINIT Threshold Hit": 1 << 8, "Received Unrecognized Encoding": 1 << 9,
          "Received Poison From Peer": 1 << 10, "Receiver Overflow": 1 << 11,
          "Component Specific Error": 1 << 14, "IDE Tx Error": 1 << 15,
          "IDE Rx Error": 1 << 16}
AER_CE = {"Cache Data ECC Error": 1 << 0, "Memory Data ECC Error": 1 << 1,
          "CRC Threshold Hit": 1 << 2, "Retry Threshold": 1 << 3,
          "Received Cache Poison From Peer": 1 << 4,
          "Received Memory Poison From Peer": 1 << 5,
          "Received Error From Physical Layer": 1 << 6}

_KEY = re.compile(r"(?:^|(?<=\s))([a-z][a-z0-9_]*)=")
_HEX_KEYS = frozenset({"dpa", "hpa", "hpa_alias0", "handle", "related_handle", "device",
                       "nibble_mask", "dpa_length"})
_OVERFLOW = re.compile(
    r"memdev=(?P<memdev>\S*) host=(?P<host>\S*) serial=(?P<serial>-?\d+): log=(?P<log>\w+) : "
    r"(?P<count>\d+) records from (?P<first>\d+) to (?P<last>\d+)\s*$")
_AER = re.compile(
    r"memdev=(?P<memdev>\S*) host=(?P<host>\S*) serial=(?P<serial>-?\d+): status: "
    r"'(?P<status>[^']*)'(?: first_error: '(?P<first>[^']*)')?\s*$")


def key_values(text: str) -> dict[str, str]:
    """``key=value`` pairs of a CXL TP_printk, values unquoted and stripped.

    A value runs to the next `` key=``: hex dumps (``comp_id=00 01 …``) and flag lists
    (``'A | B'``) hold spaces; the header's `` : `` separators are dropped."""
    marks = list(_KEY.finditer(text))
    pairs: dict[str, str] = {}
    for i, m in enumerate(marks):
        end = marks[i + 1].start() if i + 1 < len(marks) else len(text)
        value = text[m.end():end].strip()
        if value.endswith(" :") or value == ":":
            value = value[:-1].rstrip()
        if len(value) >= 2 and value[0] == "'" and value[-1] == "'":
            value = value[1:-1]
        pairs.setdefault(m.group(1), value)
    return pairs


def flag_bits(words: str | None, table: Mapping[str, int]) -> int | None:
    """``'A|B'`` / ``'A | B'`` → the OR of their bits; '' → 0; an unknown word → None."""
    if words is None:
        return None
    bits = 0
    for word in re.split(r"\s*\|\s*", words.strip()):
        if not word:
            continue
        bit = table.get(word)
        if bit is None:  # __print_flags prints bits it has no name for as hex
            bit = _hex_word(word)
            if bit is None:
                return None
        bits |= bit
    return bits


def _hex_word(word: str) -> int | None:
    if not word.lower().startswith("0x"):
        return None
    try:
        return int(word, 16)
    except ValueError:
        return None


def symbol(word: str | None, table: Mapping[str, int]) -> int | None:
    """A ``__print_symbolic`` word → its number (a value with no name is printed as
    hex: ``type='0x3'``); None when absent or unknown."""
    if word is None:
        return None
    value = table.get(word)
    return value if value is not None else _hex_word(word)


def flag_words(bits: int | None, table: Mapping[str, int], sep: str = "|") -> str:
    """The inverse of :func:`flag_bits`, in the table's order (the kernel's)."""
    if not bits:
        return ""
    return sep.join(name for name, bit in table.items() if bits & bit)


def symbol_name(value: int | None, table: Mapping[str, int]) -> str:
    """A number back to its kernel word; unknown numbers as ``0x..``."""
    if value is None:
        return ""
    for name, number in table.items():
        if number == value:
            return name
    return f"{value:#x}"


def _int(pairs: Mapping[str, str], key: str) -> int | None:
    text = pairs.get(key)
    if not text:
        return None
    try:
        return int(text, 16 if key in _HEX_KEYS else 10)
    except ValueError:
        try:
            return int(text, 0)
        except ValueError:
            return None


def _serial(text: str | None) -> int | None:
    if text is None:
        return None
    try:
        return int(text) & U64
    except ValueError:
        return None


def _hpa(value: int | None) -> int | None:
    return None if value is None or value == U64 else value


def _uuid(text: str | None) -> str | None:
    return None if not text else text.lower()


def _header(pairs: Mapping[str, str]) -> dict[str, object]:
    return {
        "memdev": pairs.get("memdev", ""),
        "host": pairs.get("host", ""),
        "serial": _serial(pairs.get("serial")),
        "log_type": pairs.get("log"),
        "hdr_ts": _int(pairs, "time"),
        "hdr_uuid": _uuid(pairs.get("uuid")),
        "hdr_length": _int(pairs, "len"),
        "hdr_flags": flag_bits(pairs.get("flags"), HDR_FLAGS),
        "hdr_handle": _int(pairs, "handle"),
        "hdr_related_handle": _int(pairs, "related_handle"),
        "hdr_maint_op_class": _int(pairs, "maint_op_class"),
        "hdr_maint_op_sub_class": _int(pairs, "maint_op_sub_class"),
    }


def _valid(value: int | None, validity: int | None, bit: int) -> int | None:
    if validity is None or value is None:
        return value
    return value if validity & bit else None


def _media(name: str, pairs: Mapping[str, str]) -> dict[str, object]:
    dram = name == "dram"
    valid_table = DRAM_VALID if dram else GM_VALID
    validity = flag_bits(pairs.get("validity_flags"), valid_table)
    fields: dict[str, object] = {
        "dpa": _int(pairs, "dpa"),
        "dpa_flags": flag_bits(pairs.get("dpa_flags"), DPA_FLAGS),
        "descriptor": flag_bits(pairs.get("descriptor"), DESCRIPTOR),
        "type": symbol(pairs.get("type"), DRAM_TYPES if dram else GM_TYPES),
        "sub_type": symbol(pairs.get("sub_type"), MEDIA_SUB_TYPES),
        "transaction_type": symbol(pairs.get("transaction_type"), TRANSACTIONS),
        "channel": _valid(_int(pairs, "channel"), validity, valid_table["CHANNEL"]),
        "rank": _valid(_int(pairs, "rank"), validity, valid_table["RANK"]),
        "validity_flags": validity,
        "hpa": _hpa(_int(pairs, "hpa")),
        "hpa_alias0": _hpa(_int(pairs, "hpa_alias0")),
        "region": pairs.get("region", ""),
        "region_uuid": _uuid(pairs.get("region_uuid")),
        "cme_threshold_ev_flags": _int(pairs, "cme_threshold_ev_flags"),
        "cme_count": _int(pairs, "cvme_count" if dram else "cme_count"),
    }
    if fields["cme_threshold_ev_flags"] is None and pairs.get("cme_threshold_ev_flags"):
        fields["cme_threshold_ev_flags"] = flag_bits(
            pairs["cme_threshold_ev_flags"],
            {"Corrected Memory Errors in Multiple Media Components": 1,
             "Exceeded Programmable Threshold": 2})
    if dram:
        fields.update(
            nibble_mask=_valid(_int(pairs, "nibble_mask"), validity, DRAM_VALID["NIBBLE"]),
            bank_group=_valid(_int(pairs, "bank_group"), validity, DRAM_VALID["BANK GROUP"]),
            bank=_valid(_int(pairs, "bank"), validity, DRAM_VALID["BANK"]),
            row=_valid(_int(pairs, "row"), validity, DRAM_VALID["ROW"]),
            column=_valid(_int(pairs, "column"), validity, DRAM_VALID["COLUMN"]),
            sub_channel=_valid(_int(pairs, "sub_channel"), validity,
                               DRAM_VALID["SUB CHANNEL"]))
    else:
        fields["device"] = _valid(_int(pairs, "device"), validity, GM_VALID["DEVICE"])
    return fields


def _module(pairs: Mapping[str, str]) -> dict[str, object]:
    add_status: int | None = 0
    for key, shift in _ADD_STATUS_SHIFTS.items():
        level = ADDITIONAL_STATUS.get(pairs.get(key, ""))
        if level is None or add_status is None:
            add_status = None
        else:
            add_status |= level << shift
    return {
        "event_type": symbol(pairs.get("event_type"), MODULE_EVENT_TYPES),
        "event_sub_type": symbol(pairs.get("event_sub_type"), MODULE_SUB_TYPES),
        "health_status": flag_bits(pairs.get("health_status"), HEALTH_STATUS),
        "media_status": symbol(pairs.get("media_status"), MEDIA_STATUS),
        "add_status": add_status,
        "life_used": _int(pairs, "life_used"),
        "device_temp": _int(pairs, "device_temp"),
        "dirty_shutdown_cnt": _int(pairs, "dirty_shutdown_cnt"),
        "cor_vol_err_cnt": _int(pairs, "cor_vol_err_cnt"),
        "cor_per_err_cnt": _int(pairs, "cor_per_err_cnt"),
        "validity_flags": _int(pairs, "validity_flags") if pairs.get(
            "validity_flags", "").isdigit() else flag_bits(
            pairs.get("validity_flags"), {"COMPONENT": 1, "COMPONENT PLDM FORMAT": 2}),
    }


def _poison(pairs: Mapping[str, str]) -> dict[str, object]:
    return {
        "memdev": pairs.get("memdev", ""),
        "host": pairs.get("host", ""),
        "serial": _serial(pairs.get("serial")),
        "trace_type": pairs.get("trace_type"),
        "region": pairs.get("region", ""),
        "region_uuid": _uuid(pairs.get("region_uuid")),
        "hpa": _hpa(_int(pairs, "hpa")),
        "hpa_alias0": _hpa(_int(pairs, "hpa_alias0")),
        "dpa": _int(pairs, "dpa"),
        "dpa_length": _int(pairs, "dpa_length"),
        "source_text": pairs.get("source"),
        "poison_flags": flag_bits(pairs.get("flags"), POISON_FLAGS),
        "overflow_ts": _int(pairs, "overflow_time"),
    }


def parse_cxl_event(event: str, body: str, *, uptime_s: float | None = None,
                    raw: str | None = None, source: Source = Source.TRACE) -> CxlEvent | None:
    """The CxlEvent of one ``cxl_*`` event body; None when it is not one we can read."""
    name = event.removeprefix("cxl_")
    text = body if raw is None else raw
    common: dict[str, Any] = {"event": name, "uptime_s": uptime_s, "raw": text,
                              "source": source}
    fields: dict[str, Any]
    if name in ("aer_uncorrectable_error", "aer_correctable_error"):
        m = _AER.match(body)
        if m is None:
            return None
        table = AER_UE if name == "aer_uncorrectable_error" else AER_CE
        fields = {"memdev": m["memdev"], "host": m["host"], "serial": _serial(m["serial"]),
                  "error_status": flag_bits(m["status"], table),
                  "first_error": flag_bits(m["first"], table) if m["first"] is not None
                  else None}
    elif name == "overflow":
        m = _OVERFLOW.match(body)
        if m is None:
            return None
        fields = {"memdev": m["memdev"], "host": m["host"], "serial": _serial(m["serial"]),
                  "log_type": m["log"], "count": int(m["count"]),
                  "first_ts": int(m["first"]), "last_ts": int(m["last"])}
    else:
        pairs = key_values(body)
        if "memdev" not in pairs:
            return None
        if name == "poison":
            if "dpa" not in pairs:
                return None
            fields = _poison(pairs)
        elif name in MEDIA_EVENTS:
            if "dpa" not in pairs or "log" not in pairs:
                return None
            fields = {**_header(pairs), **_media(name, pairs)}
        elif name == "memory_module":
            if "log" not in pairs:
                return None
            fields = {**_header(pairs), **_module(pairs)}
        elif name == "generic_event":
            if "log" not in pairs:
                return None
            fields = _header(pairs)
            tail = body.rsplit(" : ", 1)[-1] if body.count(" : ") >= 2 else ""
            fields["data"] = tail.replace(" ", "")
        else:
            return None
    return CxlEvent(**common, **fields)


def error_type(ev: CxlEvent) -> ErrorType:
    """CE or UE as the CXL spec means it (see the module docstring)."""
    if ev.log_type == "Fatal":
        return ErrorType.FATAL
    if ev.event in MEDIA_EVENTS:
        uncorrectable = (ev.descriptor or 0) & UNCORRECTABLE_EVENT
        return ErrorType.UNCORRECTED if uncorrectable else ErrorType.CORRECTED
    if ev.event == "poison":
        return ErrorType.INFO if ev.trace_type == "Clear" else ErrorType.UNCORRECTED
    if ev.event == "aer_uncorrectable_error":
        return ErrorType.UNCORRECTED
    if ev.event == "aer_correctable_error":
        return ErrorType.CORRECTED
    return ErrorType.INFO


def describe(ev: CxlEvent) -> str:
    """A short message: the record's type and transaction in the kernel's words."""
    types = DRAM_TYPES if ev.event == "dram" else GM_TYPES
    what = symbol_name(ev.type, types) or ev.event
    transaction = symbol_name(ev.transaction_type, TRANSACTIONS)
    return f"CXL {what}" + (f" ({transaction})" if transaction else "")


def format_body(ev: CxlEvent) -> str:
    """A media event in the kernel's 6.12 text (header and body), from its fields.

    What a rasdaemon row becomes as a MemoryErrorEvent's driver detail, so every road
    carries the same detail text and :func:`parse_cxl_event` reads it back."""
    dram = ev.event == "dram"
    parts = [
        f"memdev={ev.memdev} host={ev.host} serial={ev.serial or 0} "
        f"log={ev.log_type or 'Informational'} : time={ev.hdr_ts or 0} "
        f"uuid={ev.hdr_uuid or '00000000-0000-0000-0000-000000000000'} "
        f"len={ev.hdr_length or 0} flags='{flag_words(ev.hdr_flags, HDR_FLAGS, ' | ')}' "
        f"handle={ev.hdr_handle or 0:x} related_handle={ev.hdr_related_handle or 0:x} "
        f"maint_op_class={ev.hdr_maint_op_class or 0} : "
        f"dpa={ev.dpa or 0:x} dpa_flags='{flag_words(ev.dpa_flags, DPA_FLAGS)}' "
        f"descriptor='{flag_words(ev.descriptor, DESCRIPTOR)}' "
        f"type='{symbol_name(ev.type, DRAM_TYPES if dram else GM_TYPES)}' "
        f"transaction_type='{symbol_name(ev.transaction_type, TRANSACTIONS)}' "
        f"channel={ev.channel or 0} rank={ev.rank or 0}"]
    if dram:
        parts.append(f"nibble_mask={ev.nibble_mask or 0:x} bank_group={ev.bank_group or 0} "
                     f"bank={ev.bank or 0} row={ev.row or 0} column={ev.column or 0}")
    else:
        parts.append(f"device={ev.device or 0:x}")
    validity = ev.validity_flags
    if validity is None:  # no validity recorded: what is known is valid
        table = DRAM_VALID if dram else GM_VALID
        validity = 0
        for name, value in (("CHANNEL", ev.channel), ("RANK", ev.rank),
                            ("NIBBLE", ev.nibble_mask), ("BANK GROUP", ev.bank_group),
                            ("BANK", ev.bank), ("ROW", ev.row), ("COLUMN", ev.column),
                            ("DEVICE", ev.device)):
            if value is not None and name in table:
                validity |= table[name]
    parts.append(f"validity_flags='{flag_words(validity, DRAM_VALID if dram else GM_VALID)}'")
    parts.append(f"hpa={U64 if ev.hpa is None else ev.hpa:x} region={ev.region} "
                 f"region_uuid={ev.region_uuid or '00000000-0000-0000-0000-000000000000'}")
    return " ".join(parts)


def memory_error(ev: CxlEvent) -> MemoryErrorEvent | None:
    """The memory error a general media or DRAM event reports; None for other events.

    The memdev is the location's label (a CXL memdev is its own field-replaceable unit,
    as a DIMM); channel, rank, bank group, bank, row, column and device as the device
    gave them; the address is the HPA when a region maps the DPA. The driver detail is
    the event's text (header and body), which the store re-reads for rasdaemon's
    ``cxl_general_media_event``/``cxl_dram_event`` rows."""
    if ev.event not in MEDIA_EVENTS:
        return None
    detail = ev.raw.split(f"cxl_{ev.event}: ", 1)[-1] if ev.raw else ""
    if not detail.startswith("memdev="):
        detail = format_body(ev)
    location = DimmLocation(channel=ev.channel, rank=ev.rank, bank_group=ev.bank_group,
                            bank=ev.bank, row=ev.row, column=ev.column, device=ev.device,
                            label=ev.memdev)
    return MemoryErrorEvent(
        error_type=error_type(ev), source=ev.source, count=1, timestamp=ev.timestamp,
        uptime_s=ev.uptime_s, address=ev.hpa, message=describe(ev), driver=CXL_DRIVER,
        driver_detail=detail, location=location, raw=ev.raw)


def cxl_event_of(error: MemoryErrorEvent) -> CxlEvent | None:
    """The CxlEvent a CXL memory error was made from (its driver detail re-read)."""
    if error.driver != CXL_DRIVER:
        return None
    event = "dram" if " bank_group=" in error.driver_detail else "general_media"
    parsed = parse_cxl_event(event, error.driver_detail, uptime_s=error.uptime_s,
                             raw=error.raw, source=error.source)
    return parsed


def parse_cxl_media_record(event: str, body: str, *, uptime_s: float | None = None,
                           raw: str | None = None) -> MemoryErrorEvent | CxlEvent | None:
    """The trace dispatcher's entry: a media event as its MemoryErrorEvent (the unit
    the watcher stores and judges), any other CXL event as its CxlEvent."""
    ev = parse_cxl_event(event, body, uptime_s=uptime_s, raw=raw)
    if ev is None:
        return None
    return memory_error(ev) or ev


# ---- rasdaemon's cxl_* rows (v0.8.5 schema, ras-record.c) ------------------------------

RASDAEMON_CXL_TABLES = {
    "cxl_general_media_event": "general_media",
    "cxl_dram_event": "dram",
    "cxl_memory_module_event": "memory_module",
    "cxl_poison_event": "poison",
    "cxl_aer_ue_event": "aer_uncorrectable_error",
    "cxl_aer_ce_event": "aer_correctable_error",
    "cxl_overflow_event": "overflow",
    "cxl_generic_event": "generic_event",
}
# rasdaemon column -> CxlEvent field, where the names differ
_ROW_NAMES = {"source": "source_text", "flags": "poison_flags", "cvme_count": "cme_count"}
_ROW_TIMES = ("hdr_ts", "overflow_ts", "first_ts", "last_ts")  # TEXT, local time, seconds
_ROW_TEXTS = frozenset({"memdev", "host", "log_type", "hdr_uuid", "region", "region_uuid",
                        "trace_type", "source"})
_EPOCH_TEXT = "1970-01-01 00:00:00 +0000"  # convert_timestamp() of 0


def _row_time_ns(text: object) -> int | None:
    if not isinstance(text, str) or not text or text == _EPOCH_TEXT:
        return None if not text else 0
    when = parse_timestamp(text)
    return None if when is None else int(when.timestamp()) * 1_000_000_000


def from_cxl_row(table: str, row: Mapping[str, object]) -> CxlEvent | None:
    """A rasdaemon cxl_* row → its CxlEvent (Source.RASDAEMON); None if not one.

    rasdaemon reads the raw fields: numbers as the spec's, the HPA all ones (stored
    as -1, sqlite3_bind_int64) when no region maps the DPA; its device timestamps are
    local-time text to the second (convert_timestamp), kept here as epoch ns."""
    event = RASDAEMON_CXL_TABLES.get(table)
    memdev = row.get("memdev")
    if event is None or not isinstance(memdev, str) or not memdev:
        return None
    fields: dict[str, Any] = {}
    names = set(CxlEvent.__dataclass_fields__)
    for column, value in row.items():
        name = _ROW_NAMES.get(column, column)
        if column in ("id", "timestamp", "memdev") or name not in names or value is None:
            continue
        if column in _ROW_TIMES:
            fields[name] = _row_time_ns(value)
        elif column in _ROW_TEXTS:
            fields[name] = value.decode("utf-8", "replace") if isinstance(
                value, bytes) else str(value)
        elif column == "data":
            fields[name] = value.hex() if isinstance(value, bytes) else str(value)
        elif isinstance(value, int):
            fields[name] = value & U64 if value < 0 else value
    for name in ("hpa", "hpa_alias0"):
        fields[name] = _hpa(fields.get(name))
    stamp = row.get("timestamp")
    when = parse_timestamp(stamp) if isinstance(stamp, str) else None
    return CxlEvent(event=event, memdev=memdev, source=Source.RASDAEMON,
                    timestamp=when, **fields)


def _from_media_row(table: str, row: Mapping[str, object]) -> MemoryErrorEvent | None:
    ev = from_cxl_row(table, row)
    return None if ev is None else memory_error(ev)


def from_cxl_general_media_row(row: Mapping[str, object]) -> MemoryErrorEvent | None:
    """A rasdaemon cxl_general_media_event row as the memory error it reports."""
    return _from_media_row("cxl_general_media_event", row)


def from_cxl_dram_row(row: Mapping[str, object]) -> MemoryErrorEvent | None:
    """A rasdaemon cxl_dram_event row as the memory error it reports."""
    return _from_media_row("cxl_dram_event", row)


def from_cxl_event_row(table: str) -> Callable[[Mapping[str, object]], CxlEvent | None]:
    """The reader of a rasdaemon cxl_* table that holds no memory errors (memory module,
    poison, AER, overflow, generic): its rows as CxlEvents."""
    def read(row: Mapping[str, object]) -> CxlEvent | None:
        return from_cxl_row(table, row)

    read.__name__ = f"from_{table}_row"
    return read


# rasdaemon's other cxl_* tables, by table: what memras.ingest.sources reads them with
CXL_EVENT_ROW_READERS = {table: from_cxl_event_row(table) for table in RASDAEMON_CXL_TABLES
                         if RASDAEMON_CXL_TABLES[table] not in MEDIA_EVENTS}
