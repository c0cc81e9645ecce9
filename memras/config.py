"""memras.toml, the file: found, read and split into its tables.

Each area parses and validates its own tables (``[thresholds]``, ``[page]``,
``[classify]``, ``[verdict]``: :mod:`memras.health.config`; ``[alerts]``:
:mod:`memras.alerts.config`; ``[workflow]``, ``[capacity]``: those areas). This module
sits below all of them, so any area can read the file without importing another
area's parser. Every error names the file and what is wrong, in one line.
"""

from __future__ import annotations

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
KNOWN_TABLES = ("thresholds", "page", "classify", "verdict", "workflow", "alerts", "capacity",
                "store", "audit")


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
    return config_file_from_dict(data, name, path)


def config_file_from_dict(data: Mapping[str, Any], name: str = "memras.toml",
                          path: Path | None = None) -> ConfigFile:
    """Check the top level: only known tables, each a table."""
    for key, value in data.items():
        if key not in KNOWN_TABLES:
            raise UsageError(f"{name}: unknown table [{key}] (allowed: {', '.join(KNOWN_TABLES)})")
        if not isinstance(value, Mapping):
            raise UsageError(f"{name}: {key} must be a table ([{key}])")
    return ConfigFile(path=path, name=name, data=dict(data))


_UNITS_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")


def parse_duration(value: object, *, what: str, table: str) -> float:
    """Seconds from ``30``, ``"30s"``, ``"5m"``, ``"24h"`` or ``"7d"``; ``table`` names
    the config table in the error (``[alerts]``' intervals, ``[store] keep``)."""
    if isinstance(value, bool):
        raise UsageError(f"{table} config: {what} must be a duration, not {value!r}")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        match = _DURATION.match(str(value))
        if not match:
            raise UsageError(f"{table} config: {what} = {value!r} is not a duration",
                             hint="use seconds or a number with s, m, h or d, e.g. 24h")
        seconds = float(match[1]) * _UNITS_S[match[2] or "s"]
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
