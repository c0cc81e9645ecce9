"""memras.toml, the file: found, read and split into its tables.

Each area parses and validates its own tables (``[thresholds]``, ``[page]``,
``[classify]``, ``[verdict]``: :mod:`memras.health.config`; ``[alerts]``:
:mod:`memras.alerts.config`; ``[workflow]``, ``[capacity]``: those areas). This module
sits below all of them, so any area can read the file without importing another
area's parser. Every error names the file and what is wrong, in one line.
"""

from __future__ import annotations

import enum
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from memras.errors import UsageError

DEFAULT_CONFIG_PATH = Path("/etc/memras/memras.toml")
Choice = TypeVar("Choice", bound=enum.Enum)
KNOWN_TABLES = ("thresholds", "page", "classify", "verdict", "workflow", "alerts", "capacity")


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


def choice(kind: type[Choice], value: object, unknown: str) -> Choice:
    """``kind(value)``; else one UsageError saying ``unknown`` and what is allowed."""
    try:
        return kind(value)
    except ValueError:
        allowed = ", ".join(str(member.value) for member in kind)
        raise UsageError(f"{unknown} (allowed: {allowed})") from None
