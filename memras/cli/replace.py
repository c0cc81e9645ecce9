"""``memras replace DIMM``: the guided replacement without the TUI.

Without ``--yes`` it asks the engineer to type the slot label printed on the board
(:class:`memras.topology.naming.Confirmation`, the TUI wizard's rule too) on a terminal and
refuses without one. ``--dry-run`` runs the preflight checks and prints the plan, changing
nothing. ``--resume`` continues the replacement in progress after a crash, kill or
reboot; ``--abort`` undoes what can be undone and says where the memory is.
"""

from __future__ import annotations

import argparse
import threading
from typing import Any

from memras.audit.service import store_session
from memras.cli import command
from memras.cli.context import Context
from memras.cli.options import (
    add_dry_run,
    add_on_failure,
    add_operator,
    add_retry_options,
    add_yes,
    check_retry_options,
    confirm,
    duration,
)
from memras.cli.progress import ProgressDisplay
from memras.config import node_reserve_setting
from memras.errors import EXIT_REFUSED, MemrasError, UsageError, WorkflowError
from memras.health.dimm_names import host_inventory
from memras.host import Host
from memras.store import Store
from memras.text import escape, format_bytes, parse_bytes
from memras.topology.naming import (
    Confirmation,
    confirmation,
    display_names,
    specific,
    wide_text,
)
from memras.topology.units import Unit, find_unit, host_units, smallest_unit
from memras.workflow import lock
from memras.workflow.backends import BackendContext, Target, load_backend
from memras.workflow.offline import DEFAULT_BACKOFF_INITIAL_S
from memras.workflow.pending import ABORT, RESUME, in_progress
from memras.workflow.preflight import PreflightInput, run_preflight
from memras.workflow.runner import (
    Replacement,
    ReplaceOptions,
    StepOutcome,
    default_backend,
    resolve_target,
)
from memras.workflow.states import HAPPY_PATH


def _args(p: argparse.ArgumentParser) -> None:
    p.add_argument("dimm", nargs="?", help="DIMM label, locator, serial, mcN/dimmM, "
                   "PNP0C80:NN, or a CXL memdev (memN or its serial)")
    add_dry_run(p, "preflight and plan only")
    add_yes(p)
    p.add_argument("--backend", help="acpi | qemu | manual | simulated | cxl (or a plugin)")
    p.add_argument("--resume", action="store_true", help="continue the replacement in progress")
    p.add_argument("--abort", action="store_true", help="roll back the replacement in progress")
    add_operator(p)
    add_on_failure(p, "rollback", "offlining")
    p.add_argument("--force-zone", action="store_true",
                   help="try even when blocks are not in ZONE_MOVABLE")
    p.add_argument("--force-node", action="store_true",
                   help="remove even when a NUMA node would fall below [workflow] "
                   "node_reserve or lose its last Movable memory")
    p.add_argument("--whole-region", action="store_true",
                   help="a CXL memdev in an interleaved region: take the whole region "
                   "offline and make it again with the new device")
    p.add_argument("--reserve", type=_size, help="MemAvailable to keep, e.g. 4G "
                   "(default max(2G, 10%% of MemTotal))")
    p.add_argument("--qmp", help="QMP socket of the VM (qemu backend)")
    p.add_argument("--no-soft-offline", action="store_true",
                   help="do not soft-offline known bad pages first")
    add_retry_options(p)
    p.add_argument("--backoff", type=duration, default=DEFAULT_BACKOFF_INITIAL_S,
                   help="first retry delay (seconds, or 2s, 1m)")
    p.add_argument("--detect-timeout", type=duration, default=600.0,
                   help="time to wait for the module to go / arrive (seconds, or 10m)")


def _size(text: str) -> int:
    """--reserve SIZE as the wizard's reserve override reads it (memras.text.parse_bytes);
    argparse says what was wrong in its usage line."""
    try:
        return parse_bytes(text)
    except UsageError as exc:
        raise argparse.ArgumentTypeError(f"{exc.msg} ({exc.hint})") from None


def _options(args: argparse.Namespace, alerts_config: str | None = None) -> ReplaceOptions:
    check_retry_options(args)
    if args.backoff < 0:
        raise UsageError("--backoff must be 0 or more")
    return ReplaceOptions(
        backend=args.backend, on_failure=args.on_failure, operator=args.operator,
        force_zone=args.force_zone, reserve_bytes=args.reserve, force_node=args.force_node,
        whole_region=args.whole_region,
        node_reserve=node_reserve_setting(alerts_config),
        soft_offline=not args.no_soft_offline, detect_timeout_s=args.detect_timeout,
        policy={"block_timeout_s": args.block_timeout, "max_attempts": args.max_attempts,
                "backoff_initial_s": args.backoff},
        backend_options={"qmp": args.qmp} if args.qmp else {}, alerts_config=alerts_config)


