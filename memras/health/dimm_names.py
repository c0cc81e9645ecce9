"""DIMMs by name across the host's inventory and the database: the commands' one resolver.

Identity is health's (:mod:`memras.health.keys`): the inventory's id when the host knows
the module (``mc0/dimm2``), else the event's location key (``mc1:0:1:-1``,
``S0:C1:D0``, ``label:…``). Names are topology's (:mod:`memras.topology.naming`): the
slot locator, else the EDAC label, else the id. This module joins the two:

* :meth:`DimmNames.resolve` takes any name of a DIMM the inventory knows, and when the
  inventory does not know it (a database imported from another machine, a module
  since removed) the identities stored with its errors: their keys and labels;
* :meth:`DimmNames.display` / :meth:`DimmNames.wide` show an id as people name it,
  so a verdict keyed ``mc1:0:1:-1`` reads as the label its errors printed;
* :meth:`DimmNames.error_filter` selects a DIMM's stored rows, those attributed to it
  and those stored before attribution whose location resolves to it, and a CXL
  memdev's records (poison, health) beside its media errors;
* :func:`attribute_errors` fills ``memras_error.dimm_id`` for rows stored without one,
  with the same :func:`memras.health.keys.dimm_id_for` the engine judges by.

Why the location key and not the label is a foreign DIMM's identity: a label changes
when someone runs ``ras-mc-ctl --register-labels``; the controller and layers do not,
and health's buckets and recorded verdicts are keyed by them already. The label is
what is *shown*.
"""

from __future__ import annotations

from collections import defaultdict
from functools import cached_property
from typing import TYPE_CHECKING

from memras.errors import MemrasError, UsageError
from memras.health.keys import DimmResolver, dimm_id_for, inventory_resolver
from memras.health.module_registry import current_modules
from memras.health.verdict_rows import current_verdicts
from memras.records import DimmLocation, ErrorType, MemoryErrorEvent, Source
from memras.store.cxl import stored_memdevs
from memras.store.dimm_ids import DimmFilter, StoredDimm, fill_dimm_ids, stored_dimms
from memras.topology.inventory import DimmInfo, dimm_inventory
from memras.topology.naming import NamedDimm, fold, match, named_all, specific

if TYPE_CHECKING:
    from memras.host import Host
    from memras.store.store import Store


def _probe(location: DimmLocation, address: int | None = None) -> MemoryErrorEvent:
    """An event carrying only what a resolver reads: the location and the address."""
    return MemoryErrorEvent(ErrorType.CORRECTED, Source.TRACE, address=address,
                            location=location)


def host_inventory(host: Host | None) -> list[DimmInfo]:
    """The host's inventory, or none when it has no readable memory description."""
    if host is None:
        return []

    try:
        return dimm_inventory(host)
    except (MemrasError, OSError):
        return []


def host_resolver(host: Host | None, inventory: list[DimmInfo]) -> DimmResolver | None:
    """Health's inventory resolver for ``host``, None without an inventory."""
    if host is None or not inventory:
        return None
    try:
        return inventory_resolver(host, inventory)
    except (MemrasError, OSError):
        return None


def host_memdevs(host: Host | None) -> tuple[str, ...]:
    """The host's CXL memdev names (none when it has no CXL bus or cannot be read)."""
    if host is None:
        return ()
    try:
        return tuple(m.name for m in host.cxl.memdevs())
    except (MemrasError, OSError):
        return ()


