"""One duration reader for the config file and every CLI duration option (issue 16)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from memras.cli import build_parser, main
from memras.cli.options import parse_when
from memras.config import duration_seconds, parse_duration


@pytest.mark.parametrize(("text", "seconds"), [
    (30, 30.0), ("30", 30.0), ("30s", 30.0), ("5m", 300.0), ("24h", 86400.0),
    ("7d", 604800.0), ("2w", 1209600.0), ("1.5h", 5400.0), (" 10 M ", 600.0),
])
def test_the_forms(text: object, seconds: float) -> None:
    assert duration_seconds(text) == seconds
    assert parse_duration(text, what="keep", table="store") == seconds


@pytest.mark.parametrize("text", ["", "soon", "5 minutes", "-5", -5, True, "1y"])
def test_not_durations(text: object) -> None:
    assert duration_seconds(text) is None


def test_cli_duration_options_take_units() -> None:
    argv = ["replace", "X", "--block-timeout", "5m", "--backoff", "2s",
            "--detect-timeout", "10m"]
    args = build_parser(argv).parse_args(argv)
    assert (args.block_timeout, args.backoff, args.detect_timeout) == (300.0, 2.0, 600.0)
    argv = ["replace", "X", "--block-timeout", "90"]
    assert build_parser(argv).parse_args(argv).block_timeout == 90.0  # bare: seconds


def test_at_and_since_read_the_same_forms() -> None:
    now = datetime.now(UTC)
    for text in ("24h", "7d", "30m"):
        assert now - parse_when(text, now=now) == timedelta(seconds=duration_seconds(text))
    # a naive time is the operator's local time, for --at as for --since
    assert parse_when("2024-03-01T12:00") == datetime(2024, 3, 1, 12).astimezone()


def test_verdicts_at_reads_the_since_forms(capsys: pytest.CaptureFixture[str],
                                           tmp_path: Path) -> None:
    code = main(["verdicts", "--root", str(tmp_path), "--db", str(tmp_path / "m.db"),
                 "--at", "soon"])
    err = capsys.readouterr().err
    assert code == 2 and "cannot read the time 'soon'" in err


def test_a_bad_duration_option_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["replace", "X", "--backoff", "soon"])
    err = capsys.readouterr().err
    assert info.value.code == 2 and len(err.splitlines()) == 1
    assert "'soon' is not a duration (use seconds, or a number with s, m, h, d or w" in err
