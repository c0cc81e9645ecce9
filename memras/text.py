"""Showing kernel- and firmware-supplied text safely.

DIMM labels, SMBIOS strings and log lines come from firmware or the kernel and may
hold terminal control sequences (ESC, CSI, BEL...). Everything shown to a person
goes through :func:`escape`, which keeps printable text and writes the rest as
visible ``\\xNN`` escapes, so a hostile label cannot repaint the operator's screen.
"""

from __future__ import annotations

from collections.abc import Sequence


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


def block_names(blocks: Sequence[int], *, limit: int = 8) -> str:
    """``memory32, memory33 …``: the first ``limit`` blocks as sysfs names; "none" if none."""
    names = ", ".join(f"memory{b}" for b in blocks[:limit])
    return names + (" …" if len(blocks) > limit else "") if names else "none"
