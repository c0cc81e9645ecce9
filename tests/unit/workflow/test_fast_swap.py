"""A module swapped faster than memras looks: the new module's blocks take the old
numbers before memras sees the old ones go (issue 18, the 600 s wait and the false
"rolled back"). The old module's removal is known from its blocks' ``remove`` uevents,
or, when uevents are lost, from sysfs: the blocks with those numbers are other kernel
objects (inode numbers). Rollback and verify never take the new module for the old one.
"""

from __future__ import annotations

import pytest

from memras.audit.service import AuditTrail
from memras.sim import actions, profiles
from memras.sim import kernel as sim_kernel
from memras.store import Store
from memras.workflow.backends import Target
from memras.workflow.detect import ModuleWatch, Uevent, block_ids
from memras.workflow.runner import Replacement, ReplaceOptions, _verify
from memras.workflow.states import State
from memras.workflow.verify import check_module_identity

FAST = {"backoff_initial_s": 0.01, "backoff_max_s": 0.02, "max_attempts": 4}
# A broken detection waits this long and fails; a working one never does.
DETECT_S = 8.0


@pytest.fixture
def store(tmp_path):
    with Store.open(tmp_path / "memras.db") as s:
        yield s


def fast_swap(host, *, serial: str, lose_uevents: bool = False, monkeypatch=None) -> list:
    """Make the ACPI eject of ``host`` insert a new module at once, in the same call —
    before memras's first look — as a platform or the lab's host answering the eject
    within milliseconds does. Returns the list the inserted blocks are appended to."""
    inserted: list[list[int]] = []
    real_eject = host.acpi.eject

    def eject_then_insert(name: str) -> None:
        if lose_uevents:  # the netlink socket overflowed: no uevent reaches memras
            monkeypatch.setattr(sim_kernel, "uevent", lambda *a, **k: None)
            monkeypatch.setattr(actions, "uevent", lambda *a, **k: None)
        real_eject(name)
        inserted.append(actions.insert_dimm(host.root, name, serial=serial,
                                            part="NEW-PART"))

    host.acpi.eject = eject_then_insert
    return inserted


def start(host, store, dimm: str, **opts) -> Replacement:
    return Replacement.start(host, store, dimm, ReplaceOptions(
        operator="Ada", policy=FAST, backend="acpi", detect_timeout_s=DETECT_S, **opts))


def audit(store, rep: Replacement) -> dict[str, dict]:
    return {e.action: e.data for e in AuditTrail(store).list(replacement_id=rep.id)}


@pytest.mark.parametrize("serial", ["NEW-SERIAL-0001", "D3A5F1DD3"],
                         ids=["serial-changed", "serial-unchanged"])
def test_removal_and_add_within_one_poll_interval_is_a_swap(tmp_path, store,
                                                            serial: str) -> None:
    srv = profiles.create("demo", tmp_path / "root")
    host = srv.host()
    rep = start(host, store, "P1-DIMMB1")
    old = rep.target
    assert old.serial == "D3A5F1DD3" and all(old.block_ids) and old.acpi_device
    inserted = fast_swap(host, serial=serial)
    outcome = rep.run()
    assert rep.state is State.CLOSED, (outcome, rep._row().error)
    # the new module took the very same block numbers: only their objects changed
    assert inserted == [list(old.blocks)]
    assert sorted(b.block for b in rep.blocks("new")) == list(old.blocks)
    assert all(a != b for a, b in zip(block_ids(host, old.blocks), old.block_ids,
                                      strict=True))
    rows = audit(store, rep)
    assert "rollback" not in rows and "swap-observed" not in rows
    removed = rows["remove_module"]["observed"]
    span = f"memory{old.blocks[0]}-{old.blocks[-1]}"
    assert removed["removed"] == f"uevents: remove {span}"
    assert removed["uevent_source"] == "simulator"
    # the kernel's order: every block removed, then every block added, then onlined
    names = [f"memory{b}" for b in old.blocks]
    n = len(names)
    assert removed["uevents"][:2 * n] == ([f"remove {x}" for x in names]
                                          + [f"add {x}" for x in names])
    assert rows["insert_module"]["observed"]["inserted"] == f"uevents: add {span} after " \
                                                            "the removal"
    assert rows["insert_module"]["message"].startswith("new module already present")
    checks = {c["name"]: c for c in rows["verify"]["checks"]}
    assert checks["module identity"]["ok"] is True
    assert "are new kernel objects" in checks["module identity"]["detail"]
    assert f"{old.acpi_device} present in slot {old.slot}" in checks["module identity"][
        "detail"]
    identity = checks["identity"]["detail"]
    if serial == old.serial:  # a platform that never re-reads the slot's SMBIOS entry
        assert "unchanged" in identity
    else:
        assert serial in identity
        assert rows["verify"]["identity"]["module_serial"] == serial
    assert rows["remove_module"]["old_module"]["serial"] == old.serial
    assert rows["remove_module"]["old_module"]["slot"] == old.slot
    assert AuditTrail(store).verify().ok


