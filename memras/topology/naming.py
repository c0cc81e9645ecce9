"""One way to name a DIMM: which name is shown, and which names are accepted.

Shown (:func:`display_name`): the slot's label as printed on the board, i.e. the SMBIOS
locator (``P1-DIMMC1``), when known; else the EDAC label (``CPU_SrcID#0_MC#0_Chan#2_DIMM#0``,
or a slot name ``ras-mc-ctl --register-labels`` wrote there); else the id (``mc0/dimm2``,
``PNP0C80:00``, or for a DIMM known only from stored events, the health key such as
``mc1:0:1:-1``). Wide views add the other names where they differ
(:func:`wide_name`: ``P1-DIMMC1 (CPU_SrcID#0_MC#0_Chan#2_DIMM#0, mc0/dimm2)``).

Accepted (:func:`match`): every name a DIMM has (id, EDAC label, ``mcN/dimmM``, the EDAC
key, SMBIOS locator and bank locator, serial, ACPI device), case and whitespace folded.
Exact first (the id before other names, so an id never loses to another DIMM's label),
then a prefix that only one DIMM's names start with. Anything else is a UsageError
(exit 2) naming the closest known names (difflib), never an empty answer: "no errors"
for a typo reads like a healthy DIMM.

Why no fuzzy match is ever taken silently: ``P1-DIMMA1`` and ``P1-DIMMA2`` are one
edit apart and are different modules; a command that pulls memory must act on the
DIMM the engineer named, or on none.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from memras.errors import UsageError

if TYPE_CHECKING:
    from memras.topology.inventory import DimmInfo

# EDAC labels that name no module (ghes_edac's "unknown memory", a blank label).
UNSPECIFIC_LABELS = frozenset({"", "any memory", "unknown memory"})
SUGGESTIONS = 5  # closest names offered for an unknown one
KNOWN_SHOWN = 12  # DIMMs listed when nothing is close


def fold(text: str) -> str:
    """Whitespace runs to one space, case folded: how names are compared."""
    return " ".join(text.split()).casefold()


def specific(label: str | None) -> bool:
    """Whether an EDAC label names one module (not blank, "any memory", "A or B")."""
    text = (label or "").strip()
    return text.casefold() not in UNSPECIFIC_LABELS and " or " not in text


@dataclass(frozen=True, slots=True)
class NamedDimm:
    """A DIMM as naming sees it: its id, the name to show, every name it answers to.

    ``info`` is the inventory entry when the host knows the module, None for a DIMM
    known only from stored events (a database imported from another machine)."""

    id: str
    display: str
    names: tuple[str, ...]
    info: DimmInfo | None = None

    @property
    def wide(self) -> str:
        """The display name with the other names beside it, where they differ."""
        return wide_text(self.display, self.names)


def wide_text(display: str, names: Iterable[str]) -> str:
    others: list[str] = []
    for name in names:
        if name and fold(name) != fold(display) and fold(name) not in map(fold, others):
            others.append(name)
    return f"{display} ({', '.join(others[:2])})" if others else display


def display_name(dimm: DimmInfo) -> str:
    """Slot label/locator when known, else the EDAC label, else the id."""
    if dimm.smbios is not None and dimm.smbios.locator.strip():
        return dimm.smbios.locator.strip()
    if dimm.edac is not None and specific(dimm.edac.label):
        return dimm.edac.label.strip()
    return dimm.label.strip() if dimm.edac is None and dimm.label.strip() else dimm.id


def display_names(dimms: Sequence[DimmInfo]) -> dict[str, str]:
    """id -> display name for a whole inventory, each shown once: where two modules
    share a locator (``DIMM_A0`` on each socket of a ghes board) the bank locator is
    put before it (``N1 DIMM_A0``), and if that is shared too, the id after it."""
    shown = {d.id: display_name(d) for d in dimms}
    for d in [d for d in dimms if d.id in _shared(shown)]:  # all of a clash, then rename
        if d.smbios is not None and d.smbios.full_locator.strip():
            shown[d.id] = " ".join(d.smbios.full_locator.split())
    for dimm_id in _shared(shown):
        if shown[dimm_id] != dimm_id:
            shown[dimm_id] = f"{shown[dimm_id]} [{dimm_id}]"
    return shown


def _shared(shown: dict[str, str]) -> set[str]:
    """The ids whose display name another id has too."""
    by_name: dict[str, list[str]] = {}
    for dimm_id, name in shown.items():
        by_name.setdefault(fold(name), []).append(dimm_id)
    return {i for ids in by_name.values() if len(ids) > 1 for i in ids}


def wide_name(dimm: DimmInfo, display: str | None = None) -> str:
    """``P1-DIMMC1 (CPU_SrcID#0_MC#0_Chan#2_DIMM#0, mc0/dimm2)``: for wide views."""
    edac_label = dimm.edac.label if dimm.edac is not None and specific(dimm.edac.label) else ""
    return wide_text(display or display_name(dimm), [edac_label, dimm.id])


def named(dimm: DimmInfo, display: str | None = None) -> NamedDimm:
    """An inventory entry as naming sees it; its EDAC key answers as health writes it
    (``mc0:1:0:-1``), so a verdict's key names the module too."""
    names = [dimm.id, *dimm.names()]
    if dimm.smbios is not None:
        names.append(dimm.smbios.bank_locator)
    if dimm.edac is not None:
        names.append(f"mc{dimm.edac.key}")
    shown = display or display_name(dimm)
    return NamedDimm(dimm.id, shown, _unique([shown, *names]), dimm)


def named_all(dimms: Sequence[DimmInfo]) -> list[NamedDimm]:
    """Every inventory entry, with the inventory's display names (:func:`display_names`)."""
    shown = display_names(dimms)
    return [named(d, shown[d.id]) for d in dimms]


def _unique(names: Iterable[str]) -> tuple[str, ...]:
    seen: dict[str, str] = {}
    for name in names:
        if name and name.strip() and fold(name) not in seen:
            seen[fold(name)] = name.strip()
    return tuple(seen.values())


def match(text: str, dimms: Sequence[NamedDimm], *, what: str = "DIMM") -> NamedDimm:
    """The one DIMM ``text`` names (see the module docstring), else a UsageError."""
    wanted = fold(text)
    if not wanted:
        raise UsageError(f"name a {what}", hint=_known_hint(dimms))
    for hits in (
        [d for d in dimms if fold(d.id) == wanted],
        [d for d in dimms if wanted in map(fold, d.names)],
        [d for d in dimms if any(fold(n).startswith(wanted) for n in d.names)],
    ):
        ids = {d.id for d in hits}
        if len(ids) == 1:
            return hits[0]
        if ids:
            shown = ", ".join(d.wide for d in _by_id(hits))
            raise UsageError(f"{text!r} names {len(ids)} DIMMs", hint=f"pick one of: {shown}")
    raise UsageError(f"no {what} called {text!r}", hint=suggest(text, dimms))


def _by_id(dimms: Iterable[NamedDimm]) -> list[NamedDimm]:
    return list({d.id: d for d in dimms}.values())


def suggest(text: str, dimms: Sequence[NamedDimm]) -> str:
    """"did you mean: …" with the closest known names, or the known DIMMs."""
    by_fold = {fold(n): n for d in dimms for n in d.names}
    close = difflib.get_close_matches(fold(text), list(by_fold), n=SUGGESTIONS, cutoff=0.5)
    if close:
        return "did you mean: " + ", ".join(by_fold[c] for c in close)
    return _known_hint(dimms)


def _known_hint(dimms: Sequence[NamedDimm]) -> str:
    if not dimms:
        return "no DIMMs known: no inventory under --root and no errors stored"
    shown = [d.display for d in _by_id(dimms)]
    more = f" … ({len(shown)} in all)" if len(shown) > KNOWN_SHOWN else ""
    return "known DIMMs: " + ", ".join(shown[:KNOWN_SHOWN]) + more


# --- the confirmation before memory is pulled ------------------------------------------

@dataclass(frozen=True, slots=True)
class Confirmation:
    """What the engineer types before a module is taken out: the name it is shown by,
    the slot label printed on the board beside it when the firmware gives one (the
    SMBIOS locator). The CLI (`memras replace`) and the TUI wizard both ask this way,
    so one habit serves both: read the board, type what it says.

    Why the slot label and not the EDAC label or the id: it is the one name the
    engineer can check against the hardware in front of them; typing it makes them
    look at the slot they are about to open."""

    name: str
    what: str  # "slot label" (an SMBIOS locator), else "DIMM label" or "DIMM id"

    @property
    def prompt(self) -> str:
        return f"Type the {self.what} {self.name} to go on"

    def accepts(self, typed: str) -> bool:
        """Whether ``typed`` is the name (case and whitespace folded, as names are
        compared everywhere): never a prefix, never the closest name."""
        return bool(fold(typed)) and fold(typed) == fold(self.name)


def confirmation(dimm_id: str, dimms: Sequence[DimmInfo] = (), *, locator: str = "",
                 label: str = "") -> Confirmation:
    """The confirmation for the module ``dimm_id``: its display name in the inventory
    ``dimms`` (a locator two modules share gets its bank locator, :func:`display_names`),
    else ``locator``, else a specific ``label``, else the id (a DIMM the inventory no
    longer lists, e.g. a replacement resumed after the swap)."""
    by_id = {d.id: d for d in dimms}
    dimm = by_id.get(dimm_id)
    if dimm is not None:
        locator = dimm.smbios.locator if dimm.smbios is not None else ""
        name = display_names(dimms)[dimm_id]
    else:
        name = (locator.strip() or (label.strip() if specific(label) else "") or dimm_id)
    if locator.strip():
        return Confirmation(name, "slot label")
    return Confirmation(name, "DIMM label" if name != dimm_id else "DIMM id")
