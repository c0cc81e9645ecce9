"""lsmem's view of memory blocks, rendered exactly as util-linux 2.38.1 ``lsmem`` does.

Pure functions over :class:`memras.host.memory_blocks.MemoryBlock` lists, shared by
``memras blocks`` and the TUI. They mirror sys-utils/lsmem.c:

- rows: consecutive blocks are merged into one row while every *displayed*
  attribute matches (``is_mergeable``: STATE, REMOVABLE, NODE and ZONES are
  compared only when their column is shown; a zone lsmem does not know, shown
  as "Unknown", never merges); ``--all`` gives one row per block;
- NODE is shown only when the first block has a ``nodeN`` link, ZONES only when
  ``memory2/valid_zones`` exists (lsmem's own test, kernel ≥ 3.18);
- REMOVABLE is printed for online rows only; going-offline reads ``on->off``;
- SIZE uses lib/strutils.c ``size_to_human_string`` (one rounded decimal);
- the summary totals count every non-online block as offline;
- the table is libsmartcols' plain layout: one space between columns, every
  column but RANGE right-aligned, SIZE widened to its hint of 5 only when its
  data fills the header (libsmartcols calculate.c);
- ``-J`` types: size a string (a number with ``--bytes``), removable a boolean,
  block a string, node a number.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from memras.errors import KernelInterfaceError
from memras.host.memory_blocks import MEMORY_DIR, MemoryBlock, MemoryBlocks

COLUMNS = ("RANGE", "SIZE", "STATE", "REMOVABLE", "BLOCK", "NODE", "ZONES")
_RIGHT_ALIGNED = frozenset(COLUMNS[1:])
_WIDTH_HINT = {"SIZE": 5}  # lsmem.c coldescs[] whint
_STATE_TEXT = {"online": "online", "offline": "offline", "going-offline": "on->off"}
# lsmem.c zone_names[]: the kernel's "none" (block spans zones) prints as "None".
_ZONE_NAMES = ("DMA", "DMA32", "Normal", "Highmem", "Movable", "Device", "None")
_ZONE_BY_LOWER = {z.lower(): z for z in _ZONE_NAMES}
UNKNOWN_ZONE = "Unknown"
MAX_NR_ZONES = 8
ADDRESS_DIGITS = 16  # lsmem's RANGE: 0x%016jx-0x%016jx


@dataclass(frozen=True, slots=True)
class LsmemView:
    """What lsmem reads: the blocks plus the two "does this kernel have it" probes."""

    blocks: Sequence[MemoryBlock]
    block_size: int
    have_nodes: bool
    have_zones: bool


@dataclass(frozen=True, slots=True)
class LsmemRow:
    first: int
    count: int
    state: str  # lsmem's text: online | offline | on->off | ?
    removable: bool
    node: int
    zones: tuple[str, ...]


def read_view(memory: MemoryBlocks) -> LsmemView:
    """Read the blocks the way lsmem does (raises KernelInterfaceError if absent)."""
    if not memory.present:
        raise KernelInterfaceError(
            f"{MEMORY_DIR}/block_size_bytes is missing: this system does not support "
            "memory blocks", hint="check --root, or the kernel's CONFIG_MEMORY_HOTPLUG")
    blocks = memory.all()
    if not blocks:
        raise KernelInterfaceError(f"no memoryN directories under {MEMORY_DIR}")
    return LsmemView(
        blocks=blocks,
        block_size=blocks[0].size,
        have_nodes=blocks[0].node is not None,
        have_zones=memory.fs.exists(f"{MEMORY_DIR}/memory2/valid_zones"),
    )


def zone_names(valid_zones: Sequence[str]) -> tuple[str, ...]:
    """valid_zones words as lsmem names them (case-insensitive match, else Unknown)."""
    return tuple(_ZONE_BY_LOWER.get(z.lower(), UNKNOWN_ZONE) for z in valid_zones[:MAX_NR_ZONES])


def human_size(n: int) -> str:
    """lib/strutils.c size_to_human_string(SIZE_SUFFIX_1LETTER, n): 128M, 1.5G, 0B."""
    exp = 0
    while exp < 60 and n >= 1 << (exp + 10):
        exp += 10
    suffix = "BKMGTPE"[exp // 10]
    dec, frac = n >> exp, n & ((1 << exp) - 1)
    if frac:
        frac = frac * 1000 >> exp  # three digits after the point, truncated
        frac = (frac + 50) // 100 * 10  # round to one digit, kept as two
        if frac == 100:
            dec, frac = dec + 1, 0
    if not frac:
        return f"{dec}{suffix}"
    return f"{dec}.{frac // 10}{suffix}"


def to_rows(view: LsmemView, columns: Sequence[str] = COLUMNS, *,
            list_all: bool = False) -> list[LsmemRow]:
    """lsmem's rows: blocks merged while the displayed attributes agree."""
    want_state, want_removable = "STATE" in columns, "REMOVABLE" in columns
    want_node = "NODE" in columns and view.have_nodes
    want_zones = "ZONES" in columns and view.have_zones
    rows: list[LsmemRow] = []
    for b in view.blocks:
        row = LsmemRow(
            first=b.index, count=1, state=_STATE_TEXT.get(b.state, "?"),
            removable=bool(b.removable),
            node=b.node if b.node is not None else -1,
            zones=zone_names(b.valid_zones) if view.have_zones else (),
        )
        last = rows[-1] if rows else None
        if (not list_all and last is not None and last.first + last.count == row.first
                and not (want_state and last.state != row.state)
                and not (want_removable and last.removable != row.removable)
                and not (want_node and last.node != row.node)
                and not (want_zones and not _zones_merge(last.zones, row.zones))):
            rows[-1] = LsmemRow(last.first, last.count + 1, last.state, last.removable,
                                last.node, last.zones)
        else:
            rows.append(row)
    return rows


