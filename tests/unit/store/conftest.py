"""Fixtures for the store tests: a fresh database per test and an event factory."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from memras.records import DimmLocation, ErrorType, MemoryErrorEvent, Source
from memras.store import Store

T0 = datetime(2024, 12, 19, 3, 52, 38, tzinfo=UTC)


def raw_key(event: Any) -> tuple:
    """A key that depends only on the raw text: lets store tests pick duplicates exactly."""
    return (str(event.source), event.raw)


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """The store on both dialects: every query the store runs is proven on SQLite and on a
    real PostgreSQL (tests/fixtures/postgres.py; skipped loudly without it, failed in CI).
    A test that checks a SQLite-only thing (the file, rasdaemon's mirror) uses sqlite_store."""
    url = (request.getfixturevalue("pg_url") if request.param == "postgresql"
           else tmp_path / "memras.db")
    s = Store.open(url, key_fn=raw_key)
    yield s
    s.close()


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[Store]:
    s = Store.open(tmp_path / "memras.db", key_fn=raw_key)
    yield s
    s.close()


EventFactory = Callable[..., MemoryErrorEvent]


@pytest.fixture
def make_event() -> EventFactory:
    counter = iter(range(1_000_000))

    def make(label: str = "CPU_SrcID#0_MC#0_Chan#0_DIMM#0", *, kind: ErrorType =
             ErrorType.CORRECTED, count: int = 1, minutes: int = 0,
             location: tuple[int | None, ...] = (0, 0, 0, None), **extra: Any
             ) -> MemoryErrorEvent:
        mc, top, mid, low = location
        n = next(counter)
        fields: dict[str, Any] = {
            "timestamp": T0 + timedelta(minutes=minutes),
            "address": 0x12345000 + n * 0x1000,
            "grain_bits": 5,
            "syndrome": 0,
            "message": "memory read error",
            "driver_detail": "area:DRAM socket:0 rank:0",
            "raw": f"event {n}",
        }
        fields.update(extra)
        loc = DimmLocation(label=label, mc=mc, top_layer=top, middle_layer=mid,
                           lower_layer=low)
        source = fields.pop("source", Source.TRACE)
        return MemoryErrorEvent(kind, source, count=count, location=loc, **fields)

    return make
