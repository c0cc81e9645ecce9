"""pstore: the previous kernel's last log, kept across the reboot (fs/pstore).

When a kernel panics or oopses, kmsg_dump hands the tail of its log to a pstore
backend (ramoops in reserved RAM, efi variables, ACPI ERST); after the reboot the
pstore filesystem (``/sys/fs/pstore``) shows each dump as a file named
``dmesg-<backend>-<id>`` (fs/pstore/inode.c ``pstore_mkfile``). A dump the kernel
could not decompress is named ``…-<id>.enc.z``: its bytes are not text, and it is
listed as unreadable rather than parsed.

A file's text starts with the dump's header line, ``<reason>#<count> Part<n>``
(fs/pstore/platform.c ``pstore_dump``: ``Panic#1 Part1``, ``Oops#2 Part1``), then the
log lines as ``kmsg_dump_get_buffer(syslog=true)`` writes them: ``<level>[uptime] text``
— uptimes of the previous boot. The file's modification time is the dump's time
(the inode's mtime is the record's time), which with the last uptime in the dump
gives the previous boot's wall-clock start. A large log is split into parts, Part1
holding its end; parts of one dump are returned oldest text first.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from memras.errors import KernelInterfaceError
from memras.host._fs import KernelFs

PSTORE_DIR = "/sys/fs/pstore"
_NAME = re.compile(r"^dmesg-(?P<backend>[\w.-]+?)-(?P<id>\d+)(?P<enc>\.enc\.z)?$")
_HEADER = re.compile(r"^(?P<reason>[A-Za-z]+)#(?P<count>\d+) Part(?P<part>\d+)$")
MAX_DUMP_BYTES = 4 << 20  # a dump is a few record_size pages; anything larger is not one


@dataclass(frozen=True, slots=True)
class PstoreDump:
    """One ``dmesg-*`` file."""

    name: str  # "dmesg-ramoops-0"
    backend: str  # "ramoops", "efi", "erst"
    record_id: int
    compressed: bool  # ".enc.z": not text, not parsed
    mtime: datetime | None  # the dump's time; None when the file says 0 or is unreadable
    reason: str = ""  # "Panic", "Oops" … from the header line
    count: int | None = None  # the reason's count (Panic#1)
    part: int | None = None
    text: str = ""  # the log lines after the header ("" when compressed or unreadable)
    problem: str = ""  # why the dump could not be read

    directory: str = PSTORE_DIR

    @property
    def path(self) -> str:
        return f"{self.directory}/{self.name}"


class Pstore:
    """The dumps under /sys/fs/pstore (empty when pstore is not mounted)."""

    def __init__(self, fs: KernelFs, directory: str = PSTORE_DIR) -> None:
        self.fs = fs
        self.directory = directory.rstrip("/") or ""  # "" : the tree's root (a copy)

    @property
    def present(self) -> bool:
        return self.fs.exists(self.directory or "/")

    def names(self) -> list[str]:
        try:
            return [n for n in self.fs.listdir(self.directory or "/") if _NAME.match(n)]
        except KernelInterfaceError:
            return []

    def dumps(self) -> list[PstoreDump]:
        """Every dmesg dump, oldest text first within a dump (highest part first)."""
        out = [self.read(name) for name in self.names()]
        return sorted(out, key=lambda d: (d.backend, d.count or 0, -(d.part or 0),
                                          d.record_id))

    def read(self, name: str, *, any_name: bool = False) -> PstoreDump:
        """One dump; ``any_name``: a copy whose file name is not pstore's."""
        m = _NAME.match(name)
        rel = f"{self.directory}/{name}"
        if m is not None:
            backend, record_id, compressed = m["backend"], int(m["id"]), bool(m["enc"])
        elif any_name:
            backend, record_id, compressed = "file", 0, name.endswith(".enc.z")
        else:
            raise KernelInterfaceError(f"{rel} is not a pstore dmesg dump")
        mtime = None
        try:
            stamp = self.fs.path(rel).stat().st_mtime
            mtime = datetime.fromtimestamp(stamp, UTC) if stamp > 0 else None
        except (OSError, OverflowError, ValueError):
            pass
        base = PstoreDump(name, backend, record_id, compressed, mtime,
                          directory=self.directory)
        if compressed:
            return replace(base, problem="compressed (.enc.z): the kernel could not "
                                          "decompress it, so it is not text")
        try:
            data = self.fs.read_bytes(rel)
        except KernelInterfaceError as exc:
            return replace(base, problem=exc.msg)
        if len(data) > MAX_DUMP_BYTES:
            return replace(base, problem=f"{len(data)} bytes, more than a dump holds "
                                          f"({MAX_DUMP_BYTES})")
        text = data.decode("utf-8", "replace")
        first, _, rest = text.partition("\n")
        header = _HEADER.match(first.strip())
        if header is None:  # no header: every line is log text
            return replace(base, text=text)
        return replace(base, reason=header["reason"], count=int(header["count"]),
                        part=int(header["part"]), text=rest)
