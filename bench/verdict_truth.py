"""Ground truth for verdicts: a seeded synthetic fleet with known failures, judged by
`memras evaluate`'s core, replace-level verdicts against mcelog's per-DIMM rule.

Goal (verdict-truth issue, item 8), on a 10,000-DIMM fleet: replace-level precision
>= 0.8, recall >= the mcelog rule's, median lead time >= the mcelog rule's.

Run: .venv/bin/python bench/verdict_truth.py [--dimms 10000] [--days 730] [--seed 1]
     [--write-docs]   (replace the "Verdict truth" section of docs/performance.md)

The fleet (every rate from shared/reference/dram-faults.md; where the reference gives
no number the assumption is named here and in the docs, and was fixed before the first
run — the generator is not tuned to the engine):
* Hosts of 16 DIMMs (2 sockets x 4 channels x 2 slots), DDR4 geometry: 2 ranks, 4 bank
  groups x 4 banks, 2^17 rows, 2^10 columns; every error carries its decoded location
  and a physical address (a row is 8 KiB: two 4 KiB pages).
* Faults arrive per DIMM as a Poisson process, 8 % of DIMMs a year with >= 1 (Schroeder
  et al. CACM'11: ">8 % of DIMMs see >= 1 CE per year"), onset uniform in the period.
* Mode and persistence drawn by Sridharan & Liberty SC12's FIT/device table (single-bit
  14.2 transient / 18.6 permanent, word 1.4/0.3, column 1.4/5.6, row 0.2/8.2, bank
  0.8/10.0, multi-bank 0.3/1.4, multi-rank 0.9/2.8). Each fault errs only inside its
  footprint: one cell, one word, one column of a bank, one row, one bank, >= 2 banks of
  a rank, both ranks.
* A transient fault is one event: one CE, or for a multi-cell mode a burst of 2-5 CEs
  within a minute over its footprint (a soft error is read once, then scrubbed).
* A permanent fault errs from onset on, in bursts (CEs cluster in time: Schroeder) —
  burst size geometric with mean BURST_MEAN (assumption; no published figure) spread
  over up to an hour — with a CE rate per DIMM that is lognormal: median 68 CEs/year and
  mean 55x the median (Meza et al. DSN'15: mean ~55x median; ~3,751 CEs/DIMM/year on
  average, CS739's summary of Schroeder: 3,751 / 55 = 68).
* Every fault sits in one DRAM device of its rank (Sridharan & Liberty count faults per
  device; an x4 ECC RDIMM has DEVICES = 18 per rank), and its CEs name that device.
* UEs: 0.3 % of DIMMs a year (Schroeder: 0.05-0.39 %/year). A share UE_WITHOUT_CE of
  them has no CE precursor (the mean of Baeg et al.'s ~60 % and Sridharan's ~17 %): a
  UE at a random time, which no CE rule can catch. The rest come from a permanent fault
  that PROGRESSES (Sridharan SC12: > 83 % of nodes with a UE first had CEs from the
  same fault), with a probability per mode proportional to its footprint weight
  (MODE_UE_WEIGHT, an assumption: under chipkill/SDDC the faults of large granularity
  cause most UEs, Sridharan SC12/SC13; "SEC-DED is not enough"), scaled so the fleet
  meets the 0.3 %; the UE comes an exponential time after onset, mean UE_AFTER_ONSET_D
  (assumption: Schroeder's month-scale CE->UE correlation).
* Progressing vs stable. A permanent fault that does not end in a UE is stable: a
  steady rate and a bounded footprint (its cell, row, column, bank or banks, one
  device) for as long as it lives. A progressing fault behaves the same until the last
  PROGRESS_D days before its UE (the whole of its life when the UE comes sooner); over
  that phase, at fraction s of the way through it (assumptions, all named here):
  - its CE rate rises linearly to RATE_GROWTH times its own rate (footprint/rate
    growth before the UE; CEs cluster in time and a month with CEs makes the next
    13x to > 90x likelier to have CEs, Schroeder CACM'11);
  - a share SPREAD_MAX * s of its CEs fall outside its footprint, one granularity up:
    a cell/word fault into its row or column, a row or column fault into other rows
    and columns of its bank, a bank fault into other banks of its rank, a multi-bank
    fault into the other rank (footprint spreading to new rows/banks; Beigi HPCA'23:
    > 45 % of faults are multi-bit);
  - a share SECOND_DEVICE of those spread CEs come from a second device of the rank:
    the bit pattern leaves the one-device coverage of chipkill/SDDC, Li et al. SC'22's
    "risky CEs" that precede UEs.
  The UE is in the spread footprint. PROGRESS_D, RATE_GROWTH, SPREAD_MAX and
  SECOND_DEVICE have no published value; they were fixed before memras's new policy
  was scored on this fleet and not changed after.
  The UE event is in the history at the failure time (as a real log has it) and the
  ticket says the same time; the DIMM is replaced then, so its history ends.
* Runtime: a DIMM with more than MAX_CE_RECORDS CE records keeps its first and its last
  MAX_CE_RECORDS / 2 (the count of cut DIMMs is printed): the count rules' first flags
  come in the first half, and the days before a UE, where a progressing fault shows
  itself, are in the last. (Until 2026-12-06 the history was cut after its first
  MAX_CE_RECORDS records, which removed the whole progression of every high-rate
  failing fault: its CEs stopped months before its UE, against the model above and
  Sridharan SC12's > 83 % of UEs preceded by CEs of the same fault.)
"""

