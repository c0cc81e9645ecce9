"""memras.toml, the file: found, read and split into its tables.

Each area parses and validates its own tables (``[thresholds]``, ``[page]``,
``[classify]``, ``[verdict]``: :mod:`memras.health.config`; ``[alerts]``:
:mod:`memras.alerts.config`; ``[workflow]``, ``[capacity]``: those areas). This module
sits below all of them, so any area can read the file without importing another
area's parser. Every error names the file and what is wrong, in one line.
"""

from __future__ import annotations

import difflib
import enum
import os
import re
import stat
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from memras.errors import UsageError

DEFAULT_CONFIG_PATH = Path("/etc/memras/memras.toml")
Choice = TypeVar("Choice", bound=enum.Enum)


@dataclass(frozen=True)
class ConfigFile:
    """The parsed file: its path (None: no file, all defaults) and its top-level tables."""

    path: Path | None = None
    name: str = "memras.toml"
    data: Mapping[str, Any] = field(default_factory=dict)

    def section(self, table: str) -> dict[str, Any]:
        """One top-level table as parsed (``{}`` when absent)."""
        value = self.data.get(table, {})
        return dict(value) if isinstance(value, Mapping) else {}


def read_config_file(path: str | Path | None = None) -> ConfigFile:
    """Read ``path``; no path = /etc/memras/memras.toml if it exists, else no file."""
    if path is None:
        if not DEFAULT_CONFIG_PATH.is_file():
            return ConfigFile()
        path = DEFAULT_CONFIG_PATH
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise UsageError(f"config file {path} does not exist",
                         hint="pass --config PATH, or create it with `memras config import`"
                         ) from None
    except OSError as exc:
        raise UsageError(f"cannot read config {path}: {exc.strerror}") from None
    return parse_config_text(text, path.name, path)


def parse_config_text(text: str, name: str = "memras.toml",
                      path: Path | None = None) -> ConfigFile:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{name}: not valid TOML: {exc}") from None
    return config_file_from_dict(data, name, path, text=text)


def config_file_from_dict(data: Mapping[str, Any], name: str = "memras.toml",
                          path: Path | None = None, *, text: str | None = None) -> ConfigFile:
    """Check ``data`` against :data:`SCHEMA`: every problem at once, or the file.

    Raises:
        ConfigProblems: one line per problem (file:line: [table] key …, "did you mean").
    """
    problems = check_config_data(data, name, text)
    if problems:
        raise ConfigProblems(problems)
    return ConfigFile(path=path, name=name, data=dict(data))


_UNITS_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$", re.IGNORECASE)
DURATION_FORMS = "seconds, or a number with s, m, h, d or w, e.g. 30s, 5m, 24h, 7d"


