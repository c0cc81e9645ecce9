"""Event time and the keys health counts by: the one place an event meets a DIMM id.

* :func:`event_time_s` is the only clock health uses: the event's own wall time
  (or, lacking that, its kernel uptime). Never ``time.time()``.
* :func:`dimm_id_for` maps an event to a DIMM id: the inventory's id when a
  resolver built from a Host is given (:func:`inventory_resolver`), else a stable
  key from the decoded location, so the same DIMM gets the same id in every run.
* :func:`scope_keys` gives the bucket key of each scope (rank, bank, row, page…).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from memras.errors import MemrasError
from memras.health.buckets import Scope
from memras.records import DimmLocation, LocatedError, MemoryErrorEvent
from memras.topology import inventory, locate
from memras.topology.inventory import DimmInfo
from memras.topology.naming import UNSPECIFIC_LABELS, specific

if TYPE_CHECKING:
    from memras.host import Host

DimmResolver = Callable[[MemoryErrorEvent], str | None]


def event_time_s(event: LocatedError) -> float | None:
    """Seconds of the event's own clock (epoch, or uptime when no wall time)."""
    if event.timestamp is not None:
        ts = event.timestamp
        if ts.tzinfo is None:
            ts = ts.replace(tzinfo=UTC)
        return ts.timestamp()
    return event.uptime_s


def time_of(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, tz=UTC)


def naive_utc(at: datetime) -> datetime:
    """How health's tables store a time: naive UTC (a naive ``at`` is taken as UTC)."""
    return (at if at.tzinfo else at.replace(tzinfo=UTC)).astimezone(UTC).replace(tzinfo=None)


def location_key(loc: DimmLocation) -> str | None:
    """A stable DIMM key from a decoded location, or None when it names no DIMM.

    Preference: EDAC ``mc:top:mid:low`` (ras-mc-ctl's key), then socket/channel/
    slot, then the label. An "any memory" label names no DIMM.
    """
    if loc.mc is not None and loc.top_layer is not None:
        layers = [loc.top_layer, loc.middle_layer, loc.lower_layer]
        return "mc" + ":".join(str(x if x is not None else -1) for x in [loc.mc, *layers])
    if loc.channel is not None and (loc.slot is not None or loc.csrow is not None):
        socket = loc.socket if loc.socket is not None else (loc.mc if loc.mc is not None else "?")
        dimm = loc.slot if loc.slot is not None else f"cs{loc.csrow}"
        return f"S{socket}:C{loc.channel}:D{dimm}"
    label = (loc.label or "").strip()
    if specific(label):
        return f"label:{label}"
    return None


def dimm_id_for(event: MemoryErrorEvent, resolver: DimmResolver | None = None) -> str | None:
    """The DIMM id of an event (inventory id when resolvable), or None if unattributable."""
    if resolver is not None:
        resolved = resolver(event)
        if resolved:
            return resolved
    return location_key(event.location)


def channel_key(loc: DimmLocation) -> str | None:
    """The memory channel an event is on (for "several DIMMs on one channel")."""
    if loc.channel is not None:
        owner = loc.socket if loc.socket is not None else loc.mc
        return f"{owner}:{loc.channel}"
    if loc.mc is not None and loc.top_layer is not None and loc.middle_layer is not None:
        return f"mc{loc.mc}:{loc.top_layer}"  # skx/i10nm layers: channel, slot
    return None


def socket_key(loc: DimmLocation) -> str | None:
    if loc.socket is not None:
        return f"socket{loc.socket}"
    return None


def scope_keys(event: LocatedError, dimm_id: str | None) -> dict[Scope, str | None]:
    """The bucket key per scope; None where the event lacks the needed location."""
    loc = event.location
    rank = None if dimm_id is None or loc.rank is None else f"{dimm_id}/rank{loc.rank}"
    bank = None
    if rank is not None and loc.bank is not None:
        bank = f"{rank}/bg{loc.bank_group if loc.bank_group is not None else '-'}/bank{loc.bank}"
    row = None if bank is None or loc.row is None else f"{bank}/row{loc.row:#x}"
    page = event.page_address
    return {
        Scope.HOST: "host",
        Scope.SOCKET: socket_key(loc),
        Scope.DIMM: dimm_id,
        Scope.RANK: rank,
        Scope.BANK: bank,
        Scope.ROW: row,
        Scope.PAGE: None if page is None else f"{page:#x}",
    }


def owned_by(scope: Scope, key: str, dimm_id: str, pages: set[str]) -> bool:
    """Whether the bucket ``(scope, key)`` counts one DIMM's errors (keys as above).

    Page keys are addresses, which name no DIMM: ``pages`` are that DIMM's.
    """
    if scope == Scope.PAGE:
        return key in pages
    if scope in (Scope.DIMM, Scope.RANK, Scope.BANK, Scope.ROW):
        return key == dimm_id or key.startswith(dimm_id + "/")
    return False


def inventory_resolver(host: Host, dimms: list[DimmInfo] | None = None) -> DimmResolver:
    """A resolver backed by :mod:`memras.topology.inventory` (label, EDAC layers, address).

    The inventory (unless given) and memory map are read once. An event is matched by its EDAC
    ``mc:top:mid:low`` first, then by any name the inventory knows (label, locator),
    then by its address when :func:`memras.topology.locate.locate` maps it to one DIMM.
    """
    if dimms is None:
        dimms = inventory.dimm_inventory(host)
    memory_map = locate.read_memory_map(host)
    by_key: dict[str, str] = {}
    by_name: dict[str, str] = {}
    for d in dimms:
        if d.edac is not None:
            by_key["mc" + d.edac.key] = d.id
        for name in d.names():
            by_name.setdefault(name.strip().lower(), d.id)

    def resolve(event: MemoryErrorEvent) -> str | None:
        key = location_key(event.location)
        if key in by_key:
            return by_key[key]
        label = (event.location.label or "").strip().lower()
        if label not in UNSPECIFIC_LABELS and label in by_name:
            return by_name[label]
        if event.address is None or not memory_map.blocks:
            return None
        try:
            where = locate.locate(host, event.address, memory_map=memory_map, inventory=dimms)
        except MemrasError:
            return None
        ids = {c.dimm_id for c in where.candidates if getattr(c, "dimm_id", None)}
        return ids.pop() if len(ids) == 1 and where.status == "mapped" else None

    return resolve
