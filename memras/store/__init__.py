"""The memras database: rasdaemon's exact tables beside memras's own (SQLAlchemy 2).

Public interface::

    store = Store.open(path_or_url)            # creates + migrates
    store.add_events(events, cursor=("kmsg", "1234")) -> AddResult
    store.errors(since=..., dimm=..., type=..., limit=...) -> list[StoredError]
    store.summary() -> Summary                 # like ras-mc-ctl --summary
    store.get_cursor(name) / add_gap(...) / count_skipped(source, sample)
    with store.session() as s: ...             # ORM session for other areas

``RasdaemonDb`` reads a rasdaemon database read-only (0.6.8 and 0.8.5 shapes).
"""

from memras.store.base import Base
from memras.store.results import (
    MEMORY_FAILURE_TYPE,
    AddResult,
    StoredError,
    Summary,
    SummaryGroup,
    TypeTotal,
)
from memras.store.store import MODEL_MODULES, Store, database_url

__all__ = [
    "MEMORY_FAILURE_TYPE",
    "MODEL_MODULES",
    "AddResult",
    "Base",
    "Store",
    "StoredError",
    "Summary",
    "SummaryGroup",
    "TypeTotal",
    "database_url",
]