class DimmNames:
    """The DIMMs a command can name: the inventory's, then the database's; a CXL memdev
    (the host's, or one with stored records) is one too, by its id ``label:memN``
    (memras.health.keys) and its name ``memN``."""

    def __init__(self, inventory: list[DimmInfo], store: Store | None = None,
                 resolver: DimmResolver | None = None, memdevs: tuple[str, ...] = ()) -> None:
        self.inventory = named_all(inventory)
        self.store = store
        self.resolver = resolver
        self.host_memdevs = memdevs

    @classmethod
    def of(cls, host: Host | None, store: Store | None) -> DimmNames:
        inventory = host_inventory(host)
        return cls(inventory, store, host_resolver(host, inventory), host_memdevs(host))

    @cached_property
    def memdevs(self) -> frozenset[str]:
        """The host's memdevs and those with records stored."""
        stored = stored_memdevs(self.store) if self.store is not None else []
        return frozenset(self.host_memdevs) | frozenset(stored)

    @cached_property
    def _stored(self) -> list[NamedDimm]:
        """The DIMMs known from stored rows and not from the inventory (every row grouped:
        read only when a name is not the inventory's), and the memdevs."""
        labels: dict[str, dict[str, int]] = defaultdict(dict)
        for row in stored_dimms(self.store) if self.store is not None else []:
            dimm_id = row.dimm_id or self._id_of(row)
            if dimm_id is None:
                continue
            label = (row.location.label or "").strip()
            seen = labels[dimm_id]
            if specific(label):
                seen[label] = seen.get(label, 0) + row.events
        for dimm_id in _judged(self.store) if self.store is not None else ():
            labels.setdefault(dimm_id, {})  # a verdict or module kept, no error row left
        for memdev in self.memdevs:  # named memN even before it has an error row
            labels.setdefault(f"label:{memdev}", {}).setdefault(memdev, 0)
        known = {d.id for d in self.inventory}
        return [_from_rows(dimm_id, by_events) for dimm_id, by_events in labels.items()
                if dimm_id not in known]

    @cached_property
    def _loose(self) -> dict[str, list[DimmLocation]]:
        """id -> the locations of its rows stored without a dimm_id (only those rows read:
        a DIMM the inventory names costs no scan of the attributed ones)."""
        loose: dict[str, list[DimmLocation]] = defaultdict(list)
        for row in stored_dimms(self.store, unattributed=True) if self.store else []:
            dimm_id = self._id_of(row)
            if dimm_id is not None:
                loose[dimm_id].append(row.location)
        return dict(loose)

    def _id_of(self, row: StoredDimm) -> str | None:
        return dimm_id_for(_probe(row.location), self.resolver)

    @property
    def known(self) -> list[NamedDimm]:
        return self.inventory + self._stored

    def resolve(self, text: str) -> NamedDimm:
        """The DIMM ``text`` names: the inventory first, then the stored identities."""
        try:
            return match(text, self.inventory)
        except UsageError:
            if self.store is None and not self.host_memdevs:
                raise
        return match(text, self.known)

    def find(self, dimm_id: str) -> NamedDimm | None:
        return next((d for d in self.known if d.id == dimm_id), None)

    def display(self, dimm_id: str | None) -> str:
        """How ``dimm_id`` is shown: slot label, else EDAC label, else the id."""
        if dimm_id is None:
            return "-"
        found = self.find(dimm_id)
        return found.display if found is not None else dimm_id

    def wide(self, dimm_id: str) -> str:
        found = self.find(dimm_id)
        return found.wide if found is not None else dimm_id

    def error_filter(self, text: str) -> DimmFilter:
        """The store filter for the rows of the DIMM ``text`` names: attributed to it, or
        stored before attribution at a location that resolves to it. A label exactly as
        the kernel printed it selects the rows that printed it even when they lie at
        several locations (the rows `errors --dimm LABEL` always gave)."""
        try:
            dimm = self.resolve(text)
        except UsageError:
            printed = self._printed(text)
            if not printed:
                raise
            return DimmFilter(labels=printed)
        memdev = dimm.id.removeprefix("label:")
        return DimmFilter((dimm.id,), locations=tuple(self._loose.get(dimm.id, ())),
                          memdevs=(memdev,) if memdev in self.memdevs else ())

    def _printed(self, text: str) -> tuple[str, ...]:
        wanted = fold(text)
        return tuple(sorted({name for d in self._stored for name in d.names[1:]
                             if fold(name) == wanted}))


def _judged(store: Store) -> set[str]:
    """The DIMM ids health has recorded a verdict or a module for."""
    return set(current_verdicts(store)) | set(current_modules(store))


def _from_rows(dimm_id: str, labels: dict[str, int]) -> NamedDimm:
    """A DIMM known from stored rows: shown by its most reported specific label."""
    ordered = sorted(labels, key=lambda label: -labels[label])
    display = ordered[0] if ordered else dimm_id
    names = (dimm_id, *ordered)
    return NamedDimm(dimm_id, display, names)


def attribute_errors(store: Store, resolver: DimmResolver | None, after_id: int = 0) -> int:
    """Fill ``dimm_id`` on rows after ``after_id`` stored without one, with the id
    :func:`memras.health.keys.dimm_id_for` gives (the engine's own); returns the last row
    id covered (the caller's next ``after_id``). Rows no DIMM can be found for (an
    address outside every module, "any memory") stay NULL."""

    def dimm_of(location: DimmLocation) -> str | None:
        return dimm_id_for(_probe(location), resolver)

    def dimm_at(location: DimmLocation, address: int) -> str | None:
        return resolver(_probe(location, address)) if resolver is not None else None

    return fill_dimm_ids(store, after_id, dimm_of, dimm_at if resolver is not None else None)


def attribute_from_host(store: Store, host: Host, after_id: int = 0) -> int:
    """:func:`attribute_errors` with ``host``'s inventory (location keys without one)."""
    return attribute_errors(store, host_resolver(host, host_inventory(host)), after_id)
