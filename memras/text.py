"""Showing kernel- and firmware-supplied text safely.

DIMM labels, SMBIOS strings and log lines come from firmware or the kernel and may
hold terminal control sequences (ESC, CSI, BEL...). Everything shown to a person
goes through :func:`escape`, which keeps printable text and writes the rest as
visible ``\\xNN`` escapes, so a hostile label cannot repaint the operator's screen.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from memras.errors import UsageError


def escape(text: str | None) -> str:
    """Printable text unchanged; control characters as ``\\xNN``/``\\uNNNN``."""
    if text is None:
        return ""
    out: list[str] = []
    for ch in text:
        code = ord(ch)
        if ch == "\\":
            out.append("\\\\")
        elif code < 0x20 or code == 0x7F or 0x80 <= code < 0xA0:
            out.append(f"\\x{code:02x}")
        elif code in (0x2028, 0x2029, 0x200E, 0x200F) or 0x202A <= code <= 0x202E:
            out.append(f"\\u{code:04x}")  # line separators and bidi overrides
        else:
            out.append(ch)
    return "".join(out)


_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e]")


def has_control(text: str) -> bool:
    """Whether :func:`escape` would write any character of ``text`` as an escape (other
    than doubling a backslash)."""
    return _CONTROL.search(text) is not None


def format_bytes(n: int) -> str:
    """lsmem-style human size: 128M, 1.5G, 2T (binary units, one decimal when needed)."""
    units = ["B", "K", "M", "G", "T", "P", "E"]
    value = float(n)
    for unit in units:
        if value < 1024 or unit == units[-1]:
            if unit == "B":
                return f"{int(value)}B"
            text = f"{value:.1f}".rstrip("0").rstrip(".")
            return f"{text}{unit}"
        value /= 1024
    raise AssertionError("unreachable")


SIZE_UNITS = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def parse_bytes(text: str) -> int:
    """A size typed by a person, in bytes: ``4G``, ``512m``, ``1.5T``, ``4GiB``, ``4GB``
    (binary units all: a memory reserve is thought of in GiB), a bare number is bytes.
    The inverse of :func:`format_bytes`; `memras replace --reserve` and the wizard's
    reserve override read it. Raises UsageError (negative, not a number)."""
    t = text.strip().upper().removesuffix("B").removesuffix("I")
    unit = SIZE_UNITS.get(t[-1:], 0)
    try:
        value = int(float(t[:-1]) * unit) if unit else int(t)
    except (ValueError, OverflowError):  # "lots", "nanG", "infG"
        value = -1
    if value < 0:
        raise UsageError(f"not a size: {text!r}", hint="use e.g. 4G")
    return value


def block_names(blocks: Sequence[int], *, limit: int = 8) -> str:
    """``memory32, memory33 …``: the first ``limit`` blocks as sysfs names; "none" if none."""
    names = ", ".join(f"memory{b}" for b in blocks[:limit])
    return names + (" …" if len(blocks) > limit else "") if names else "none"


# ---- secrets kept out of output ---------------------------------------------------------
#
# One redaction for everything memras shows or stores about its own configuration and its
# hooks' failures: `config show`, hook error texts (stored in memras_alert_delivery and
# logged), load failures and CLI error lines. What counts as a secret:
#
# - a config key or query parameter whose name, split at ``_``/``-``, holds one of
#   SECRET_WORDS (``secret``, ``webhook_secret``, ``password``, ``X-Api-Key``,
#   ``Authorization``, ``access_token``, ``X-Amz-Signature`` …), or is exactly ``key``
#   or ``sig`` as a query parameter (``?key=…`` API keys, ``&sig=…`` SAS signatures);
# - URL credentials: ``scheme://user:PASSWORD@host`` keeps the user, ``scheme://TOKEN@``
#   (a user part alone is often a token) loses it;
# - ``Bearer``/``Basic``/``Digest`` credentials and an ``Authorization:`` header's value
#   in text;
# - any literal value a caller knows to be secret (a hook's resolved secrets).
#
# Each becomes REDACTED. Names stay, so a reader still sees which setting or parameter
# was there. ``*_file`` keys (``secret_file``, ``password_file``) are paths, not secrets.

REDACTED = "***"
SECRET_WORDS = frozenset({
    "secret", "password", "passwd", "passphrase", "pass", "pwd", "token", "apikey",
    "auth", "authorization", "credential", "credentials", "signature", "cookie",
    "private", "session",
})
_SECRET_PAIRS = frozenset({("api", "key"), ("access", "key"), ("private", "key"),
                           ("secret", "key"), ("client", "secret")})
_QUERY_ONLY_NAMES = frozenset({"key", "sig", "code"})
_NAME_SPLIT = re.compile(r"[_\-.\s]+")
_URL_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://)([^/\s@:?#]*)(?::([^/\s@?#]*))?@")
# name = value, name: value (a colon only before a space or quote: never a URL's scheme)
_NAME_VALUE = re.compile(r"(?i)([?&;]|\b)([a-z][a-z0-9_.\-]*)([\"']?\s*(?:=|:\s+|:(?=[\"']))\s*)"
                         r"(\"[^\"]*\"|'[^']*'|[^&;\s,\"'}\])]*[^&;\s,\"'}\]):])")
_AUTH_SCHEMES = ("bearer", "basic", "digest")
_AUTH_SCHEME = re.compile(r"(?i)\b(bearer|basic|digest)\s+([A-Za-z0-9._~+/=\-]{6,})")
# an Authorization header's whole value, whatever its scheme ("token X", "SharedKey a:b")
_AUTH_HEADER = re.compile(r"(?i)\b((?:proxy-)?authorization[\"']?\s*[:=]\s*[\"']?)"
                          r"([^\r\n\"',}]+)")


def is_secret_name(name: str, *, query: bool = False) -> bool:
    """Whether a config key, header or query parameter ``name`` names a secret."""
    lowered = name.strip().lower()
    if lowered.endswith("_file"):
        return False  # secret_file = "/path": the path is not the secret
    words = [w for w in _NAME_SPLIT.split(lowered) if w]
    if any(w in SECRET_WORDS for w in words):
        return True
    if any(pair in _SECRET_PAIRS for pair in zip(words, words[1:], strict=False)):
        return True
    return query and lowered in _QUERY_ONLY_NAMES


def redact(text: str | None, secrets: Iterable[str] = ()) -> str:
    """``text`` with URL credentials, secret-named parameters, Bearer/Basic credentials
    and each literal in ``secrets`` (4 characters or more) replaced by REDACTED."""
    if not text:
        return ""
    for value in sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True):
        text = text.replace(value, REDACTED)
    text = _URL_USERINFO.sub(_userinfo, text)
    text = _AUTH_HEADER.sub(lambda m: f"{m[1]}{REDACTED}", text)
    text = _AUTH_SCHEME.sub(lambda m: f"{m[1]} {REDACTED}", text)
    return _redact_pairs(text)


def _redact_pairs(text: str) -> str:
    """Each ``name=value`` / ``name: value`` with a secret name, value redacted. A pair
    whose name is no secret is passed over by its name only, so its "value" can still be
    the name of the next pair (``failed: password=x``)."""
    out: list[str] = []
    pos = 0
    while (match := _NAME_VALUE.search(text, pos)) is not None:
        out.append(text[pos:match.start(4)])
        if _is_secret_pair(match):
            out.append(REDACTED)
            pos = match.end(4)
        else:
            pos = match.start(4)
    out.append(text[pos:])
    return "".join(out)


def _userinfo(match: re.Match[str]) -> str:
    scheme, user, password = match[1], match[2], match[3]
    if password is None:
        return f"{scheme}{REDACTED}@" if user else match[0]
    return f"{scheme}{user}:{REDACTED}@"


def _is_secret_pair(match: re.Match[str]) -> bool:
    lead, name, sep, value = match[1], match[2], match[3], match[4]
    in_query = lead in ("?", "&", ";") and "=" in sep
    scheme_redacted = value.lower() in _AUTH_SCHEMES \
        and match.string.startswith(f" {REDACTED}", match.end())  # "Bearer ***" stays
    if value.strip("\"'") == REDACTED or scheme_redacted:
        return False
    return is_secret_name(name, query=in_query)


def redact_config(data: Any) -> Any:
    """A copy of nested config tables with secret-named values and URL credentials
    redacted (what ``memras config show`` prints)."""
    if isinstance(data, Mapping):
        return {k: (REDACTED if is_secret_name(str(k)) and isinstance(v, str | int | float)
                    and not isinstance(v, bool) and v != "" else redact_config(v))
                for k, v in data.items()}
    if isinstance(data, list | tuple):
        return [redact_config(v) for v in data]
    if isinstance(data, str):
        return redact(data)
    return data


def _int_ranges(values: Sequence[int]) -> str:
    """``64-95 (32)``: runs of consecutive integers, the count when more than one."""
    parts: list[str] = []
    start = prev = values[0]
    for v in [*values[1:], None]:
        if v is not None and v == prev + 1:
            prev = v
            continue
        parts.append(str(start) if start == prev else f"{start}-{prev}")
        if v is not None:
            start = prev = v
    return ", ".join(parts) + (f" ({len(values)})" if len(values) > 1 else "")


def _scalar(value: Any) -> str:
    if value is None or value == "":
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:g}"
    return escape(str(value))


def readable_lines(data: Any, width: int = 80, indent: str = "") -> list[str]:
    """Nested data (a verdict's evidence, an audit row) as ``key: value`` lines a person
    reads: nested tables indented under their key, lists of numbers as ranges, lists of
    words joined, lists of tables as ``- `` items; every line wrapped at ``width``;
    every string escaped."""
    import textwrap  # only the readers of nested data pay for it

    def wrapped(head: str, text: str) -> list[str]:
        return textwrap.wrap(head + text, width=max(width, len(head) + 20),
                             subsequent_indent=" " * len(head),
                             break_on_hyphens=False) or [head.rstrip()]

    if not isinstance(data, Mapping):
        return _value_lines(data, width, indent, wrapped)
    key_w = max((len(str(k)) for k in data), default=0) + 2
    out: list[str] = []
    for key, value in data.items():
        name = escape(str(key)).replace("_", " ")
        nested = (isinstance(value, Mapping) and value) or (
            isinstance(value, list) and any(isinstance(v, (Mapping, list))
                                            or (isinstance(v, str) and len(v) > 30)
                                            for v in value))
        if nested:
            out.append(f"{indent}{name}:")
            out += _value_lines(value, width, indent + "  ", wrapped)
        else:
            out += wrapped(f"{indent}{name + ':':<{key_w}}", _flat(value))
    return out


def _flat(value: Any) -> str:
    if isinstance(value, Mapping):
        return "-"  # an empty table
    if isinstance(value, list):
        if value and all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            return _int_ranges(sorted(value))
        return ", ".join(_scalar(v) for v in value) or "-"
    return _scalar(value)


def _value_lines(value: Any, width: int, indent: str, wrapped: Any) -> list[str]:
    if isinstance(value, Mapping):
        return readable_lines(value, width, indent)
    if not isinstance(value, list):
        return list(wrapped(indent, _scalar(value)))
    out: list[str] = []
    for item in value:
        lines = (readable_lines(item, width, indent + "  ") if isinstance(item, (Mapping, list))
                 else wrapped(indent + "  ", _flat(item)))
        lines = lines or [indent + "  -"]
        out.append(indent + "- " + lines[0][len(indent) + 2:])
        out += lines[1:]
    return out


def readable_value(value: Any) -> str:
    """One value on one line as readable_lines shows it (None '-', booleans yes/no,
    integer lists as ranges), escaped."""
    return _flat(value)
