"""Fault-mode classification of one DIMM's errors: cell, row, column, bank… or random.

What it decides
    From the decoded locations of a DIMM's corrected errors (rank, bank group,
    bank, row, column; the physical address when that is all there is), which
    kind of DRAM fault most likely produced them, the rule that said so, and the
    evidence: rows/columns/banks/ranks touched, counts, first and last seen, and
    whether the DIMM is in a CE storm.

Structure: published rules, first match wins (dram-faults.md §2)
    ===================  ==========================================================
    rule id              fires when (defaults; all thresholds are tunables)
    ===================  ==========================================================
    srds22-socket        > socket_ce_min CEs and > 1 channel            -> controller
    sun-x4140/meza15     another DIMM on the same channel has >= peer_ce_min CEs
                         -> channel: suspect the controller or board, not this DIMM
    srds22-channel       > channel_ce_min CEs and > 1 (rank, bank)       -> rank if
                         > 1 rank, else multi-bank
    srds22-bank          one (rank, bank) with > bank_ce_min CEs and > 1 row -> bank
    srds22-row           one row with >= 2 distinct columns              -> row
    srds22-column        one column with >= 2 distinct rows              -> column
    srds22-cell          one cell repeats, min inter-arrival <= cell_interarrival_s
    memras-cell-repeat   one cell repeats at any spacing                 -> cell
    srds22-random        otherwise                                       -> random
    ===================  ==========================================================
    The SRDS'22 rules are Cheng et al.'s measurement.py (Alibaba, 258,993 servers).
    The peer rule is the Sun X4140 service rule ("if several DIMMs show CEs, rule
    out other causes first") and Meza et al. DSN'15 ("non-DRAM failures cause most
    errors"). memras-cell-repeat is memras's addition: a cell that errs every few
    hours is a stuck cell too, though SRDS'22 calls it random. A cell is
    (rank, bank group, bank, row, column); without a decoded row/column it is the
    physical address, so address-only sources still find repeating cells.
    Storm (SmartHW): > storm_run_min CEs in a row, each <= storm_gap_s after the
    previous, within the last storm_window_h; reported as a flag beside the mode.

Decay
    None here: the caller passes the DIMM's events inside its window (engine.py
    keeps ``window_h``, default 30 days), so old faults age out with the window.

Why not count thresholds alone
    Raw CE counts are Pareto-skewed and access-driven (mean ~55x median, Meza); the
    mode says what repair can work: a cell or row fault is contained by page
    offlining, a bank or rank fault is not (Sridharan: row/bank faults >= 80 %
    permanent).

Cost
    O(n) over the window's records with a few dicts; n is bounded by the engine's
    window and its per-DIMM record cap.
"""

from __future__ import annotations

import enum
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from memras.errors import UsageError
from memras.health.keys import event_time_s, time_of
from memras.health.tunables import Tunable, check_tunables
from memras.records import LocatedError

CLASSIFY_TUNABLES: dict[str, Tunable] = {
    "socket_ce_min": Tunable(1, 1000, 10**9, "SRDS'22 socket rule: more CEs than this"),
    "channel_ce_min": Tunable(1, 1000, 10**9, "SRDS'22 channel rule: more CEs than this"),
    "bank_ce_min": Tunable(1, 1000, 10**9, "SRDS'22 bank rule: more CEs in one bank"),
    "cell_interarrival_s": Tunable(1, 60, 86400, "SRDS'22 cell rule: repeat within (s)"),
    "peer_ce_min": Tunable(1, 10, 10**9, "CEs on another DIMM of the channel (Sun rule)"),
    "storm_run_min": Tunable(2, 10, 100000, "SmartHW storm: more CEs in a row than this"),
    "storm_gap_s": Tunable(1, 60, 3600, "SmartHW storm: max gap between them (s)"),
    "storm_window_h": Tunable(1, 120, 8760, "SmartHW storm: look-back window (h)"),
    "window_h": Tunable(1, 720, 8760, "events per DIMM the classifier looks at (h)"),
    # The newest events of a DIMM that classification looks at, at most. 4096 leaves the
    # CE minimums above (1000) four times their size; each kept event costs the watcher
    # ~180 bytes, so in a storm over four DIMMs the default holds ~3 MiB (20,000 held ~14
    # MiB and put the watcher's peak RSS at 2.1x idle).
    "window_events": Tunable(64, 4096, 10**6, "newest events per DIMM classified, at most"),
}


