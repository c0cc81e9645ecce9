"""``memras import bert|pstore [PATH]`` and vmcore-dmesg's clock.

``bert`` reads a Boot Error Region: ``--root``'s ``/sys/firmware/acpi/tables/data/BERT``
when no PATH is given (the CLI passes :data:`HOST_PATH`), else the file PATH (a copy of
that file from another machine). ``pstore`` reads ``--root``'s ``/sys/fs/pstore``, a
directory holding copies of its ``dmesg-*`` files, or one such file.

The records go through :mod:`memras.ingest.before_boot` (the watcher's sources do the
same), and the store's cursor ``bert``/``pstore`` is shared with ``memras watch``: a
block or dump stored by either is not stored again by the other, on any boot.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from memras.errors import UsageError
from memras.host import Host
from memras.host._fs import KernelFs
from memras.host.bert import decode_bert
from memras.host.pstore import Pstore
from memras.ingest.before_boot import (
    READERS,
    BeforeBoot,
    previous_boot,
    read_dumps,
    seen_digests,
)
from memras.watcher.importing import HOST_PATH

if TYPE_CHECKING:
    from memras.store.store import Store
    from memras.watcher.importing import ImportReport, OnStored


# kdump's crash directory: RHEL/Fedora kdump "127.0.0.1-2024-01-31-10:22:33",
# Debian kdump-tools "202401311022" (makedumpfile's capture time, local clock)
_KDUMP_DIR = (re.compile(r"(\d{4}-\d\d-\d\d-\d\d:\d\d:\d\d)$"), "%Y-%m-%d-%H:%M:%S")
_KDUMP_DIR_DEBIAN = (re.compile(r"^(\d{12})$"), "%Y%m%d%H%M")


def import_before_boot(store: Store, kind: str, path: str, report: ImportReport, *,
                       host: Host | None = None, boot_time: datetime | None = None,
                       on_stored: OnStored | None = None) -> None:
    previous = seen_digests(store.get_cursor(kind))
    if path == HOST_PATH:
        if host is None:
            raise UsageError(f"import {kind} needs a PATH or --root's files")
        found = READERS[kind](host, previous)
    elif kind == "bert":
        found = _bert_file(path, previous, boot_time)
    else:
        found = _pstore_path(path, previous)
    for sample in found.skipped:
        report.note_skip(sample[:500], "unreadable")
        store.count_skipped(f"import:{kind}", sample[:500], reason="unreadable")
    report.duplicates += found.duplicates
    report.ignored += found.ignored
    report.notes.extend(found.notes)
    result = store.add_events(found.records, cursor=(kind, found.cursor(previous)))
    report.add(result)
    if on_stored is not None and result.new_events:
        on_stored(result.new_events)


def _file(path: str) -> Path:
    p = Path(path)
    if not p.exists():
        raise UsageError(f"no such file: {path}", hint="check the path")
    return p


def _bert_file(path: str, previous: list[str], boot_time: datetime | None) -> BeforeBoot:
    p = _file(path)
    if p.is_dir():
        raise UsageError(f"{path} is a directory",
                         hint="give a copy of /sys/firmware/acpi/tables/data/BERT")
    try:
        region = p.read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}", hint="check permissions") \
            from exc
    decoded = decode_bert(region, boot_time=boot_time)
    found = BeforeBoot(source="bert", skipped=list(decoded.skipped),
                       ignored=decoded.other_sections)
    known = set(previous)
    for record in decoded.records:
        if record.raw.split()[2] in known:
            found.duplicates += 1
        else:
            found.records.append(record)
    found.seen = [d for d in decoded.digests if d not in known]
    if boot_time is None and any(r.timestamp is None for r in found.records):
        found.notes.append("sections without a timestamp are stored at import time "
                           "(give --boot-time: they happened before that boot)")
    return found


def _pstore_path(path: str, previous: list[str]) -> BeforeBoot:
    p = _file(path)
    if p.is_dir():
        dumps = Pstore(KernelFs(p), directory="/").dumps()
    else:
        dumps = [Pstore(KernelFs(p.parent), directory="/").read(p.name, any_name=True)]
    return read_dumps(dumps, previous, named=lambda dump: dump.name)


def kdump_boot_time(path: str, report: ImportReport) -> datetime | None:
    """The crashed boot's start, from kdump's directory name (the capture time, local)
    minus the file's last uptime; None when the directory does not say."""
    if path == "-":
        return None
    p = Path(path)
    name = p.parent.name
    for pattern, fmt in (_KDUMP_DIR, _KDUMP_DIR_DEBIAN):
        m = pattern.search(name)
        if m is None:
            continue
        try:
            captured = datetime.strptime(m[1], fmt).astimezone().astimezone(UTC)
            text = p.read_text(encoding="utf-8", errors="replace")
        except (ValueError, OSError):
            return None
        boot = previous_boot(text, captured)
        if boot is not None:
            report.notes.append(f"the crashed boot began about {boot.isoformat()}: kdump's "
                                f"capture time ({name}) minus the log's last uptime")
        return boot
    return None
