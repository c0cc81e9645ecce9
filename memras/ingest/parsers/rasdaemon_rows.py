"""Rows of a rasdaemon database (ras-mc_event.db, v0.6.8…v0.8.5) → records.

Mirrors rasdaemon's ras-record.c bindings:

- ``timestamp`` is TEXT ``strftime("%Y-%m-%d %H:%M:%S %z")`` → aware datetime.
- mc/layers are ``bind_int`` with -1 for "not applicable" → None.
- ``grain`` is grain_bits (log2 bytes), stored as-is.
- address/syndrome are ``bind_int64``: a u64 ≥ 2^63 reads back negative → unsigned.
- ``err_type`` is "Corrected"/"Uncorrected"/"Deferred"/"Fatal"/"Info" since v0.8.3.
  rasdaemon 0.6.8 (Debian 12) has no DEFERRED in its enum, so on kernels that have it
  a Deferred error is stored as "Fatal" and a Fatal one as "Info". Pass
  ``mislabelled_068=True`` for such a database to undo that shift; it cannot be
  detected from the row itself.
- extlog ``severity`` is the CPER number (0 recoverable, 1 fatal, 2 corrected, 3 info)
  and ``etype`` the CPER memory error type (cper.c ``mem_err_type_strs``).

Nothing is invented silently. rasdaemon writes only the five type strings, a count and
a timestamp on every row, so a row without them was not written by it as it stands; the
record keeps what can be kept and says what was not there in ``flags`` (stored in
memras_error.flags): an unknown type is stored as Info with ``err_type:unknown``, a
missing count as 1 with ``err_count:missing``, an unparsable timestamp as none at all
with ``timestamp:unparsable`` (the store then keeps the row at its import time and
marks its time source ``import``). A negative or huge count is kept as read: the
store's bounds clamp it and flag the row (memras.store.bounds), as for every source.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any

from memras.ingest.mca import X86_VENDOR_AMD, mce_to_memory_error
from memras.ingest.parsers._common import to_unsigned64
from memras.ingest.parsers.locations import location_from_label, location_from_pairs
from memras.records import (
    DimmLocation,
    ErrorType,
    MceRegisters,
    MemoryErrorEvent,
    MemoryFailureEvent,
    Source,
)

_TYPES = {t.value: t for t in ErrorType}
_TYPES_068_SHIFTED = {**_TYPES, "Fatal": ErrorType.DEFERRED, "Info": ErrorType.FATAL}
_CPER_SEVERITY = [ErrorType.UNCORRECTED, ErrorType.FATAL, ErrorType.CORRECTED, ErrorType.INFO]
# drivers/firmware/efi/cper.c mem_err_type_strs[]
CPER_MEM_ERR_TYPES = [
    "unknown", "no error", "single-bit ECC", "multi-bit ECC", "single-symbol chipkill ECC",
    "multi-symbol chipkill ECC", "master abort", "target abort", "parity error",
    "watchdog timeout", "invalid address", "mirror Broken", "memory sparing",
    "scrub corrected error", "scrub uncorrected error", "physical memory map-out event",
]  # fmt: skip


def parse_timestamp(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.strptime(str(text).strip(), "%Y-%m-%d %H:%M:%S %z")
    except ValueError:
        return None


def _timestamp(row: Mapping[str, Any]) -> tuple[datetime | None, tuple[str, ...]]:
    """The row's time, and ``timestamp:unparsable`` when it has text that is not one."""
    text = _text(row, "timestamp")
    when = parse_timestamp(text)
    return when, (("timestamp:unparsable",) if when is None and text else ())


def _int(row: Mapping[str, Any], key: str) -> int | None:
    value = row.get(key)
    if value is None or value == "":
        return None
    try:
        return int(value)
    except (TypeError, ValueError, OverflowError):  # text, a BLOB, NaN or infinity
        return None


def _text(row: Mapping[str, Any], key: str) -> str:
    """A TEXT column as text: SQLite stores any type in any column, so a BLOB is decoded
    (bad bytes as U+FFFD) and a number written out; NULL is empty."""
    value = row.get(key)
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def _layer(row: Mapping[str, Any], key: str) -> int | None:
    value = _int(row, key)
    return None if value is None or value < 0 else value