@dataclass(frozen=True, slots=True)
class ClassifyParams:
    socket_ce_min: int = CLASSIFY_TUNABLES["socket_ce_min"].default
    channel_ce_min: int = CLASSIFY_TUNABLES["channel_ce_min"].default
    bank_ce_min: int = CLASSIFY_TUNABLES["bank_ce_min"].default
    cell_interarrival_s: int = CLASSIFY_TUNABLES["cell_interarrival_s"].default
    peer_ce_min: int = CLASSIFY_TUNABLES["peer_ce_min"].default
    storm_run_min: int = CLASSIFY_TUNABLES["storm_run_min"].default
    storm_gap_s: int = CLASSIFY_TUNABLES["storm_gap_s"].default
    storm_window_h: int = CLASSIFY_TUNABLES["storm_window_h"].default
    window_h: int = CLASSIFY_TUNABLES["window_h"].default
    window_events: int = CLASSIFY_TUNABLES["window_events"].default

    @classmethod
    def from_mapping(cls, values: Mapping[str, object], where: str) -> ClassifyParams:
        params = cls(**check_tunables(CLASSIFY_TUNABLES, values, where))
        needed = max(params.bank_ce_min, params.channel_ce_min, params.socket_ce_min)
        if params.window_events <= needed:
            raise UsageError(f"{where} window_events = {params.window_events}: must exceed "
                             f"the largest CE minimum ({needed}), or those rules never fire")
        return params


class FaultMode(enum.StrEnum):
    NONE = "none"
    CELL = "cell"
    ROW = "row"
    COLUMN = "column"
    BANK = "bank"
    MULTI_BANK = "multi-bank"
    RANK = "rank"
    CHANNEL = "channel"
    CONTROLLER = "controller"
    RANDOM = "random"

    @property
    def contained(self) -> bool:
        """Whether offlining the affected pages can contain it (a cell or a row)."""
        return self in (FaultMode.CELL, FaultMode.ROW)


@dataclass(frozen=True, slots=True)
class FaultEvidence:
    ce_records: int = 0
    ce_count: int = 0  # sum of the records' error counts
    ue_count: int = 0
    rows: tuple[int, ...] = ()
    columns: tuple[int, ...] = ()
    banks: tuple[str, ...] = ()  # "rank.bankgroup.bank"
    ranks: tuple[int, ...] = ()
    devices: tuple[int, ...] = ()
    channels: tuple[str, ...] = ()
    pages: int = 0
    undecoded: int = 0  # CE records without row/column
    longest_storm_run: int = 0
    first_seen: datetime | None = None
    last_seen: datetime | None = None
    detail: str = ""  # e.g. "row 0x1a2f in bank 0.1.2: 2 columns"


@dataclass(frozen=True, slots=True)
class FaultClassification:
    mode: FaultMode
    rule: str
    evidence: FaultEvidence = field(default_factory=FaultEvidence)
    storm: bool = False

    @property
    def rules(self) -> tuple[str, ...]:
        return (self.rule, "storm") if self.storm else (self.rule,)


_BankKey = tuple[int | None, int | None, int | None]  # rank, bank group, bank
# a decoded cell (rank, bank group, bank, row, column), or ("addr", address) without one
_CellKey = tuple[int | None, int | None, int | None, int, int] | tuple[str, int]


def _bank_of(e: LocatedError) -> _BankKey:
    loc = e.location
    return (loc.rank, loc.bank_group, loc.bank)