def _zones_merge(a: tuple[str, ...], b: tuple[str, ...]) -> bool:
    return len(a) == len(b) and all(x == y and x != UNKNOWN_ZONE for x, y in zip(a, b, strict=True))


def _cell(col: str, row: LsmemRow, view: LsmemView, as_bytes: bool,
          digits: int = ADDRESS_DIGITS) -> str | None:
    size = row.count * view.block_size
    if col == "RANGE":
        start = row.first * view.block_size
        return f"0x{start:0{digits}x}-0x{start + size - 1:0{digits}x}"
    if col == "SIZE":
        return str(size) if as_bytes else human_size(size)
    if col == "STATE":
        return row.state
    if col == "REMOVABLE":
        return ("yes" if row.removable else "no") if row.state == "online" else None
    if col == "BLOCK":
        last = row.first + row.count - 1
        return str(row.first) if row.count == 1 else f"{row.first}-{last}"
    if col == "NODE":
        return str(row.node) if view.have_nodes else None
    if col == "ZONES":
        return "/".join(row.zones) if view.have_zones else None
    raise ValueError(f"unknown lsmem column {col}")


def render_table(view: LsmemView, rows: Sequence[LsmemRow], columns: Sequence[str] = COLUMNS,
                 *, as_bytes: bool = False, digits: int = ADDRESS_DIGITS) -> list[str]:
    """The table lines exactly as lsmem prints them to a pipe; ``digits`` < 16 pads the
    RANGE addresses to fewer hex digits (see :func:`range_digits`)."""
    cells = [[_cell(c, r, view, as_bytes, digits) or "" for c in columns] for r in rows]
    widths = [_column_width(c, [x[i] for x in cells]) for i, c in enumerate(columns)]

    def line(values: Sequence[str]) -> str:
        return " ".join(v.rjust(w) if c in _RIGHT_ALIGNED else v.ljust(w)
                        for v, w, c in zip(values, widths, columns, strict=True)).rstrip()

    return [line(columns), *(line(x) for x in cells)]


def _column_width(header: str, values: Sequence[str]) -> int:
    """libsmartcols count_column_width(): the width hint applies only when the
    data is at least as wide as the header (an else-if in calculate.c)."""
    width = max((len(v) for v in values), default=0)
    hint = _WIDTH_HINT.get(header, 0)
    if width < len(header):
        return len(header)
    if width < hint and len(header) < hint:
        return hint
    return width


def totals(view: LsmemView) -> tuple[int, int]:
    """(online bytes, offline bytes); going-offline and unknown count as offline."""
    online = sum(1 for b in view.blocks if b.state == "online")
    return online * view.block_size, (len(view.blocks) - online) * view.block_size


def render_summary(view: LsmemView, *, as_bytes: bool = False) -> list[str]:
    online, offline = totals(view)
    items = [("Memory block size:", view.block_size), ("Total online memory:", online),
             ("Total offline memory:", offline)]
    if as_bytes:
        return [f"{label:<23} {value:>15}" for label, value in items]
    return [f"{label:<23} {human_size(value):>5}" for label, value in items]


def range_digits(view: LsmemView) -> int:
    """Hex digits of the highest address: lsmem pads RANGE to 16 (81 columns in all),
    these are the fewest that keep every row's range aligned and its value unchanged."""
    top = max((b.index for b in view.blocks), default=-1)
    return len(f"{max(0, (top + 1) * view.block_size - 1):x}")


def render(view: LsmemView, columns: Sequence[str] = COLUMNS, *, list_all: bool = False,
           as_bytes: bool = False, digits: int = ADDRESS_DIGITS) -> str:
    """Table, blank line, summary: the whole of ``lsmem -o COLUMNS [-a] [-b]`` (with
    ``digits`` < 16, RANGE's addresses padded to that many hex digits instead)."""
    rows = to_rows(view, columns, list_all=list_all)
    lines = [*render_table(view, rows, columns, as_bytes=as_bytes, digits=digits), "",
             *render_summary(view, as_bytes=as_bytes)]
    return "\n".join(lines) + "\n"


def to_json(view: LsmemView, columns: Sequence[str] = COLUMNS, *, list_all: bool = False,
            as_bytes: bool = False) -> dict[str, Any]:
    """``lsmem -J`` as data: {"memory": [{"range": …, …}]} with lsmem's JSON types."""
    out = []
    for row in to_rows(view, columns, list_all=list_all):
        item: dict[str, Any] = {}
        for col in columns:
            text = _cell(col, row, view, as_bytes)
            item[col.lower()] = _json_value(col, text, as_bytes)
        out.append(item)
    return {"memory": out}


def _json_value(col: str, text: str | None, as_bytes: bool) -> Any:
    if col == "REMOVABLE":
        return text == "yes"
    if col == "NODE" or (col == "SIZE" and as_bytes):
        return int(text) if text is not None else None
    return text