def from_mc_event_row(row: Mapping[str, Any], *, mislabelled_068: bool = False) -> MemoryErrorEvent:
    types = _TYPES_068_SHIFTED if mislabelled_068 else _TYPES
    label = _text(row, "label") or None
    detail = _text(row, "driver_detail")
    location = location_from_label(label).merged(location_from_pairs(detail))
    location = location.merged(
        DimmLocation(
            mc=_layer(row, "mc"),
            top_layer=_layer(row, "top_layer"),
            middle_layer=_layer(row, "middle_layer"),
            lower_layer=_layer(row, "lower_layer"),
        )
    )
    grain = _int(row, "grain")
    # skx/i10nm report the MCA corrected-error count, which can be 0; keep what the row
    # says, so a memras DB read back gives the same counts (only a missing value is 1).
    count = _int(row, "err_count")
    error_type = types.get(str(row.get("err_type")))
    timestamp, flags = _timestamp(row)
    if error_type is None:
        flags += ("err_type:unknown",)
    if count is None:
        flags += ("err_count:missing",)
    return MemoryErrorEvent(
        error_type=ErrorType.INFO if error_type is None else error_type,
        source=Source.RASDAEMON,
        count=1 if count is None else count,
        timestamp=timestamp,
        flags=flags,
        address=to_unsigned64(_int(row, "address")),
        grain_bits=grain if grain is not None and grain >= 0 else None,
        syndrome=to_unsigned64(_int(row, "syndrome")),
        message=_text(row, "err_msg"),
        driver_detail=detail,
        location=location,
        raw=repr(dict(row)),
    )


_MCE_COLUMNS = (
    "mcgcap", "mcgstatus", "status", "addr", "misc", "ip", "tsc", "walltime", "ppin", "cpu",
    "cpuid", "apicid", "socketid", "cs", "bank", "cpuvendor", "microcode",
)  # fmt: skip


def from_mce_record_row(row: Mapping[str, Any]) -> MemoryErrorEvent | None:
    """The memory error an mce_record row holds, None for other machine checks."""
    values = {c: to_unsigned64(_int(row, c)) or 0 for c in _MCE_COLUMNS}
    # mcgcap/mcgstatus were bound with bind_int: 32-bit, sign-extended
    values["mcgcap"] &= 0xFFFFFFFF
    values["mcgstatus"] &= 0xFFFFFFFF
    timestamp, flags = _timestamp(row)
    event = mce_to_memory_error(
        MceRegisters(**values),
        source=Source.RASDAEMON,
        timestamp=timestamp,
        raw=repr(dict(row)),
    )
    return event if event is None or not flags else replace(event, flags=flags)


def from_memory_failure_row(row: Mapping[str, Any]) -> MemoryFailureEvent:
    pfn_text = str(row.get("pfn") or "0")
    timestamp, flags = _timestamp(row)
    return MemoryFailureEvent(
        pfn=int(pfn_text, 16) if pfn_text.lower().startswith("0x") else int(pfn_text),
        page_type=_text(row, "page_type"),
        action_result=_text(row, "action_result"),
        source=Source.RASDAEMON,
        timestamp=timestamp,
        raw=repr(dict(row)),
        flags=flags,
    )


def from_extlog_row(row: Mapping[str, Any]) -> MemoryErrorEvent:
    severity = _int(row, "severity")
    etype = _int(row, "etype")
    fru = _text(row, "fru_text").strip()
    known = severity is not None and 0 <= severity < len(_CPER_SEVERITY)
    count = _int(row, "error_count")
    timestamp, flags = _timestamp(row)
    if not known:
        flags += ("severity:unknown",)
    if count is None:
        flags += ("error_count:missing",)
    return MemoryErrorEvent(
        error_type=_CPER_SEVERITY[severity] if known else ErrorType.INFO,  # type: ignore[index]
        source=Source.RASDAEMON,
        count=1 if count is None else count,
        timestamp=timestamp,
        flags=flags,
        address=to_unsigned64(_int(row, "address")),
        message=CPER_MEM_ERR_TYPES[etype]
        if etype is not None and 0 <= etype < len(CPER_MEM_ERR_TYPES)
        else "",
        driver="extlog",
        location=DimmLocation(label=fru or None),
        raw=repr({k: v for k, v in row.items() if k != "cper_data"}),
    )


