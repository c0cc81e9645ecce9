"""JSON for memras's own values: dataclasses, enums, datetimes, paths and bytes.

One encoder for every writer of JSON, so ``memras … --json`` and the payloads the
workflow records in the audit trail spell a value the same way: a dataclass as its
fields, an enum as its value, a datetime in ISO 8601, a path as text, bytes in hex.
Anything else is a ``TypeError``, as with :func:`json.dumps` itself: a value that
cannot be written is a bug to see, not a ``str()`` to hide.

It lives in the core (not in ``memras.cli``) because the workflow needs it too, and
the core must not import a front end.
"""

from __future__ import annotations

import dataclasses
import datetime
import enum
import json
from pathlib import Path
from typing import Any

__all__ = ["json_default", "json_safe"]


def json_default(obj: Any) -> Any:
    """The ``default=`` hook for :func:`json.dump`: memras values as plain JSON."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.asdict(obj)
    if isinstance(obj, enum.Enum):
        return obj.value
    if isinstance(obj, datetime.datetime):
        return obj.isoformat()
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, bytes):
        return obj.hex()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def json_safe(value: Any) -> Any:
    """``value`` as plain dicts, lists, strings and numbers (what json.loads would give)."""
    return json.loads(json.dumps(value, default=json_default))
