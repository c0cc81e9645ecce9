"""Tunables with MIN/DEFAULT/MAX, checked once when the config is loaded (as cec.c does)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from memras.errors import UsageError


@dataclass(frozen=True, slots=True)
class Tunable:
    minimum: int
    default: int
    maximum: int
    help: str


def check_tunables(table: Mapping[str, Tunable], values: Mapping[str, Any],
                   where: str) -> dict[str, int]:
    """Defaults overlaid with ``values``; unknown keys and out-of-range values refused.

    ``where`` names the section in the error, e.g. ``memras.toml: [classify]``.
    """
    out = {name: t.default for name, t in table.items()}
    for key, value in values.items():
        if key not in table:
            allowed = ", ".join(sorted(table))
            raise UsageError(f"{where} unknown key {key!r} (allowed: {allowed})")
        t = table[key]
        if isinstance(value, bool) or not isinstance(value, int):
            raise UsageError(f"{where} {key} = {value!r}: expected a whole number "
                             f"from {t.minimum} to {t.maximum}")
        if not t.minimum <= value <= t.maximum:
            raise UsageError(f"{where} {key} = {value}: out of range "
                             f"(allowed {t.minimum}..{t.maximum}, default {t.default})")
        out[key] = value
    return out
