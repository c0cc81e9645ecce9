"""`memras fleet failures`: a module's age at failure is known only when memras saw it
installed; a module found in its slot by the inventory gives a lower bound, kept apart.

The central schema on SQLite (the same models and migrations as PostgreSQL's): the rows
are those a shipper writes into memras_dimm_module."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import create_engine

from memras.fleet.read import MODULES, failures
from memras.fleet.schema import migrate
from memras.health.module_registry import SOURCE_INVENTORY, SOURCE_REPLACEMENT


def _module(local_id: int, part: str, source: str, installed: datetime,
            removed: datetime | None, replacement: int | None) -> dict[str, object]:
    return {"host_id": "h1", "local_id": local_id, "slot_id": f"slot{local_id}",
            "identity": f"id{local_id}", "serial": f"S{local_id}", "part": part,
            "manufacturer": "Acme", "installed_at": installed, "removed_at": removed,
            "replaced_by": None, "source": source, "replacement_id": replacement}


def test_first_sighting_bounds_the_age_and_an_installation_gives_it() -> None:
    engine = create_engine("sqlite://")
    with engine.begin() as conn:
        migrate(conn)
        conn.execute(MODULES.insert(), [
            # in its slot before memras: first seen Jan 1, replaced 60 days later
            _module(1, "P-A", SOURCE_INVENTORY, datetime(2026, 1, 1),
                    datetime(2026, 3, 2), 7),
            # its replacement, installed by memras, failed 30 days later
            _module(2, "P-A", SOURCE_REPLACEMENT, datetime(2026, 3, 2),
                    datetime(2026, 4, 1), 8),
            # a part only ever seen by the inventory, replaced 90 days after
            _module(3, "P-B", SOURCE_INVENTORY, datetime(2026, 1, 1),
                    datetime(2026, 4, 1), 9),
            # still in service, never failed
            _module(4, "P-B", SOURCE_INVENTORY, datetime(2026, 1, 1), None, None),
        ])
        rates = {f.part: f for f in failures(conn)}
    a, b = rates["P-A"], rates["P-B"]
    assert (a.modules, a.failed, a.median_age_days, a.median_age_floor_days) == \
        (2, 2, 30.0, 60.0)
    assert a.age_text() == "30d"  # a known age wins over a bound
    assert (b.modules, b.failed, b.median_age_days, b.median_age_floor_days) == \
        (2, 1, None, 90.0)
    assert b.age_text() == ">=90d"
    assert b.as_dict()["median_age_floor_days"] == 90.0
