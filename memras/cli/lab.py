"""``memras lab``: a real Linux kernel under QEMU to rehearse replacements on.

    memras lab up              boot a guest in the background (state in the cache dir)
    memras lab status          is it up, since when, which DIMMs
    memras lab run SCENARIO    run a scenario (on the running guest, or a fresh one)
    memras lab shell [-c CMD]  attach to the guest console (Ctrl-] detaches)
    memras lab down            stop the guest

The guest's state directory is ``$MEMRAS_LAB_STATE`` or ``<cache>/run``, the cache
``$MEMRAS_LAB_CACHE`` or ``~/.cache/memras/lab``.
"""

from __future__ import annotations

import argparse
import os
import select
import socket
import sys
import termios
import time
import tty
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, replace
from pathlib import Path
from typing import TYPE_CHECKING

from memras.cli import add_global_options, command
from memras.cli.context import Context
from memras.cli.options import duration
from memras.cli.progress import ProgressDisplay
from memras.errors import LabError, UsageError
from memras.lab.kernel import cache_dir

# LAZY_LAB: memras.lab.guest and memras.lab.scenarios are imported inside the actions
# that use them. They pull in the QMP client (qemu.qmp) and every scenario module,
# ~70 ms that would almost double the import of all command modules (`memras` with no
# command, the registry test), which loads this module only to build its parser.
if TYPE_CHECKING:
    from memras.lab.guest import Lab

DETACH_KEY = b"\x1d"  # Ctrl-]


def state_dir() -> Path:
    env = os.environ.get("MEMRAS_LAB_STATE")
    return Path(env) if env else cache_dir() / "run"


def _args(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="lab_command", metavar="ACTION", required=True)
    up = sub.add_parser("up", help="boot a lab guest in the background")
    up.add_argument("--keep", action="append", default=[], type=Path, metavar="PATH",
                    help="a host path the guest must see even under its tmpfs mounts")
    up.add_argument("--accel", choices=["kvm", "tcg"], help="skip the KVM probe")
    up.add_argument("--numa", action="store_true", help="the two-node guest: boot RAM on "
                    "node 0, both DIMMs on node 1 (scenario numa-replace)")
    sub.add_parser("status", help="show the running lab guest")
    run = sub.add_parser("run", help="run a scenario")
    run.add_argument("scenario", nargs="?", help="scenario name (omit with --list)")
    run.add_argument("--list", action="store_true", help="list the scenarios")
    run.add_argument("--quick", action="store_true",
                     help="each behaviour once, as the test suite runs it: no repeated "
                          "timing rounds, shorter streams (no figures for the docs)")
    shell = sub.add_parser("shell", help="attach to the guest's console (Ctrl-] detaches)")
    shell.add_argument("-c", dest="shell_command", metavar="CMD",
                       help="run one command, print its output, exit with its status")
    shell.add_argument("--timeout", type=duration, default=120.0,
                       help="time for -c (seconds, or 30s, 5m)")
    sub.add_parser("down", help="stop the lab guest")
    for action in sub.choices.values():  # --json etc. also after the action name
        add_global_options(action, suppress=True)


@command("lab", "real-kernel lab under QEMU: up | status | run SCENARIO | shell | down")(_args)
def run(args: argparse.Namespace, ctx: Context) -> int:
    actions: dict[str, Callable[[argparse.Namespace, Context], int]] = {
        "up": _up, "status": _status, "run": _run, "shell": _shell, "down": _down}
    return actions[args.lab_command](args, ctx)


def _up(args: argparse.Namespace, ctx: Context) -> int:
    from memras.lab.guest import Lab, LabConfig  # lazy: see LAZY_LAB

    config = LabConfig()
    if args.numa:
        from memras.lab.scenarios.numa import numa_config  # lazy: see LAZY_LAB

        config = numa_config()
    config = replace(config, keep=(*config.keep, *(p.resolve() for p in args.keep)),
                     accel=args.accel)
    with ProgressDisplay(ctx, "lab") as shown:
        lab = Lab(config, state_dir=state_dir(), progress=shown.message)
        lab.boot()
    return _show_state(ctx, lab)


def _show_state(ctx: Context, lab: Lab) -> int:
    assert lab.state is not None
    state = asdict(lab.state)
    state.update(running=True, console_socket=str(lab.console_socket),
                 qmp_socket=str(lab.qmp_socket), kernel_log=str(lab.kernel_log))
    if ctx.json:
        ctx.emit_json(state)
        return 0
    dimms = ", ".join(f"{d['id']} {d['size_mib']}M slot {d['slot']}" for d in lab.state.dimms)
    ctx.table(["FIELD", "VALUE"], [
        ["state", f"running (pid {lab.state.pid})"],
        ["kernel", lab.state.kernel], ["accelerator", lab.state.accel],
        ["boot time", f"{lab.state.boot_seconds:.1f} s"],
        ["up since", time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(lab.state.started))],
        ["DIMMs", dimms], ["kernel log", str(lab.kernel_log)],
        ["QMP socket", str(lab.qmp_socket)],
    ])
    return 0


