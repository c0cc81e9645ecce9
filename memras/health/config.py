"""memras.toml's health tables: validate them; import rasdaemon's and mcelog's settings into it.

Schema (every table optional; defaults documented in buckets/classify/verdict)::

    [thresholds.dimm]    ce = "10 / 24h"   ue = "1 / 24h"     # mcelog [dimm]
    [thresholds.socket]  ce = "100 / 24h"  ue = "100 / 24h"   # mcelog [socket]
    [thresholds.host]    ce = "off"        ue = "off"
    [thresholds.page]    ce = "2 / 24h"                       # mcelog [page]
    [thresholds.row]     ce = "50 / 24h"                      # rasdaemon ROW_CE_*
    [thresholds.rank]    ce = "10 / 24h"                      # Intel BIOS per rank
    [thresholds.bank]    ce = "off"
    [page]      action = "soft"       # off | account | soft | hard | soft-then-hard
    [classify]  bank_ce_min = 1 …    # classify.CLASSIFY_TUNABLES (MIN/DEFAULT/MAX)
    [verdict]   sun_ce_per_24h = 24, storm = "replace-at-next-maintenance", sticky = true
    [verdict.modes]  row = "repair-by-page-offlining" …       # verdict.MODE_VERDICT_POLICY
    [workflow]  read by memras.workflow
    [alerts]    read by memras.alerts (``config.raw_section("alerts")``)

Every error names the file, the key, the value and what is allowed, in one line.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from memras.config import (
    ConfigFile,
    choice,
    config_file_from_dict,
    parse_config_text,
    read_config_file,
)
from memras.errors import UsageError
from memras.health.buckets import (
    DEFAULT_THRESHOLDS,
    MAX_BUCKETS_PER_SCOPE,
    Scope,
    Severity,
    Threshold,
    parse_threshold,
)
from memras.health.classify import ClassifyParams
from memras.health.page_action import PageAction
from memras.health.verdict import VerdictPolicy

DEFAULT_PAGE_ACTION = PageAction.SOFT  # what rasdaemon and mcelog.conf both ship
SCOPE_SEVERITIES: dict[Scope, tuple[Severity, ...]] = {
    Scope.DIMM: (Severity.CE, Severity.UE),
    Scope.SOCKET: (Severity.CE, Severity.UE),
    Scope.HOST: (Severity.CE, Severity.UE),
    Scope.PAGE: (Severity.CE,),
    Scope.ROW: (Severity.CE,),
    Scope.RANK: (Severity.CE,),
    Scope.BANK: (Severity.CE,),
}


@dataclass(frozen=True)
class Config:
    path: Path | None = None
    thresholds: dict[tuple[Scope, Severity], Threshold | None] = field(
        default_factory=lambda: dict(DEFAULT_THRESHOLDS))
    page_action: PageAction = DEFAULT_PAGE_ACTION
    page_counters: int = MAX_BUCKETS_PER_SCOPE  # leaky buckets kept per scope ([page] counters)
    classify: ClassifyParams = ClassifyParams()
    verdict: VerdictPolicy = VerdictPolicy()
    raw: Mapping[str, Any] = field(default_factory=dict)

    def raw_section(self, name: str) -> dict[str, Any]:
        """A top-level table as parsed (``{}`` when absent), for other areas to validate."""
        value = self.raw.get(name, {})
        return dict(value) if isinstance(value, Mapping) else {}

    def to_dict(self) -> dict[str, Any]:
        """The effective configuration (defaults filled in), shaped like the TOML."""
        thresholds: dict[str, dict[str, str]] = {}
        for (scope, sev), t in self.thresholds.items():
            thresholds.setdefault(scope.value, {})[sev.value] = "off" if t is None else str(t)
        return {
            "thresholds": thresholds,
            "page": {"action": self.page_action.value, "counters": self.page_counters},
            "classify": {k: getattr(self.classify, k) for k in self.classify.__dataclass_fields__},
            "verdict": {"sun_ce_per_24h": self.verdict.sun_ce_per_24h,
                        "storm": self.verdict.storm.value, "sticky": self.verdict.sticky,
                        "modes": {m.value: s.value for m, s in self.verdict.modes.items()}},
            **{k: self.raw_section(k) for k in ("workflow", "alerts", "capacity", "store",
                                                "audit") if k in self.raw},
        }


def load_config(path: str | Path | None = None) -> Config:
    """Read and validate a config; no path = /etc/memras/memras.toml if it exists."""
    return _from_file(read_config_file(path))


def parse_config(text: str, name: str = "memras.toml", path: Path | None = None) -> Config:
    return _from_file(parse_config_text(text, name, path))


def config_from_dict(data: Mapping[str, Any], name: str = "memras.toml",
                     path: Path | None = None) -> Config:
    return _from_file(config_file_from_dict(data, name, path))


def _from_file(file: ConfigFile) -> Config:
    data, name = file.data, file.name
    if file.path is None and not data:
        return Config()
    return Config(
        path=file.path,
        thresholds=_thresholds(data.get("thresholds", {}), name),
        page_action=_page_action(data.get("page", {}), name),
        page_counters=_page_counters(data.get("page", {}), name),
        classify=ClassifyParams.from_mapping(data.get("classify", {}), f"{name}: [classify]"),
        verdict=VerdictPolicy.from_mapping(data.get("verdict", {}), f"{name}: [verdict]"),
        raw=dict(data),
    )


def _thresholds(table: Mapping[str, Any], name: str
                ) -> dict[tuple[Scope, Severity], Threshold | None]:
    out = dict(DEFAULT_THRESHOLDS)
    for scope_name, values in table.items():
        scope = choice(Scope, scope_name, f"{name}: unknown table [thresholds.{scope_name}]")
        if not isinstance(values, Mapping):
            raise UsageError(f"{name}: thresholds.{scope_name} must be a table")
        allowed_sev = SCOPE_SEVERITIES[scope]
        for sev_name, text in values.items():
            where = f"{name}: [thresholds.{scope_name}] {sev_name}"
            if sev_name not in [s.value for s in allowed_sev]:
                raise UsageError(f"{name}: [thresholds.{scope_name}] unknown key {sev_name!r} "
                                 f"(allowed: {', '.join(s.value for s in allowed_sev)})")
            out[(scope, Severity(sev_name))] = parse_threshold(text, where)
    return out


MIN_PAGE_COUNTERS = 16


def _page_action(table: Mapping[str, Any], name: str) -> PageAction:
    extra = set(table) - {"action", "counters"}
    if extra:
        raise UsageError(f"{name}: [page] unknown key {sorted(extra)[0]!r} "
                         "(allowed: action, counters)")
    value = table.get("action", DEFAULT_PAGE_ACTION.value)
    try:
        return PageAction(value)
    except ValueError:
        allowed = ", ".join(a.value for a in PageAction)
        raise UsageError(f"{name}: [page] action = {value!r}: not an action "
                         f"(allowed: {allowed})") from None


def _page_counters(table: Mapping[str, Any], name: str) -> int:
    """How many leaky buckets (pages, rows, ...) to keep per scope (see BucketSet)."""
    value = table.get("counters", MAX_BUCKETS_PER_SCOPE)
    if isinstance(value, bool) or not isinstance(value, int) or value < MIN_PAGE_COUNTERS:
        raise UsageError(f"{name}: [page] counters = {value!r}: not a whole number "
                         f">= {MIN_PAGE_COUNTERS}", hint=f"the default is {MAX_BUCKETS_PER_SCOPE}")
    return value


# ---- writing TOML (the subset memras configs use) ------------------------------

def _toml_value(value: Any) -> str:
    """One TOML value: a list as an array (a hook's command), a table inline (headers)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{ " + ", ".join(f"{_toml_key(k)} = {_toml_value(v)}"
                                for k, v in value.items()) + " }"
    return json.dumps(str(value), ensure_ascii=False)  # TOML basic strings escape as JSON


