"""Builders for test events: real MemoryErrorEvent records at chosen times/locations."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from memras.records import DimmLocation, ErrorType, MemoryErrorEvent, Source

T0 = datetime(2024, 3, 1, 0, 0, 0, tzinfo=UTC)


def ce(at_s: float, *, ue: bool = False, count: int = 1, address: int | None = None,
       **loc: object) -> MemoryErrorEvent:
    """A corrected (or, with ue=True, uncorrected) error ``at_s`` seconds after T0."""
    location = {"mc": 0, "top_layer": 0, "middle_layer": 0, "socket": 0, "channel": 0}
    location.update(loc)
    return MemoryErrorEvent(
        error_type=ErrorType.UNCORRECTED if ue else ErrorType.CORRECTED,
        source=Source.TRACE,
        count=count,
        timestamp=T0 + timedelta(seconds=at_s),
        address=address,
        location=DimmLocation(**location),  # type: ignore[arg-type]
    )
