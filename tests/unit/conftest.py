"""A simulated server with a recorded error stream, for the watcher tests (pipeline,
service).

The stream (tests/fixtures/streams/demo-row-fault.*) is twelve corrected errors on one
row of one DIMM, as /dev/kmsg records and as ras:mc_event trace lines: the same errors
from two sources, stored once.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from memras.sim import profiles

STREAMS = Path(__file__).parents[1] / "fixtures" / "streams"


@pytest.fixture
def server(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    profiles.create("demo", root)
    for suffix in ("kmsg", "trace"):
        shutil.copy(STREAMS / f"demo-row-fault.{suffix}", root / ".memras-sim" / suffix)
    return root
