"""The CE CSV's time column: the forms public exports use (issue 15, evaluate)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from memras.evaluate.history import BadRow, parse_time

WHEN = datetime(2020, 9, 13, 12, 26, 40, tzinfo=UTC)  # epoch 1600000000


@pytest.mark.parametrize("text", [
    "1600000000", "1600000000.0", "1600000000000",  # seconds, and milliseconds (Java exports)
    "2020-09-13T12:26:40", "2020-09-13 12:26:40", "2020-09-13T12:26:40+00:00",
    " 2020-09-13 14:26:40+02:00 ",
])
def test_time_forms(text: str) -> None:
    assert parse_time(text) == WHEN


@pytest.mark.parametrize(("text", "reason"), [
    ("", "no time"), ("yesterday", "not ISO 8601"), ("1e30", "out of range"),
])
def test_bad_times_are_one_line_reasons(text: str, reason: str) -> None:
    with pytest.raises(BadRow, match=reason):
        parse_time(text)
