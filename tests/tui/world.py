"""A deterministic simulated server + database for TUI tests and snapshots.

The ``demo`` profile with errors injected through memras.sim (EDAC counters), the
same errors stored with fixed timestamps before ``PINNED_NOW``, verdicts from the
real health engine, alerts through the real alert service and a short audit trail
with fixed times: nothing depends on this machine's /sys, config or clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from memras.host import Host
from memras.records import DimmLocation, ErrorType, MemoryErrorEvent, Source
from memras.sim.actions import inject_ce
from memras.sim.profiles import create
from memras.store import Store

PINNED_NOW = datetime(2024, 5, 14, 12, 0, tzinfo=UTC)
GiB = 1 << 30
FAILING = "mc0/dimm2"  # P1-DIMMB1: a row fault, 14 CEs in the last day
BROKEN = "mc2/dimm0"  # P2-DIMMA1: one UE
HOSTILE_LABEL = "\x1b[2J[bold]red[/]EVIL"


@dataclass
class World:
    root: Path
    db: Path


def _event(t: datetime, mc: int, ch: int, label: str, address: int, *, bank: int, row: int,
           column: int, ue: bool = False) -> MemoryErrorEvent:
    return MemoryErrorEvent(
        error_type=ErrorType.UNCORRECTED if ue else ErrorType.CORRECTED, source=Source.TRACE,
        count=1, timestamp=t, address=address, message="memory read error",
        driver="skx_edac", driver_detail=f"row:{row:#x} col:{column:#x} bank:{bank}",
        location=DimmLocation(socket=mc // 2, mc=mc, channel=ch, slot=0, bank=bank, row=row,
                              column=column, label=label, top_layer=ch, middle_layer=0),
        raw=f"test {t.isoformat()} {address:#x}")


def events() -> list[MemoryErrorEvent]:
    out = []
    for i in range(14):  # one row of bank 3, many columns, over the last 20 hours
        t = PINNED_NOW - timedelta(hours=20) + timedelta(minutes=85 * i)
        out.append(_event(t, 0, 1, "CPU_SrcID#0_MC#0_Chan#1_DIMM#0",
                          4 * GiB + 0x1234000 + i * 0x40, bank=3, row=0x2a1, column=8 * i))
    out.append(_event(PINNED_NOW - timedelta(hours=3), 2, 0, "CPU_SrcID#1_MC#0_Chan#0_DIMM#0",
                      20 * GiB + 0x5000, bank=7, row=0x10, column=0x20, ue=True))
    out.append(_event(PINNED_NOW - timedelta(days=3), 1, 0, "CPU_SrcID#0_MC#1_Chan#0_DIMM#0",
                      14 * GiB + 0x9000, bank=1, row=0x77, column=0x18))
    return out


def build(tmp_path: Path, monkeypatch: object, *, label: str | None = None,
          with_data: bool = True) -> World:
    server = create("demo", tmp_path / "root")
    root = server.root
    if label is not None:
        (root / "sys/devices/system/edac/mc/mc0/dimm2/dimm_label").write_text(label + "\n")
    db = tmp_path / "memras.db"
    store = Store.open(db)
    if with_data:
        inject_ce(root, "P1-DIMMB1", count=14)
        inject_ce(root, "P2-DIMMA1", ue=True)
        _fill(store, server.host(), monkeypatch)
    store.close()
    return World(root, db)


def _fill(store: Store, host: Host, monkeypatch: object) -> None:
    from memras.alerts.service import AlertService
    from memras.audit import service as audit_service
    from memras.health.api import HealthEngine
    from memras.health.dimm_names import attribute_from_host

    evs = events()
    store.add_events(evs)
    attribute_from_host(store, host)  # each row's DIMM, as the watcher and import fill it
    changes = HealthEngine(None, store, host).process(evs)
    alerts = AlertService.open(store)
    for change in changes:
        if change.kind.value in ("verdict-changed", "ue"):
            alerts.raise_change(change)
    alerts.close()
    stamps = iter(f"2024-05-1{d}T0{h}:00:00.000000+00:00" for d in (1, 2) for h in range(10))
    monkeypatch.setattr(audit_service, "_now_iso", lambda: next(stamps))  # type: ignore[attr-defined]
    trail = audit_service.AuditTrail(store)
    actor = audit_service.Actor(uid=0, user="root", operator="alice", host="demo-db-01")
    for action, data in [("start", {"dimm": "mc1/dimm2", "message": "replace P1-DIMME1"}),
                         ("offline", {"blocks": [128, 129], "outcome": "done"}),
                         ("finish", {"outcome": "replaced", "message": "new serial D3A5F2"})]:
        trail.append(action, data, actor=actor, replacement_id=1)
