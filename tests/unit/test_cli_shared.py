"""The CLI's shared parts: the progress display, the option helpers, the JSON encoder."""

from __future__ import annotations

import argparse
import dataclasses
import enum
import io
import json
import os
import signal
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest

import memras.cli as cli
from memras.cli import options
from memras.cli.context import Context
from memras.cli.progress import ProgressDisplay
from memras.errors import UsageError
from memras.jsonenc import json_default, json_safe
from memras.text import block_names
from memras.workflow.offline import Progress


class Terminal(io.StringIO):
    """A stderr that says it is a terminal, so the Rich bar is chosen."""

    def isatty(self) -> bool:
        return True


def _ctx(*, json_out: bool = False, err: io.StringIO | None = None) -> Context:
    return Context(root=Path("/"), db="unused.db", json=json_out, config=None,
                   out=io.StringIO(), err=err if err is not None else io.StringIO())


STEP = Progress("offline", 1, 4, 128 << 20, 512 << 20, 3.4, "memory33")

# (mode chosen from the context, what each kind of report writes on stderr)
MODES = [
    ("plain", dict(), ["import: reading", "[1/4] 128M offline: memory33, ~3s left",
                       "kept line"]),
    ("off", dict(json_out=True), []),
]


@pytest.mark.parametrize(("mode", "kw", "lines"), MODES, ids=[m[0] for m in MODES])
def test_plain_lines_without_a_terminal_and_nothing_under_json(mode, kw, lines) -> None:
    ctx = _ctx(**kw)
    with ProgressDisplay(ctx, "import") as shown:
        assert shown.mode == mode
        shown.message("reading")
        shown.update(4096, 8192)  # a bare count: no line, on a pipe nobody reads numbers
        shown.blocks(STEP)
        shown.say("kept line")
    assert ctx.err.getvalue().splitlines() == lines
    assert ctx.out.getvalue() == ""  # progress never goes to stdout


def test_a_terminal_gets_a_bar_that_is_erased_and_lines_that_stay() -> None:
    err = Terminal()
    ctx = _ctx(err=err)
    with ProgressDisplay(ctx, "capacity", in_bytes=True) as shown:
        assert shown.mode == "rich"
        shown.blocks(STEP)
        shown.say("resuming replacement #3")
        shown.close()
        shown.blocks(STEP)  # a second phase starts a new bar
    assert "resuming replacement #3" in err.getvalue()
    assert shown._bar is None


def test_ctrl_c_sets_the_cancel_event_and_the_handler_is_restored() -> None:
    cancel = threading.Event()
    before = signal.getsignal(signal.SIGINT)
    ctx = _ctx()
    with ProgressDisplay(ctx, "replace", cancel=cancel):
        os.kill(os.getpid(), signal.SIGINT)  # no KeyboardInterrupt: a request to stop
        assert cancel.wait(5)
    assert signal.getsignal(signal.SIGINT) is before
    assert ctx.err.getvalue() == "memras replace: stopping after the current step…\n"


def _option_helps(flag: str) -> dict[str, str]:
    """The help of ``flag`` in every command that declares it."""
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    found = {}
    for name, p in sub.choices.items():
        for action in p._actions:
            if flag in action.option_strings:
                found[name] = action.help or ""
    return found


@pytest.mark.parametrize("flag", ["--yes", "--operator", "--block-timeout"])
def test_shared_options_read_the_same_in_every_command(flag: str) -> None:
    helps = _option_helps(flag)
    assert len(helps) >= 2, helps
    assert len({h.split(" per ")[0] for h in helps.values()}) == 1, helps


def test_every_dry_run_says_nothing_changes() -> None:
    helps = _option_helps("--dry-run")
    assert {"capacity", "replace", "hotplug-test", "partition", "vm"} <= set(helps)
    assert all(h.endswith("; change nothing") for h in helps.values()), helps


def test_retry_options_are_checked() -> None:
    bad = argparse.Namespace(block_timeout=0.0, max_attempts=6)
    with pytest.raises(UsageError, match="must be positive"):
        options.check_retry_options(bad)
    options.check_retry_options(argparse.Namespace(block_timeout=1.0, max_attempts=1))


def test_parse_when_forms() -> None:
    now = datetime(2024, 12, 19, 12, 0, tzinfo=UTC)
    assert options.parse_when("24h", now=now) == datetime(2024, 12, 18, 12, 0, tzinfo=UTC)
    assert options.parse_when("2w", now=now) == datetime(2024, 12, 5, 12, 0, tzinfo=UTC)
    assert options.parse_when("2024-12-01T00:00:00+00:00") == datetime(2024, 12, 1,
                                                                         tzinfo=UTC)
    with pytest.raises(UsageError, match="cannot read the time"):
        options.parse_when("yesterday")


def test_parse_types_aliases_and_names() -> None:
    assert options.parse_types("ce") == ["Corrected"]
    assert "Fatal" in (options.parse_types("UE") or [])
    assert options.parse_types("memoryfailure,corrected") == ["MemoryFailure", "Corrected"]
    assert options.parse_types(None) is None
    with pytest.raises(UsageError, match="unknown error type 'bogus'"):
        options.parse_types("ce,bogus")


BLOCK_NAMES = [
    ([], 8, "none"),
    ([3], 8, "memory3"),
    (list(range(8)), 8, ", ".join(f"memory{b}" for b in range(8))),
    (list(range(9)), 8, ", ".join(f"memory{b}" for b in range(8)) + " …"),
    (list(range(20)), 16, ", ".join(f"memory{b}" for b in range(16)) + " …"),
]


@pytest.mark.parametrize(("blocks", "limit", "text"), BLOCK_NAMES)
def test_block_names(blocks: list[int], limit: int, text: str) -> None:
    assert block_names(blocks, limit=limit) == text


class Colour(enum.Enum):
    RED = "red"


@dataclasses.dataclass
class Row:
    when: datetime
    colour: Colour
    path: Path
    raw: bytes


def test_json_encoder_spells_memras_values_one_way() -> None:
    row = Row(datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC), Colour.RED, Path("/x"), b"\x01\xff")
    assert json_safe({"row": row}) == {"row": {"when": "2024-01-02T03:04:05+00:00",
                                               "colour": "red", "path": "/x", "raw": "01ff"}}
    assert json.loads(json.dumps(Colour.RED, default=json_default)) == "red"
    with pytest.raises(TypeError, match="not JSON serialisable: object"):
        json_default(object())