# ras-mc-ctl (util/ras-mc-ctl.in) --errors, one mc_event row per line:
# "$id $time $count $type error(s): $msg at $label location: $mc:$top:$mid:$low, addr $addr,
#  grain $grain, syndrome $syndrome $detail" — addr/syndrome decimal, grain = grain_bits.
_RAS_MC_CTL_ERROR = re.compile(
    r"^(?P<id>\d+) (?P<timestamp>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d [+-]\d{4}) (?P<err_count>\d+)"
    r" (?P<err_type>\S+) error\(s\): (?P<err_msg>.*?) at (?P<label>.*) location:"
    r" (?P<mc>-?\d+):(?P<top_layer>-?\d+):(?P<middle_layer>-?\d+):(?P<lower_layer>-?\d+),"
    r" addr (?P<address>-?\d*), grain (?P<grain>-?\d*), syndrome (?P<syndrome>-?\d*)"
    r" ?(?P<driver_detail>.*)$"
)


def parse_ras_mc_ctl_error(line: str) -> MemoryErrorEvent | None:
    """One ``ras-mc-ctl --errors`` memory-error line (as pasted in tickets) → record:
    an mc_event row, or an "MCE events:" row that is a memory error."""
    line = line.rstrip("\r\n")
    m = _RAS_MC_CTL_ERROR.match(line)
    if m is None:
        return _ras_mc_ctl_mce(line)
    row = m.groupdict()
    row["driver_detail"] = row["driver_detail"].strip()
    return replace(from_mc_event_row(row), raw=line)


# ras-mc-ctl's "MCE events:" rows: "$id $time error: $msg, CPU $cpu, bank $bank_name
# (bank=N), mcg …, mci …, memory_channel=C,csrow=R, mcgcap=0x…, status=0x…, addr=0x…"
# (registers printed only when non-zero; the time is ".." when rasdaemon had none)
_RAS_MC_CTL_MCE = re.compile(
    r"^\d+ (?P<timestamp>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d [+-]\d{4}|\.\.) error: (?P<rest>.*)$")
_MCE_TEXT_REGS = re.compile(
    r"\b(mcgcap|mcgstatus|status|addr|misc|ip|tsc|walltime|cpuid|apicid|socketid|cs|bank|"
    r"cpuvendor|ipid|synd|ppin|microcode)=0x([0-9a-fA-F]+)")
_RAS_MC_CTL_CPU = re.compile(r", CPU (\d+),")
_RAS_MC_CTL_WHERE = re.compile(r"memory_channel=(\d+),csrow=(\d+)")
_SMCA_UMC_NAME = "bank Unified Memory Controller"  # rasdaemon's SMCA bank name


def _ras_mc_ctl_mce(line: str) -> MemoryErrorEvent | None:
    m = _RAS_MC_CTL_MCE.match(line)
    if m is None:
        return None
    rest = m["rest"]
    regs: dict[str, int] = {k: int(v, 16) for k, v in _MCE_TEXT_REGS.findall(rest)}
    if "status" not in regs or "bank" not in regs:
        return None
    if cpu := _RAS_MC_CTL_CPU.search(rest):
        regs["cpu"] = int(cpu[1])
    umc = _SMCA_UMC_NAME in rest
    if umc:
        regs.setdefault("cpuvendor", X86_VENDOR_AMD)  # only AMD's decoder names UMC banks
    event = mce_to_memory_error(MceRegisters(**regs), source=Source.RASDAEMON,
                                timestamp=parse_timestamp(m["timestamp"]), raw=line, umc=umc)
    where = _RAS_MC_CTL_WHERE.search(rest)
    if event is None or where is None:
        return event
    found = DimmLocation(channel=int(where[1]), csrow=int(where[2]))
    return replace(event, location=replace(event.location, channel=None).merged(found))
