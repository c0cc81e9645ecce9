"""Alerts named as people name the DIMM: the slot label resolved now.

An alert stores the DIMM's id and the label its error printed when it was raised
(``dimm_label``: ``CPU_SrcID#0_MC#0_Chan#1_DIMM#0``, or whatever ``ras-mc-ctl
--register-labels`` had written then). What a person looks for on the board is the slot
label (``P1-DIMMB1``), so every front end and hook shows :attr:`Alert.dimm_name`, filled
here from the host's inventory and the database (:mod:`memras.health.dimm_names`, the
commands' one resolver) when alerts are read or raised; the stored label stays beside it
in the payload (``dimm.label``).

Why resolved on reading and not stored: a label registered after the alert was raised,
or an alert read on the machine its database was copied to, still shows the name the
slot has now; the stored fields are the record of what was known then.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING

from memras.alerts.alert import Alert, AlertKind
from memras.errors import MemrasError
from memras.health.dimm_names import DimmNames

if TYPE_CHECKING:
    from memras.host import Host
    from memras.store.store import Store

Namer = Callable[[str], "str | None"]  # DIMM id -> the name shown, None when unknown


def dimm_namer(host: Host | None, store: Store | None) -> Namer:
    """A DIMM id's display name: the host's inventory first (read once, here), then the
    identities stored with the errors (a module since removed, a database from another
    machine), asked only for an id the inventory does not list, once per id."""
    names = DimmNames.of(host, store)
    inventory = {d.id: d.display for d in names.inventory}
    stored: dict[str, str | None] = {}

    def name(dimm_id: str) -> str | None:
        if dimm_id in inventory:
            return inventory[dimm_id]
        if dimm_id not in stored:
            try:
                found = names.find(dimm_id)
            except MemrasError:  # a database without health's tables: the stored label
                found = None
            stored[dimm_id] = found.display if found is not None else None
        return stored[dimm_id]

    return name


def inventory_namer(shown: Mapping[str, str]) -> Namer:
    """A namer over display names a caller has already (``views.dashboard``'s rows)."""
    return shown.get


def named(alert: Alert, namer: Namer | None) -> Alert:
    """``alert`` with :attr:`Alert.dimm_name` set to the DIMM's name now (unchanged
    without a namer, a DIMM or a name; a test alert names no real DIMM)."""
    if namer is None or alert.dimm_id is None or alert.kind is AlertKind.TEST:
        return alert
    name = namer(alert.dimm_id)
    if name is None or name == alert.dimm_id:  # no better than the id: the stored label
        return alert
    return alert if name == alert.dimm_name else alert.replace(dimm_name=name)


def named_all(alerts: Iterable[Alert], namer: Namer | None) -> list[Alert]:
    return [named(alert, namer) for alert in alerts]