def _toml_key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else json.dumps(key)


def dump_toml(data: Mapping[str, Any], comments: Mapping[str, list[str]] | None = None,
              prefix: str = "") -> str:
    """Nested tables of scalars as TOML; ``comments`` maps a table name to lines above it."""
    comments = comments or {}
    lines: list[str] = []
    scalars = {k: v for k, v in data.items() if not isinstance(v, Mapping)}
    if prefix and (scalars or prefix in comments):
        lines += [f"# {c}" for c in comments.get(prefix, [])]
        lines.append(f"[{prefix}]")
    lines += [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in scalars.items()]
    out = "\n".join(lines) + ("\n" if lines else "")
    for key, value in data.items():
        if isinstance(value, Mapping):
            sub = dump_toml(value, comments, f"{prefix}.{key}" if prefix else key)
            out += ("\n" if out else "") + sub
    return out


# ---- importing rasdaemon and mcelog settings ---------------------------------------

RASDAEMON_COUNT_FACTOR = {"": 1, "k": 1000, "m": 1000**2}
RASDAEMON_CYCLE_UNIT_S = {"": 3600, "d": 86400, "h": 3600, "m": 60, "s": 1}  # bare = hours


@dataclass
class Imported:
    """The memras settings found in foreign config files, with notes for the reader."""

    data: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def set(self, table: tuple[str, ...], key: str, value: Any) -> None:
        node = self.data
        for part in table:
            node = node.setdefault(part, {})
        node[key] = value

    def to_toml(self) -> str:
        header = ["# memras.toml imported by `memras config import`", "#"]
        header += [f"# {n}" for n in self.notes]
        return "\n".join(header) + "\n\n" + dump_toml(self.data)


