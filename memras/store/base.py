"""The one SQLAlchemy declarative ``Base`` every memras area declares its tables on.

memras.store, memras.health, memras.alerts and memras.workflow each put their models
on this Base, so ``Store.open`` creates all of them in one database and one metadata.
"""

from __future__ import annotations

from typing import ClassVar

from sqlalchemy import Table
from sqlalchemy.orm import DeclarativeBase


class Base(DeclarativeBase):
    """Shared declarative base (SQLAlchemy 2 typed mappings)."""

    # Every memras model is declared with __tablename__, so its __table__ is a Table
    # (DeclarativeBase types it as any FromClause, which has no insert()/create()/name).
    __table__: ClassVar[Table]
