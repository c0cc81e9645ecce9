"""`memras verdicts` judges errors known only by address (no EDAC, as in a QEMU guest)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from memras.cli import main
from memras.records import ErrorType, MemoryErrorEvent, Source
from memras.sim import profiles
from memras.store import Store


def test_address_only_errors_are_judged_on_their_dimm(tmp_path, capsys):
    root = tmp_path / "guest"
    profiles.create("qemu-guest", root)
    store = Store.open(tmp_path / "m.db")
    t0 = datetime.now(UTC) - timedelta(minutes=5)
    store.add_events([MemoryErrorEvent(ErrorType.CORRECTED, Source.TRACE,
                                       timestamp=t0 + timedelta(seconds=i),
                                       address=0x100001000 + i * 64) for i in range(12)])
    store.close()
    capsys.readouterr()
    assert main(["--root", str(root), "--db", str(tmp_path / "m.db"), "verdicts", "--json"]) == 0
    verdicts = json.loads(capsys.readouterr().out)
    assert [(v["dimm"], v["verdict"]) for v in verdicts] == [
        ("PNP0C80:00", "replace-at-next-maintenance")]
