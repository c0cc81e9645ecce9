"""Pieces every parser shares: counters, the non-memory MCE result, number helpers.

A parser never raises on bad input. What it could not use it counts in
:class:`ParserStats` (keeping a few samples, so an operator can see *what* was
skipped), and a machine check that is not a memory error comes back as a
:class:`NonMemoryMce` so the caller can count it instead of losing it silently.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from memras.records import ErrorType, MceRegisters, Source

MAX_SAMPLES = 5
U64_MASK = (1 << 64) - 1


@dataclass(slots=True)
class ParserStats:
    """What a parser did with its input, for the watcher's counters and the TUI."""

    records: int = 0  # records returned
    ignored: int = 0  # lines of no interest (other printks, decoys, status lines)
    context: int = 0  # lines folded into a record's raw as context
    non_memory_mce: int = 0  # machine checks that are not memory errors
    malformed: int = 0  # lines that looked like ours but could not be fully parsed
    salvaged: int = 0  # malformed lines from which the certain fields were still kept
    internal_errors: int = 0  # parser bugs caught by the safety net (also malformed)
    malformed_samples: list[str] = field(default_factory=list)

    def note_malformed(self, line: str) -> None:
        self.malformed += 1
        if len(self.malformed_samples) < MAX_SAMPLES:
            self.malformed_samples.append(line)


@dataclass(frozen=True, slots=True)
class NonMemoryMce:
    """A machine check that is not a memory error (cache, bus, TLB...): count, don't store."""

    mce: MceRegisters
    source: Source
    timestamp: datetime | None = None
    uptime_s: float | None = None
    raw: str = ""


def hex_int(text: str | None) -> int | None:
    """``0x1f``/``1f`` → 31; None for None or text that is not hex."""
    if text is None:
        return None
    try:
        return int(text, 16)
    except ValueError:
        return None


def dec_int(text: str | None) -> int | None:
    if text is None:
        return None
    try:
        return int(text, 10)
    except ValueError:
        return None


def any_int(text: str | None) -> int | None:
    """``0x…`` as hex, anything else as decimal (CPER and ADXL mix both)."""
    if text is None:
        return None
    return hex_int(text) if text.lower().startswith("0x") else dec_int(text)


def edac_error_count(printed: int, error_type: ErrorType) -> int:
    """The number of errors an EDAC report stands for, from the count it printed.

    ``edac_mc_handle_error(type, mci, error_count, …)`` prints ``error_count`` as given
    (``"%d CE …"``, mc_event ``"%d %s error%s"``). skx/i10nm, sb_edac and i7core pass
    MCi_STATUS[52:38], the bank's *corrected*-error counter, for every report: it is 0
    when the record did not come from CMCI (a GHES-injected bank 255, a polled or UCNA
    record) and, on a UE, counts the bank's earlier CEs, not the UE. So a printed 0 is
    one error (the kernel did log one), a UE is always one error, and only a CE's
    non-zero count is taken as printed.
    """
    if error_type.is_uncorrected:
        return 1
    return printed if printed > 0 else 1


def grain_bits_from_bytes(grain: int | None) -> int | None:
    """log2 of a grain in bytes (1<<bits as the kernel prints it); None for 0/unknown."""
    if grain is None or grain <= 0:
        return None
    return (grain - 1).bit_length()  # the kernel's fls_long(grain - 1)


def to_unsigned64(value: int | None) -> int | None:
    """rasdaemon binds u64 as int64: negative values are addresses ≥ 2^63."""
    return None if value is None else value & U64_MASK


def walltime_to_datetime(seconds: int) -> datetime | None:
    """An MCE ``TIME``/walltime (Unix seconds) as aware UTC; None when 0 or absurd."""
    if seconds <= 0:
        return None
    try:
        return datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, OSError, ValueError):
        return None
