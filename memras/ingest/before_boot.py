"""Errors from before this boot: ACPI BERT, pstore dumps, kdump's vmcore-dmesg.txt.

Three places keep what the previous boot could not report any more:

    source  where                               what becomes records
    bert    /sys/firmware/acpi/tables/data/BERT CPER memory sections (memras.host.bert)
    pstore  /sys/fs/pstore/dmesg-*              the previous kernel's last log lines,
                                                through the kernel-log parser
    (file)  kdump's vmcore-dmesg.txt            the crashed kernel's log: ``memras import
                                                vmcore-dmesg FILE`` (memras.watcher.importing)

They are read once when ``memras watch`` starts (and by ``memras import bert|pstore``).
Reading them again must not store them again, on this boot or the next (firmware may
keep a BERT region for several boots; a pstore file stays until it is deleted). The
store drops a record read twice when its time and raw text are the same, but a BERT
section without a timestamp is placed at *this* boot's time, which changes every
boot; so each source also keeps a cursor — the digests of the status blocks and dumps
it has stored (at most ``SEEN_KEPT``) — and skips those, counted as duplicates.

Times: a BERT section's own CPER timestamp when valid, else this boot's time as
``inferred`` (it happened before). A pstore dump's lines carry the previous boot's
uptimes; the dump's file time is when it was written, so that boot began at the file
time minus the dump's last uptime (``uptime+boot``). Without a file time the lines stay
undated (stored at import time, ``import``) — never dated by this boot's clock.

pstore records use :data:`Source.PSTORE`: the same error a watcher stored from
/dev/kmsg before the crash is then another road's report of it, not a second error.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from memras.host import Host
from memras.host.bert import decode_bert
from memras.host.pstore import PstoreDump
from memras.ingest.sources import SourceBatch, with_wall_time
from memras.records import Record, Source

if TYPE_CHECKING:
    from memras.ingest.parsers.kernel_log import KernelLogParser

SEEN_KEPT = 256  # digests a cursor remembers: far more dumps/blocks than a host keeps


@dataclass
class BeforeBoot:
    """What one read of a before-boot source found."""

    source: str
    records: list[Record] = field(default_factory=list)
    seen: list[str] = field(default_factory=list)  # digests to remember (cursor)
    duplicates: int = 0  # blocks/dumps already stored (by the cursor): their records
    skipped: list[str] = field(default_factory=list)  # what could not be read, and why
    ignored: int = 0  # lines/sections that are no memory error
    notes: list[str] = field(default_factory=list)

    def cursor(self, previous: list[str]) -> str:
        kept = [d for d in previous if d not in self.seen] + self.seen
        return json.dumps({"seen": kept[-SEEN_KEPT:]})

    def batch(self, previous: list[str]) -> SourceBatch:
        return SourceBatch(source=self.source, records=list(self.records),
                           cursor=self.cursor(previous), skipped=list(self.skipped),
                           ignored=self.ignored + self.duplicates,
                           read=len(self.records) + len(self.skipped))


def seen_digests(cursor: str | None) -> list[str]:
    """The digests a before-boot cursor holds; [] for none or an unreadable one."""
    if not cursor:
        return []
    try:
        value = json.loads(cursor)
    except ValueError:
        return []
    seen = value.get("seen") if isinstance(value, dict) else None
    return [s for s in seen if isinstance(s, str)] if isinstance(seen, list) else []


# ---- BERT ------------------------------------------------------------------------------

def read_bert(host: Host, seen: list[str]) -> BeforeBoot:
    """The BERT region's memory errors not stored before (``seen``: cursor digests)."""
    found = BeforeBoot(source="bert")
    try:
        region = host.bert.region()
    except Exception as exc:  # unreadable (not root): one line, never a traceback
        found.skipped.append(f"cannot read the BERT region: {getattr(exc, 'msg', exc)} "
                             "(the kernel makes it readable by root only)")
        return found
    if region is None:
        return found

    def label_of(handle: int) -> str | None:
        try:
            device = host.smbios.device(handle)
        except Exception:  # no SMBIOS or unreadable: the FRU text is the label
            return None
        return device.full_locator if device is not None else None

    decoded = decode_bert(region, boot_time=host.boot_time(), label_of=label_of)
    known = set(seen)
    for record in decoded.records:
        block = record.raw.split()[2]  # "BERT block <digest> section …"
        if block in known:
            found.duplicates += 1
        else:
            found.records.append(record)
    found.seen = [d for d in decoded.digests if d not in known]
    found.skipped.extend(decoded.skipped)
    found.ignored = decoded.other_sections
    return found


