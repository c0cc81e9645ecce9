"""``memras audit list|show ID|export --format json|csv|verify|report ID``."""

from __future__ import annotations

import argparse
import textwrap
from pathlib import Path

from memras.audit.service import Actor, AuditTrail
from memras.cli import add_global_options, command
from memras.cli.context import Context
from memras.cli.options import add_operator
from memras.errors import UsageError
from memras.store import Store
from memras.text import escape, readable_lines
from memras.workflow.audit_facts import recorded_replacements
from memras.workflow.report import render_report


def _args(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="action", metavar="ACTION")
    ls = sub.add_parser("list", help="audit entries, oldest first")
    ls.add_argument("--replacement", type=int, help="only this replacement's entries")
    ls.add_argument("--limit", type=int, help="only the last N entries")
    show = sub.add_parser("show", help="one entry in full")
    show.add_argument("id", type=int)
    exp = sub.add_parser("export", help="all entries as JSON or CSV on stdout")
    exp.add_argument("--format", default="json", help="json | csv")
    exp.add_argument("--replacement", type=int)
    ver = sub.add_parser("verify", help="check the chain, its anchor and the replacements; "
                                        "exit 1 unless proven intact")
    ver.add_argument("--expect-head", help="the head hash you recorded elsewhere")
    ver.add_argument("--anchor-file", type=Path,
                     help="compare with this anchor file (a copy) instead of the configured one")
    seal = sub.add_parser("seal", help="append a row that anchors the head now (keyed, "
                                       "when [audit] key_file is set)")
    seal.add_argument("--reason", default="sealed by hand",
                      help="why (e.g. 'key configured'); recorded in the row")
    add_operator(seal)
    rep = sub.add_parser("report", help="printable one-page report of a replacement")
    rep.add_argument("id", type=int, help="replacement id")
    rep.add_argument("--format", default="text", help="text | markdown")
    for sp in (ls, show, exp, ver, seal, rep):  # --json/--db also after the action
        add_global_options(sp, suppress=True)


@command("audit", "the tamper-evident audit trail of replacements")(_args)
def run(args: argparse.Namespace, ctx: Context) -> int:
    action = getattr(args, "action", None) or "list"
    if action == "seal":
        return _seal(ctx, args)
    store = ctx.store()  # read-only: reading creates nothing, not even a dropped table
    trail = AuditTrail.configured(store, ctx.config, database=ctx.db)
    if action == "list":
        entries = trail.list(replacement_id=getattr(args, "replacement", None),
                             limit=getattr(args, "limit", None))
        if ctx.json:
            ctx.emit_json([e.as_dict() for e in entries])
            return 0
        ctx.table(["ID", "TIME", "REPL", "ACTION", "OUTCOME", "WHO", "DETAIL"],
                  [[e.seq, e.time[:19], e.replacement_id, e.action,
                    e.data.get("outcome", ""),
                    e.actor.get("operator") or e.actor.get("user"),
                    str(e.data.get("message") or e.data.get("error") or "")[:60]]
                   for e in entries], right=["ID", "REPL"])
        return 0
    if action == "show":
        entry = trail.show(args.id)
        if ctx.json:
            ctx.emit_json(entry.as_dict())
        else:  # key: value lines, nested data indented, wrapped at the terminal
            for line in readable_lines(entry.as_dict(), ctx.width):
                ctx.print(line)
        return 0
    if action == "export":
        ctx.out.write(trail.export(args.format, replacement_id=args.replacement))
        return 0
    if action == "verify":
        return _verify(ctx, trail, store, args)
    if action == "report":
        text = render_report(store, args.id, args.format, width=ctx.width)
        if ctx.json:
            ctx.emit_json({"replacement": args.id, "format": args.format, "report": text})
        else:
            ctx.out.write(text)
        return 0
    raise UsageError(f"unknown audit action {action!r}")


def _verify(ctx: Context, trail: AuditTrail, store: Store, args: argparse.Namespace) -> int:
    """Exit 0 only when every check ran and passed; a row that cannot be checked (an
    HMAC row without the key) is exit 1 too: never "intact" unproven."""
    report = trail.verify(expect_head=args.expect_head,
                          replacements=recorded_replacements(store),
                          anchor_file=args.anchor_file)
    if ctx.json:
        ctx.emit_json({"ok": report.ok, "rows": report.rows, "head": report.last_hash,
                       "chain": list(report.algorithms), "anchor": report.anchor,
                       "problems": [{"kind": p.kind, "row": p.seq, "detail": p.detail}
                                    for p in report.problems],
                       "warnings": list(report.warnings)})
        return 0 if report.ok else 1
    for p in report.problems:
        label = "CANNOT CHECK" if p.kind == "unverifiable" else "TAMPERED"
        ctx.print(escape(f"{label} {p}"))
    for warning in report.warnings:
        ctx.print(escape(f"WARNING {warning}"))
    chain = "+".join(report.algorithms) or "empty"
    anchor = report.anchor or "not checked"
    if report.ok:
        state = "intact"
    elif all(p.kind == "unverifiable" for p in report.problems):
        state = "NOT VERIFIED (no key)"
    else:
        state = f"NOT intact, {len(report.problems)} problem(s)"
    text = escape(f"audit trail {state}: {report.rows} rows ({chain}), head "
                  f"{report.last_hash}; anchor {anchor}")
    for line in textwrap.wrap(text, width=ctx.width, subsequent_indent="  ",
                              break_on_hyphens=False):
        ctx.print(line)
    return 0 if report.ok else 1


def _seal(ctx: Context, args: argparse.Namespace) -> int:
    """One ``audit.seal`` row: keys the head after a key is configured, re-anchors it
    after a crash between a commit and its anchor. It proves nothing about the rows
    before it: run `memras audit verify` first."""
    with ctx.store(write=True) as store:
        trail = AuditTrail.configured(store, ctx.config, database=ctx.db)
        entry = trail.append("audit.seal", {"reason": args.reason},
                             actor=Actor.current(args.operator))
    if ctx.json:
        ctx.emit_json(entry.as_dict())
    else:
        alg = entry.chain.get("alg", "sha256")
        ctx.print(f"sealed: row {entry.seq} ({alg}), head {entry.hash}; anchored to "
                  f"{trail.anchor_file or 'no file'}")
    return 0