from __future__ import annotations

import argparse
import math
import random
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from _docs import replace_figures  # bench/ is the script directory on sys.path

from memras.evaluate import History, evaluate
from memras.evaluate.history import Ticket
from memras.evaluate.metrics import Evaluation, RuleScore, failure_times, quantile
from memras.evaluate.replay import MCELOG_RULE, RASDAEMON_RULE, Replay, level_rule
from memras.health.verdict import VerdictState
from memras.records import DimmLocation, ErrorType, MemoryErrorEvent, Source

DAY_S = 86400.0
YEAR_D = 365.0
FAULTS_PER_DIMM_YEAR = -math.log(1 - 0.08)  # P(>= 1 fault in a year) = 8 %
CE_MEDIAN_PER_YEAR = 68.0
CE_MEAN_OVER_MEDIAN = 55.0
CE_SIGMA = math.sqrt(2 * math.log(CE_MEAN_OVER_MEDIAN))  # lognormal: mean/median = e^(s^2/2)
BURST_MEAN = 3.0
BURST_SPREAD_S = 3600.0
UE_PER_DIMM_YEAR = 0.003
UE_WITHOUT_CE = (0.60 + 0.17) / 2
UE_AFTER_ONSET_D = 30.0
DEVICES = 18  # x4 ECC RDIMM: 16 data + 2 check devices per rank
PROGRESS_D = 14.0  # the progression phase: at most this long before the UE (assumption)
RATE_GROWTH = 10.0  # the CE rate at the UE, over the fault's own rate (assumption)
SPREAD_MAX = 0.5  # share of CEs outside the footprint at the UE (assumption)
SECOND_DEVICE = 0.5  # share of spread CEs on a second device of the rank (assumption)
MAX_CE_RECORDS = 2000
DIMMS_PER_HOST = 16
RANKS, BANK_GROUPS, BANKS, ROWS, COLUMNS = 2, 4, 4, 1 << 17, 1 << 10

# mode -> (transient FIT, permanent FIT), Sridharan & Liberty SC12 via FaultSim JAGUAR
FIT: dict[str, tuple[float, float]] = {
    "single-bit": (14.2, 18.6), "single-word": (1.4, 0.3), "single-column": (1.4, 5.6),
    "single-row": (0.2, 8.2), "single-bank": (0.8, 10.0), "multi-bank": (0.3, 1.4),
    "multi-rank": (0.9, 2.8),
}
MODE_UE_WEIGHT = {"single-bit": 1, "single-word": 4, "single-column": 2, "single-row": 2,
                  "single-bank": 4, "multi-bank": 8, "multi-rank": 8}
