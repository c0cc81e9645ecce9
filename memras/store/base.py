"""The one SQLAlchemy declarative ``Base`` every memras area declares its tables on.

memras.store, memras.health, memras.alerts and memras.workflow each put their models
on this Base, so ``Store.open`` creates all of them in one database and one metadata.
"""

from __future__ import annotations

from sqlalchemy.orm import DeclarativeBase


class Base(DeclarativeBase):
    """Shared declarative base (SQLAlchemy 2 typed mappings)."""