def parse_env_file(text: str) -> dict[str, str]:
    """``KEY=value`` lines (shell-style, as systemd's EnvironmentFile reads them)."""
    out: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        line = line.removeprefix("export ").strip()
        key, sep, value = line.partition("=")
        if not sep:
            continue
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        out[key.strip()] = value
    return out


def rasdaemon_threshold(count_text: str, cycle_text: str, where: str) -> Threshold:
    """rasdaemon's THRESHOLD (k/m) and REFRESH_CYCLE (d/h/m/s, bare = hours)."""
    m = re.fullmatch(r"\s*(\d+)\s*([kKmM]?)\s*", count_text)
    if not m:
        raise UsageError(f"{where}: threshold {count_text!r} is not a number "
                         "(a k or m suffix is allowed)")
    capacity = int(m.group(1)) * RASDAEMON_COUNT_FACTOR[m.group(2).lower()]
    c = re.fullmatch(r"\s*(\d+)\s*([dDhHmMsS]?)\s*", cycle_text)
    if not c:
        raise UsageError(f"{where}: refresh cycle {cycle_text!r} is not a time "
                         "(a number with d, h, m or s; bare means hours)")
    agetime_s = int(c.group(1)) * RASDAEMON_CYCLE_UNIT_S[c.group(2).lower()]
    if capacity == 0 or agetime_s == 0:
        raise UsageError(f"{where}: threshold and cycle must both be above 0")
    return Threshold(capacity, agetime_s)


def import_rasdaemon(text: str, name: str, into: Imported) -> None:
    """PAGE_CE_* and ROW_CE_* of /etc/default/rasdaemon (or /etc/sysconfig/rasdaemon)."""
    env = parse_env_file(text)
    for prefix, scope in (("PAGE_CE", "page"), ("ROW_CE", "row")):
        if f"{prefix}_THRESHOLD" in env or f"{prefix}_REFRESH_CYCLE" in env:
            t = rasdaemon_threshold(env.get(f"{prefix}_THRESHOLD", "50"),
                                    env.get(f"{prefix}_REFRESH_CYCLE", "24h"), f"{name}: {prefix}")
            into.set(("thresholds", scope), "ce", str(t))
    row_action = env.get("ROW_CE_ACTION", "off").strip() or "off"
    if "PAGE_CE_ACTION" in env:
        action = _checked_action(env["PAGE_CE_ACTION"], f"{name}: PAGE_CE_ACTION")
        if row_action != "off" and action != "off":
            into.notes.append(f"{name}: ROW_CE_ACTION={row_action} turns rasdaemon's page "
                              "action off; memras keeps PAGE_CE_ACTION and offlines pages only")
        into.set(("page",), "action", action)
    if row_action != "off":
        into.notes.append(f"{name}: ROW_CE_ACTION={row_action} (offline a whole row) has no "
                          "memras equivalent; a row crossing makes the verdict "
                          "repair-by-page-offlining and its pages offline at their threshold")
    into.notes.append(f"{name}: imported "
                      + ", ".join(k for k in sorted(env) if k.startswith(("PAGE_CE", "ROW_CE"))))
    _rasdaemon_triggers(env, name, into)
    for key in sorted(env):
        if key in RASDAEMON_NOT_CARRIED:
            into.notes.append(f"{name}: not carried: {key}={env[key]} "
                              f"({RASDAEMON_NOT_CARRIED[key]})")