REPLACE = level_rule(VerdictState.REPLACE_LATER)
NO_PRECURSOR = "UE without a CE precursor"


@dataclass
class Fault:
    mode: str
    permanent: bool
    onset_s: float
    rank: int
    bank_group: int
    bank: int
    row: int
    column: int
    device: int = 0
    ue_s: float | None = None  # a progressing fault's UE time (None: stable)
    second_device: int = 1  # offset of the second device its spread CEs may come from
    spread_at: list[float] = field(default_factory=list)  # times of its spread CEs

    def stage(self, t_s: float) -> float:
        """How far into its progression phase the fault is at ``t_s`` (0 before it or
        for a stable fault, 1 at the UE)."""
        if self.ue_s is None:
            return 0.0
        start = max(self.onset_s, self.ue_s - PROGRESS_D * DAY_S)
        return min(max((t_s - start) / max(self.ue_s - start, 1.0), 0.0), 1.0)


Cell = tuple[int, int, int, int, int, int]  # rank, bank group, bank, row, column, device


def ue_probability(mode: str) -> float:
    """P(a permanent fault of ``mode`` ends in a UE): the precursor UEs' share of the
    fleet UE rate, split over modes by MODE_UE_WEIGHT, weighted by permanent FIT."""
    permanent = sum(p for _, p in FIT.values())
    mean_weight = sum(FIT[m][1] * w for m, w in MODE_UE_WEIGHT.items()) / permanent
    permanent_faults_per_year = FAULTS_PER_DIMM_YEAR * permanent / sum(map(sum, FIT.values()))
    share = UE_PER_DIMM_YEAR * (1 - UE_WITHOUT_CE) / permanent_faults_per_year
    return share * MODE_UE_WEIGHT[mode] / mean_weight


def _draw_mode(rng: random.Random) -> tuple[str, bool]:
    pick = rng.uniform(0, sum(map(sum, FIT.values())))
    for mode, (transient, permanent) in FIT.items():
        if pick < transient:
            return mode, False
        pick -= transient
        if pick < permanent:
            return mode, True
        pick -= permanent
    return "single-bit", True


def _cell(rng: random.Random, f: Fault, t_s: float | None = None) -> Cell:
    """(rank, bank group, bank, row, column, device) of one error of the fault at
    ``t_s``: inside its footprint, or, for a progressing fault in its phase, one
    granularity up with probability SPREAD_MAX * stage (see the module docstring)."""
    stage = f.stage(t_s) if t_s is not None else 1.0
    if stage > 0 and rng.random() < SPREAD_MAX * stage:
        if t_s is not None:
            f.spread_at.append(t_s)
        device = f.device
        if rng.random() < SECOND_DEVICE:  # the fault's one second device, as documented
            device = (f.device + f.second_device) % DEVICES
        return (*_spread(rng, f), device)
    return (*_inside(rng, f), f.device)


def _inside(rng: random.Random, f: Fault) -> tuple[int, int, int, int, int]:
    if f.mode in ("single-bit", "single-word"):
        return f.rank, f.bank_group, f.bank, f.row, f.column
    if f.mode == "single-column":
        return f.rank, f.bank_group, f.bank, rng.randrange(ROWS), f.column
    if f.mode == "single-row":
        return f.rank, f.bank_group, f.bank, f.row, rng.randrange(COLUMNS)
    if f.mode == "single-bank":
        return f.rank, f.bank_group, f.bank, rng.randrange(ROWS), rng.randrange(COLUMNS)
    rank = f.rank if f.mode == "multi-bank" else rng.randrange(RANKS)
    return (rank, rng.randrange(BANK_GROUPS), rng.randrange(BANKS), rng.randrange(ROWS),
            rng.randrange(COLUMNS))


