"""``memras doctor``: is this machine ready for memras? One line per check, ok or what to do.

Checks, in order: the database (exists, its mode and owner, opens read-only, its schema
version, ``PRAGMA quick_check``), the sources (the kernel log readable, tracefs and the
``memras`` instance, EDAC in sysfs, a rasdaemon database when given), kernel features
(memory blocks for hotplug, ``soft_offline_page``), the config file (valid, as
``memras config check`` sees it), the alert hooks (known, an exec hook's program
executable — names only, never an option's value: no secret is printed), and this
user's permissions (what it can run).

Everything is read, nothing written: the database is opened with
:meth:`memras.store.Store.open_readonly`, kernel files are only stat'ed or read, and no
hook is loaded (nothing is connected to or started). ``--root`` checks a simulated or
captured server. Exit 0 when every check is ok (or only informational), 1 when any
needs doing; ``--json`` gives the same checks as a list.
"""

from __future__ import annotations

import argparse
import grp
import os
import pwd
import shutil
import sqlite3
import stat
from dataclasses import asdict, dataclass
from pathlib import Path

from memras.cli import command
from memras.cli.context import Context
from memras.errors import MemrasError
from memras.host import Host
from memras.store.quick import readonly_uri, sqlite_path

OK, INFO, FAIL = "ok", "info", "FAIL"
RASDAEMON_DB = "/var/lib/rasdaemon/ras-mc_event.db"
SOFT_OFFLINE = "/sys/devices/system/memory/soft_offline_page"


@dataclass(frozen=True)
class Check:
    area: str  # database, sources, kernel, config, hooks, permissions
    name: str
    status: str  # ok | info | FAIL
    detail: str  # what was found; for FAIL, what to do too


def _args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--rasdaemon-db", metavar="PATH",
                   help=f"also check this rasdaemon database (default: {RASDAEMON_DB} if "
                        "it exists)")


@command("doctor", "check the database, sources, kernel features, config, hooks and "
                   "permissions; one line each (read-only)")(_args)
def run(args: argparse.Namespace, ctx: Context) -> int:
    host = ctx.host
    checks = [*_database(ctx), *_sources(host, args.rasdaemon_db), *_kernel(host),
              *_config_and_hooks(ctx), *_permissions(ctx)]
    failed = sum(c.status == FAIL for c in checks)
    if ctx.json:
        ctx.emit_json({"ok": not failed, "problems": failed,
                       "checks": [asdict(c) for c in checks]})
    else:
        # one check a row; a long detail (a path, what to do) wraps under itself
        ctx.table(["STATUS", "AREA", "CHECK", "DETAIL"],
                  [[c.status, c.area, c.name, c.detail] for c in checks],
                  wrap="DETAIL", show_header=False)
        ctx.print(f"{failed} problem(s)" if failed else "all ok")
    return 1 if failed else 0


# ---- database -----------------------------------------------------------------------


def _database(ctx: Context) -> list[Check]:
    path = sqlite_path(ctx.db)
    if path is None:
        return _store_checks(ctx.db, [])
    if not path.exists():
        return [Check("database", "file", FAIL,
                      f"{path} does not exist: `memras watch` (the service) or `memras "
                      "import` creates it, or pass --db")]
    checks = [_file_mode(path)]
    if not os.access(path, os.R_OK):
        checks.append(Check("database", "readable", FAIL,
                            f"this user cannot read {path}: run as its owner, or add the "
                            "user to the file's group"))
        return checks
    return _store_checks(ctx.db, checks, path)


def _file_mode(path: Path) -> Check:
    st = path.stat()
    mode = stat.S_IMODE(st.st_mode)
    who = f"{_user(st.st_uid)}:{_group(st.st_gid)}"
    text = f"{path}: mode {mode:04o} {who}"
    if mode & stat.S_IWOTH:
        return Check("database", "file", FAIL,
                     f"{text}: anyone can rewrite it (and its audit trail); chmod o-w "
                     f"{path}")
    if mode & stat.S_IROTH:
        return Check("database", "file", INFO,
                     f"{text}: every local user can read it (alert deliveries, labels); "
                     "0640 with a memras group keeps it to that group")
    return Check("database", "file", OK, text)