def _bank_text(b: _BankKey) -> str:
    return ".".join("-" if x is None else str(x) for x in b)


def _cell_of(e: LocatedError) -> _CellKey | None:
    loc = e.location
    if loc.row is not None and loc.column is not None:
        return (*_bank_of(e), loc.row, loc.column)
    if e.address is not None:
        return ("addr", e.address)
    return None


def _channel_of(e: LocatedError) -> str | None:
    loc = e.location
    if loc.channel is None:
        return None
    return f"{loc.socket if loc.socket is not None else loc.mc}:{loc.channel}"


def longest_storm_run(times_s: Sequence[float], gap_s: float) -> int:
    """Longest run of records each at most ``gap_s`` after the previous one."""
    best = run = 0
    previous: float | None = None
    for t in times_s:
        run = run + 1 if previous is not None and t - previous <= gap_s else 1
        best = max(best, run)
        previous = t
    return best


def _evidence(ces: list[tuple[float, LocatedError]], ue_count: int,
              storm_run: int) -> FaultEvidence:
    def distinct(values: list[object]) -> tuple:
        return tuple(sorted({v for v in values if v is not None}))

    events = [e for _, e in ces]
    return FaultEvidence(
        ce_records=len(events),
        ce_count=sum(max(e.count, 1) for e in events),
        ue_count=ue_count,
        rows=distinct([e.location.row for e in events]),
        columns=distinct([e.location.column for e in events]),
        banks=tuple(sorted({_bank_text(_bank_of(e)) for e in events
                            if e.location.bank is not None})),
        ranks=distinct([e.location.rank for e in events]),
        devices=distinct([e.location.device for e in events]),
        channels=distinct([_channel_of(e) for e in events]),
        pages=len({e.page_address for e in events if e.page_address is not None}),
        undecoded=sum(1 for e in events if e.location.row is None or e.location.column is None),
        longest_storm_run=storm_run,
        first_seen=time_of(ces[0][0]) if ces else None,
        last_seen=time_of(ces[-1][0]) if ces else None,
    )


def classify_dimm(events: Sequence[LocatedError], params: ClassifyParams = ClassifyParams(),
                  *, peer_ces_on_channel: int = 0) -> FaultClassification:
    """Classify one DIMM from its events (any order; events without a time are ignored).

    ``peer_ces_on_channel`` is the largest CE count of any *other* DIMM on the same
    channel in the same window (the engine knows the neighbours; this stays pure).
    """
    timed = sorted(((t, e) for e in events if (t := event_time_s(e)) is not None),
                   key=lambda te: te[0])
    ces = [(t, e) for t, e in timed if not e.error_type.is_uncorrected]
    ue_count = sum(max(e.count, 1) for _, e in timed if e.error_type.is_uncorrected)
    storm_run = 0
    if ces:
        horizon = ces[-1][0] - params.storm_window_h * 3600
        storm_run = longest_storm_run([t for t, _ in ces if t >= horizon], params.storm_gap_s)
    evidence = _evidence(ces, ue_count, storm_run)
    storm = storm_run > params.storm_run_min
    mode, rule, detail = _first_matching_rule(ces, evidence, params, peer_ces_on_channel)
    evidence = _with_detail(evidence, detail)
    return FaultClassification(mode, rule, evidence, storm)


def _with_detail(ev: FaultEvidence, detail: str) -> FaultEvidence:
    from dataclasses import replace

    return replace(ev, detail=detail)