@command("replace", "replace a DIMM: preflight, offline, remove, insert, online, verify")(_args)
def run(args: argparse.Namespace, ctx: Context) -> int:
    if args.resume and args.abort:
        raise UsageError("--resume and --abort exclude each other")
    if not (args.resume or args.abort) and not args.dimm:
        raise UsageError("name the DIMM to replace", hint="see `memras dimms`")
    if args.dry_run and (args.resume or args.abort):
        return _dry_run_pending(args, ctx)
    store = Store.open(ctx.db)
    host = ctx.writable_host()
    if args.dry_run:
        return _dry_run(args, ctx, host, store)
    ui = _Ui(ctx)
    kw: dict[str, Any] = {"progress": ui.shown.blocks, "say": ui.shown.say, "cancel": ui.cancel}
    rep: Replacement | None = None
    try:
        if args.abort:
            rep = Replacement.active(host, store, **kw)
            outcome = rep.abort()
            return ui.finish(rep, outcome)
        if args.resume:
            rep = _resumable(host, store, kw)
            if rep.finished:  # it ended before the crash; say how
                ui.shown.say(f"replacement #{rep.id} already ended ({rep.state.value})")
                rep.close()
                return ui.finish(rep, None)
            ui.shown.say(f"resuming replacement #{rep.id} at {rep.state.value}")
        else:
            _confirm(args, ctx, host)
            rep = Replacement.start(host, store, args.dimm, _options(args, ctx.config), **kw)
        with ui.shown:  # Ctrl-C: stop after the current block; --on-failure says what then
            outcome = rep.run(on_step=ui.step)
        return ui.finish(rep, outcome)
    except _Stopped:
        raise
    except MemrasError as exc:  # a step refused, the database locked or gone half-way
        if rep is None:
            raise
        raise _stopped(exc, rep) from None
    except KeyboardInterrupt:  # a second Ctrl-C, or one outside the steps
        if rep is None:
            raise
        ui.shown.close()
        ctx.error(_stopped(WorkflowError("interrupted"), rep))
        return 130
    finally:
        ui.shown.close()


class _Stopped(WorkflowError):
    """A replacement that stopped half-way, told with where the memory is and what to run."""


def _stopped(exc: MemrasError, rep: Replacement) -> _Stopped:
    """``exc`` ending with where the memory is and the exact commands to go on or undo."""
    return _Stopped(f"replacement #{rep.id} stopped: {exc.msg}; {rep.where_now()}",
                    hint=(f"{exc.hint}; then " if exc.hint else "") +
                         f"continue with `{RESUME}` or roll back with `{ABORT}`")


def _dry_run_pending(args: argparse.Namespace, ctx: Context) -> int:
    """``--resume --dry-run`` (or ``--abort --dry-run``): what it would do, from where
    the replacement in progress stopped; reads only, takes no lock."""
    if args.dimm:
        raise UsageError(f"--{'resume' if args.resume else 'abort'} takes no DIMM: it works "
                         "on the replacement in progress", hint="drop the DIMM name")
    host = ctx.host
    with ctx.store() as store:
        pending = in_progress(store, host)
    if pending is None:
        raise UsageError("no replacement in progress; nothing to "
                         f"{'resume' if args.resume else 'abort'}",
                         hint="`memras status` shows one when there is; start one with "
                              "`memras replace DIMM`")
    verb = "resume" if args.resume else "abort"
    if ctx.json:
        ctx.emit_json({"dry_run": True, "action": verb, "replacement": pending.as_dict()})
        return 0
    ctx.print(f"dry run: {verb} replacement #{pending.id} of {escape(pending.dimm)} "
              f"(state {pending.state}"
              + (f", stopped during {pending.current_step})" if pending.current_step else ")"))
    ctx.print(f"  memory: {escape(pending.where)}")
    if pending.error:
        ctx.print(f"  last error: {escape(pending.error)}")
    if pending.driven:
        ctx.print("  a memras process is driving it right now: --resume would be refused")
    if args.resume:
        ctx.print("plan: " + " → ".join(pending.plan))
    elif pending.abort_step:
        ctx.print(f"plan: {pending.abort_step} (then the replacement ends)")
    else:
        ctx.print(f"plan: none: {escape(pending.abort_note)}")
    ctx.print("nothing was changed")
    return 0


