"""Every rule a verdict can cite: one table, which the user guide renders and tests check.

A verdict's ``rules`` name what fired (``mcelog-dimm-ce-10/24h``, ``srds22-column``,
``sticky``…). An operator who reads one must be able to look it up, so each rule the
engine, the classifier or the verdict can emit has a row here: its id, where it comes
from, what it means, its default and the config key that tunes it. docs/user-guide.md
holds :func:`rules_markdown` verbatim between its ``rules-table`` markers
(tests/unit/health/test_rules_table.py fails when either side drifts), and ids with
a number in them (thresholds, the Sun rule) match their ``family`` when a site
changes the number.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Rule:
    id: str  # as emitted with the default configuration
    source: str
    meaning: str
    default: str = "-"
    config: str = "-"
    family: str = ""  # a regex for the ids the same rule takes with other settings

    def matches(self, rule_id: str) -> bool:
        return rule_id == self.id or bool(self.family and re.fullmatch(self.family, rule_id))


_AGE = r"\d+[kmg]?/\d+[mhd]?"

RULES: tuple[Rule, ...] = (
    Rule("ue", "Google, Jaguar, Cielo, Cisco replace on a UE",
         "an uncorrected error from any source (EDAC, MCE, GHES, memory_failure) -> replace-now"),
    Rule("mcelog-dimm-ce-10/24h", "mcelog.conf [dimm] ce-error-threshold",
         "the DIMM's CE bucket overflowed; the fault mode picks the verdict: watch for "
         "no local fault, repair for a cell, row, column or bank fault (a count alone does "
         "not predict a UE: Meza DSN'15) and, by default, for a multi-bank or rank fault "
         "([verdict.modes] sets each mode's state)",
         "10 / 24h", "[thresholds.dimm] ce"),
    Rule("mcelog-dimm-ue-1/24h", "mcelog.conf [dimm] uc-error-threshold",
         "the DIMM's UE bucket overflowed", "1 / 24h", "[thresholds.dimm] ue"),
    Rule("mcelog-socket-ce-100/24h", "mcelog.conf [socket] mem-ce-error-threshold",
         "the socket's CE bucket overflowed -> watch", "100 / 24h", "[thresholds.socket] ce"),
    Rule("mcelog-socket-ue-100/24h", "mcelog.conf [socket] mem-uc-error-threshold",
         "the socket's UE bucket overflowed -> watch", "100 / 24h", "[thresholds.socket] ue"),
    Rule("mcelog-page-ce-2/24h", "mcelog.conf [page] memory-ce-threshold (since 2022)",
         "a 4 KiB page's CE bucket overflowed: the page is offlined -> repair",
         "2 / 24h", "[thresholds.page] ce"),
    Rule("rasdaemon-row-ce-50/24h", "rasdaemon ROW_CE_THRESHOLD",
         "a DRAM row's CE bucket overflowed -> repair", "50 / 24h", "[thresholds.row] ce"),
    Rule("intel-rank-ce-10/24h", "Intel server boards' per-rank CE threshold",
         "a rank's CE bucket overflowed -> watch", "10 / 24h", "[thresholds.rank] ce"),
    Rule("site-SCOPE-ce-N/T", "your memras.toml",
         "a threshold you set (any scope: dimm, socket, page, row, rank, bank, host; ce or "
         "ue); bank and host are off unless set", "off (bank, host)", "[thresholds.SCOPE]",
         rf"site-(dimm|socket|page|row|rank|bank|host)-(ce|ue)-{_AGE}"),
    Rule("sun-x4140-24/24h", "Sun X4140 service manual",
         "more CEs in 24 h on this DIMM than the limit while no other DIMM has CEs -> "
         "watch: a count alone does not predict a UE (Meza DSN'15); CEs at offlined "
         "pages do not count",
         "24", "[verdict] sun_ce_per_24h", r"sun-x4140-\d+/24h"),
    Rule("srds22-cell", "Alibaba SRDS'22 (Cheng et al.) cell rule",
         "one cell repeats within the inter-arrival limit: a cell fault -> repair",
         "60 s", "[classify] cell_interarrival_s"),
    Rule("memras-cell-repeat", "memras",
         "one cell repeats, further apart: a stuck cell too -> repair"),
    Rule("srds22-row", "SRDS'22 row rule; Sridharan SC'12 modes",
         "the strongest explanation is one row with >= 2 columns -> repair",
         "chance < 10^-3", "[classify] min_strength"),
    Rule("srds22-column", "SRDS'22 column rule; Sridharan SC'12 modes",
         "the strongest explanation is one column with >= 2 rows -> repair once past "
         "the DIMM threshold",
         "chance < 10^-3", "[classify] min_strength"),
    Rule("srds22-bank", "SRDS'22 bank rule; Sridharan SC'12 modes",
         "the strongest explanation is one bank, errors over >= 2 rows and >= 2 columns "
         "-> repair once past the DIMM threshold",
         "> 1 CE, chance < 10^-3", "[classify] bank_ce_min, min_strength"),
    Rule("memras-multi-bank", "memras; Sridharan SC'12 multi-bank/multi-rank modes",
         "the strongest explanation is a set of >= 2 banks (rank mode when they span "
         "ranks); once its errors span more than a day, the [verdict.modes] state of its "
         "mode: repair by default (a stable wide fault; replaced when it grows), "
         "replace-at-next-maintenance if set (faults across banks or ranks cause most UEs "
         "under chipkill/SDDC, Sridharan SC'12)",
         "chance < 10^-3; repair", "[classify] min_strength; [verdict.modes] multi-bank, rank"),
    Rule("memras-device", "memras; Sridharan SC'12 (faults per DRAM device)",
         "most CEs from one DRAM device (when the source names it), over >= 2 banks: a "
         "multi-bank fault, rank when they span ranks; once its errors span more than a "
         "day, the [verdict.modes] state of its mode, as memras-multi-bank (watch before: "
         "maybe one transient burst)",
         "chance < 10^-3; repair", "[classify] min_strength; [verdict.modes] multi-bank, rank"),
    Rule("srds22-channel", "SRDS'22 channel rule",
         "no local pattern, but more CEs than the limit over > 1 (rank, bank): a "
         "multi-bank or rank fault -> the [verdict.modes] state of its mode, as "
         "memras-multi-bank",
         "1000", "[classify] channel_ce_min"),
    Rule("srds22-socket", "SRDS'22 socket rule",
         "more CEs than the limit over > 1 channel: the controller", "1000",
         "[classify] socket_ce_min"),
    Rule("sun-x4140-several-dimms", "Sun X4140; Meza et al. DSN'15",
         "no local pattern, and another DIMM on the channel errs: suspect the controller, "
         "channel or board first -> watch", "10", "[classify] peer_ce_min"),
    Rule("srds22-random", "SRDS'22",
         "no cell, row, column or bank holds more errors than chance would -> watch"),
    Rule("no-ce", "memras", "no corrected errors in the window (UEs only)"),
    Rule("storm", "SmartHW (Huawei) CE storm feature",
         "more CEs than the limit in a row, each within the gap; repair for a cell or row "
         "fault, else the [verdict] storm state", "10, 60 s, 120 h",
         "[classify] storm_run_min, storm_gap_s, storm_window_h; [verdict] storm"),
    Rule("memras-fault-growing", "memras; Sridharan SC'12 (UEs come from faults that "
         "progress), Li SC'22 (risky CEs precede UEs)",
         "after a fault was established, CEs at >= N new places next to it (cells of its "
         "bank for a cell/row/column fault, banks of its rank for a bank fault, the other "
         "rank for a multi-bank fault, another DRAM device of its ranks for a device "
         "fault: beyond chipkill/SDDC's one device) -> replace-at-next-maintenance", "2",
         "[classify] spread_min"),
    Rule("memras-rate-growing", "memras; Sridharan SC'12 (UEs come from faults that "
         "progress), SmartHW's 120 h window",
         "an established fault's erring hours (hours with a CE) in the last window are at "
         "least N times its rate before it in the classifier window, beyond chance for a "
         "steady rate (binomial, < 10^-S), with at least a window's history "
         "before -> watch (evidence beside the verdict: on the verdict-truth fleets it "
         "never flagged a failing DIMM before memras-fault-growing did)", "120 h, N 4, S 8",
         "[classify] rate_window_h, rate_growth_min, rate_min_strength"),
    Rule("memras-erring-after-offline", "memras; Hwang et al. ASPLOS'12 (page retirement)",
         "a cell or row fault keeps erring (>= N CE records) at pages not offlined after "
         "M of its pages were (a DDR4 row is two 4 KiB pages): offlining does not contain "
         "it -> replace-at-next-maintenance", "N 2, M 2",
         "[classify] spread_min, offlined_pages_min"),
    Rule("memras-page-offlined", "memras; Hwang et al. ASPLOS'12 (page retirement)",
         "CEs at pages offlined since: contained -> repair; not counted in rates or storms",
         "-", "[page] action"),
    Rule("ce-seen", "memras", "CEs and nothing else fired -> watch"),
    Rule("no-errors", "memras", "nothing in the window -> ok"),
    Rule("sticky", "Schroeder et al. CACM'11 (CEs cluster in time)",
         "a replace verdict stays until the module is replaced (not for a cell or row fault "
         "judged replace by its rate alone, once its pages are offlined)", "true",
         "[verdict] sticky"),
    Rule("replaced", "memras module registry",
         "the module was replaced; the new one starts with no history -> ok"),
    Rule("cxl-fatal-log", "CXL 3.0 r8.2.9.2.2 event log types (rasdaemon ras-cxl-handler.c)",
         "the CXL memdev put a record in its Fatal event log -> replace-now"),
    Rule("cxl-failure-log", "CXL 3.0 r8.2.9.2.2 event log types (rasdaemon ras-cxl-handler.c)",
         "the CXL memdev put a record in its Failure event log -> "
         "replace-at-next-maintenance"),
    Rule("cxl-replacement-needed", "CXL 3.0 Table 8-42 record flags; CXL 3.1 Table 8-133 health "
         "status", "the memdev set HARDWARE_REPLACEMENT_NEEDED (a record) or "
         "REPLACEMENT_NEEDED (its health status) -> replace-now"),
    Rule("cxl-maintenance-needed", "CXL 3.0 Table 8-42; CXL 3.1 Table 8-133",
         "the memdev says it needs maintenance -> watch"),
    Rule("cxl-performance-degraded", "CXL 3.0 Table 8-42; CXL 3.1 Table 8-133",
         "the memdev reports degraded performance -> watch"),
    Rule("cxl-life-used-90", "CXL 3.1 Table 8-133 (life used)",
         "the memdev's own life-used percentage reached the limit -> "
         "replace-at-next-maintenance", "90 %", "-", r"cxl-life-used-\d+"),
    Rule("cxl-media-data-lost", "CXL 3.1 Table 8-133 (media status)",
         "the memdev's media status says data or write persistence is lost -> replace-now"),
    Rule("cxl-dirty-shutdown", "CXL 3.1 Table 8-133 (dirty shutdown count)",
         "the memdev's dirty shutdown count rose between two health records -> watch"),
    Rule("cxl-poison", "the kernel's cxl_poison event (the device's poison list)",
         "the memdev lists or was injected with poisoned media -> repair-by-page-offlining "
         "(its pages in online system RAM are hard-offlined by the watcher)", "-",
         "[page] action"),
    Rule("cxl-poison-spread", "memras; Hwang et al. ASPLOS'12 (page retirement), as "
         "memras-erring-after-offline",
         "the memdev's poison list covers at least M + N distinct 4 KiB pages of its media "
         "(cleared ones not counted): retiring pages does not contain it -> "
         "replace-at-next-maintenance", "M 2 + N 2",
         "[classify] offlined_pages_min, spread_min"),
    Rule("cxl-poison-overflow", "the kernel's cxl_poison flags (drivers/cxl/core/trace.h: "
         "More, Overflow, Scanning)",
         "the memdev's poison list overflowed: poison it no longer lists cannot be taken out "
         "of service -> replace-at-next-maintenance"),
)


def rule_for(rule_id: str) -> Rule | None:
    """The table row an emitted rule id belongs to, or None if it is undocumented."""
    return next((r for r in RULES if r.matches(rule_id)), None)


def rules_markdown() -> str:
    """The table docs/user-guide.md carries verbatim."""
    lines = ["| rule | source | meaning | default | config key |",
             "|---|---|---|---|---|"]
    lines += [f"| `{r.id}` | {r.source} | {r.meaning} | {r.default} | {r.config} |"
              for r in RULES]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":  # regenerate the user guide's table: python -m memras.health.rules
    print(rules_markdown(), end="")
