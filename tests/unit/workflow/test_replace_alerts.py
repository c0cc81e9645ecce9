"""Alerts follow the hardware: a replacement resolves the old module's alerts, naming
the replacement, and the EDAC counter reset it makes raises nothing (demo profile,
simulated backend, alerts raised from the health engine's changes as the watcher's
pipeline raises them)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from memras.alerts.alert import AlertState
from memras.alerts.service import AlertService
from memras.audit.service import AuditTrail
from memras.health.config import parse_config
from memras.health.engine import HealthEngine
from memras.ingest.edac_ledger import OWN_RESETS_CURSOR
from memras.ingest.sources import EdacCounterSource
from memras.records import DimmLocation, ErrorType, MemoryErrorEvent, Source
from memras.sim import actions, profiles
from memras.store import Store
from memras.workflow.runner import Replacement, ReplaceOptions
from memras.workflow.states import State

FAST = {"backoff_initial_s": 0.01, "backoff_max_s": 0.02, "max_attempts": 4}
SLOT, OTHER = "mc0/dimm2", "mc1/dimm0"  # P1-DIMMB1 of the demo profile, and P2-DIMMA1


def error(at: datetime, *, mc: int = 0, channel: int = 1, ue: bool = False
          ) -> MemoryErrorEvent:
    return MemoryErrorEvent(
        error_type=ErrorType.UNCORRECTED if ue else ErrorType.CORRECTED, source=Source.TRACE,
        count=1, timestamp=at, location=DimmLocation(mc=mc, top_layer=channel, middle_layer=0,
                                                     rank=0, bank=2, row=0x40))


class Scene:
    """A demo server whose P1-DIMMB1 has alerts (a UE: replace now) and whose P2-DIMMA1
    has one; an EDAC source polled as a running watcher polls it."""

    def __init__(self, tmp_path) -> None:
        self.srv = profiles.create("demo", tmp_path / "root")
        self.store = Store.open(tmp_path / "memras.db")
        self.alerts = AlertService.open(self.store)
        engine = HealthEngine(parse_config("[page]\naction='off'"), self.store, self.srv.host())
        before = datetime.now(UTC) - timedelta(hours=1)
        changes = engine.process([error(before), error(before + timedelta(minutes=1), ue=True),
                                  error(before, mc=1, channel=0, ue=True)])
        for change in changes:
            self.alerts.raise_change(change)
        # the counters move (seconds_since_reset too), so a reset can be seen
        actions.inject_ce(self.srv.root, "P1-DIMMB1")

    def edac(self, *, own_marks: bool = True) -> EdacCounterSource:
        marks = (lambda: self.store.get_cursor(OWN_RESETS_CURSOR)) if own_marks else None
        source = EdacCounterSource(self.srv.host(), interval_s=0, own_resets=marks)
        source.start(None)
        return source

    def replace(self) -> Replacement:
        rep = Replacement.start(self.srv.host(), self.store, "P1-DIMMB1",
                                ReplaceOptions(operator="Ada", policy=FAST))
        rep.run()
        assert rep.state is State.CLOSED
        return rep

    def unresolved(self, dimm_id: str) -> list:
        return self.alerts.unresolved_for_dimm(dimm_id)


@pytest.fixture
def scene(tmp_path):
    made = Scene(tmp_path)
    yield made
    made.store.close()


def test_replacement_resolves_the_old_modules_alerts_naming_it(scene) -> None:
    old = scene.unresolved(SLOT)
    assert {a.kind.value for a in old} >= {"ue"}  # the alerts the swap answers
    scene.alerts.ack(old[0].id, by="bo", note="swap booked")
    rep = scene.replace()
    assert scene.unresolved(SLOT) == []
    for alert in old:
        after = scene.alerts.get(alert.id)
        resolution = after.evidence["resolution"]
        assert after.state is AlertState.RESOLVED
        assert resolution["reason"] == f"resolved by replacement #{rep.id}"
        assert (resolution["replacement_id"], resolution["by"]) == (rep.id, "Ada")
    assert scene.alerts.get(old[0].id).ack_note == "swap booked"
    others = scene.unresolved(OTHER)  # another module's alerts stay open
    assert others and {a.state for a in others} == {AlertState.OPEN}
    close = next(e for e in AuditTrail(scene.store).list(replacement_id=rep.id)
                 if e.action == "close")
    assert sorted(close.data["alerts"]["resolved"]) == sorted(a.id for a in old)


def test_the_counter_reset_of_a_replacement_raises_nothing(scene) -> None:
    watching, blind = scene.edac(), scene.edac(own_marks=False)
    for source in (watching, blind):
        source.poll(0.0)
    rep = scene.replace()
    assert rep.snapshot()["result"]["edac"]["reset"] is True  # the workflow did reset
    assert watching.poll(0.0).gaps == []
    # the same reset without memras's mark is reported: the test can fail
    assert [g.error_type for g in blind.poll(0.0).gaps] == ["reset"]
