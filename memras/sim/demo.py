"""The demo: a simulated server whose memory fails live, watched by the real pipeline.

``memras demo`` needs no root and touches nothing of the machine it runs on. A
:class:`DemoServer` writes the ``demo`` profile (memras.sim) into a temporary
directory (or a given one), opens a store next to it and runs two threads:

- the *story* (:class:`Story`): a seeded schedule of synthetic errors injected with
  :func:`memras.sim.actions.inject_ce`. Background noise is a rare random CE on a
  few healthy DIMMs; one DIMM (:data:`FAILING_DIMM`) develops a row fault: the same
  row and bank, a new column each time, the gaps shrinking, until an uncorrected
  error ends it about :data:`STORY_LENGTH_S` seconds in. Days of decay are played
  in half a minute ("time sped up"), so the health engine sees watch →
  repair-by-page-offlining → replace-now and the alerts fire on the way;
- the *watcher* (:class:`memras.watcher.watch.Watcher` over the kmsg, trace and EDAC
  sources of the simulated root, with :class:`memras.watcher.pipeline.Pipeline` for
  verdicts and alerts), storing events live, exactly as ``memras watch`` does.

The simulated kernel's clock is kept in step with the wall clock (``/proc/stat``
``btime`` under the simulated root plus the simulator's uptime), so events carry
today's date rather than 1970.

:func:`run_scripted` plays the whole story headless and then replaces the failing
DIMM through the workflow engine with the ``simulated`` backend, narrating each
step; ``memras demo --script`` prints it. Nothing here imports Textual.
"""

from __future__ import annotations

import random
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from memras.alerts.api import open_alerts
from memras.audit.service import AuditTrail
from memras.errors import WorkflowError
from memras.health.api import current_verdicts
from memras.health.verdict import Verdict
from memras.host import Host
from memras.ingest.edac_ledger import OWN_RESETS_CURSOR
from memras.ingest.sources import EdacCounterSource, KmsgSource, TraceSource
from memras.sim import profiles
from memras.sim.actions import inject_ce
from memras.sim.state import locked_state, read_state
from memras.store import Store
from memras.text import escape
from memras.topology.inventory import resolve_dimm
from memras.watcher.pipeline import Pipeline
from memras.watcher.watch import Watcher
from memras.workflow.runner import Replacement, ReplaceOptions, StepOutcome

FAILING_DIMM = "P1-DIMMC1"  # mc0 channel 2: its own memory slot, online Movable
NOISE_DIMMS = ("P1-DIMMD1", "P2-DIMMB1", "P2-DIMME1")  # other controllers and channels
FAULT_ROW, FAULT_BANK = 0x1A2F, 3
STORY_LENGTH_S = 30.0  # seconds of wall time at speed 1 until the uncorrected error
DEFAULT_SEED = 20240301


@dataclass(frozen=True, slots=True)
class Injection:
    """One synthetic error: when (seconds into the story), where, and what kind."""

    at_s: float
    dimm: str
    row: int
    column: int
    bank: int
    ue: bool = False

    @property
    def failing(self) -> bool:
        return self.dimm == FAILING_DIMM

    def describe(self) -> str:
        kind = "UE" if self.ue else "CE"
        return (f"t+{self.at_s:04.1f}s  {kind} on {self.dimm}  row {self.row:#06x} "
                f"column {self.column:#05x} bank {self.bank}")


def story_schedule(seed: int = DEFAULT_SEED,
                   length_s: float = STORY_LENGTH_S) -> list[Injection]:
    """The whole story, sorted by time; the same seed gives the same story."""
    rng = random.Random(seed)
    out: list[Injection] = []
    t = rng.uniform(0.5, 2.0)
    while t < length_s:  # rare noise: one CE every 4-9 s on a random healthy DIMM
        out.append(Injection(round(t, 2), rng.choice(NOISE_DIMMS), rng.randrange(0x10000),
                             rng.randrange(0x400) & ~7, rng.randrange(16)))
        t += rng.uniform(4.0, 9.0)
    # the row fault: gaps shrink geometrically (accelerating), each hit a new column
    gaps = [length_s * 0.18 * 0.78 ** i for i in range(14)]
    scale = (length_s * 0.93) / sum(gaps)
    t, columns = length_s * 0.1, rng.sample(range(0, 0x400, 8), 15)
    for i, gap in enumerate(gaps):
        out.append(Injection(round(t, 2), FAILING_DIMM, FAULT_ROW, columns[i], FAULT_BANK))
        t = min(t + gap * scale, length_s - 0.2)
    out.append(Injection(length_s, FAILING_DIMM, FAULT_ROW, columns[-1], FAULT_BANK, ue=True))
    return sorted(out, key=lambda i: i.at_s)


