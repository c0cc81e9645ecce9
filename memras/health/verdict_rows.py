"""The recorded verdicts: read back from ``memras_health_verdict``.

Below both the engine (which resumes from the recorded verdicts) and the API that
other areas call, so neither imports the other.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import func, select

from memras.health.keys import naive_utc
from memras.health.models import HealthVerdictRow as V
from memras.health.verdict import Verdict, VerdictState
from memras.store.store import Store


def _verdict(row: V) -> Verdict:
    at = row.time.replace(tzinfo=UTC)
    return Verdict(dimm_id=row.dimm_id, state=VerdictState(row.state),
                   rules=tuple(json.loads(row.rules or "[]")),
                   reasons=tuple(json.loads(row.reasons or "[]")),
                   evidence=json.loads(row.evidence or "{}"), at=at,
                   reached_at=row.reached_at.replace(tzinfo=UTC) if row.reached_at else at)


def current_verdicts(store: Store | str | Path, at: datetime | Iterable[str] | None = None
                     ) -> dict[str, Verdict]:
    """The latest recorded verdict of each DIMM at or before ``at`` (default: now).

    ``store`` may be a Store or a database URL/path (opened read-only, never created).
    Given an iterable of DIMM ids instead of a time, only those DIMMs are returned
    (the form ``memras dimms`` uses); ``str(verdict)`` is its state.
    """
    if isinstance(store, str | Path):
        with Store.open_readonly(store) as opened:
            return current_verdicts(opened, at)
    only: set[str] | None = None
    if at is not None and not isinstance(at, datetime):
        only, at = {str(x) for x in at}, None
    newest = select(V.dimm_id, func.max(V.id).label("id"))
    if only is not None:
        newest = newest.where(V.dimm_id.in_(sorted(only)))
    if at is not None:
        newest = newest.where(V.time <= naive_utc(at))
    latest = newest.group_by(V.dimm_id).subquery()
    with store.session(write=False) as s:
        rows = s.scalars(select(V).join(latest, V.id == latest.c.id)).all()
        return {r.dimm_id: _verdict(r) for r in rows}


def verdict_history(store: Store, dimm_id: str) -> list[Verdict]:
    with store.session(write=False) as s:
        rows = s.scalars(select(V).where(V.dimm_id == dimm_id).order_by(V.time, V.id)).all()
        return [_verdict(r) for r in rows]
