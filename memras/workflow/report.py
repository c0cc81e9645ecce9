"""A printable one-page report of one replacement, as plain text or Markdown.

Built from the replacement's row and its audit entries (so it shows what was recorded,
not what the machine looks like now), with the chain's verification result at the end.
"""

from __future__ import annotations

import textwrap
from datetime import datetime
from typing import TYPE_CHECKING, Any

from memras.audit.service import AuditEntry, AuditTrail, store_session
from memras.errors import UsageError
from memras.text import escape, format_bytes
from memras.workflow.models import ReplacementRow

if TYPE_CHECKING:
    from memras.store.store import Store

REPORT_FORMATS = ("text", "markdown")


def _when(t: datetime | None) -> str:
    return f"{t:%Y-%m-%d %H:%M:%S} UTC" if t else "-"


def _took(row: ReplacementRow) -> str:
    if not row.finished_at:
        return "not finished"
    seconds = int((row.finished_at - row.created_at).total_seconds())
    return f"{seconds // 60} min {seconds % 60} s" if seconds >= 60 else f"{seconds} s"


def _facts(row: ReplacementRow) -> list[tuple[str, str]]:
    """What, where, who, when: the change record's header."""
    target = (row.target or {}).get("target", {})
    new = row.new_identity or {}
    slot = target.get("locator") or target.get("label") or row.dimm_label or row.dimm_id
    other = [x for x in (target.get("label") or row.dimm_label, row.dimm_id) if x and x != slot]
    blocks = target.get("blocks", [])
    size = format_bytes(len(blocks) * int(target.get("block_size") or 0)) if blocks else ""
    return [
        ("What", f"replace the memory module in slot {slot}"
                 + (f" ({', '.join(other)})" if other else "")),
        ("Outcome", row.state + (f": {row.error}" if row.error else "")),
        ("Host", row.host),
        ("Where", f"slot {slot}, ACPI device {target.get('acpi_device') or '-'}, "
                  f"{_blocks(blocks)}" + (f", {size}" if size else "")),
        ("Who", f"{row.operator or '-'} (account {row.user}, uid {row.uid})"),
        ("When", f"{_when(row.created_at)} to {_when(row.finished_at)} ({_took(row)})"),
        ("Backend", row.backend),
        ("Old module", f"serial {target.get('serial') or '-'}, part {target.get('part') or '-'}"),
        ("New module", f"serial {new.get('serial') or '-'}, part {new.get('part') or '-'}"),
    ]


def _blocks(blocks: list[int]) -> str:
    return (f"blocks memory{blocks[0]}-memory{blocks[-1]} ({len(blocks)})" if blocks
            else "no blocks")


def _why(verdict: dict[str, Any] | None) -> list[tuple[str, str]]:
    """The health verdict at decision time and the evidence it rested on."""
    if not verdict:
        return [("Verdict", "none recorded (replaced without a health verdict)")]
    ev = verdict.get("evidence") or {}
    facts = [("Verdict", f"{verdict.get('state', '?')} (rules: "
                         f"{', '.join(verdict.get('rules', [])) or '-'})")]
    if ev:
        facts.append(("Errors", f"{ev.get('ce_count', 0)} corrected, {ev.get('ue_count', 0)} "
                                f"uncorrected; first {ev.get('first_seen') or '-'}, "
                                f"last {ev.get('last_seen') or '-'}"))
        if ev.get("fault_mode"):
            facts.append(("Fault", f"{ev['fault_mode']} ({ev.get('fault_rule') or '-'}): "
                                   f"{ev.get('detail') or '-'}"))
        if ev.get("thresholds_crossed"):
            facts.append(("Thresholds", ", ".join(ev["thresholds_crossed"])))
    return facts


def _checks(entries: list[AuditEntry]) -> list[str]:
    return [f"{'PASS' if c.get('ok') else 'FAIL'} {c.get('name', '?')}: {c.get('detail', '')}"
            for e in entries if e.action == "preflight" for c in e.data.get("checks", [])]


def render_report(store: Store, replacement_id: int, fmt: str = "text", *,
                  width: int = 80) -> str:
    """The printable change record: what, where, who, when, why (the verdict and its
    evidence), every step with its time, duration and outcome, the preflight checks,
    the verification, and the audit chain's state and head; wrapped at ``width``."""
    if fmt not in REPORT_FORMATS:
        raise UsageError(f"unknown report format {fmt!r}", hint="use text or markdown")
    with store_session(store) as s:
        row = s.get(ReplacementRow, replacement_id)
        if row is None:
            raise UsageError(f"no replacement #{replacement_id}",
                             hint="`memras audit list` shows replacement ids")
        s.expunge(row)
    trail = AuditTrail(store)
    entries = trail.list(replacement_id=replacement_id)
    chain = trail.verify()
    verdict = next((e.data.get("verdict") for e in entries if e.action == "select"), None)
    md = fmt == "markdown"
    width = max(width, 40)

    def para(head: str, text: str, hang: str) -> list[str]:
        return textwrap.wrap(escape(f"{head}{text}"), width=width, subsequent_indent=hang,
                             break_on_hyphens=False, break_long_words=True) or [head]

    def section(title: str) -> list[str]:
        return ["", f"## {title}" if md else title, "" if md else "-" * len(title)]

    def facts(pairs: list[tuple[str, str]]) -> list[str]:
        key_w = max(len(k) for k, _ in pairs) + 2
        out: list[str] = []
        for key, value in pairs:
            out += (para(f"- **{key}:** ", value, "  ") if md
                    else para(f"{key + ':':<{key_w}}", value, " " * key_w))
        return out

    def items(texts: list[str]) -> list[str]:
        return [line for t in texts for line in para("- ", t, "  ")] or ["- none"]

    title = f"Memory replacement report #{row.id}" if md else (
        f"MEMORY REPLACEMENT REPORT #{row.id}")
    lines = [f"# {title}" if md else title, "" if md else "=" * len(title)]
    lines += facts(_facts(row))
    lines += section("Why: the verdict at decision time") + facts(_why(verdict))
    if verdict and verdict.get("reasons"):
        lines += ["", "Reasons:" if not md else "Reasons:"] + items(
            [str(r) for r in verdict["reasons"]])
    lines += section("Steps (UTC, seconds, outcome)")
    for e in entries:
        secs = e.data.get("seconds")
        head = (f"{e.time[11:19]}  {e.action:<19} {str(e.data.get('outcome') or '-'):<7} "
                f"{'' if secs is None else f'{float(secs):.1f} s':>7}  ")
        detail = str(e.data.get("message") or e.data.get("error") or "")
        lines += para(("- " if md else "") + head, detail, " " * (10 + (2 if md else 0)))
    lines += section("Checks before the change") + items(_checks(entries))
    verify = [e for e in entries if e.action == "verify"]
    lines += section("Verification") + items(
        [f"{e.data.get('outcome') or '-'}: {e.data.get('message') or e.data.get('error') or ''}"
         for e in verify] or ["not verified: the replacement did not reach the verify step"])
    integrity = ("intact" if chain.ok
                 else "NOT intact: " + "; ".join(str(p) for p in chain.problems))
    lines += section("Audit trail") + facts([
        ("Entries", f"{len(entries)} for this replacement, {chain.rows} in the trail"),
        ("Chain", integrity),
        ("Head", chain.last_hash or "-"),
        ("Check", "memras audit verify --expect-head HEAD"),
    ])
    lines += ["", "Approved by: ______________________  Date: ____________", "",
              "Performed by: _____________________  Date: ____________"]
    return "\n".join(lines) + "\n"