def sync_clock(root: Path) -> None:
    """Move the simulated kernel's uptime up to the wall clock (never back)."""
    btime = _btime(root)
    with locked_state(root) as state:
        now_us = int((time.time() - btime) * 1_000_000)
        state.uptime_us = max(state.uptime_us, now_us)


def wait_for_wall_clock(root: Path, limit_s: float = 15.0) -> None:
    """Wait until the wall clock has passed the simulated kernel's clock.

    The sped-up story can stamp errors a few seconds ahead of real time; a
    replacement dated before them would credit the old module's last errors to
    the new module. Waiting (at most ``limit_s``) keeps the order true.
    """
    ahead_s = _btime(root) + read_state(root).uptime_us / 1_000_000 - time.time()
    if ahead_s > 0:
        time.sleep(min(ahead_s + 0.1, limit_s))


def _btime(root: Path) -> int:
    for line in (root / "proc/stat").read_text().splitlines():
        if line.startswith("btime "):
            return int(line.split()[1])
    raise ValueError("no btime")


def _write_btime(root: Path) -> None:
    """Date the simulated boot so that its current uptime ends now."""
    uptime_s = read_state(root).uptime_us // 1_000_000
    stat = root / "proc/stat"
    if not stat.exists():
        stat.write_text(f"btime {int(time.time()) - uptime_s}\n")


class Story:
    """Injects the schedule in real time (divided by ``speed``); cancel with ``stop``."""

    def __init__(self, root: Path, schedule: list[Injection], *, speed: float = 1.0,
                 on_inject: Callable[[Injection, int], None] | None = None) -> None:
        self.root, self.schedule, self.speed = root, schedule, speed
        self.on_inject = on_inject
        self.injected: list[Injection] = []
        self.done = threading.Event()

    def run(self, stop: threading.Event) -> None:
        started = time.monotonic()
        try:
            for item in self.schedule:
                delay = started + item.at_s / self.speed - time.monotonic()
                if delay > 0 and stop.wait(delay):
                    return
                if stop.is_set():
                    return
                sync_clock(self.root)
                address = inject_ce(self.root, item.dimm, row=item.row, column=item.column,
                                    bank=item.bank, ue=item.ue)
                self.injected.append(item)
                if self.on_inject is not None:
                    self.on_inject(item, address)
        finally:
            self.done.set()


