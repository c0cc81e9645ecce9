"""A printable one-page report of one replacement, as plain text or Markdown.

Built from the replacement's row and its audit entries (so it shows what was recorded,
not what the machine looks like now), with the chain's verification result at the end.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from memras.audit.service import AuditTrail, store_session
from memras.errors import UsageError
from memras.text import escape
from memras.workflow.models import ReplacementRow

if TYPE_CHECKING:
    from memras.store.store import Store

REPORT_FORMATS = ("text", "markdown")


def _facts(row: ReplacementRow) -> list[tuple[str, str]]:
    target = (row.target or {}).get("target", {})
    new = row.new_identity or {}
    return [
        ("Replacement", f"#{row.id}"), ("Outcome", row.state),
        ("Host", row.host), ("Operator", row.operator or "-"),
        ("Account", f"{row.user} (uid {row.uid})"), ("Backend", row.backend),
        ("Started", f"{row.created_at:%Y-%m-%d %H:%M:%S} UTC"),
        ("Finished", f"{row.finished_at:%Y-%m-%d %H:%M:%S} UTC" if row.finished_at else "-"),
        ("Old module", f"{target.get('label', '')} locator {target.get('locator') or '-'} "
                       f"serial {target.get('serial') or '-'} part {target.get('part') or '-'}"),
        ("Blocks", _blocks(target.get("blocks", []))),
        ("New module", f"serial {new.get('serial') or '-'} part {new.get('part') or '-'}"),
        ("Error", row.error or "-"),
    ]


def _blocks(blocks: list[int]) -> str:
    return f"memory{blocks[0]}-memory{blocks[-1]} ({len(blocks)})" if blocks else "-"


def render_report(store: Store, replacement_id: int, fmt: str = "text") -> str:
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
    steps = [(e.time[11:19], e.action, str(e.data.get("outcome", "")),
              str(e.data.get("seconds", "")), str(e.data.get("message") or
                                                  e.data.get("error") or ""))
             for e in entries]
    integrity = "intact" if chain.ok else "; ".join(str(p) for p in chain.problems)
    md = fmt == "markdown"
    lines = [f"# Memory replacement report #{row.id}" if md
             else f"MEMORY REPLACEMENT REPORT #{row.id}", ""]
    for key, value in _facts(row):
        lines.append(f"- **{key}:** {escape(value)}" if md else f"{key:<12} {escape(value)}")
    lines += ["", "## Verdict at decision time" if md else "Verdict at decision time:",
              escape(str(verdict)) if verdict else "(no health verdict recorded)", "",
              "## Steps" if md else "Steps:"]
    if md:
        lines += ["| time | step | outcome | s | detail |", "|---|---|---|---|---|"]
        lines += [f"| {' | '.join(escape(c).replace('|', '/') for c in st)} |" for st in steps]
    else:
        lines += [f"  {t} {a:<20} {o:<7} {sec:>7}  {escape(d)[:60]}" for t, a, o, sec, d in steps]
    lines += ["", f"Audit trail: {len(entries)} entries; chain {integrity} "
              f"(head {chain.last_hash[:16]}…)", "",
              "Signature: ______________________   Date: ____________"]
    return "\n".join(lines) + "\n"