# ---- pstore / vmcore-dmesg -------------------------------------------------------------

def dump_digest(dump: PstoreDump) -> str:
    return hashlib.sha256(f"{dump.name}\n{dump.text}".encode()).hexdigest()[:32]


def previous_boot(text: str, written: datetime | None) -> datetime | None:
    """The boot a dump's lines belong to: its write time minus its last uptime."""
    if written is None:
        return None
    from memras.ingest.parsers.prefixes import strip_prefixes  # lazy: see sources._parsers

    last = None
    for line in text.splitlines():
        stripped = strip_prefixes(line)
        if stripped is not None and stripped.uptime_s is not None:
            last = stripped.uptime_s
    if last is None:
        return None
    try:
        return written - timedelta(seconds=last)
    except OverflowError:
        return None


def parse_log(text: str, source: Source) -> tuple[list[Record], KernelLogParser]:
    from memras.ingest.parsers.kernel_log import KernelLogParser

    parser = KernelLogParser(source=source)
    records: list[Record] = []
    for line in text.splitlines():
        records.extend(parser.feed(line))
    records.extend(parser.flush())
    return records, parser


def read_pstore(host: Host, seen: list[str]) -> BeforeBoot:
    """The memory errors in every readable pstore dmesg dump not stored before."""
    return read_dumps(host.pstore.dumps(), seen, named=lambda dump: dump.path)


def read_dumps(dumps: Iterable[PstoreDump], seen: list[str], *,
               named: Callable[[PstoreDump], str]) -> BeforeBoot:
    """The memory errors of these dumps (``--root``'s, or copies ``memras import pstore``
    was given) not stored before; ``named`` says how a dump is named in notes."""
    found = BeforeBoot(source="pstore")
    known = set(seen)
    for dump in dumps:
        if dump.problem:
            found.skipped.append(f"{named(dump)}: {dump.problem}")
            continue
        digest = dump_digest(dump)
        records, parser = parse_log(dump.text, Source.PSTORE)
        if digest in known:
            found.duplicates += len(records)
            continue
        boot = previous_boot(dump.text, dump.mtime)
        if boot is None:
            found.notes.append(f"{named(dump)}: no file time or uptime: its records are "
                               "stored at import time")
        found.records.extend(with_wall_time(records, boot))
        found.ignored += parser.stats.ignored
        found.skipped.extend(f"{named(dump)}: {s}" for s in parser.stats.malformed_samples)
        found.seen.append(digest)
    return found


READERS: dict[str, Callable[[Host, list[str]], BeforeBoot]] = {
    "bert": read_bert,
    "pstore": read_pstore,
}


class BeforeBootSource:
    """A watcher source that reads one before-boot place once, at start."""

    def __init__(self, host: Host, name: str) -> None:
        if name not in READERS:
            raise ValueError(f"unknown before-boot source {name!r}")
        self.host, self.name = host, name
        self._pending: SourceBatch | None = None

    def start(self, cursor: str | None) -> None:
        previous = seen_digests(cursor)
        self._pending = READERS[self.name](self.host, previous).batch(previous)

    def poll(self, timeout_s: float) -> SourceBatch:
        batch, self._pending = self._pending, None
        if batch is None:  # read once: nothing more until the next start
            time.sleep(min(timeout_s, 1.0))
            return SourceBatch(source=self.name)
        return batch

    def stop(self) -> None:
        self._pending = None