def _status(args: argparse.Namespace, ctx: Context) -> int:
    from memras.lab.guest import Lab  # lazy: see LAZY_LAB

    try:
        lab = Lab.attach(state_dir())
    except LabError:
        if ctx.json:
            ctx.emit_json({"running": False, "state_dir": str(state_dir())})
        else:
            ctx.print("lab: not running (start it with: memras lab up)")
        return 0
    return _show_state(ctx, lab)


def _run(args: argparse.Namespace, ctx: Context) -> int:
    from memras.lab.scenarios import SCENARIOS, run_scenario  # lazy: see LAZY_LAB

    if args.list or not args.scenario:
        if not args.list:
            raise UsageError("which scenario?", hint="run: memras lab run --list")
        rows = [[name, SCENARIOS[name][0]] for name in sorted(SCENARIOS)]
        if ctx.json:
            ctx.emit_json([{"name": n, "description": d} for n, d in rows])
        else:
            ctx.table(["SCENARIO", "WHAT IT DOES"], rows)
        return 0
    if args.scenario not in SCENARIOS:
        raise UsageError(f"no lab scenario {args.scenario!r}",
                         hint=f"choose one of: {', '.join(sorted(SCENARIOS))}")
    with _lab_for_run(ctx) as lab:
        report = run_scenario(lab, args.scenario, quick=args.quick)
    if ctx.json:
        ctx.emit_json(report)
    else:
        ctx.table(["STEP", "RESULT", "SECONDS", "DETAIL"],
                  [[s.name, "ok" if s.ok else "FAILED", f"{s.seconds:.2f}",
                    s.detail.splitlines()[0] if s.detail else ""] for s in report.steps],
                  right=["SECONDS"])
        verdict = "passed" if report.ok else f"FAILED: {report.error}"
        ctx.print(f"{report.name}: {verdict} in {report.seconds:.1f} s")
    return 0 if report.ok else 1


@contextmanager
def _lab_for_run(ctx: Context) -> Iterator[Lab]:
    """The running guest, or a fresh one shut down afterwards."""
    from memras.lab.guest import Lab  # lazy: see LAZY_LAB

    try:
        yield Lab.attach(state_dir())
        return
    except LabError as exc:
        if "no lab guest" not in exc.msg and "no longer running" not in exc.msg:
            raise
    with ProgressDisplay(ctx, "lab") as shown:
        lab = Lab(state_dir=state_dir(), progress=shown.message)
        lab.boot()
    try:
        yield lab
    finally:
        lab.shutdown()


def _shell(args: argparse.Namespace, ctx: Context) -> int:
    from memras.lab.guest import Lab  # lazy: see LAZY_LAB

    lab = Lab.attach(state_dir())
    if args.shell_command is not None:
        result = lab.run(args.shell_command, timeout=args.timeout)
        if ctx.json:
            ctx.emit_json({"status": result.status, "output": result.output,
                           "seconds": round(result.seconds, 3)})
        else:
            ctx.out.write(result.output + ("\n" if result.output else ""))
        return result.status
    if ctx.json:
        raise UsageError("an interactive shell has no JSON form", hint="use: lab shell -c CMD")
    if not sys.stdin.isatty():
        raise UsageError("lab shell needs a terminal", hint="use: memras lab shell -c CMD")
    ctx.print("memras lab: attached to the guest console; Ctrl-] detaches")
    _relay(lab.console_socket)
    ctx.print("\nmemras lab: detached (the guest keeps running)")
    return 0


def _relay(socket_path: Path) -> None:
    """Copy the terminal to the console socket and back until Ctrl-] or EOF."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(str(socket_path))
    except OSError as exc:
        raise LabError(f"cannot attach to {socket_path}: {exc.strerror}") from None
    stdin = sys.stdin.fileno()
    saved = termios.tcgetattr(stdin)
    try:
        tty.setraw(stdin)
        sock.sendall(b"\n")
        while True:
            readable, _, _ = select.select([stdin, sock], [], [])
            if sock in readable:
                data = sock.recv(65536)
                if not data:
                    return
                os.write(sys.stdout.fileno(), data)
            if stdin in readable:
                data = os.read(stdin, 1024)
                if not data or DETACH_KEY in data:
                    return
                sock.sendall(data)
    finally:
        termios.tcsetattr(stdin, termios.TCSADRAIN, saved)
        sock.close()


def _down(args: argparse.Namespace, ctx: Context) -> int:
    from memras.lab.guest import Lab  # lazy: see LAZY_LAB

    try:
        lab = Lab.attach(state_dir())
    except LabError:
        if ctx.json:
            ctx.emit_json({"stopped": False, "running": False})
        else:
            ctx.print("lab: not running")
        return 0
    pid = lab.state.pid if lab.state else 0
    lab.shutdown()
    if ctx.json:
        ctx.emit_json({"stopped": True, "pid": pid, "running": False})
    else:
        ctx.print(f"lab: stopped (pid {pid})")
    return 0