# rasdaemon's other settings (/etc/sysconfig/rasdaemon, v0.8.x), each with why memras has
# no equivalent; every one found in the file gets a note naming it.
RASDAEMON_NOT_CARRIED = {
    "CPU_ISOLATION_ENABLE": "CPU core offlining on CEs: memras handles memory only",
    "CPU_CE_THRESHOLD": "CPU core offlining: memras handles memory only",
    "CPU_ISOLATION_CYCLE": "CPU core offlining: memras handles memory only",
    "CPU_ISOLATION_LIMIT": "CPU core offlining: memras handles memory only",
    "MC_CE_STAT_THRESHOLD": "a CE-rate log line; memras's thresholds and alerts replace it",
    "POISON_STAT_THRESHOLD": "poison statistics: not read by memras",
    "ERST_DELETE": "ERST records: memras does not read ERST",
    "DISABLE": "rasdaemon's own event switches: memras's sources are --sources of watch",
    "AER_CE_TRIGGER": "PCIe AER: memras watches memory errors only",
    "AER_UE_TRIGGER": "PCIe AER: memras watches memory errors only",
    "MEM_FAIL_TRIGGER": "memory_failure events alert through the hooks like every event; "
                        "add the program as [alerts.hooks.exec] command if it is the one",
}
RASDAEMON_TRIGGER_DIR = "/etc/ras/triggers"  # rasdaemon's sample triggers


def _trigger_path(program: str, directory: str) -> str:
    return program if program.startswith("/") else f"{directory.rstrip('/')}/{program}"


def _set_exec_hook(into: Imported, command: str, style: str, workdir: str, what: str) -> bool:
    """One ``[alerts.hooks.exec]`` (memras runs one exec hook for every alert)."""
    current = into.data.get("alerts", {}).get("hooks", {}).get("exec")
    if current is not None:
        into.notes.append(f"{what}: not carried: {command} (memras has one exec hook, "
                          f"already {current['command'][0]}; call this one from it)")
        return False
    for key, value in (("command", [command]), ("message_style", style),
                       ("workdir", workdir)):
        into.set(("alerts", "hooks", "exec"), key, value)
    return True


def _rasdaemon_triggers(env: Mapping[str, str], name: str, into: Imported) -> None:
    """MC_CE_TRIGGER/MC_UE_TRIGGER -> [alerts.hooks.exec] with rasdaemon's variables."""
    directory = env.get("TRIGGER_DIR") or RASDAEMON_TRIGGER_DIR
    for key in ("MC_CE_TRIGGER", "MC_UE_TRIGGER"):
        program = env.get(key, "").strip()
        if not program:
            continue
        path = _trigger_path(program, directory)
        if _set_exec_hook(into, path, "rasdaemon", directory, f"{name}: {key}"):
            into.notes.append(f"{name}: {key}={program} -> [alerts.hooks.exec] command "
                              f"{path} (rasdaemon's variables; memras runs it once per alert, "
                              "a threshold crossing, not per error; TYPE and MEMRAS_SEVERITY "
                              "tell CE from UE)")


def _checked_action(value: str, where: str) -> str:
    try:
        return PageAction(value.strip().lower()).value
    except ValueError:
        allowed = ", ".join(a.value for a in PageAction)
        raise UsageError(f"{where} = {value!r}: not an action (allowed: {allowed})") from None


def parse_ini(text: str) -> dict[str, dict[str, str]]:
    """mcelog.conf: ``[section]`` and ``name = value``; ``#`` starts a comment anywhere."""
    sections: dict[str, dict[str, str]] = {"global": {}}
    current = "global"
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if line.startswith("[") and line.endswith("]"):
            current = line[1:-1].strip().lower()
            sections.setdefault(current, {})
            continue
        key, sep, value = line.partition("=")
        if sep:
            sections[current][key.strip().lower()] = value.strip()
    return sections


MCELOG_THRESHOLD_KEYS = [
    # (mcelog section, key, memras scope, severity)
    ("dimm", "ce-error-threshold", "dimm", "ce"),
    ("dimm", "uc-error-threshold", "dimm", "ue"),
    ("socket", "mem-ce-error-threshold", "socket", "ce"),
    ("socket", "mem-uc-error-threshold", "socket", "ue"),
    ("page", "memory-ce-threshold", "page", "ce"),
]
MCELOG_TRUE = {"yes", "true", "1", "on"}