class DemoServer:
    """The demo's simulated server, store, story and watcher; ``start()`` / ``stop()``."""

    def __init__(self, directory: str | Path | None = None, *, seed: int = DEFAULT_SEED,
                 speed: float = 1.0, keep: bool = False,
                 on_inject: Callable[[Injection, int], None] | None = None) -> None:
        self._owns_dir = directory is None
        self.dir = Path(tempfile.mkdtemp(prefix="memras-demo-")) if directory is None \
            else Path(directory)
        self.keep = keep or not self._owns_dir
        self.root = self.dir / "root"
        self.db_path = self.dir / "memras.db"
        self.failing_dimm = FAILING_DIMM
        self.schedule = story_schedule(seed)
        self.story = Story(self.root, self.schedule, speed=speed, on_inject=on_inject)
        self.pipeline: Pipeline | None = None
        self.watch_stats: Any = None
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.store = self._create()

    @property
    def db_url(self) -> str:
        return str(self.db_path)

    def _create(self) -> Store:
        self.dir.mkdir(parents=True, exist_ok=True)
        if not (self.root / ".memras-sim").exists():
            profiles.create("demo", self.root)
        _write_btime(self.root)
        sync_clock(self.root)
        return Store.open(self.db_url)

    def host(self) -> Host:
        return Host(self.root)

    @property
    def running(self) -> bool:
        return any(t.is_alive() for t in self._threads)

    def start(self) -> DemoServer:
        """Start the watcher and the story (once; later calls do nothing)."""
        if self._threads:
            return self

        host = self.host()
        self.pipeline = Pipeline(self.store, host)
        edac = EdacCounterSource(host, interval_s=1.0,  # the demo's replacement resets
                                 own_resets=lambda: self.store.get_cursor(OWN_RESETS_CURSOR))
        watcher = Watcher(self.store, [KmsgSource(host), TraceSource(host), edac],
                          on_stored=self.pipeline.after_store, on_gap=self.pipeline.on_gap)
        self._threads = [
            threading.Thread(target=self._watch, args=(watcher,), name="memras-demo-watch",
                             daemon=True),
            threading.Thread(target=self.story.run, args=(self._stop,),
                             name="memras-demo-story", daemon=True),
        ]
        for t in self._threads:
            t.start()
        return self

    def _watch(self, watcher: Any) -> None:
        self.watch_stats = watcher.run(self._stop)

    def stop(self) -> None:
        """Stop the story and the watcher (storing what was read), close the store."""
        self._stop.set()
        for t in self._threads:
            t.join(timeout=10)
        if self.pipeline is not None:
            self.pipeline.close(timeout_s=5)
            self.pipeline = None
        self.store.close()  # closing twice is harmless (Store.close)
        if not self.keep:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> DemoServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- what the story has done so far -------------------------------------------------
    def verdict(self) -> Verdict | None:
        """The failing DIMM's current verdict (memras.health), or None."""
        ref = self._failing_ref()
        return current_verdicts(self.store).get(ref) if ref else None

    def _failing_ref(self) -> str | None:
        info = resolve_dimm(self.host(), self.failing_dimm)
        return info.edac_ref or info.id

    def alerts(self) -> list[dict[str, Any]]:
        return open_alerts(self.db_url, self.host())  # DIMMs by slot label

    def wait_for(self, predicate: Callable[[], bool], timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if predicate():
                return True
            if self._stop.wait(0.2):
                return predicate()
        return predicate()

# --- the scripted, headless demo -------------------------------------------------------

SCRIPT_SPEED = 12.0  # the scripted story plays 30 s in about 2.5 s


class _Narrator:
    def __init__(self, out: Any, quiet: bool) -> None:
        self.out, self.quiet = out, quiet

    def __call__(self, text: str = "") -> None:
        if not self.quiet:
            print(text, file=self.out, flush=True)

    def heading(self, text: str) -> None:
        self()
        self(f"== {text}")


def run_scripted(out: Any, *, directory: str | Path | None = None, seed: int = DEFAULT_SEED,
                 speed: float = SCRIPT_SPEED, quiet: bool = False,
                 operator: str = "demo technician") -> dict[str, Any]:
    """Play the story, then replace the failing DIMM; narrate to ``out``; return a summary.

    ``quiet`` prints nothing (for ``--json``). The summary holds the verdict, the
    alerts, every workflow step and the final state. Raises MemrasError when the
    story does not reach a replace verdict or the replacement does not close.
    """
    say = _Narrator(out, quiet)
    demo = DemoServer(directory, seed=seed, speed=speed,
                      on_inject=lambda item, _addr: say("  " + item.describe()))
    try:
        host = demo.host()
        say("memras demo: a simulated server whose memory is failing "
            "(nothing on this machine is touched)")
        say(f"server  {host.hostname()} (simulated, root {demo.root})")
        say(f"story   {len(demo.schedule)} synthetic errors over {STORY_LENGTH_S:g} s, "
            f"played {speed:g}x faster; the watcher stores them as they come")
        say.heading("errors arrive")
        demo.start()
        demo.story.done.wait(STORY_LENGTH_S / speed + 30)
        reached = demo.wait_for(lambda: _is_replace(demo.verdict()), timeout_s=30)
        demo.wait_for(lambda: any(a.get("verdict") == "replace-now" for a in demo.alerts()),
                      timeout_s=10)
        verdict = demo.verdict()
        say.heading("what memras concluded")
        say(f"verdict {demo.failing_dimm}: {verdict.state.value if verdict else 'none'}")
        for reason in (verdict.reasons if verdict else ()):
            say(f"  - {escape(reason)}")
        alerts = demo.alerts()
        say(f"alerts  {len(alerts)} open")
        for alert in alerts:
            say(f"  {escape(alert.get('title', ''))}")
        if not reached:
            raise WorkflowError("the demo story did not reach a replace verdict",
                                hint="rerun with MEMRAS_DEBUG=1 and report it")
        say.heading(f"replacing {demo.failing_dimm} (simulated backend, operator {operator})")
        wait_for_wall_clock(demo.root)
        replacement = _replace(demo, operator, say)
        say.heading("final status")
        say(f"replacement #{replacement['id']}: {replacement['state']}. "
            f"{escape(replacement['where'])}")
        if replacement["new_serial"]:
            say(f"new module: serial {escape(replacement['new_serial'])} in "
                f"{demo.failing_dimm}, {len(replacement['new_blocks'])} blocks online Movable")
        audit = _audit(demo)
        say(f"audit trail: {audit['entries']} entries for this replacement, hash chain "
            f"{'verified' if audit['ok'] else 'BROKEN'}")
        if demo.keep:
            say()
            say(f"kept: memras --root {demo.root} --db {demo.db_url} status")
        return {"server": str(demo.root), "db": demo.db_url, "failing_dimm": demo.failing_dimm,
                "injected": len(demo.story.injected),
                "verdict": verdict.to_dict() if verdict else None,
                "alerts": [a.get("title") for a in alerts], "replacement": replacement,
                "audit": audit}
    finally:
        demo.stop()


def _is_replace(verdict: Verdict | None) -> bool:
    return verdict is not None and verdict.state.is_replace


def _replace(demo: DemoServer, operator: str, say: _Narrator) -> dict[str, Any]:
    steps: list[dict[str, Any]] = []
    inserted: dict[str, Any] = {}

    def on_step(outcome: StepOutcome) -> None:
        if outcome.step == "insert_module":
            inserted.update(outcome.data.get("backend") or {})
        steps.append({"step": outcome.step, "ok": outcome.ok, "state": outcome.state.value,
                      "message": outcome.message, "seconds": round(outcome.seconds, 3)})
        say(f"{'ok  ' if outcome.ok else 'FAIL'} {outcome.step}: {escape(outcome.message)}")
        for check in outcome.data.get("checks", []) if outcome.step == "preflight" else []:
            say(f"       {'PASS' if check['ok'] else 'FAIL'}  {check['name']}: "
                f"{escape(check['detail'])}")

    rep = Replacement.start(demo.host(), demo.store, demo.failing_dimm,
                            ReplaceOptions(operator=operator), say=lambda t: say("  " + t))
    target = rep.target
    say(f"target  {target.locator or target.dimm_id} (label {target.label}, id "
        f"{target.dimm_id}) serial {target.serial} slot {target.acpi_device} "
        f"({len(target.blocks)} blocks)")
    rep.run(on_step=on_step)
    snap = rep.snapshot()
    if snap["state"] != "closed":
        raise WorkflowError(f"the demo replacement ended {snap['state']}: {snap['error']}")
    return {"id": snap["id"], "state": snap["state"], "where": snap["where"], "steps": steps,
            "new_serial": inserted.get("serial"), "new_blocks": inserted.get("blocks", [])}


def _audit(demo: DemoServer) -> dict[str, Any]:
    trail = AuditTrail(demo.store)
    return {"entries": len(trail.list()), "ok": trail.verify().ok}


__all__ = ["FAILING_DIMM", "DemoServer", "Injection", "Story", "run_scripted",
           "story_schedule", "sync_clock"]
