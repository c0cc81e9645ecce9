"""Firmware-first (APEI GHES / CPER) blocks in the kernel log → one record per memory section.

Mirrors drivers/acpi/apei/ghes.c ``__ghes_print_estatus`` and
drivers/firmware/efi/cper.c (``cper_estatus_print``, ``cper_print_mem``,
``cper_mem_err_location``, ``cper_dimm_err_location``)::

    {35}[Hardware Error]: Hardware error from APEI Generic Hardware Error Source: 4
    {35}[Hardware Error]: event severity: corrected
    {35}[Hardware Error]:  Error 0, type: corrected
    {35}[Hardware Error]:  fru_text: D2
    {35}[Hardware Error]:   section_type: memory error
    {35}[Hardware Error]:   physical_address: 0x0000006a47d1f540
    {35}[Hardware Error]:   node:6 card:1 module:0 rank:1 bank:2 device:11 row:40948 column:560
    {35}[Hardware Error]:   error_type: 2, single-bit ECC

``{N}`` is the estatus sequence number that ties a block's lines together (older
kernels print none). Each ``Error N, type:`` line opens a section; only sections whose
section_type is "memory error" become records, the rest are counted by the caller.
The label is the SMBIOS ``DIMM location:`` when present, else ``fru_text``.

The same printer serves drivers/acpi/apei/bert.c: ``BERT: Error records from previous
boot:`` heads the boot error region's records (no ``{N}``, no "Hardware error from
APEI" line). Their faults happened before this boot: driver ``bert``, placed by the
caller at this boot's start, not at the print (kernel_log ``_boot_instant``).

A section's severity is its own, but never above the block's (``event severity``):
the UEFI Generic Error Status Block's severity is the worst of its entries', so a
"recoverable" section in a block the firmware calls corrected (and prints "It has
been corrected by h/w") is the firmware's slip, and the block's word stands. A
physical address of all ones is the firmware saying it has none. Both rules are
memras.records' (``cper_error_type``, ``cper_address``), shared with the binary BERT
reader (memras.host.bert): one firmware record read from its bytes or from this
print gets the same error type and address.

A BERT section is dated as the binary reader dates it (``cper_placed``): by its
``[im]precise tstamp:`` line (printed before its ``Error N`` line for an entry of
revision 3+, cper_print_tstamp), the firmware's clock read as UTC (``kernel``); else
at this boot's start, ``inferred``. A runtime GHES block keeps its print time.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from datetime import datetime

from memras.ingest.parsers._common import hex_int
from memras.ingest.parsers.locations import location_from_pairs
from memras.records import (
    DimmLocation,
    MemoryErrorEvent,
    Source,
    cper_address,
    cper_datetime,
    cper_error_status_text,
    cper_error_type,
    cper_placed,
)

GHES_LINE = re.compile(r"^(?:\{(?P<seq>\d+)\})?\[Hardware Error\]: ?(?P<text>.*)$")
GHES_START = "Hardware error from APEI Generic Hardware Error Source"
BERT_START = "BERT: Error records from previous boot"
_SECTION = re.compile(r"Error (\d+), type: (\w+)")
_KEY_VALUE = re.compile(r"([a-z_]+): (.*)$")
# cper_mem_err_location's keys, in its order: the first valid one opens the line
_LOCATION_KEYS = ("node:", "card:", "module:", "rank:", "bank:", "bank_group:",
                  "bank_address:", "device:", "row:", "column:", "bit_position:",
                  "requestor_id:", "responder_id:", "target_id:", "chip_id:")
# cper_print_tstamp: "%02d%02d-%02d-%02d %02d:%02d:%02d" (century, year, month, day…)
_TSTAMP = re.compile(r"(?:im)?precise tstamp: (\d\d)(\d\d)-(\d\d)-(\d\d) "
                     r"(\d\d):(\d\d):(\d\d)$")


@dataclass(slots=True)
class _Section:
    severity: str
    fields: dict[str, str] = field(default_factory=dict)
    location_text: str = ""
    dimm_location: str = ""
    stamp: datetime | None = None  # its entry's CPER timestamp, when printed and a date

    @property
    def is_memory(self) -> bool:
        return "memory error" in self.fields.get("section_type", "")


@dataclass(slots=True)
class GhesBlock:
    """The lines of one estatus block, accumulated until the caller closes it."""

    seq: str | None
    driver: str = "ghes"  # "bert": the boot error region's records (previous boot)
    event_severity: str = ""
    sections: list[_Section] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)
    stamp: datetime | None = None  # a tstamp line's date, for the section it precedes

    def belongs(self, seq: str | None) -> bool:
        return seq == self.seq

    def add(self, text: str) -> None:
        """Fold one ``[Hardware Error]:`` payload (prefix removed) into the block."""
        stripped = text.strip()
        section = _SECTION.match(stripped)
        if section:
            self.sections.append(_Section(severity=section[2], stamp=self.stamp))
            self.stamp = None
            return
        stamp = _TSTAMP.match(stripped)
        if stamp:
            self.stamp = cper_datetime(*(int(g) for g in stamp.groups()))
            return
        if stripped.startswith("event severity:"):
            self.event_severity = stripped.partition(":")[2].strip()
            return
        if not self.sections:
            return
        current = self.sections[-1]
        if stripped.startswith("DIMM location:"):
            current.dimm_location = stripped.partition(":")[2].strip()
        elif stripped.startswith(_LOCATION_KEYS):
            current.location_text = stripped
        else:
            kv = _KEY_VALUE.match(stripped)
            if kv:
                current.fields.setdefault(kv[1], kv[2].strip())

    def addresses(self) -> set[int]:
        """The physical addresses the block's memory sections name so far."""
        found = (_address(s) for s in self.sections if s.is_memory)
        return {a for a in found if a is not None}

    @property
    def memory_sections(self) -> int:
        return sum(1 for s in self.sections if s.is_memory)

    def records(
        self, *, uptime_s: float | None, kmsg_seq: int | None, timestamp=None
    ) -> list[MemoryErrorEvent]:
        raw = "\n".join(self.lines)
        out: dict[object, MemoryErrorEvent] = {}
        for section in self.sections:
            if not section.is_memory:
                continue
            record = _section_record(section, self.event_severity, uptime_s, kmsg_seq,
                                     timestamp, raw, self.driver)
            # Sections naming one address are one fault described twice (an Intel
            # CPER block: the scrub section, then the multi-bit one): the first, with
            # what the others add to its location.
            key: object = (record.address, record.error_type) if record.address else id(section)
            first = out.get(key)
            out[key] = record if first is None else replace(
                first, location=first.location.merged(record.location))
        return list(out.values())