def _store_checks(url: str, checks: list[Check], path: Path | None = None) -> list[Check]:
    from memras.store import Store  # lazy: SQLAlchemy; doctor's other checks need none
    from memras.store.migrations import LATEST_VERSION, recorded_versions

    try:
        store = Store.open_readonly(url)
    except MemrasError as exc:
        hint = f" ({exc.hint})" if exc.hint else ""
        checks.append(Check("database", "opens", FAIL, f"{exc.msg}{hint}"))
        return checks
    try:
        with store.engine.connect() as conn:
            versions = recorded_versions(conn) or set()
        checks.append(Check("database", "schema", OK,
                            f"version {max(versions, default=0)} (this memras: "
                            f"{LATEST_VERSION}); opens read-only"))
        problems = store.quick_check()
    except MemrasError as exc:
        problems = [exc.msg]
    finally:
        store.close()
    if path is not None and problems:
        checks.append(Check("database", "quick_check", FAIL,
                            f"{problems[0]} ({len(problems)} problem line(s)): stop memras, keep a "
                            "copy, restore from a backup or `sqlite3 FILE .recover | sqlite3 "
                            "NEW` and point --db at NEW"))
    elif path is not None:
        checks.append(Check("database", "quick_check", OK, "PRAGMA quick_check: ok"))
    return checks


# ---- sources and kernel features ----------------------------------------------------------


def _sources(host: Host, rasdaemon_db: str | None) -> list[Check]:
    checks = []
    kmsg = host.kmsg.path()
    if not os.path.exists(kmsg):
        checks.append(Check("sources", "kmsg", FAIL, f"{kmsg} is missing: no kernel log "
                                                     "source (watch --sources without kmsg)"))
    elif not os.access(kmsg, os.R_OK):
        checks.append(Check("sources", "kmsg", FAIL, f"{kmsg} is not readable by this user: "
                                                     "the watcher runs as root"))
    else:
        checks.append(Check("sources", "kmsg", OK, f"{kmsg} readable"))
    if host.fs.is_simulated:
        checks.append(Check("sources", "tracefs", OK, "simulated trace pipe"))
    elif (mount := host.tracefs.mount_point()) is None:
        checks.append(Check("sources", "tracefs", INFO,
                            "tracefs not mounted: the trace source is off (mount -t tracefs "
                            "nodev /sys/kernel/tracing to use it)"))
    else:
        instance = f"{mount}/instances/memras"
        checks.append(Check("sources", "tracefs", OK if host.fs.exists(instance) else INFO,
                            f"{instance} present" if host.fs.exists(instance) else
                            f"{mount} mounted; the watcher creates instances/memras at start"))
    if host.edac.present:
        n = len(host.edac.controller_indexes())
        checks.append(Check("sources", "edac", OK, f"{n} memory controller(s) in sysfs"))
    else:
        checks.append(Check("sources", "edac", INFO,
                            "no EDAC memory controller in sysfs: load the platform's EDAC "
                            "driver (e.g. skx_edac, i10nm_edac, amd64_edac) for DIMM names"))
    checks.append(_rasdaemon(host, rasdaemon_db))
    return checks


