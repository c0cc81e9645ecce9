"""``memras audit list|show ID|export --format json|csv|verify|report ID``."""

from __future__ import annotations

import argparse

from memras.audit.service import AuditTrail
from memras.cli import add_global_options, command
from memras.cli.context import Context
from memras.errors import UsageError
from memras.store import Store
from memras.text import escape
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
    ver = sub.add_parser("verify", help="check the hash chain; exit 1 if tampered")
    ver.add_argument("--expect-head", help="the head hash you recorded elsewhere")
    rep = sub.add_parser("report", help="printable one-page report of a replacement")
    rep.add_argument("id", type=int, help="replacement id")
    rep.add_argument("--format", default="text", help="text | markdown")
    for sp in (ls, show, exp, ver, rep):  # --json/--db also after the action
        add_global_options(sp, suppress=True)


@command("audit", "the tamper-evident audit trail of replacements")(_args)
def run(args: argparse.Namespace, ctx: Context) -> int:
    action = getattr(args, "action", None) or "list"
    store = Store.open(ctx.db)
    trail = AuditTrail(store)
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
        else:
            for key, value in entry.as_dict().items():
                ctx.print(f"{key:<15} {escape(str(value))}")
        return 0
    if action == "export":
        ctx.out.write(trail.export(args.format, replacement_id=args.replacement))
        return 0
    if action == "verify":
        report = trail.verify(expect_head=args.expect_head)
        if ctx.json:
            ctx.emit_json({"ok": report.ok, "rows": report.rows, "head": report.last_hash,
                           "problems": [{"kind": p.kind, "row": p.seq, "detail": p.detail}
                                        for p in report.problems]})
        else:
            for p in report.problems:
                ctx.print(f"TAMPERED {p}")
            state = "intact" if report.ok else f"{len(report.problems)} problem(s)"
            ctx.print(f"audit trail {state}: {report.rows} rows, head {report.last_hash}")
        return 0 if report.ok else 1
    if action == "report":
        text = render_report(store, args.id, args.format)
        if ctx.json:
            ctx.emit_json({"replacement": args.id, "format": args.format, "report": text})
        else:
            ctx.out.write(text)
        return 0
    raise UsageError(f"unknown audit action {action!r}")