def _resumable(host: Host, store: Store, kw: dict[str, Any]) -> Replacement:
    try:
        return Replacement.active(host, store, **kw)
    except WorkflowError:
        latest = Replacement.latest(host, store, **kw)
        if latest is None or not latest.finished:
            raise
        return latest


def _confirm(args: argparse.Namespace, ctx: Context, host: Host) -> None:
    if args.yes:
        return
    target, status, _reason = resolve_target(host, args.dimm,
                                             whole_region=args.whole_region)
    asked = _confirmation(host, target)
    confirm(ctx, f"take {len(target.blocks)} memory blocks offline and remove "
                 f"{escape(_wide(asked, target))} (serial {escape(target.serial) or '?'})",
            asked, yes=False, details=_unit_lines(host, target)[1])


def _confirmation(host: Host, target: Target) -> Confirmation:
    """The name shown for ``target`` and typed to confirm (memras.topology.naming)."""
    return confirmation(target.dimm_id, host_inventory(host), locator=target.locator,
                        label=target.label)


def _wide(asked: Confirmation, target: Target) -> str:
    """``P1-DIMMC1 (CPU_SrcID#0_MC#0_Chan#2_DIMM#0, mc0/dimm4)``: the EDAC label and id
    beside the slot label, where they differ."""
    label = target.label if specific(target.label) else ""
    return wide_text(asked.name, [label, target.dimm_id])


def _unit_lines(host: Host, target: Target) -> tuple[dict[str, Any] | None, list[str]]:
    """The replaceable unit that goes out (memras.topology.units) for --json, and the
    lines that say it: its blocks as a range, zone(s), every DIMM in it, and which
    other modules go out with the one named. No unit: (None, []). A CXL memdev is its
    own unit: its slot, serial, regions and their DAX devices."""
    if target.cxl:
        return _cxl_unit_lines(target)
    try:
        dimms = host_inventory(host)
        units = host_units(host, inventory=dimms)
    except MemrasError:  # the checks say what is wrong with the tree
        return None, []
    unit: Unit | None = find_unit(units, target.acpi_device) if target.acpi_device else None
    if unit is None:
        unit = smallest_unit(units, target.dimm_id)
    if unit is None:
        return None, []
    names = display_names(dimms)
    by_id = {d.id: d for d in dimms}
    goes = bool(target.blocks) and set(target.blocks) == set(unit.blocks)
    what = (f"ACPI memory device, slot {unit.acpi_uid}" if unit.acpi_device else
            "one DIMM, no ACPI memory device" if unit.kind == "dimm" else
            "interleave set, no ACPI memory device covers it")
    lines = [f"  {'unit' if goes else 'smallest unit holding it'}: {escape(unit.id)} "
             f"({escape(what)}): blocks {unit.block_text}, zone "
             f"{escape('/'.join(unit.zones)) or '-'}, {format_bytes(unit.size_bytes)}"]

    def dimm_text(ident: str) -> str:
        d = by_id.get(ident)
        name = names.get(ident, ident)
        serial = d.smbios.serial if d is not None and d.smbios is not None else ""
        extra = [x for x in (ident if name != ident else "",
                             f"serial {serial}" if serial else "") if x]
        return escape(name + (f" ({', '.join(extra)})" if extra else ""))

    if unit.dimms:
        lines.append(f"  DIMMs in it: {', '.join(dimm_text(i) for i in unit.dimms)}")
    else:
        lines.append(f"  DIMMs in it: unknown ({escape(unit.how)})")
    others = [names.get(i, i) for i in unit.dimms if i != target.dimm_id]
    if goes and target.dimm_id in unit.dimms and others:
        lines.append(f"  goes out with {escape(names.get(target.dimm_id, target.dimm_id))}: "
                     f"{escape(', '.join(others))}")
    data = {**unit.as_dict(), "dimm_names": [names.get(i, i) for i in unit.dimms],
            "goes_out": goes}
    return data, lines