def _address(section: _Section) -> int | None:
    return cper_address(hex_int(section.fields.get("physical_address")))


def _label(section: _Section) -> str | None:
    dimm = section.dimm_location
    if dimm and not dimm.startswith("not present"):
        return dimm
    return section.fields.get("fru_text") or None


def _grain_bits(mask_text: str | None) -> int | None:
    mask = hex_int(mask_text)
    if not mask:
        return None
    return (mask & -mask).bit_length() - 1  # lowest set bit of the address mask


def _status_text(field: str) -> str:
    """The error_status field in the words of a 5.18+ kernel: older kernels print only
    ``0x0000000000000400``, newer ``Storage error in DRAM memory (0x...)``."""
    if re.fullmatch(r"0x[0-9a-fA-F]{1,16}", field.strip()):
        return cper_error_status_text(int(field, 16))
    return field


def _section_record(
    section: _Section,
    event_severity: str,
    uptime_s: float | None,
    kmsg_seq: int | None,
    timestamp,
    raw: str,
    driver: str = "ghes",
) -> MemoryErrorEvent:
    fields = section.fields
    error_type = cper_error_type(section.severity, event_severity)
    message = (fields.get("error_type", "").partition(", ")[2]
               or _status_text(fields.get("error_status", "")))
    location = location_from_pairs(section.location_text).merged(
        DimmLocation(label=_label(section))
    )
    time_source = None
    if driver == "bert":  # a fault of the previous boot (module doc)
        placed, source = cper_placed(section.stamp, timestamp)
        if section.stamp is not None:
            uptime_s = None  # not this boot's clock
        if placed is not None or uptime_s is not None:  # dated now, or by uptime later
            timestamp, time_source = placed, source
    return MemoryErrorEvent(
        error_type=error_type,
        source=Source.KMSG,
        timestamp=timestamp,
        uptime_s=uptime_s,
        time_source=time_source,
        address=_address(section),
        grain_bits=_grain_bits(fields.get("physical_address_mask")),
        message=message,
        driver=driver,
        driver_detail=section.location_text,
        location=location,
        kmsg_seq=kmsg_seq,
        raw=raw,
    )
