"""The memras database: rasdaemon's exact tables beside memras's own (SQLAlchemy 2).

Public interface::

    store = Store.open(path_or_url)            # creates + migrates
    store.add_events(events, cursor=("kmsg", "1234")) -> AddResult
    store.errors(since=..., dimm=..., type=..., limit=...) -> list[StoredError]
    store.summary() -> Summary                 # like ras-mc-ctl --summary
    store.get_cursor(name) / add_gap(...) / count_skipped(source, sample)
    with store.session() as s: ...             # ORM session for other areas

``RasdaemonDb`` reads a rasdaemon database read-only (0.6.8 and 0.8.5 shapes).

The names that need SQLAlchemy (``Store``, ``Base``, ...) are imported on first use
(PEP 562), so ``memras.store.quick`` — the read `memras summary` takes on SQLite —
starts without paying ~0.3 s for importing SQLAlchemy.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from memras.store.results import (
    MEMORY_FAILURE_TYPE,
    AddResult,
    StoredError,
    Summary,
    SummaryGroup,
    TypeTotal,
)

if TYPE_CHECKING:
    from memras.store.base import Base
    from memras.store.store import Store, database_url

_LAZY = {"Base": "memras.store.base", "Store": "memras.store.store",
         "database_url": "memras.store.store"}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'memras.store' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later look-ups skip this function
    return value


__all__ = [
    "MEMORY_FAILURE_TYPE",
    "AddResult",
    "Base",
    "Store",
    "StoredError",
    "Summary",
    "SummaryGroup",
    "TypeTotal",
    "database_url",
]
