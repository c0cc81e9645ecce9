"""The public real-log corpus (tests/corpus/real/*.toml) through memras's parsers.

Each log goes through the parsers the way ``memras import`` runs them (duplicates
dropped as the store drops them) and must give exactly the records the log states:
none missed, no stated field wrong, no duplicate or spurious record, and its decoys
on their own give nothing (tests/corpus/check.py says how records are paired).

A log today's parser gets wrong stays in the corpus with ``known_gap = "<cause>"``.
Its test is a strict xfail: it fails while the gap is real and PASSES (which fails
the run) once the parser is fixed, so the marker must then be removed. The problems
found are printed in the failure message, and ``bench/real_log_recall.py`` measures
the same corpus through the real import path and store.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.corpus.check import check_parsers, time_rule
from tests.corpus.loader import FAMILIES, CorpusLog, load_all

LOGS = load_all()


def _param(log: CorpusLog) -> Any:
    marks = []
    if log.known_gap:
        marks.append(pytest.mark.xfail(strict=True, reason=f"known gap: {log.known_gap}"))
    return pytest.param(log, id=log.id, marks=marks)


@pytest.mark.parametrize("log", [_param(log) for log in LOGS])
def test_log_gives_exactly_its_records(log: CorpusLog) -> None:
    outcome = check_parsers(log)
    assert outcome.ok, f"{log.id} ({log.url}):\n  " + "\n  ".join(outcome.problems())


def test_corpus_is_large_cited_and_covers_every_family() -> None:
    assert len(LOGS) >= 45
    assert len({log.id for log in LOGS}) == len(LOGS)
    for log in LOGS:
        assert "search index" not in log.source and "index id" not in log.source, log.id
    covered = {family for log in LOGS for family in log.families}
    assert covered == set(FAMILIES)
    records = sum(len(log.expected) for log in LOGS)
    decoys = sum(len(log.decoys) for log in LOGS)
    assert records >= 40 and decoys >= 40


def test_every_printed_time_is_understood() -> None:
    for log in LOGS:
        for expected in log.expected:
            for printed in expected.time:
                time_rule(printed)  # raises on a stamp the checker cannot read
