"""What the workflow's tables say the audit trail must hold, read without writing.

``memras audit verify`` checks that every replacement in ``memras_replacement`` has its
audit rows (its select row, its DIMM, the state it ended in) and that every replacement
the trail names still exists. The audit area sits below the workflow, so the workflow
reads its own table here and hands the facts down
(:class:`memras.audit.service.RecordedReplacements`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import inspect, select
from sqlalchemy.exc import SQLAlchemyError

from memras.audit.service import RecordedReplacement, RecordedReplacements
from memras.errors import StoreError
from memras.workflow.models import ReplacementRow

if TYPE_CHECKING:
    from memras.store.store import Store


def recorded_replacements(store: Store) -> RecordedReplacements:
    """Every replacement's id, state, current step and DIMM; never creates the table."""
    table = ReplacementRow.__table__
    try:
        with store.engine.connect() as conn:
            if not inspect(conn).has_table(ReplacementRow.__tablename__):
                return RecordedReplacements(table_exists=False)
            rows = conn.execute(select(table.c.id, table.c.state, table.c.current_step,
                                       table.c.dimm_id).order_by(table.c.id)).all()
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot read memras_replacement: {type(exc).__name__}: "
                         f"{exc}".splitlines()[0]) from None
    return RecordedReplacements(table_exists=True, rows=tuple(
        RecordedReplacement(id=r.id, state=r.state, current_step=r.current_step,
                            dimm_id=r.dimm_id) for r in rows))
