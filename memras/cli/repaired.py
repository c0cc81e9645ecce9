"""``memras repaired DIMM --reason TEXT`` and ``memras acquit DIMM --reason TEXT``.

The operator's repair record (FMA's ``fmadm repaired`` / ``fmadm acquit``): the fault
was fixed outside memras (reseated, cleaned, replaced by hand), or the evidence was
wrong (a false alarm). Either closes the DIMM's verdict with an audit row, resolves its
open alerts and starts its verdict from fresh evidence; the errors before stay stored
(memras.workflow.closing).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

from memras.cli import command
from memras.cli.context import Context
from memras.cli.dimm_rows import dimm_names
from memras.cli.options import add_dry_run, add_operator
from memras.health.closing import ACQUITTED, REPAIRED
from memras.workflow.closing import VERBS, ClosingPlan, close, plan_closing


def _args(what: str) -> Callable[[argparse.ArgumentParser], None]:
    def configure(p: argparse.ArgumentParser) -> None:
        p.add_argument("dimm", metavar="DIMM",
                       help="the DIMM (id, label, locator, serial…)")
        p.add_argument("--reason", required=True,
                       help=f"what {what} (recorded in the audit trail and the verdict)")
        add_operator(p)
        add_dry_run(p, "show what would close")
    return configure


def _run(kind: str, args: argparse.Namespace, ctx: Context) -> int:
    with ctx.store(write=not args.dry_run) as store:
        names = dimm_names(ctx, store)
        dimm = names.resolve(args.dimm)  # any name; unknown: exit 2, closest names
        plan = plan_closing(store, dimm_id=dimm.id, dimm_name=dimm.display, kind=kind,
                            reason=args.reason, errors=names.error_filter(dimm.id),
                            config_path=ctx.config, host=ctx.host)
        if not args.dry_run:
            close(store, plan, operator=args.operator, config_path=ctx.config,
                  database=ctx.db, host=ctx.host)
    if ctx.json:
        ctx.emit_json({**plan.to_dict(), "dry_run": bool(args.dry_run)})
        return 0
    _print(ctx, plan, dry_run=bool(args.dry_run))
    return 0


def _print(ctx: Context, plan: ClosingPlan, *, dry_run: bool) -> None:
    if not plan.open:  # (a real run refused it already: UsageError, exit 2)
        ctx.print(f"{plan.dimm_name} ({plan.dimm_id}): nothing to close (verdict ok, no "
                  "open alerts, no errors counting); nothing changed")
        return
    v = plan.verdict
    verdict = (f"verdict {v.state.value} ({', '.join(v.rules)})" if v is not None
               else "no verdict")
    head = "would close" if dry_run else "closed"
    ctx.print(f"{plan.dimm_name} ({plan.dimm_id}): {head} {verdict} as "
              f"{VERBS[plan.kind]}: {plan.reason}")
    since = (f" since {plan.counting_since:%Y-%m-%d %H:%M:%S}" if plan.counting_since
             else "")
    ctx.print(f"  {plan.errors_closed} stored error(s){since} "
              f"{'would stop counting' if dry_run else 'no longer count'} toward its verdict; "
              f"they stay stored (memras errors --dimm {plan.dimm_id})")
    ids = [a.id for a in plan.alerts] if dry_run else plan.resolved
    ctx.print(f"  alerts {'to resolve' if dry_run else 'resolved'}: "
              f"{', '.join(map(str, ids)) if ids else 'none'}")
    if dry_run:
        ctx.print("nothing changed (--dry-run)")
    else:
        ctx.print(f"  audit row {plan.audit_seq}; the verdict starts from fresh evidence "
                  f"(memras verdicts --history {plan.dimm_id})")


@command("repaired", "the DIMM's fault was fixed outside memras (reseated…): close its "
                     "verdict and alerts, count only new errors")(_args("was done"))
def run_repaired(args: argparse.Namespace, ctx: Context) -> int:
    return _run(REPAIRED, args, ctx)


@command("acquit", "the DIMM's verdict was a false alarm: close it and its alerts, "
                   "count only new errors")(_args("shows the evidence was wrong"))
def run_acquit(args: argparse.Namespace, ctx: Context) -> int:
    return _run(ACQUITTED, args, ctx)
