"""``memras import KIND PATH``: errors from a rasdaemon DB, dmesg, trace or mcelog file.

The file (or stdin, ``-``) goes through the parsers into the store
(:mod:`memras.watcher.importing`), which counts every line or row as inserted (and of
those, flagged: a value out of its domain clamped or blanked), a duplicate, ignored,
non-memory or skipped, with each skip and flag reason counted and samples kept. The
module is named ``importing`` because ``import`` is a Python keyword.
"""

from __future__ import annotations

import argparse
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

from memras.cli import command
from memras.cli.context import Context
from memras.cli.options import parse_when
from memras.cli.progress import ProgressDisplay
from memras.errors import MemrasError, StoreError, UsageError
from memras.health.dimm_names import attribute_from_host
from memras.ingest.parsers.kernel_log import page_shift_from_size
from memras.store import Store
from memras.store.dimm_ids import last_error_id
from memras.store.settings import StoreSettings
from memras.text import escape
from memras.watcher.importing import HOST_PATH, KINDS, input_size, run_import


def _args(p: argparse.ArgumentParser) -> None:
    p.add_argument("kind", choices=list(KINDS), metavar="KIND",  # the list is in the help
                   help=f"what the file holds: {', '.join(KINDS)} (vmcore-dmesg: kdump's "
                        "copy of the crashed "
                        "kernel's log; bert, pstore: errors from before this boot; sel: the "
                        "BMC's event log as `ipmitool sel elist` or `sel list -v` prints it)")
    p.add_argument("path", nargs="?",
                   help="file to read, or - for stdin (not for rasdaemon); bert and pstore "
                        "read --root's /sys/firmware/acpi/tables/data/BERT and "
                        "/sys/fs/pstore when no path is given")
    p.add_argument("--boot-time", metavar="TIME",
                   help="boot time of the machine a dmesg or trace file came from, to turn "
                        "its uptimes into wall time (default: what the capture itself says)")
    p.add_argument("--year", type=int, metavar="YEAR",
                   help="year of year-less syslog stamps (default: the file's mtime's)")
    p.add_argument("--page-size", type=_page_shift, metavar="BYTES", dest="page_shift",
                   help="page size of the machine a dmesg came from, e.g. 65536 for a 64 KiB "
                        "arm64 or POWER kernel (default: what the log shows, else 4096)")


def _page_shift(text: str) -> int:
    try:
        size = int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of bytes") from None
    try:
        return page_shift_from_size(size)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _this_boot(args: argparse.Namespace) -> datetime | None:
    """This machine's boot time, offered to a trace file that states no clock (its rows
    are then time_source=inferred). Not at the top: psutil costs ~50 ms of start-up."""
    if args.kind != "trace" or args.boot_time:
        return None
    import psutil

    return datetime.fromtimestamp(psutil.boot_time(), UTC)


@command("import", "import errors from a rasdaemon DB, dmesg, trace or mcelog file, or "
                   "from before this boot (BERT, pstore, vmcore-dmesg)")(_args)
def run(args: argparse.Namespace, ctx: Context) -> int:
    if args.path is None:
        if args.kind not in ("bert", "pstore"):
            raise UsageError(f"import {args.kind} needs a PATH",
                             hint="give the file to read, or - for stdin")
        args.path = HOST_PATH
    boot_time = parse_when(args.boot_time) if args.boot_time else None
    # A rasdaemon database reports rows read (total unknown); the others bytes.
    in_bytes = args.kind not in ("rasdaemon", "bert", "pstore")
    total = input_size(args.path) if in_bytes else None
    settings = StoreSettings.of(ctx.config)  # [store] rasdaemon_mirror
    with settings.apply(Store.open(ctx.db, create=True)) as store, \
            ProgressDisplay(ctx, "import", total=total, in_bytes=in_bytes) as shown:
        before = last_error_id(store)
        stopped: dict[str, Any] | None = None
        try:
            report = run_import(store, args.kind, args.path, boot_time=boot_time,
                                progress=shown.update, year=args.year,
                                this_boot=_this_boot(args), page_shift=args.page_shift,
                                host=ctx.host)
        except (StoreError, KeyboardInterrupt) as exc:  # locked, disk full, Ctrl-C
            stopped = _stopped_early(ctx, store, before, exc)
            if stopped["committed"] == 0 and isinstance(exc, StoreError):
                raise  # nothing stored (or a bad input database): the error's own line
        else:
            # the new rows' DIMM: --root's inventory when it knows the module, else the
            # error's own location key (a file from another machine still has its DIMMs)
            attribute_from_host(store, ctx.host, before)
    if stopped is not None:
        return _report_stopped(ctx, args, stopped)
    if ctx.json:
        ctx.emit_json(asdict(report))
        return 0
    ctx.print(f"{report.inserted} inserted, {report.duplicates} duplicates, "
              f"{report.skipped} skipped, {report.ignored} ignored, "
              f"{report.non_memory} non-memory machine checks, {report.flagged} flagged "
              f"({report.kind})")
    for title, counts in (("flagged", report.flag_reasons), ("skipped", report.skipped_reasons)):
        for reason, n in sorted(counts.items(), key=lambda item: -item[1]):
            ctx.print(f"  {title} {n}: {escape(reason)}")
    for sample in report.skipped_samples:
        ctx.print(f"  skipped: {escape(sample)}")
    for note in report.notes:
        ctx.print(f"note: {note}")
    return 0


def _stopped_early(ctx: Context, store: Store, before: int, exc: BaseException
                   ) -> dict[str, Any]:
    """What an import that stopped early had committed: every batch is one transaction,
    so the rows stored are whole batches, and a re-run stores the rest — the rows
    already there are the same records read again (the store's dedup), not stored
    twice. Their DIMMs are attributed too when the database still lets us."""
    stopped: dict[str, Any] = {
        "complete": False, "committed": None, "attributed": False, "rerun_safe": True,
        "reason": exc.msg if isinstance(exc, MemrasError) else "interrupted",
        "hint": exc.hint if isinstance(exc, MemrasError) else None,
        "exit": 1 if isinstance(exc, MemrasError) else 130}
    try:
        stopped["committed"] = store.count(after_id=before)
        attribute_from_host(store, ctx.host, before)
        stopped["attributed"] = True
    except MemrasError:
        pass  # still locked or full: the counts say "unknown", not a guess
    return stopped


def _report_stopped(ctx: Context, args: argparse.Namespace, stopped: dict[str, Any]) -> int:
    if ctx.json:
        ctx.emit_json({"kind": args.kind, "path": args.path, **stopped})
        return int(stopped["exit"])
    committed = stopped["committed"]
    rows = "an unknown number of" if committed is None else str(committed)
    hint = f" ({stopped['hint']})" if stopped["hint"] else ""
    ctx.print(f"import stopped early: {escape(stopped['reason'])}{escape(hint)}")
    ctx.print(f"{rows} new rows were committed before it stopped"
              + ("" if stopped["attributed"] or not committed
                 else "; their DIMMs were not attributed"))
    ctx.print("re-running the same import is safe: the rows already stored are recognised "
              "as the same records and not stored twice")
    return int(stopped["exit"])