def _cxl_unit_lines(target: Target) -> tuple[dict[str, Any], list[str]]:
    cx = target.cxl or {}
    regions = cx.get("regions", [])
    blocks = (f"blocks memory{target.blocks[0]}-memory{target.blocks[-1]} "
              f"({format_bytes(target.size)})" if target.blocks else "no blocks")
    lines = [f"  unit: CXL memdev {escape(cx.get('memdev'))} ({escape(cx.get('host'))}, "
             f"serial {escape(target.serial) or '?'}, PCIe slot "
             f"{escape(cx.get('slot')) or 'none listed'}): {blocks}"]
    for r in regions:
        others = [t["memdev"] for t in r.get("targets", [])
                  if t.get("memdev") and t["memdev"] != cx.get("memdev")]
        lines.append(f"  region {escape(r['name'])} on {escape(r['root'])}: "
                     f"{r['ways']}-way, {format_bytes(int(r['size']))}, DAX "
                     f"{escape(', '.join(r.get('dax', []))) or '-'}"
                     + (f"; interleaved with {escape(', '.join(others))}" if others else ""))
    data = {"kind": "cxl-memdev", "id": cx.get("memdev"), "serial": target.serial,
            "host": cx.get("host"), "slot": cx.get("slot"),
            "regions": [r["name"] for r in regions], "blocks": list(target.blocks),
            "whole_region": cx.get("whole_region", False)}
    return data, lines


def _dry_run(args: argparse.Namespace, ctx: Context, host: Host, store: Store) -> int:
    opts = _options(args, ctx.config)
    target, status, reason = resolve_target(host, args.dimm, whole_region=opts.whole_region)
    backend = load_backend(opts.backend or default_backend(host, target),
                           BackendContext(host=host, options=opts.backend_options))
    with store_session(store) as s:
        holder = lock.holder(s)
        other = holder.replacement_id if holder else None
    checks = run_preflight(PreflightInput(host, target, status, reason, backend,
                                          opts.force_zone, opts.reserve_bytes, other,
                                          opts.force_node, opts.node_reserve))
    ok = all(c.ok for c in checks)
    asked = _confirmation(host, target)
    unit, unit_lines = _unit_lines(host, target)
    if ctx.json:
        ctx.emit_json({"dry_run": True, "ok": ok, "dimm_name": asked.name,
                       "target": target.as_dict(), "unit": unit,
                       "checks": [c.as_dict() for c in checks],
                       "plan": [s.name for s in HAPPY_PATH]})
        return 0 if ok else EXIT_REFUSED
    ctx.print(f"dry run: replace {escape(_wide(asked, target))} with backend {backend.name}")
    for line in unit_lines:
        ctx.print(line)
    for c in checks:
        ctx.print("  " + escape(c.line()))
    ctx.print("plan: " + " → ".join(s.name for s in HAPPY_PATH))
    ctx.print("nothing was changed" + ("" if ok else "; the replacement would be refused"))
    return 0 if ok else EXIT_REFUSED


class _Ui:
    """What `memras replace` shows: progress and notes (memras.cli.progress), one line
    per step on stdout, and the end state; nothing but JSON with --json."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.cancel = threading.Event()
        self.steps: list[dict[str, Any]] = []
        self.shown = ProgressDisplay(ctx, "replace", in_bytes=True, cancel=self.cancel)

    def step(self, outcome: StepOutcome) -> None:
        self.shown.close()  # the step's bar ends before its result line
        self.steps.append({"step": outcome.step, "ok": outcome.ok,
                           "state": outcome.state.value, "message": outcome.message,
                           "seconds": round(outcome.seconds, 3)})
        if not self.ctx.json:
            mark = "ok  " if outcome.ok else "FAIL"
            self.ctx.print(f"{mark} {outcome.step}: {escape(outcome.message)}")

    def finish(self, rep: Replacement, outcome: StepOutcome | None) -> int:
        self.shown.close()
        snap = rep.snapshot()
        if self.ctx.json:
            self.ctx.emit_json({**snap, "steps": self.steps,
                                "last_step": outcome.step if outcome else None})
        else:
            for check in snap.get("checks") or []:
                if not check["ok"]:
                    self.ctx.print(f"  FAIL {check['name']}: {escape(check['detail'])}")
            self.ctx.print(f"replacement #{snap['id']}: {snap['state']}. {snap['where']}")
        if snap["state"] == "closed":
            return 0
        if snap["state"] == "refused":  # the preflight said no; nothing was changed
            return EXIT_REFUSED
        if snap["state"] in ("rolled-back", "left-offline", "aborted"):
            return 1
        raise _Stopped(f"replacement #{snap['id']} stopped at {snap['state']}; "
                       f"{snap['where']}",
                       hint=f"continue with `{RESUME}` or roll back with `{ABORT}`")
