"""``memras evaluate``: how memras's verdicts (and mcelog's and rasdaemon's rules) would
have done on a fleet's own labelled history.

    history.read_events_csv / read_rasdaemon_db / read_memras_db -> History
    history.read_tickets_csv -> [Ticket]
    evaluate(history, tickets, config) -> (Evaluation, Replay)
        replays each host through the real health engine at the events' own times
        (:mod:`.replay`) and scores every verdict level and baseline (:mod:`.metrics`);
        a ReplayWatch hears of its progress and can stop it (ReplayCancelled).

Pure: nothing is written, no kernel file is read; the same inputs give the same table.
"""

from __future__ import annotations

from collections.abc import Iterable

from memras.evaluate.history import History, Ticket
from memras.evaluate.metrics import Evaluation, evaluate_flags
from memras.evaluate.replay import (
    Baselines,
    Replay,
    ReplayCancelled,
    ReplayWatch,
    replay,
    rule_names,
)
from memras.health.config import Config

__all__ = ["Baselines", "Evaluation", "History", "Replay", "ReplayCancelled", "ReplayWatch",
           "Ticket", "evaluate"]


def evaluate(history: History, tickets: Iterable[Ticket], config: Config | None = None, *,
             baselines: Baselines = Baselines(), horizon_s: float | None = None,
             watch: ReplayWatch | None = None) -> tuple[Evaluation, Replay]:
    """Replay ``history`` under ``config`` and score it against ``tickets``; ``watch``
    follows the replay and may stop it (:class:`ReplayCancelled`, nothing scored)."""
    replayed = replay(history.events, config, baselines, history.dimm_ids, watch)
    result = evaluate_flags(replayed.dimms, tickets, rule_names(baselines), horizon_s)
    result.extra = {"events": replayed.events, "untimed": replayed.untimed,
                    "unattributed": replayed.unattributed,
                    "skipped_rows": history.skipped.count,
                    "skipped_reasons": list(history.skipped.reasons)}
    return result, replayed