def _spread(rng: random.Random, f: Fault) -> tuple[int, int, int, int, int]:
    """One granularity up from the fault's footprint."""
    if f.mode in ("single-bit", "single-word"):
        if rng.random() < 0.5:  # into its row, or into its column
            return f.rank, f.bank_group, f.bank, f.row, rng.randrange(COLUMNS)
        return f.rank, f.bank_group, f.bank, rng.randrange(ROWS), f.column
    if f.mode in ("single-row", "single-column", "single-bank"):
        bank_group, bank = f.bank_group, f.bank
        if f.mode == "single-bank":  # into another bank of the rank
            bank_group, bank = divmod((f.bank_group * BANKS + f.bank
                                       + rng.randrange(1, BANK_GROUPS * BANKS))
                                      % (BANK_GROUPS * BANKS), BANKS)
        return f.rank, bank_group, bank, rng.randrange(ROWS), rng.randrange(COLUMNS)
    rank = 1 - f.rank if f.mode == "multi-bank" else rng.randrange(RANKS)
    return (rank, rng.randrange(BANK_GROUPS), rng.randrange(BANKS), rng.randrange(ROWS),
            rng.randrange(COLUMNS))


def _event(slot: int, cell: Cell, t_s: float, t0: datetime,
           error_type: ErrorType = ErrorType.CORRECTED) -> MemoryErrorEvent:
    rank, bg, bank, row, column, device = cell
    socket, channel, dimm = slot // 8, slot // 2 % 4, slot % 2
    offset = ((((rank * BANK_GROUPS + bg) * BANKS + bank) * ROWS + row) * COLUMNS + column) * 8
    return MemoryErrorEvent(
        error_type, Source.SIMULATOR, timestamp=t0 + timedelta(seconds=t_s),
        address=(slot << 35) + offset,
        location=DimmLocation(socket=socket, channel=channel, slot=dimm, rank=rank,
                              bank_group=bg, bank=bank, row=row, column=column,
                              device=device))


def _bursts(rng: random.Random, f: Fault, end_s: float) -> list[float]:
    """Times of a permanent fault's CEs: bursts at its lognormal rate from onset to end,
    rising to RATE_GROWTH times that over a progressing fault's phase (thinning: bursts
    drawn at the top rate, each kept with the rate at its time over the top rate)."""
    per_day = CE_MEDIAN_PER_YEAR / YEAR_D * math.exp(rng.gauss(0, CE_SIGMA))
    top = RATE_GROWTH if f.ue_s is not None else 1.0
    burst_per_s = per_day * top / BURST_MEAN / DAY_S
    times: list[float] = []
    t = f.onset_s
    while True:
        t += rng.expovariate(burst_per_s)
        if t >= end_s:
            break
        if rng.random() * top > 1 + (RATE_GROWTH - 1) * f.stage(t):
            continue
        size = 1 + int(math.log(1 - rng.random()) / math.log(1 - 1 / BURST_MEAN))
        times += sorted(t + rng.uniform(0, BURST_SPREAD_S) for _ in range(size))
    return _cut([x for x in times if x < end_s])


def _cut(items: list) -> list:
    """The first and the last MAX_CE_RECORDS / 2 of ``items`` when there are more."""
    if len(items) <= MAX_CE_RECORDS:
        return items
    half = MAX_CE_RECORDS // 2
    return items[:half] + items[-half:]


@dataclass
class Fleet:
    history: History
    tickets: list[Ticket]
    faults: dict[str, int]
    capped: int
    failed_modes: dict[tuple[str, str], str]  # (host, DIMM) -> the fault that failed it
    # (host, DIMM) -> seconds from the failing fault's first CE outside its footprint in
    # the history to the UE: the earliest any growth rule could see it progress
    spread_lead_s: dict[tuple[str, str], float] = field(default_factory=dict)


