"""/proc/meminfo (fs/proc/meminfo.c): totals and HardwareCorrupted, in bytes."""

from __future__ import annotations

from dataclasses import dataclass

from memras.host._fs import KernelFs


@dataclass(frozen=True, slots=True)
class MemInfo:
    total: int
    free: int
    available: int
    hardware_corrupted: int  # poisoned pages x page size (soft offline counts too)
    raw: dict[str, int]


def parse_meminfo(text: str) -> dict[str, int]:
    """``Key:   123 kB`` lines -> {Key: bytes}; lines that don't parse are skipped."""
    values: dict[str, int] = {}
    for line in text.splitlines():
        key, sep, rest = line.partition(":")
        if not sep:
            continue
        parts = rest.split()
        if not parts or not parts[0].isdigit():
            continue
        scale = 1024 if len(parts) > 1 and parts[1] == "kB" else 1
        values[key.strip()] = int(parts[0]) * scale
    return values


class MemInfoReader:
    def __init__(self, fs: KernelFs) -> None:
        self.fs = fs

    def read(self) -> MemInfo:
        raw = parse_meminfo(self.fs.read("/proc/meminfo", default=""))
        return MemInfo(
            total=raw.get("MemTotal", 0),
            free=raw.get("MemFree", 0),
            available=raw.get("MemAvailable", raw.get("MemFree", 0)),
            hardware_corrupted=raw.get("HardwareCorrupted", 0),
            raw=raw,
        )
