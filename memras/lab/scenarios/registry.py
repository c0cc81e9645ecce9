"""The scenario registry: ``@scenario`` registers, :func:`run_scenario` runs one.

Each scenario takes a booted :class:`Lab`, records timed steps and the facts it
observed in a :class:`ScenarioReport`, and leaves the guest as it found it (a
replaced DIMM comes back with the same id, size and slot), so one guest serves
many scenarios. A failed expectation raises :class:`ScenarioFailed`; the report
then says which step failed and why.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from memras.errors import LabError, QemuError
from memras.lab.guest import Lab


class ScenarioFailed(LabError):
    title = "Lab scenario failed"


@dataclass
class Step:
    name: str
    ok: bool = True
    seconds: float = 0.0
    detail: str = ""


@dataclass
class ScenarioReport:
    """What a scenario did: timed steps, observed facts, and the verdict.

    ``quick``: run each behaviour once, as the test suite does. A scenario that also
    measures (A-B-A timing rounds, a minute-long steady stream) repeats or lengthens
    those only in a full run (``memras lab run``, bench/), where the figures come from:
    the repetitions make a median, not a different check."""

    name: str
    quick: bool = False
    ok: bool = True
    seconds: float = 0.0
    steps: list[Step] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    @contextmanager
    def step(self, name: str) -> Iterator[Step]:
        step = Step(name)
        self.steps.append(step)
        started = time.monotonic()
        try:
            yield step
        except Exception as exc:
            step.ok = False
            step.detail = step.detail or str(exc)
            raise
        finally:
            step.seconds = round(time.monotonic() - started, 3)

    def expect(self, condition: bool, message: str) -> None:
        if not condition:
            raise ScenarioFailed(message)


ScenarioFn = Callable[[Lab, ScenarioReport], None]
SCENARIOS: dict[str, tuple[str, ScenarioFn]] = {}


def scenario(name: str, description: str) -> Callable[[ScenarioFn], ScenarioFn]:
    def register(fn: ScenarioFn) -> ScenarioFn:
        SCENARIOS[name] = (description, fn)
        return fn

    return register


def run_scenario(lab: Lab, name: str, *, quick: bool = False) -> ScenarioReport:
    """Run one scenario; never raises for a failed expectation (the report says so).
    ``quick``: see :class:`ScenarioReport`."""
    if name not in SCENARIOS:
        raise LabError(f"no lab scenario {name!r}",
                       hint=f"choose one of: {', '.join(sorted(SCENARIOS))}")
    report = ScenarioReport(name, quick=quick)
    started = time.monotonic()
    try:
        SCENARIOS[name][1](lab, report)
    except (LabError, QemuError) as exc:  # QEMU refusing a QMP command fails the scenario
        report.ok = False
        report.error = exc.msg
    report.seconds = round(time.monotonic() - started, 3)
    return report


def show_report(report: ScenarioReport) -> str:
    """A report as the lab tests print it: verdict, then each timed step and its detail."""
    steps = "\n".join(f"  {'ok ' if s.ok else 'FAIL'} {s.seconds:6.2f}s {s.name}: {s.detail}"
                      for s in report.steps)
    return f"{report.name} ({report.seconds:.1f} s): {report.error or 'ok'}\n{steps}"