def generate(dimms: int, days: float, seed: int) -> Fleet:
    rng = random.Random(seed)
    t0 = datetime(2024, 1, 1, tzinfo=UTC)
    period_s = days * DAY_S
    history, tickets = History(), []
    faults: dict[str, int] = {}
    failed_modes: dict[tuple[str, str], str] = {}
    capped = 0
    spread_lead_s: dict[tuple[str, str], float] = {}
    for index in range(dimms):
        host, slot = f"h{index // DIMMS_PER_HOST:05d}", index % DIMMS_PER_HOST
        events, failure = _dimm_history(rng, slot, period_s, t0, faults)
        capped += sum(1 for e in events if not e.error_type.is_uncorrected) >= MAX_CE_RECORDS
        for e in events:
            history.add(host, e)
        if failure is not None:
            dimm_id = f"S{slot // 8}:C{slot // 2 % 4}:D{slot % 2}"
            tickets.append(Ticket(host, dimm_id, t0 + timedelta(seconds=failure[0])))
            failed_modes[(host, dimm_id)] = failure[1]
            if failure[2] is not None:
                spread_lead_s[(host, dimm_id)] = failure[0] - failure[2]
    return Fleet(history, tickets, faults, capped, failed_modes, spread_lead_s)


def _dimm_history(rng: random.Random, slot: int, period_s: float, t0: datetime,
                  counts: dict[str, int]
                  ) -> tuple[list[MemoryErrorEvent], tuple[float, str, float | None] | None]:
    n_faults = _poisson(rng, FAULTS_PER_DIMM_YEAR * period_s / DAY_S / YEAR_D)
    faults = []
    for _ in range(n_faults):
        mode, permanent = _draw_mode(rng)
        faults.append(Fault(mode, permanent, rng.uniform(0, period_s), rng.randrange(RANKS),
                            rng.randrange(BANK_GROUPS), rng.randrange(BANKS),
                            rng.randrange(ROWS), rng.randrange(COLUMNS),
                            rng.randrange(DEVICES)))
        key = f"{mode} {'permanent' if permanent else 'transient'}"
        counts[key] = counts.get(key, 0) + 1
    failure: tuple[float, Fault | None] | None = None
    for f in faults:
        if f.permanent and rng.random() < ue_probability(f.mode):
            at = f.onset_s + rng.expovariate(1 / (UE_AFTER_ONSET_D * DAY_S))
            f.ue_s = at  # it progresses towards its UE (seen only if at < period_s)
            f.second_device = rng.randrange(1, DEVICES)
            if at < period_s and (failure is None or at < failure[0]):
                failure = (at, f)
    no_precursor_rate = UE_PER_DIMM_YEAR * UE_WITHOUT_CE * period_s / DAY_S / YEAR_D
    if failure is None and rng.random() < no_precursor_rate:
        failure = (rng.uniform(0, period_s), None)
        counts[NO_PRECURSOR] = counts.get(NO_PRECURSOR, 0) + 1
    end_s = failure[0] if failure else period_s
    timed: list[tuple[float, Cell]] = []
    for f in faults:
        if f.onset_s >= end_s:
            continue
        if not f.permanent:
            size = 1 if f.mode in ("single-bit", "single-word") else rng.randint(2, 5)
            timed += [(f.onset_s + rng.uniform(0, 60), _cell(rng, f, f.onset_s))
                      for _ in range(size)]
        else:
            timed += [(t, _cell(rng, f, t)) for t in _bursts(rng, f, end_s)]
    timed = _cut(sorted((x for x in timed if x[0] < end_s), key=lambda x: x[0]))
    events = [_event(slot, cell, t, t0) for t, cell in timed]
    if failure is None:
        return events, None
    at, cause = failure
    cell = (_cell(rng, cause) if cause is not None
            else (0, 0, 0, rng.randrange(ROWS), 0, rng.randrange(DEVICES)))
    events.append(_event(slot, cell, at, t0, ErrorType.UNCORRECTED))
    kept = {t for t, _ in timed}
    spread = min((t for t in cause.spread_at if t in kept), default=None) if cause else None
    return events, (at, cause.mode if cause is not None else NO_PRECURSOR, spread)


