"""DIMM rows as ``memras dimms`` and ``memras status`` show them (--json and tables).

The inventory comes from the host; the verdict and module columns from the store,
which a fresh machine does not have yet: then they read "-" and one line says why.
"""

from __future__ import annotations

from typing import Any

from memras.cli.context import Context
from memras.errors import MemrasError
from memras.health.api import current_verdicts
from memras.health.dimm_names import DimmNames
from memras.health.module_registry import current_modules
from memras.store import Store
from memras.store.dimm_ids import DimmFilter
from memras.topology.inventory import DimmInfo
from memras.topology.naming import display_name, display_names, wide_name

NO_VERDICT = "-"


def health_columns(ctx: Context, dimms: list[DimmInfo]
                   ) -> tuple[dict[str, str], dict[str, dict[str, Any]]]:
    """(DIMM id -> verdict, DIMM id -> registered module) from the health layer.

    The database is only read (``memras dimms`` works for a user who may only read
    it): the module registry is what the watcher synced at its start, so a module
    swapped while no watcher ran shows as new once one has. Without a database (none
    yet, unreadable) every DIMM shows "-" and one line says why: the inventory comes
    from the host and must not depend on the store.
    """
    ids = [d.id for d in dimms]
    try:
        with ctx.store() as store:
            verdicts = {str(k): str(v) for k, v in current_verdicts(store, ids).items()}
            return verdicts, {k: m.to_dict() for k, m in current_modules(store, ids).items()}
    except MemrasError as exc:
        print(f"memras: verdicts unavailable: {exc.msg}", file=ctx.err)
        return {}, {}


def verdict_column(ctx: Context, dimms: list[DimmInfo]) -> dict[str, str]:
    """DIMM id -> verdict (see :func:`health_columns`)."""
    return health_columns(ctx, dimms)[0]


def dimm_rows(dimms: list[DimmInfo], verdicts: dict[str, str],
              modules: dict[str, dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """:func:`dimm_row` of each, named as the whole inventory tells them apart."""
    shown = display_names(dimms)
    return [dimm_row(d, verdicts, modules, shown[d.id]) for d in dimms]


def dimm_row(d: DimmInfo, verdicts: dict[str, str],
             modules: dict[str, dict[str, Any]] | None = None,
             name: str | None = None) -> dict[str, Any]:
    """One DIMM for tables and --json; ``module`` is its registry entry (serial the
    registry files it under, installed_at, source), None when not registered;
    ``name`` its display name (:func:`memras.topology.naming.display_names`)."""
    name = name or display_name(d)
    return {
        # name: as people call it (memras.topology.naming); label: the EDAC label etc.
        "id": d.id, "name": name, "wide_name": wide_name(d, name), "label": d.label,
        "location": d.location, "size_bytes": d.size_bytes,
        "ce": d.ce_count, "ue": d.ue_count, "verdict": verdicts.get(d.id, NO_VERDICT),
        "locator": d.smbios.locator if d.smbios else None,
        "bank_locator": d.smbios.bank_locator if d.smbios else None,
        "serial": d.smbios.serial if d.smbios else None,
        "part_number": d.smbios.part_number if d.smbios else None,
        "manufacturer": d.smbios.manufacturer if d.smbios else None,
        "speed_mts": d.smbios.speed_mts if d.smbios else None,
        "edac": d.edac_ref, "acpi_device": d.acpi_device, "acpi_uid": d.acpi_uid,
        "blocks": list(d.blocks), "mapping": d.mapping, "mapping_reason": d.mapping_reason,
        "match": d.match, "module": (modules or {}).get(d.id),
    }


def module_text(module: dict[str, Any] | None) -> str:
    """The module column: the serial the registry knows it by, or "-"."""
    return (module or {}).get("serial") or NO_VERDICT


def dimm_names(ctx: Context, store: Store | None) -> DimmNames:
    """The DIMMs this command can name: the host's inventory, then the database's."""
    return DimmNames.of(ctx.host, store)


def dimm_filter(ctx: Context, store: Store, text: str) -> DimmFilter:
    """``--dimm TEXT`` as a store filter: any name of one DIMM, else a UsageError (exit 2)
    with the closest known names — never "no errors" for a typo."""
    return dimm_names(ctx, store).error_filter(text)