def _rasdaemon(host: Host, given: str | None) -> Check:
    path = Path(given) if given else host.fs.path(RASDAEMON_DB)
    if not path.exists():
        if given:
            return Check("sources", "rasdaemon", FAIL, f"{path} does not exist")
        return Check("sources", "rasdaemon", INFO, "no rasdaemon database (not needed)")
    try:
        conn = sqlite3.connect(readonly_uri(path), uri=True)
        try:
            tables = {n for (n,) in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table'")}
        finally:
            conn.close()
    except sqlite3.Error as exc:
        return Check("sources", "rasdaemon", FAIL,
                     f"{path}: cannot read it ({exc}): run as root, or check the path")
    if "mc_event" not in tables:
        return Check("sources", "rasdaemon", FAIL, f"{path} has no mc_event table: not a "
                                                   "rasdaemon database")
    return Check("sources", "rasdaemon", OK, f"{path} readable (watch --rasdaemon-db)")


def _kernel(host: Host) -> list[Check]:
    blocks = host.memory.all()
    if blocks:
        online = sum(b.online for b in blocks)
        memory = Check("kernel", "memory hotplug", OK,
                       f"{len(blocks)} memory blocks ({online} online) in sysfs")
    else:
        memory = Check("kernel", "memory hotplug", FAIL,
                       "no /sys/devices/system/memory blocks: the kernel lacks "
                       "CONFIG_MEMORY_HOTPLUG; replace and capacity cannot work")
    soft = host.fs.exists(SOFT_OFFLINE)
    offline = Check("kernel", "soft_offline", OK if soft else FAIL,
                    f"{SOFT_OFFLINE} present" if soft else
                    f"{SOFT_OFFLINE} is missing (CONFIG_MEMORY_FAILURE): page offlining is "
                    "off; verdicts still work")
    return [memory, offline]


# ---- config, hooks, permissions -----------------------------------------------------------


def _config_and_hooks(ctx: Context) -> list[Check]:
    from memras.alerts.config import AlertsConfig
    from memras.alerts.hooks import available_hooks
    from memras.cli.configcheck import checked_config  # as `config check` and `watch`

    try:
        config = checked_config(ctx.config)
        where = str(config.path) if config.path else "no config file (built-in defaults)"
        hooks = AlertsConfig.from_dict(config.raw_section("alerts")).hooks
    except MemrasError as exc:
        hint = f" ({exc.hint})" if exc.hint else ""
        return [Check("config", "file", FAIL, f"{exc.msg}{hint}: fix it, then `memras "
                                              "config check`")]
    checks = [Check("config", "file", OK, f"{where}: valid")]
    if not hooks:
        checks.append(Check("hooks", "alerts", INFO, "no alert hook configured: alerts are "
                                                      "stored and listed only"))
    known = available_hooks()
    for hook in hooks:
        if hook.name not in known:
            checks.append(Check("hooks", hook.name, FAIL,
                                f"unknown hook (installed: {', '.join(sorted(known))})"))
        elif hook.name == "exec":
            checks.append(_exec_hook(hook.options.get("command")))
        else:
            checks.append(Check("hooks", hook.name, OK, "configured"))
    return checks


def _exec_hook(command: object) -> Check:
    argv = [command] if isinstance(command, str) else command
    if not isinstance(argv, list) or not argv or not isinstance(argv[0], str):
        return Check("hooks", "exec", FAIL, "command must be a list of strings (argv)")
    program = argv[0] if "/" in argv[0] else shutil.which(argv[0])
    if program is None or not os.path.isfile(program):
        return Check("hooks", "exec", FAIL, f"{argv[0]!r} not found: fix [alerts.hooks.exec] "
                                            "command")
    if not os.access(program, os.X_OK):
        return Check("hooks", "exec", FAIL, f"{program} is not executable: chmod +x it")
    return Check("hooks", "exec", OK, f"{program} executable")


def _permissions(ctx: Context) -> list[Check]:
    uid = os.geteuid()
    user = _user(uid)
    path = sqlite_path(ctx.db)
    if uid == 0:
        return [Check("permissions", "user", OK, "root: every command can run")]
    checks = [Check("permissions", "user", INFO,
                    f"{user}: read commands work with read access to the database; watch, "
                    "import, replace and alert acks need root")]
    if path is not None and path.exists() and not os.access(path.parent, os.W_OK):
        checks.append(Check("permissions", "database dir", INFO,
                            f"{path.parent} not writable by {user}: reads open the database "
                            "read-only (immutable when no writer has it open)"))
    return checks


def _user(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def _group(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)
