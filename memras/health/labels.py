"""DIMM label files (rasdaemon's and edac-utils'), matched to this board and applied.

Grammar (rasdaemon.md §3, kernel-error-sources.md §5), case-insensitive:
    Vendor: <name>
      Model: <m1>, <m2>        (edac-utils also says Board:)   or   Product: <name>
        <label>: <mc>.<top>[.<mid>[.<low>]][, <target>…]; <label>: …
    '#' lines are comments; a target's numbers are separated by '.' or ':'.
Flavours differ in what the numbers mean, which the files never say:
    rasdaemon (/etc/ras/dimm_labels.db, dimm_labels.d/*): mc and EDAC layer
        positions, matched to mcN/{dimmM,rankM}/dimm_location; written to dimm_label.
    edac-utils (/etc/edac/labels.db, labels.d/*): mc.csrow.channel, written to
        mcN/csrowR/chC_dimm_label.
The board is /sys/class/dmi/id/board_vendor + board_name (Model:) or product_name
(Product:), read through Host, or given as VENDOR:MODEL (ras-mc-ctl --mainboard).
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from memras.errors import KernelInterfaceError, NotPermitted, ParseError, UsageError

if TYPE_CHECKING:
    from memras.host import Host

RASDAEMON_LABEL_DB = Path("/etc/ras/dimm_labels.db")
RASDAEMON_LABEL_DIR = Path("/etc/ras/dimm_labels.d")
EDAC_UTILS_LABEL_DB = Path("/etc/edac/labels.db")
EDAC_UTILS_LABEL_DIR = Path("/etc/edac/labels.d")
DMI_DIR = "/sys/class/dmi/id"
EDAC_LABEL_MAX_CHARS = 31
_TARGET_RE = re.compile(r"^\d+(?:[.:]\d+){1,3}$")


class Flavour(enum.StrEnum):
    RASDAEMON = "rasdaemon"
    EDAC_UTILS = "edac-utils"


@dataclass(frozen=True, slots=True)
class LabelEntry:
    label: str
    target: tuple[int, ...]  # mc, then layers (rasdaemon) or csrow, channel (edac-utils)


@dataclass(frozen=True, slots=True)
class BoardLabels:
    vendor: str
    models: tuple[str, ...]
    products: tuple[str, ...]
    entries: tuple[LabelEntry, ...]
    flavour: Flavour
    source: str  # file:line of the Vendor: line


@dataclass(frozen=True, slots=True)
class Board:
    vendor: str
    model: str
    product: str = ""


def parse_label_file(text: str, source: str, flavour: Flavour) -> list[BoardLabels]:
    """All boards in one label file; a malformed line is a ParseError naming file:line."""
    boards: list[BoardLabels] = []
    vendor: str | None = None
    vendor_at = ""
    models: list[str] = []
    products: list[str] = []
    entries: list[LabelEntry] = []

    def flush() -> None:
        if vendor is not None and entries:
            boards.append(BoardLabels(vendor, tuple(models), tuple(products), tuple(entries),
                                      flavour, vendor_at))

    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):  # whole lines only: labels may hold '#'
            continue
        where = f"{source}:{number}"
        key, sep, rest = line.partition(":")
        word = key.strip().lower()
        if sep and word == "vendor":
            flush()
            vendor, vendor_at, models, products, entries = rest.strip(), where, [], [], []
        elif sep and word in ("model", "board", "product"):
            if entries:  # a new model group under the same vendor
                flush()
                entries, models, products = [], [], []
            names = [n.strip() for n in rest.split(",") if n.strip()]
            (products if word == "product" else models).extend(names)
        elif vendor is None:
            raise ParseError(f"{where}: {raw.strip()!r} before any 'Vendor:' line")
        else:
            entries.extend(_entries(line, where))
    flush()
    return boards


def _entries(line: str, where: str) -> list[LabelEntry]:
    out = []
    for pair in (p.strip() for p in line.split(";")):
        if not pair:
            continue
        label, sep, targets = pair.partition(":")  # "A1: 0:0:1" splits at the first ":"
        if not sep or not label.strip():
            raise ParseError(f"{where}: {pair!r} is not '<label>: <mc>.<layer>…'")
        for t in (x.strip() for x in targets.split(",")):
            if not _TARGET_RE.match(t):
                raise ParseError(f"{where}: {t!r} is not a location like 0.1.0")
            out.append(LabelEntry(label.strip(), tuple(int(n) for n in re.split(r"[.:]", t))))
    return out


def read_label_files(files: list[Path], flavour: Flavour, *, explicit: bool) -> list[BoardLabels]:
    out: list[BoardLabels] = []
    for path in files:
        try:
            text = path.read_text()
        except FileNotFoundError:
            if explicit:
                raise UsageError(f"label file {path} does not exist") from None
            continue
        except OSError as exc:
            raise UsageError(f"cannot read label file {path}: {exc.strerror}") from None
        out += parse_label_file(text, str(path), flavour)
    return out


def label_files(db: Path | None, directory: Path | None, default_db: Path,
                default_dir: Path) -> tuple[list[Path], bool]:
    """The files to read (db first, then the directory's files sorted) and explicitness."""
    explicit = db is not None or directory is not None
    db = db if db is not None else (None if explicit else default_db)
    directory = directory if directory is not None else (None if explicit else default_dir)
    files = [db] if db is not None else []
    if directory is not None and directory.is_dir():
        files += sorted(p for p in directory.iterdir() if p.is_file())
    elif directory is not None and explicit:
        raise UsageError(f"label directory {directory} does not exist")
    return files, explicit


def read_board(host: Host, mainboard: str | None = None) -> Board:
    """This machine's board, or ``VENDOR:MODEL`` when given (like --mainboard)."""
    if mainboard:
        vendor, sep, model = mainboard.partition(":")
        if not sep:
            raise UsageError(f"--mainboard {mainboard!r}: expected VENDOR:MODEL")
        return Board(vendor.strip(), model.strip())
    fs = host.fs
    return Board(fs.read(f"{DMI_DIR}/board_vendor", default="").strip(),
                 fs.read(f"{DMI_DIR}/board_name", default="").strip(),
                 fs.read(f"{DMI_DIR}/product_name", default="").strip())


def _fold(text: str) -> str:
    return " ".join(text.lower().split())


def matching_boards(boards: list[BoardLabels], board: Board) -> list[BoardLabels]:
    out = []
    for b in boards:
        if _fold(b.vendor) != _fold(board.vendor):
            continue
        if any(_fold(m) == _fold(board.model) for m in b.models) or \
                (board.product and any(_fold(p) == _fold(board.product) for p in b.products)):
            out.append(b)
    return out


@dataclass(frozen=True, slots=True)
class PlannedLabel:
    label: str
    target: str  # "0.0.1" as written in the file
    node: str | None  # the sysfs node that would be written, None when missing
    current: str | None  # its current label
    flavour: Flavour

    @property
    def status(self) -> str:
        if self.node is None:
            return "missing"
        return "same" if self.current == self.label else "change"

    def to_dict(self) -> dict[str, Any]:
        return {"label": self.label, "target": self.target, "node": self.node,
                "current": self.current, "status": self.status, "flavour": self.flavour.value}


def plan_labels(host: Host, boards: list[BoardLabels]) -> list[PlannedLabel]:
    """What registering would write: each entry with its EDAC node (or missing)."""
    dimms = {(d.mc, *d.layers): d for d in host.edac.dimms()}
    csrows: dict[tuple[int, ...], Any] = {(c.mc, c.csrow, c.channel): c for c in _csrows(host)}
    out = []
    for b in boards:
        for e in b.entries:
            text = ".".join(str(n) for n in e.target)
            if b.flavour == Flavour.RASDAEMON:
                d = dimms.get(e.target)
                out.append(PlannedLabel(e.label, text, f"mc{d.mc}/{d.name}" if d else None,
                                        d.label if d else None, b.flavour))
            else:
                c = csrows.get(e.target)
                node = f"mc{e.target[0]}/csrow{c.csrow}/ch{c.channel}" if c else None
                out.append(PlannedLabel(e.label, text, node, c.label if c else None, b.flavour))
    return out


def _csrows(host: Host) -> list[Any]:
    out = []
    for ctl in host.edac.controllers():
        out += [_CsrowRef(ctl.index, c.csrow, c.channel, c.label) for c in ctl.csrows]
    return out


@dataclass(frozen=True, slots=True)
class _CsrowRef:
    mc: int
    csrow: int
    channel: int
    label: str


def register_labels(host: Host, plan: list[PlannedLabel]) -> list[tuple[PlannedLabel, str]]:
    """Write each planned label through Host; (entry, outcome) per entry."""
    results = []
    for p in plan:
        if p.node is None:
            results.append((p, "missing"))
            continue
        if len(p.label) > EDAC_LABEL_MAX_CHARS:
            results.append((p, f"too long (max {EDAC_LABEL_MAX_CHARS})"))
            continue
        parts = p.node.split("/")
        mc = int(parts[0][2:])
        try:
            if p.flavour == Flavour.RASDAEMON:
                host.edac.set_label(mc, parts[1], p.label)
            else:
                host.edac.set_csrow_label(mc, int(parts[1][5:]), int(parts[2][2:]), p.label)
        except NotPermitted as exc:
            results.append((p, f"not permitted: {exc.msg}"))
            continue
        except (OSError, KernelInterfaceError) as exc:
            results.append((p, f"failed: {exc}"))
            continue
        results.append((p, "written"))
    return results