def _poisson(rng: random.Random, mean: float) -> int:
    n, p, limit = 0, 1.0, math.exp(-mean)
    while True:
        p *= rng.random()
        if p <= limit:
            return n
        n += 1


# ---- report ---------------------------------------------------------------------------

def _replay_rate(result: Evaluation, elapsed_s: float, cpu_s: float | None) -> str:
    """Events/s, and the CPU time: on a shared machine the wall time says more about the
    other jobs than about the replay."""
    events = int(result.extra["events"])
    parts = [f"{events / elapsed_s:,.0f} events/s"] if elapsed_s > 0 else []
    if cpu_s:
        parts.append(f"{cpu_s:.0f} s CPU, {events / cpu_s:,.0f} events per CPU second")
    return f" ({'; '.join(parts)})" if parts else ""


def _fmt(value: float | None, unit: str = "") -> str:
    return "-" if value is None else f"{value:.2f}{unit}"


def _days(s: RuleScore) -> str:
    median = s.lead_h(0.5)
    return "-" if median is None else f"{median / 24:.1f} d"


def by_mode(fleet: Fleet, replayed: Replay) -> str:
    """Failed DIMMs per failing fault mode: how many each rule flagged before the UE."""
    rules = {"memras replace": REPLACE, "memras repair": level_rule(VerdictState.REPAIR),
             "mcelog": MCELOG_RULE}
    failures = failure_times(fleet.tickets)
    rows = ["| failing fault | failed | " + " | ".join(rules) + " |",
            "|---|---|" + "---|" * len(rules)]
    modes = sorted(set(fleet.failed_modes.values()))
    for mode in modes:
        keys = [k for k, m in fleet.failed_modes.items() if m == mode]
        caught = []
        for rule in rules.values():
            caught.append(sum(1 for k in keys if k in replayed.dimms
                              and replayed.dimms[k].flags.get(rule, failures[k]) < failures[k]))
        rows.append(f"| {mode} | {len(keys)} | " + " | ".join(map(str, caught)) + " |")
    return "\n".join(rows)


def first_rules(replayed: Replay, failures: dict[tuple[str, str], datetime],
                failed: bool = False) -> str:
    """What made memras say replace on DIMMs that never failed (or, with ``failed``, on
    failed DIMMs before their failure): the first rule the verdict cited."""
    counts: dict[str, int] = {}
    for key, d in replayed.dimms.items():
        at = d.flags.get(REPLACE)
        if at is None or not d.why.get(REPLACE):
            continue
        if (key in failures and at < failures[key]) if failed else key not in failures:
            counts[d.why[REPLACE][0]] = counts.get(d.why[REPLACE][0], 0) + 1
    return ", ".join(f"{rule} {n}" for rule, n in sorted(counts.items(), key=lambda x: -x[1]))


def progression_line(fleet: Fleet, replayed: Replay) -> str:
    """When the failing faults' progression first showed in the histories: the bound on
    the lead of any rule that waits for a fault to grow."""
    leads = sorted(fleet.spread_lead_s.values())
    with_ces = sum(1 for k in failure_times(fleet.tickets)
                   if fleet.failed_modes.get(k) != NO_PRECURSOR
                   and k in replayed.dimms and replayed.dimms[k].ces > 0)
    q = [quantile(leads, x) for x in (0.1, 0.5, 0.9)]
    days = ", ".join("-" if v is None else f"{v / DAY_S:.1f} d" for v in q)
    return (f"Progression in the histories: {len(leads)} failed DIMMs had a CE outside "
            f"their failing fault's footprint before the UE (of {with_ces} with CEs "
            f"before a UE from a fault); the first came p10 / median / p90 {days} before "
            "the UE — the earliest any growth rule can see it.")