def duration_seconds(value: object) -> float | None:
    """THE duration reader of memras (config keys and every CLI duration option): seconds
    from ``30``, ``"30"``, ``"30s"``, ``"5m"``, ``"24h"``, ``"7d"`` or ``"2w"``; a bare
    number means seconds. None when ``value`` is not one (negative included)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value) if value >= 0 else None
    match = _DURATION.match(str(value))
    return float(match[1]) * _UNITS_S[(match[2] or "s").lower()] if match else None


def parse_duration(value: object, *, what: str, table: str) -> float:
    """:func:`duration_seconds`, or a UsageError naming ``what`` of ``table`` (the config
    table: ``[alerts]``' intervals, ``[store] keep``)."""
    if isinstance(value, bool):
        raise UsageError(f"{table} config: {what} must be a duration, not {value!r}")
    if isinstance(value, int | float) and value < 0:
        raise UsageError(f"{table} config: {what} must not be negative")
    seconds = duration_seconds(value)
    if seconds is None:
        raise UsageError(f"{table} config: {what} = {value!r} is not a duration",
                         hint=f"use {DURATION_FORMS}")
    if seconds < 0:
        raise UsageError(f"{table} config: {what} must not be negative")
    return seconds


def choice(kind: type[Choice], value: object, unknown: str) -> Choice:
    """``kind(value)``; else one UsageError saying ``unknown`` and what is allowed."""
    try:
        return kind(value)
    except ValueError:
        allowed = ", ".join(str(member.value) for member in kind)
        raise UsageError(f"{unknown} (allowed: {allowed})") from None


def read_secret_file(path: str | Path, what: str) -> str:
    """A secret kept in its own file (``secret_file = "/etc/memras/webhook.key"``).

    The file must be a regular file owned by this user or root with no permission for
    group or others (``chmod 600``), as ssh insists for its keys: a secret anyone on the
    host can read is no secret. Trailing newlines are stripped (``echo KEY > file``);
    an empty file is refused. Every refusal is one UsageError naming ``what`` (e.g.
    ``[alerts.hooks.webhook] secret_file``), the path, and the command that fixes it.
    """
    path = Path(path)
    try:
        with open(path, "rb") as handle:
            info = os.fstat(handle.fileno())
            if not stat.S_ISREG(info.st_mode):
                raise UsageError(f"{what}: {path} is not a regular file")
            mode = stat.S_IMODE(info.st_mode)
            if mode & 0o077:
                raise UsageError(f"{what}: {path} is mode {mode:04o}, readable or writable by "
                                 "group or others", hint=f"chmod 600 {path}")
            if info.st_uid not in (os.geteuid(), 0):
                raise UsageError(f"{what}: {path} is owned by uid {info.st_uid}, not by this "
                                 f"user ({os.geteuid()}) or root",
                                 hint=f"chown {os.geteuid()} {path}")
            data = handle.read(64 * 1024 + 1)
    except FileNotFoundError:
        raise UsageError(f"{what}: {path} does not exist",
                         hint="create it with the secret on one line, mode 600") from None
    except OSError as exc:
        raise UsageError(f"{what}: cannot read {path}: {exc.strerror}") from None
    if len(data) > 64 * 1024:
        raise UsageError(f"{what}: {path} is larger than 64 KiB; it should hold one secret")
    try:
        secret = data.decode().rstrip("\r\n")
    except UnicodeDecodeError:
        raise UsageError(f"{what}: {path} is not UTF-8 text") from None
    if not secret:
        raise UsageError(f"{what}: {path} is empty", hint="write the secret into it")
    return secret


# ---- the schema: every table and key of memras.toml, in one place ---------------------
#
# `memras config check`, `memras watch` and every command that reads the file check it
# against this (unknown tables and keys with "did you mean", types, ranges, required
# keys); each area then turns its table into its typed settings. The values here are
# the areas' own (tests/unit/config/test_schema.py compares them with CLASSIFY_TUNABLES,
# VERDICT_TUNABLES, the capacity bounds and the alert hooks' options), so they cannot drift.


@dataclass(frozen=True)
class Key:
    """One key: its type, default (None: unset means off/none), range and meaning.

    Types: str, int, number, bool, duration (seconds or 30s/5m/24h/7d), size (bytes as
    a number, or 512M/2G), threshold ("10 / 24h" or "off"), strings (a string or a
    list of strings), argv (a list of strings), table (free-form sub-table).
    """

    type: str
    doc: str
    default: Any = None
    min: float | None = None
    max: float | None = None
    choices: tuple[str, ...] = ()
    required: bool = False


@dataclass(frozen=True)
class Table:
    """A table: its keys and sub-tables; ``open_keys``: any key allowed (third-party)."""

    doc: str
    keys: Mapping[str, Key | Table] = field(default_factory=dict)
    open_keys: bool = False


def _threshold_table(doc: str, ce: str, ue: str | None = None) -> Table:
    keys = {"ce": Key("threshold", "corrected errors: N / window, or off", ce)}
    if ue is not None:
        keys["ue"] = Key("threshold", "uncorrected errors: N / window, or off", ue)
    return Table(doc, keys)


_RATE_LIMIT = Table("a token bucket: per_minute refill, burst size", {
    "per_minute": Key("number", "tokens added per minute", 20, min=0.001),
    "burst": Key("int", "bucket size (alerts sent at once)", 10, min=1),
})
_HOOK_COMMON: dict[str, Key | Table] = {
    "enabled": Key("bool", "false keeps the table but switches the hook off", True),
    "rate_limit": Table("this hook's own token bucket (default: [alerts.rate_limit])",
                        _RATE_LIMIT.keys),
}
# The built-in hooks' options (plugins/alerts/*.py). A secret may come from a private
# file instead: NAME_file = "/path" (memras.alerts.hooks.resolve_secret_files).
HOOK_SCHEMAS: dict[str, Table] = {
    "exec": Table("run a program per alert (rasdaemon/mcelog trigger variables)", {
        "command": Key("argv", "the program and its arguments, no shell", required=True),
        "timeout": Key("duration", "killed (its whole process group) after this", "30s",
                       min=0.001),
        "message_style": Key("str", "MESSAGE as rasdaemon or mcelog writes it", "rasdaemon",
                             choices=("rasdaemon", "mcelog")),
        "workdir": Key("str", "working directory of the program"),
    }),
    "webhook": Table("POST each alert as JSON", {
        "url": Key("str", "where to POST (user:password@ in it: Basic auth)", required=True),
        "secret": Key("str", "HMAC-SHA256 key: X-Memras-Signature"),
        "secret_file": Key("str", "the secret from a private file (mode 600)"),
        "timeout": Key("duration", "per request", "10s", min=0.001),
        "ca_file": Key("str", "trust this CA (verification stays on)"),
        "verify": Key("bool", "TLS verification; false only when set explicitly", True),
        "headers": Key("table", "extra headers; NAME_file reads a secret header from a file"),
    }),
    "email": Table("one mail per alert over SMTP", {
        "host": Key("str", "the SMTP server", required=True),
        "port": Key("int", "default 587 (465 with security = ssl)", min=1, max=65535),
        "from": Key("str", "the sender address", required=True),
        "to": Key("strings", "recipient(s): one address or a list", required=True),
        "username": Key("str", "AUTH only when set"),
        "password": Key("str", "the AUTH password"),
        "password_file": Key("str", "the password from a private file (mode 600)"),
        "security": Key("str", "how the connection is encrypted", "starttls",
                        choices=("starttls", "ssl", "none")),
        "ca_file": Key("str", "trust this CA; verification is always on"),
        "timeout": Key("duration", "per connection", "30s", min=0.001),
    }),
    "syslog": Table("one syslog record per alert", {
        "transport": Key("str", "unix datagram socket, UDP or the journal", "unix",
                         choices=("unix", "udp", "journald")),
        "socket": Key("str", "unix: the socket path", "/dev/log"),
        "host": Key("str", "udp: the collector", "127.0.0.1"),
        "port": Key("int", "udp: the collector's port", 514, min=1, max=65535),
        "format": Key("str", "default rfc3164 on unix, rfc5424 on udp",
                      choices=("rfc3164", "rfc5424")),
        "facility": Key("str", "kern user mail daemon auth syslog local0..local7", "daemon"),
        "app_name": Key("str", "the APP-NAME/tag", "memras"),
    }),
    "prometheus": Table("node_exporter textfile and/or a /metrics listener", {
        "textfile_dir": Key("str", "write FILENAME here for node_exporter's textfile collector"),
        "filename": Key("str", "the textfile's name", "memras.prom"),
        "listen": Key("str", "also serve /metrics on HOST:PORT (prometheus_client)"),
    }),
}
for _hook in HOOK_SCHEMAS.values():
    _hook.keys.update(_HOOK_COMMON)  # type: ignore[attr-defined]

_CLASSIFY: dict[str, tuple[int, int, int, str]] = {  # min, default, max (health.classify)
    "socket_ce_min": (1, 1000, 10**9, "SRDS'22 socket rule: more CEs than this"),
    "channel_ce_min": (1, 1000, 10**9, "SRDS'22 channel rule: more CEs than this"),
    "bank_ce_min": (1, 1, 10**9, "bank fault: more CEs in one bank than this"),
    "cell_interarrival_s": (1, 60, 86400, "SRDS'22 cell rule: repeat within (s)"),
    "peer_ce_min": (1, 10, 10**9, "CEs on another DIMM of the channel (Sun rule)"),
    "min_strength": (1, 3, 300, "a pattern must be < 10^-N likely by chance"),
    "storm_run_min": (2, 10, 100000, "SmartHW storm: more CEs in a row than this"),
    "storm_gap_s": (1, 60, 3600, "SmartHW storm: max gap between them (s)"),
    "storm_window_h": (1, 120, 8760, "SmartHW storm: look-back window (h)"),
    "window_h": (1, 720, 8760, "events per DIMM the classifier looks at (h)"),
    "spread_min": (1, 2, 10**6, "new places near an established fault: growing"),
    "offlined_pages_min": (1, 2, 10**6, "a fault's pages offlined before more mean failing"),
    "rate_window_h": (1, 120, 8760, "rate growth: the recent window (h)"),
    "rate_growth_min": (2, 4, 10**6, "rate growth: recent rate over the rate before"),
    "rate_min_strength": (1, 8, 300, "rate growth: < 10^-N likely for a steady rate"),
    "window_events": (64, 4096, 10**6, "newest events per DIMM classified, at most"),
}
VERDICT_STATES = ("ok", "watch", "repair-by-page-offlining", "replace-at-next-maintenance",
                  "replace-now")
FAULT_MODES = ("cell", "row", "column", "bank", "multi-bank", "rank", "channel",
               "controller", "random", "none")
PAGE_ACTIONS = ("off", "account", "soft", "hard", "soft-then-hard")
_GIB = 1 << 30

SCHEMA = Table("memras.toml", {
    "thresholds": Table("leaky-bucket thresholds per scope (count / window, or off)", {
        "dimm": _threshold_table("per DIMM (mcelog [dimm])", "10 / 24h", "1 / 24h"),
        "socket": _threshold_table("per socket (mcelog [socket])", "100 / 24h", "100 / 24h"),
        "host": _threshold_table("the whole host", "off", "off"),
        "page": _threshold_table("per 4 KiB page (mcelog [page])", "2 / 24h"),
        "row": _threshold_table("per DRAM row (rasdaemon ROW_CE_*)", "50 / 24h"),
        "rank": _threshold_table("per rank (Intel BIOS)", "10 / 24h"),
        "bank": _threshold_table("per bank", "off"),
    }),
    "page": Table("page offlining", {
        "action": Key("str", "what a page over its threshold gets", "soft",
                      choices=PAGE_ACTIONS),
        "counters": Key("int", "leaky buckets kept per scope", 4096, min=16),
    }),
    "classify": Table("fault-mode classifier tunables", {
        k: Key("int", doc, d, min=lo, max=hi) for k, (lo, d, hi, doc) in _CLASSIFY.items()}),
    "verdict": Table("the verdict policy", {
        "sun_ce_per_24h": Key("int", "Sun X4140: more CEs than this in 24 h", 24,
                              min=1, max=10**9),
        "storm": Key("str", "the verdict of a CE storm", "replace-at-next-maintenance",
                     choices=VERDICT_STATES),
        "sticky": Key("bool", "a verdict never improves by itself", True),
        "modes": Table("fault mode -> verdict once the DIMM CE threshold is crossed", {
            m: Key("str", f"the verdict of a {m} fault", choices=VERDICT_STATES)
            for m in FAULT_MODES}),
    }),
    "workflow": Table("the replacement workflow", {
        "backend": Key("str", "the hotplug backend (reserved: commands take --backend)"),
        "node_reserve": Key("size", "MemAvailable each NUMA node the module is on keeps "
                            "after it is removed: a size (512M) or a share of the node "
                            "(10%)", "10%"),
    }),
    "alerts": Table("alerts and their hooks", {
        "repeat_interval": Key("duration", "re-notify an unresolved, unacked alert after this",
                               "24h", min=60, max=30 * 86400),
        "gap_grace": Key("duration", "an EDAC count waits this long for its event", "30s",
                         min=0, max=3600),
        "retry": Table("delivery retries per hook per alert", {
            "attempts": Key("int", "tries per hook per alert", 3, min=1, max=10),
            "backoff": Key("duration", "first wait; doubles each retry", "2s", min=0),
            "max_backoff": Key("duration", "longest wait", "60s", min=0),
        }),
        "rate_limit": _RATE_LIMIT,
        "hooks": Table("one table per hook, named as its entry point", dict(HOOK_SCHEMAS),
                       open_keys=True),
    }),
    "capacity": Table("capacity on demand: online standby memory under pressure", {
        "enabled": Key("bool", "false keeps the table but switches the policy off", True),
        "standby": Key("size", "how much memory to keep offline (one of standby, "
                       "standby_blocks, standby_dax)"),
        "standby_blocks": Key("str", "which blocks to keep offline, N-M"),
        "standby_dax": Key("str", "a CXL DAX device kept as devdax, daxR.I"),
        "on_available_below": Key("size", "online when MemAvailable falls below", _GIB,
                                  min=16 << 20, max=1 << 50),
        "off_available_above": Key("size", "offline again when MemAvailable is above",
                                   2 * _GIB, min=32 << 20, max=1 << 50),
        "psi_on_above_pct": Key("number", "online when memory PSI some avg10 is above", 10.0,
                                min=0.1, max=100),
        "psi_off_below_pct": Key("number", "offline again when PSI is below", 2.0,
                                 min=0, max=100),
        "hold_s": Key("number", "pressure must hold this long (s)", 300.0, min=10, max=86400),
        "min_dwell_s": Key("number", "stay in a mode at least this long (s)", 120.0,
                           min=5, max=86400),
        "reserve": Key("size", "memory never given back (>= on_available_below)", _GIB,
                       min=16 << 20, max=1 << 50),
        "interval_s": Key("number", "seconds between samples", 10.0, min=1, max=3600),
    }),
    "watch": Table("memras watch", {
        "trace_buffer_kb": Key("int", "memras's trace instance's buffer per CPU (KiB of RAM "
                               "per CPU; the kernel's own default size)", 1408, min=64,
                               max=1 << 18),
    }),
    "store": Table("the database", {
        "keep": Key("duration", "delete stored errors older than this (>= 1d; absent: keep all)",
                    min=86400),
        "rasdaemon_mirror": Key("bool", "also write each event as rasdaemon's row", True),
    }),
    "fleet": Table("ship to a central PostgreSQL (memras.fleet; memras fleet reads it)", {
        "url": Key("str", "postgresql+psycopg://USER@HOST/DB (?sslmode=verify-full for TLS)"),
        "password_file": Key("str", "the database password from a private file (mode 600)"),
        "interval": Key("duration", "ship what is new this often", "30s", min=1, max=86400),
        "max_error_backlog": Key("int", "unshipped errors kept for shipping; older are "
                                 "skipped and counted", 1_000_000, min=1000, max=10**10),
    }),
    "bmc": Table("the BMC: slot LED in the workflow, SEL as a source (memras.bmc)", {
        "kind": Key("str", "how to reach the BMC", "ipmi", choices=("ipmi", "redfish")),
        "interface": Key("str", "ipmi: in-band (this host's BMC) or over the LAN", "open",
                         choices=("open", "lanplus")),
        "address": Key("str", "ipmi lanplus: host; redfish: https://host[:port]"),
        "port": Key("int", "ipmi lanplus: UDP port (default 623)", min=1, max=65535),
        "cipher_suite": Key("int", "ipmi lanplus: RMCP+ cipher suite (-C; default: "
                            "ipmitool asks the BMC)", min=0, max=17),
        "user": Key("str", "the BMC user (lanplus, redfish)"),
        "password_file": Key("str", "the BMC password from a private file (mode 600)"),
        "verify_tls": Key("bool", "redfish: verify the service's certificate", True),
        "ca_file": Key("str", "redfish: trust this CA (verification stays on)"),
        "timeout": Key("duration", "per BMC command or request", "20s", min=0.1, max=600),
        "led": Key("bool", "light the slot at the swap step of `memras replace`", True),
        "sel_interval": Key("duration", "watch: read the SEL this often", "60s",
                            min=5, max=86400),
    }),
    "audit": Table("the audit trail's anchors and key", {
        "anchor_file": Key("str", "the anchor file (default: beside the database)"),
        "key_file": Key("str", "HMAC key, mode 600 (absent: plain SHA-256 chain)"),
        "syslog": Key("bool", "a MEMRAS_AUDIT_HEAD=… line to syslog per append", True),
    }),
})
KNOWN_TABLES = tuple(SCHEMA.keys)


SCHEMA_HINT = "every key: contrib/memras.toml.example, or the user guide's config reference"


class ConfigProblems(UsageError):
    """Every problem of one config file, one line each (the CLI prints them all)."""

    def __init__(self, problems: list[str], hint: str | None = SCHEMA_HINT) -> None:
        super().__init__(problems[0] if len(problems) == 1 else
                         f"{problems[0]} (and {len(problems) - 1} more)", hint=hint)
        self.problems = problems


def _suggest(word: str, known: Any) -> str:
    close = difflib.get_close_matches(str(word), list(known), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def _line_of(text: str | None, table: tuple[str, ...], key: str | None) -> int | None:
    """The line of ``key`` in ``[table]`` (or of the table's header); tomllib gives none."""
    if not text:
        return None
    header = ".".join(table)
    current = ""
    header_line = None
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        m = re.fullmatch(r"\[\s*([^\[\]]+?)\s*\]", line)
        if m:
            current = re.sub(r"\s*\.\s*", ".", m[1]).replace('"', "")
            if current == header and header_line is None:
                header_line = number
            if key is not None and current == ".".join((*table, key)):
                return number  # [table.key] is itself a table
            continue
        if key is None:
            continue
        dotted = re.match(r"([A-Za-z0-9_\-.\" ]+?)\s*=", line)
        if dotted:
            full = ".".join(p for p in (current, re.sub(r"\s*\.\s*", ".", dotted[1])
                                         .replace('"', "")) if p)
            if full == ".".join((*table, key)):
                return number
    return header_line


def _type_problem(spec: Key, value: Any) -> str | None:
    """Why ``value`` is not of ``spec``'s type or range; None when it is."""
    kind = spec.type
    if kind in ("int", "number"):
        ok = not isinstance(value, bool) and isinstance(value, int if kind == "int"
                                                        else int | float)
        if not ok:
            return f"= {value!r} is not {'a whole number' if kind == 'int' else 'a number'}"
        number: float = value
    elif kind == "duration":
        try:
            number = parse_duration(value, what="", table="")
        except UsageError:
            return f"= {value!r} is not a duration (use seconds or 30s, 5m, 24h, 7d)"
    elif kind == "bool":
        return None if isinstance(value, bool) else f"= {value!r} is not true or false"
    elif kind in ("str", "threshold"):
        if not isinstance(value, str) and not (kind == "threshold" and isinstance(value, int)
                                               and not isinstance(value, bool)):
            return f"= {value!r} is not a string"
        if spec.choices and value not in spec.choices:
            return f"= {value!r} is not allowed (allowed: {', '.join(spec.choices)})"
        return None
    elif kind == "size":
        if isinstance(value, bool) or not isinstance(value, int | str):
            return f"= {value!r} is not a size (bytes, or e.g. 512M, 2G)"
        return None  # the unit grammar is chmem's (memras.capacity.chmem.parse_size)
    elif kind in ("argv", "strings"):
        if isinstance(value, str) and kind == "strings":
            return None
        if not isinstance(value, list) or not value or not all(isinstance(v, str)
                                                                for v in value):
            return f"= {value!r} is not a list of strings"
        return None
    elif kind == "table":
        return None if isinstance(value, Mapping) else f"= {value!r} is not a table"
    else:  # pragma: no cover - a schema typo
        raise AssertionError(kind)
    if spec.min is not None and number < spec.min or spec.max is not None and number > spec.max:
        lo, hi = (_shown(spec, bound) for bound in (spec.min, spec.max))
        if spec.max is None:
            return f"= {value!r} is out of range (at least {lo})"
        if spec.min is None:
            return f"= {value!r} is out of range (at most {hi})"
        return f"= {value!r} is out of range (allowed {lo} .. {hi})"
    return None


def _shown(spec: Key, bound: float | None) -> str:
    """A range bound as the file would write it: ``1d`` for a duration of 86400 s."""
    if bound is None:
        return ""
    if spec.type == "duration" and bound:
        for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
            if bound % size == 0:
                return f"{bound / size:g}{unit}"
        return f"{bound:g}s"
    return f"{bound:g}"


def _hook_names() -> set[str]:
    """Alert hooks installed (entry-point group ``memras.alerts``), built-in ones too."""
    from importlib.metadata import entry_points  # only when a file has hooks

    return {ep.name for ep in entry_points(group="memras.alerts")} | set(HOOK_SCHEMAS)


def check_config_data(data: Mapping[str, Any], name: str = "memras.toml",
                      text: str | None = None) -> list[str]:
    """Every problem of ``data`` against :data:`SCHEMA`, one line each, in file order."""
    problems: list[tuple[int, str]] = []

    def add(table: tuple[str, ...], key: str | None, msg: str) -> None:
        line = _line_of(text, table, key)
        where = f"{name}:{line}" if line else name
        place = f"[{'.'.join(table)}]" if table else ""
        label = " ".join(p for p in (place, key) if p)
        problems.append((line or 0, f"{where}: {label} {msg}".replace(": [] ", ": ")))

    def walk(spec: Table, values: Mapping[str, Any], path: tuple[str, ...]) -> None:
        for key, value in values.items():
            sub = spec.keys.get(key)
            if path == ("alerts", "hooks") and sub is None:
                hooks = _hook_names()
                if key not in hooks:
                    add(path, key, f"is not an installed hook{_suggest(key, hooks)} "
                                   f"(installed: {', '.join(sorted(hooks))})")
                elif not isinstance(value, Mapping):
                    add(path, key, f"must be a table ([{'.'.join((*path, key))}])")
                continue  # a third-party hook's options are its own
            if sub is None:
                allowed = list(spec.keys)
                if path and not isinstance(value, Mapping):
                    add(path, key, f"is not a known key{_suggest(key, allowed)} "
                                   f"(allowed: {', '.join(allowed)})")
                else:
                    add((*path, key), None, f"is not a known table{_suggest(key, allowed)} "
                                      f"(allowed: {', '.join(allowed)})")
                continue
            if isinstance(sub, Table):
                if not isinstance(value, Mapping):
                    add(path, key, f"must be a table ([{'.'.join((*path, key))}])")
                    continue
                walk(sub, value, (*path, key))
                if path == ("alerts", "hooks"):
                    for req, rspec in sub.keys.items():
                        if isinstance(rspec, Key) and rspec.required and req not in value \
                                and f"{req}_file" not in value and value.get("enabled", True):
                            add((*path, key), None, f"needs {req} ({rspec.doc})")
                continue
            problem = _type_problem(sub, value)
            if problem and path[:2] == ("alerts", "hooks"):  # never echo a hook's secret
                problem = problem.replace(f"= {value!r}", f"(a {type(value).__name__})")
            if problem:
                add(path, key, problem)
        for rule in CROSS_FIELD_RULES.get(path, ()):
            for key, msg in rule(values):
                add(path, key, msg)

    walk(SCHEMA, data, ())
    return [msg for _, msg in sorted(problems, key=lambda p: p[0])]


def _capacity_rules(values: Mapping[str, Any]) -> list[tuple[str | None, str]]:
    out: list[tuple[str | None, str]] = []
    if ("standby" in values) == ("standby_blocks" in values):
        out.append((None, "needs exactly one of standby (a size) or standby_blocks (N-M)"))
    on, off = _size_or_none(values.get("on_available_below", _GIB)), _size_or_none(
        values.get("off_available_above", 2 * _GIB))
    if on is not None and off is not None and off <= on:
        shown_off = values.get("off_available_above", "2G")
        shown_on = values.get("on_available_below", "1G")
        out.append(("off_available_above", f"= {shown_off!r} must be above "
                    f"on_available_below ({shown_on!r}): the gap between them is the "
                    "hysteresis"))
    psi_on, psi_off = values.get("psi_on_above_pct", 10.0), values.get("psi_off_below_pct", 2.0)
    if all(isinstance(v, int | float) and not isinstance(v, bool) for v in (psi_on, psi_off)) \
            and psi_off >= psi_on:
        out.append(("psi_off_below_pct", "must be below psi_on_above_pct"))
    return out


def _retry_rules(values: Mapping[str, Any]) -> list[tuple[str | None, str]]:
    try:
        first = parse_duration(values.get("backoff", 2), what="", table="")
        cap = parse_duration(values.get("max_backoff", 60), what="", table="")
    except UsageError:
        return []  # the type check says so
    return [("max_backoff", "must not be below backoff")] if cap < first else []


_SIZE_UNITS = {"": 1 << 20, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40,
               "P": 1 << 50}


def _size_or_none(value: Any) -> int | None:
    """Bytes of a [capacity] size for comparing two of them; None when not readable (the
    area's parser, memras.capacity.chmem.parse_size, reports it)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    m = re.fullmatch(r"\s*(\d+)\s*([KkMmGgTtPp]?)(?:iB)?\s*", str(value))
    return int(m[1]) * _SIZE_UNITS[m[2].upper()] if m else None


def parse_node_reserve(value: object) -> tuple[int | None, float | None]:
    """``[workflow] node_reserve`` as (bytes, None) or (None, fraction of the node's
    MemTotal): ``512M``, ``2G``, a byte count, or ``10%``. A bad value raises UsageError."""
    text = str(value).strip()
    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*%", text)
    if m and not isinstance(value, bool):
        pct = float(m[1])
        if pct <= 100:
            return None, pct / 100
    elif not isinstance(value, bool) and (size := _size_or_none(value)) is not None \
            and size >= 0:
        return size, None
    raise UsageError(f"[workflow] node_reserve = {value!r} is not a size (512M, 2G) or a "
                     "percentage of the node (0% .. 100%)")


def node_reserve_setting(path: str | Path | None) -> str | int | None:
    """``[workflow] node_reserve`` of the config file at ``path`` (checked here, so a bad
    value is one line before anything starts); None when unset (10 % of each node).
    `memras replace`, `memras capacity offline` and the TUI wizard all keep it."""
    value = read_config_file(path).section("workflow").get("node_reserve")
    if value is not None:
        parse_node_reserve(value)
    return value


def _workflow_rules(values: Mapping[str, Any]) -> list[tuple[str | None, str]]:
    if "node_reserve" not in values:
        return []
    try:
        parse_node_reserve(values["node_reserve"])
    except UsageError:
        return [("node_reserve", f"= {values['node_reserve']!r} is not a size (512M, 2G) "
                 "or a percentage of the node (0% .. 100%)")]
    return []


CROSS_FIELD_RULES: dict[tuple[str, ...], tuple[Any, ...]] = {
    ("workflow",): (_workflow_rules,),
    ("capacity",): (_capacity_rules,),
    ("alerts", "retry"): (_retry_rules,),
}