def import_mcelog(text: str, name: str, into: Imported) -> None:
    """[dimm], [socket] and [page] thresholds and memory-ce-action of mcelog.conf."""
    ini = parse_ini(text)
    found = []
    for section, key, scope, sev in MCELOG_THRESHOLD_KEYS:
        value = ini.get(section, {}).get(key) or ini["global"].get(key)
        if value is None:
            continue
        t = parse_threshold(value, f"{name}: [{section}] {key}")  # mcelog's own grammar
        into.set(("thresholds", scope), sev, "off" if t is None else str(t))
        found.append(f"[{section}] {key}")
    for section, flag, scope in (("dimm", "dimm-tracking-enabled", "dimm"),
                                 ("socket", "socket-tracking-enabled", "socket")):
        value = ini.get(section, {}).get(flag)
        if value is not None and value.lower() not in MCELOG_TRUE:
            into.set(("thresholds", scope), "ce", "off")
            into.set(("thresholds", scope), "ue", "off")
            found.append(f"[{section}] {flag} = {value}")
    action = ini.get("page", {}).get("memory-ce-action")
    if action is not None:
        into.set(("page",), "action", _checked_action(action, f"{name}: [page] memory-ce-action"))
        found.append("[page] memory-ce-action")
    elif "page" in ini:
        into.set(("page",), "action", "off")  # mcelog: off when unset
        found.append("[page] memory-ce-action unset = off")
    into.notes.append(f"{name}: imported " + ", ".join(found))
    _mcelog_triggers(ini, name, into)


MCELOG_TRIGGER_KEYS = [  # (section, key): dimm first, as the DIMM is what memras judges
    ("dimm", "ce-error-trigger"), ("dimm", "uc-error-trigger"),
    ("socket", "mem-ce-error-trigger"), ("socket", "mem-uc-error-trigger"),
    ("page", "memory-ce-trigger"), ("page", "memory-pre-sync-soft-ce-trigger"),
    ("page", "memory-post-sync-soft-ce-trigger"),
]
MCELOG_TRIGGER_DIR = "/etc/mcelog"  # [trigger] directory's default


def _mcelog_triggers(ini: Mapping[str, Mapping[str, str]], name: str, into: Imported) -> None:
    """The *-trigger keys -> [alerts.hooks.exec] with mcelog's variables (the first)."""
    directory = ini.get("trigger", {}).get("directory") or MCELOG_TRIGGER_DIR
    for section, key in MCELOG_TRIGGER_KEYS:
        program = ini.get(section, {}).get(key)
        if not program:
            continue
        path = _trigger_path(program, directory)
        if _set_exec_hook(into, path, "mcelog", directory, f"{name}: [{section}] {key}"):
            into.notes.append(f"{name}: [{section}] {key} = {program} -> [alerts.hooks.exec] "
                              f"command {path} (mcelog's variables; memras runs it once per "
                              "alert, whichever threshold was crossed)")
    for key, value in ini.get("trigger", {}).items():
        if key != "directory":
            into.notes.append(f"{name}: not carried: [trigger] {key} = {value} (no memras "
                              "equivalent; the exec hook's timeout bounds each run)")


def import_configs(rasdaemon: str | Path | None = None,
                   mcelog: str | Path | None = None) -> Imported:
    """Read the given files (read-only) and return the equivalent memras settings.

    With both, mcelog's settings are applied after rasdaemon's: where both set a
    page threshold or action, mcelog's wins and a note says so.
    """
    if rasdaemon is None and mcelog is None:
        raise UsageError("nothing to import", hint="pass --rasdaemon PATH and/or --mcelog PATH")
    result = Imported()
    if rasdaemon is not None:
        import_rasdaemon(_read(rasdaemon), Path(rasdaemon).name, result)
    if mcelog is not None:
        before = dict(result.data.get("page", {})), dict(
            result.data.get("thresholds", {}).get("page", {}))
        import_mcelog(_read(mcelog), Path(mcelog).name, result)
        after = dict(result.data.get("page", {})), dict(
            result.data.get("thresholds", {}).get("page", {}))
        if rasdaemon is not None and any(before) and before != after:
            result.notes.append("both files set page settings; mcelog's are used")
    config_from_dict(result.data, "imported settings")  # must load back cleanly
    return result


def _read(path: str | Path) -> str:
    try:
        return Path(path).read_text()
    except FileNotFoundError:
        raise UsageError(f"{path} does not exist") from None
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}") from None