def report(result: Evaluation, fleet: Fleet, replayed: Replay, args: argparse.Namespace,
           elapsed_s: float, cpu_s: float | None = None) -> str:
    rows = [result.score(r) for r in (level_rule(VerdictState.WATCH),
                                      level_rule(VerdictState.REPAIR), REPLACE,
                                      level_rule(VerdictState.REPLACE_NOW), MCELOG_RULE,
                                      RASDAEMON_RULE)]
    replace, mcelog = result.score(REPLACE), result.score(MCELOG_RULE)
    goals = [
        ("replace-level precision >= 0.8", (replace.precision or 0) >= 0.8),
        ("recall >= mcelog's", (replace.recall or 0) >= (mcelog.recall or 0)),
        ("median lead >= mcelog's", (replace.lead_h(0.5) or 0) >= (mcelog.lead_h(0.5) or 0)),
    ]
    lines = [
        f"`bench/verdict_truth.py --dimms {args.dimms} --days {args.days:g} --seed "
        f"{args.seed}`: {result.hosts} hosts, {result.dimms} DIMMs with errors "
        f"({result.extra['events']:,} events), {result.failures} failed DIMMs "
        f"({fleet.faults.get(NO_PRECURSOR, 0)} with no CE before the UE); "
        f"{fleet.capped} DIMM histories cut at {MAX_CE_RECORDS} CEs; "
        f"replayed in {elapsed_s:.0f} s{_replay_rate(result, elapsed_s, cpu_s)}.",
        "",
        "| rule | flagged | TP | FP | FN | precision | recall | median lead | p10 | p90 |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for s in rows:
        p10, p90 = s.lead_h(0.1), s.lead_h(0.9)
        name = s.name.replace("|", "\\|")  # mcelog's "CE | UE" inside a table cell
        lines.append(f"| {name} | {s.flagged} | {s.tp} | {s.fp} | {s.fn} | "
                     f"{_fmt(s.precision)} | {_fmt(s.recall)} | {_days(s)} | "
                     f"{'-' if p10 is None else f'{p10 / 24:.1f} d'} | "
                     f"{'-' if p90 is None else f'{p90 / 24:.1f} d'} |")
    lines += ["", "Goals: " + "; ".join(f"{name}: {'met' if ok else 'NOT met'}"
                                        for name, ok in goals),
              "", by_mode(fleet, replayed),
              "", "Replace-level FPs by the first rule the verdict cited: "
              + first_rules(replayed, failure_times(fleet.tickets)),
              "", "Replace-level TPs by the first rule the verdict cited: "
              + first_rules(replayed, failure_times(fleet.tickets), failed=True),
              "", progression_line(fleet, replayed),
              "", "Faults drawn: " + ", ".join(f"{k} {v}" for k, v in sorted(
                  fleet.faults.items(), key=lambda kv: -kv[1]))]
    return "\n".join(lines)


SECTION_START = "## Verdict truth"
FIGURES_START = "<!-- verdict-truth figures: written by bench/verdict_truth.py -->"
FIGURES_END = "<!-- end: verdict-truth figures -->"


def write_docs(figures: str) -> None:
    """Replace the figures block of the "Verdict truth" section (its prose stays), or
    append the section when docs/performance.md has none."""
    replace_figures(FIGURES_START, FIGURES_END, figures,
                    new_section=f"{SECTION_START}\n\n{{figures}}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dimms", type=int, default=10_000)
    p.add_argument("--days", type=float, default=730.0)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--write-docs", action="store_true",
                   help='replace the "Verdict truth" section of docs/performance.md')
    args = p.parse_args(argv)
    fleet = generate(args.dimms, args.days, args.seed)
    start, cpu = time.perf_counter(), time.process_time()
    result, replayed = evaluate(fleet.history, fleet.tickets)
    figures = report(result, fleet, replayed, args, time.perf_counter() - start,
                     time.process_time() - cpu)
    print(figures)
    if args.write_docs:
        write_docs(figures)
        print("wrote the Verdict truth section of docs/performance.md", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