def test_lost_uevents_the_sysfs_cross_check_still_sees_the_swap(tmp_path, store,
                                                                monkeypatch) -> None:
    srv = profiles.create("qemu-guest", tmp_path / "root")
    host = srv.host()
    rep = start(host, store, "PNP0C80:01", reserve_bytes=1 << 28)
    old = rep.target
    fast_swap(host, serial="NEW-1", lose_uevents=True, monkeypatch=monkeypatch)
    outcome = rep.run()
    assert rep.state is State.CLOSED, (outcome, rep._row().error)
    rows = audit(store, rep)
    observed = rows["remove_module"]["observed"]
    assert observed["uevents"] == []  # nothing arrived
    assert observed["removed"] == (f"sysfs: memory{old.blocks[0]}-{old.blocks[-1]} "
                                   "are new kernel objects (the old ones were removed)")
    assert rows["insert_module"]["observed"]["inserted"].startswith("sysfs: ")
    assert "rollback" not in rows


def test_rollback_after_an_unseen_swap_says_swap_and_verifies_the_new_module(
        tmp_path, store) -> None:
    """The module was swapped while memras was not running (killed after offlining);
    ``--abort`` must not "roll back" onto the new module."""
    srv = profiles.create("qemu-guest", tmp_path / "root")
    host = srv.host()
    rep = start(host, store, "PNP0C80:01", reserve_bytes=1 << 28)
    old = rep.target
    while rep.state is not State.OFFLINE:
        rep.next_step()
    # outside memras: eject and an immediate new module, same block numbers
    host.acpi.eject("PNP0C80:01")
    actions.insert_dimm(host.root, "PNP0C80:01", serial="NEW-2")
    outcome = rep.abort()
    assert outcome.step == "rollback" and outcome.state is State.INSERTED
    assert "not rolled back" in outcome.message and "swap already happened" in outcome.message
    assert rep.state is State.INSERTED and not rep.finished
    rows = audit(store, rep)
    assert "rollback" not in rows  # the audit says what was observed
    seen = rows["swap-observed"]
    assert seen["instead_of"] == "rollback" and seen["state"] == "inserted"
    assert seen["new_blocks"] == list(old.blocks)
    # --resume: online and verify the new module, then close
    resumed = Replacement.active(host, store)
    final = resumed.run()
    assert resumed.state is State.CLOSED, final
    for block in old.blocks:
        assert host.memory.read(block).zone == "Movable"
    assert AuditTrail(store).verify().ok


def test_rollback_with_the_old_module_still_in_rolls_back(tmp_path, store) -> None:
    srv = profiles.create("qemu-guest", tmp_path / "root")
    host = srv.host()
    rep = start(host, store, "PNP0C80:01", reserve_bytes=1 << 28)
    while rep.state is not State.OFFLINE:
        rep.next_step()
    outcome = rep.abort()
    assert rep.state is State.ROLLED_BACK, outcome
    assert "swap-observed" not in audit(store, rep)


def test_verify_refuses_the_old_module_as_the_new_one(tmp_path) -> None:
    srv = profiles.create("qemu-guest", tmp_path / "root")
    host = srv.host()
    device = host.acpi.read("PNP0C80:01")
    blocks = device.blocks
    target = Target(dimm_id="PNP0C80:01", label="", locator="", serial="", part="",
                    blocks=blocks, block_size=host.memory.block_size(),
                    acpi_device="PNP0C80:01", slot="1", block_ids=block_ids(host, blocks))
    check = check_module_identity(host, target, list(blocks))
    assert not check.ok and "still the old module's block" in check.detail
    other_slot = Target(**{**target.as_dict(), "blocks": blocks, "block_ids": (),
                           "slot": "3"})
    check = check_module_identity(host, other_slot, list(blocks))
    assert not check.ok and "slot 3" in check.detail
    assert _verify  # the runner's verify step calls this check (see the swap tests)


def _target(blocks: tuple[int, ...]) -> Target:
    return Target(dimm_id="x", label="", locator="", serial="", part="", blocks=blocks,
                  block_size=128 << 20, acpi_device="PNP0C80:01", slot="1")


class _NoSource:
    kind = None

    def wait_events(self, timeout: float) -> list:
        return []

    def close(self) -> None:
        pass


def test_watch_counts_adds_only_after_removes_and_the_acpi_device(tmp_path) -> None:
    srv = profiles.create("qemu-guest", tmp_path / "root")
    host = srv.host()
    blocks = host.acpi.read("PNP0C80:01").blocks
    watch = ModuleWatch(host, _target(blocks), source=_NoSource())  # type: ignore[arg-type]
    names = [f"memory{b}" for b in blocks]
    # an add before any remove (another module) and a partial removal prove nothing
    watch.feed([Uevent("add", "memory", names[0]),
                Uevent("remove", "memory", names[0])])
    assert not watch.gone_by_events and not watch.inserted_by_events
    watch.feed([Uevent("remove", "memory", n) for n in names[1:]]
               + [Uevent("add", "memory", n) for n in names])
    assert watch.gone_by_events and watch.inserted_by_events
    # a platform that unregisters the ACPI device object: its remove is enough
    other = ModuleWatch(host, _target(blocks), source=_NoSource())  # type: ignore[arg-type]
    other.feed([Uevent("remove", "acpi", "PNP0C80:02"), Uevent("offline", "memory", names[0])])
    assert not other.gone_by_events
    other.feed([Uevent("remove", "acpi", "PNP0C80:01")])
    assert other.gone_by_events
    assert other.gone() == "uevent: remove PNP0C80:01"
    assert other.observed()["uevents"] == [f"offline memory{blocks[0]}",
                                           "remove PNP0C80:01"]