def _first_matching_rule(ces: list[tuple[float, LocatedError]], ev: FaultEvidence,
                         p: ClassifyParams, peer_ces: int) -> tuple[FaultMode, str, str]:
    if not ces:
        return FaultMode.NONE, "no-ce", "no corrected errors in the window"
    total = ev.ce_count
    if total > p.socket_ce_min and len(ev.channels) > 1:
        return (FaultMode.CONTROLLER, "srds22-socket",
                f"{total} CEs over {len(ev.channels)} channels")
    if peer_ces >= p.peer_ce_min:
        return (FaultMode.CHANNEL, "sun-x4140-several-dimms",
                f"another DIMM on this channel has {peer_ces} CEs: suspect the memory "
                "controller, channel or board before this DIMM (Sun X4140, Meza DSN'15)")
    rank_banks = {_bank_of(e) for _, e in ces if e.location.bank is not None}
    if total > p.channel_ce_min and len(rank_banks) > 1:
        mode = FaultMode.RANK if len(ev.ranks) > 1 else FaultMode.MULTI_BANK
        return mode, "srds22-channel", f"{total} CEs over {len(rank_banks)} (rank, bank) pairs"
    found = _bank_rule(ces, p) or _line_rule(ces, "row") or _line_rule(ces, "column")
    if found:
        return found
    return _cell_rule(ces, p)


def _bank_rule(ces: list[tuple[float, LocatedError]],
               p: ClassifyParams) -> tuple[FaultMode, str, str] | None:
    counts: dict[_BankKey, int] = defaultdict(int)
    rows: dict[_BankKey, set[int]] = defaultdict(set)
    for _, e in ces:
        if e.location.bank is None:
            continue
        counts[_bank_of(e)] += max(e.count, 1)
        if e.location.row is not None:
            rows[_bank_of(e)].add(e.location.row)
    for bank, n in sorted(counts.items(), key=lambda kv: -kv[1]):
        if n > p.bank_ce_min and len(rows[bank]) > 1:
            return (FaultMode.BANK, "srds22-bank",
                    f"bank {_bank_text(bank)}: {n} CEs over {len(rows[bank])} rows")
    return None


def _line_rule(ces: list[tuple[float, LocatedError]],
               line: str) -> tuple[FaultMode, str, str] | None:
    """srds22-row (a row with >= 2 columns) or srds22-column (a column with >= 2 rows)."""
    other = "column" if line == "row" else "row"
    spread: dict[tuple[int | None, int | None, int | None, int], set[int]] = defaultdict(set)
    for _, e in ces:
        at, across = getattr(e.location, line), getattr(e.location, other)
        if at is not None and across is not None:
            spread[(*_bank_of(e), at)].add(across)
    for key, values in sorted(spread.items(), key=lambda kv: -len(kv[1])):
        if len(values) >= 2:
            mode = FaultMode.ROW if line == "row" else FaultMode.COLUMN
            return (mode, f"srds22-{line}",
                    f"{line} {key[-1]:#x} in bank {_bank_text(key[:3])}: "
                    f"{len(values)} distinct {other}s")
    return None


def _cell_rule(ces: list[tuple[float, LocatedError]],
               p: ClassifyParams) -> tuple[FaultMode, str, str]:
    last_seen: dict[_CellKey, float] = {}
    min_gap: dict[_CellKey, float] = {}
    for t, e in ces:
        cell = _cell_of(e)
        if cell is None:
            continue
        if cell in last_seen:
            gap = t - last_seen[cell]
            min_gap[cell] = min(gap, min_gap.get(cell, gap))
        last_seen[cell] = t
    if min_gap:
        cell, gap = min(min_gap.items(), key=lambda kv: kv[1])
        where = _cell_text(cell)
        if gap <= p.cell_interarrival_s:
            return FaultMode.CELL, "srds22-cell", f"{where} repeated {gap:.0f} s apart"
        return FaultMode.CELL, "memras-cell-repeat", f"{where} repeated ({gap:.0f} s apart)"
    return FaultMode.RANDOM, "srds22-random", "no repeating cell, row, column or bank"


def _cell_text(cell: _CellKey) -> str:
    if len(cell) == 2:  # ("addr", address)
        return f"address {cell[1]:#x}"
    rank, bg, bank, row, col = cell
    return f"cell row {row:#x} column {col:#x} in bank {_bank_text((rank, bg, bank))}"
