"""mcelog's text log (``/var/log/mcelog`` or its syslog copy) → memory error records.

Mirrors mcelog.c ``dump_mce``: a record starts with ``Hardware event. This is not a
software error.`` and carries ``CPU n BANK n [TSC x]``, optional ``RIP`` lines,
``MISC x ADDR x``, ``TIME n <date>``, decoded prose, ``STATUS x MCGSTATUS x``,
``MCGCAP x APICID x SOCKETID x``, optional ``PPIN x`` and ``MICROCODE x``, and
``CPUID Vendor <Intel|AMD> Family n Model n``. Numbers are hex except TIME, CPU, BANK,
SOCKETID, Family and Model. Syslog prefixes (``host mcelog[2226]: ``) are removed.
The registers are decoded by :mod:`memras.ingest.mca`; non-memory records are counted.
"""

from __future__ import annotations

import re
from dataclasses import replace

from memras.ingest.mca import X86_VENDOR_AMD, X86_VENDOR_INTEL, mce_to_memory_error
from memras.ingest.parsers._common import ParserStats, walltime_to_datetime
from memras.records import MceRegisters, MemoryErrorEvent, Source

RECORD_START = "Hardware event. This is not a software error."
# mcelog before ~1.0 (RHEL 5/6 era) opened a record with this line instead (a Chinese
# sysadmin blog quoting /var/log/mcelog, see tests/unit/parsers/corpus_public.py).
OLD_RECORD_START = "HARDWARE ERROR. This is NOT a software problem!"
_SYSLOG = re.compile(r"^(?:.*?\bmcelog(?:\[\d+\])?: )")
_TOKENS = re.compile(
    r"\b(CPU|BANK|TSC|MISC|ADDR|TIME|STATUS|MCGSTATUS|MCGCAP|APICID|SOCKETID|PPIN|MICROCODE) (\w+)"
)
_DECIMAL = {"CPU", "BANK", "TIME", "SOCKETID"}
_FIELD = {
    "CPU": "cpu", "BANK": "bank", "TSC": "tsc", "MISC": "misc", "ADDR": "addr",
    "TIME": "walltime", "STATUS": "status", "MCGSTATUS": "mcgstatus", "MCGCAP": "mcgcap",
    "APICID": "apicid", "SOCKETID": "socketid", "PPIN": "ppin", "MICROCODE": "microcode",
}  # fmt: skip
_VENDOR = re.compile(r"^CPUID Vendor (\w+)")
# mcelog's Nehalem/Westmere decode of the memory controller's MISC (nehalem.c)
_NEHALEM_WHERE = re.compile(r"^Memory (channel|DIMM) ID of error: (\d+)")


def _records_text(text: str) -> list[list[str]]:
    """Lines of each record, syslog prefixes removed."""
    blocks: list[list[str]] = []
    for raw in text.splitlines():
        line = _SYSLOG.sub("", raw, count=1).strip()
        if line in (RECORD_START, OLD_RECORD_START):
            blocks.append([])
        elif blocks and line:
            blocks[-1].append(line)
    return blocks


def _fields(lines: list[str]) -> dict[str, int]:
    fields: dict[str, int] = {}
    for line in lines:
        if line.startswith(("RIP", "MCA:", "Transaction:", "MCG status", "MCi status")):
            continue
        if m := _VENDOR.match(line):
            fields["cpuvendor"] = X86_VENDOR_AMD if m[1] in ("AMD", "Hygon") else X86_VENDOR_INTEL
            continue
        for key, value in _TOKENS.findall(line):
            try:
                fields[_FIELD[key]] = int(value, 10 if key in _DECIMAL else 16)
            except ValueError:
                continue
    return fields


def _with_decoded_position(event: MemoryErrorEvent, lines: list[str]) -> MemoryErrorEvent:
    """The channel and DIMM mcelog decoded from a Nehalem-style MISC, when it did."""
    found = {m[1]: int(m[2]) for line in lines if (m := _NEHALEM_WHERE.match(line))}
    if not found:
        return event
    location = event.location
    if "channel" in found:  # over MCACOD's channel field: mcelog read the IMC's own
        location = replace(location, channel=found["channel"])
    if "DIMM" in found:
        location = replace(location, slot=found["DIMM"])
    return replace(event, location=location)


def parse_mcelog(text: str, *, stats: ParserStats | None = None) -> list[MemoryErrorEvent]:
    """Every memory error in an mcelog log; other records are counted in ``stats``."""
    stats = stats if stats is not None else ParserStats()
    out: list[MemoryErrorEvent] = []
    for lines in _records_text(text):
        fields = _fields(lines)
        raw = "\n".join([RECORD_START, *lines])
        if "status" not in fields or "bank" not in fields:
            stats.note_malformed(raw)
            continue
        event = mce_to_memory_error(
            MceRegisters(**fields),
            source=Source.MCELOG,
            timestamp=walltime_to_datetime(fields.get("walltime", 0)),
            socket_known="socketid" in fields,
            raw=raw,
        )
        if event is None:
            stats.non_memory_mce += 1
            continue
        event = _with_decoded_position(event, lines)
        stats.records += 1
        out.append(event)
    return out
