"""The replacement engine on simulated servers (demo and qemu-guest profiles)."""

from __future__ import annotations

import pytest

from memras.audit.service import AuditTrail
from memras.errors import WorkflowError
from memras.sim import actions, profiles
from memras.store import Store
from memras.workflow.runner import Replacement, ReplaceOptions
from memras.workflow.states import State

FAST = {"backoff_initial_s": 0.01, "backoff_max_s": 0.02, "max_attempts": 4}


@pytest.fixture
def store(tmp_path):
    with Store.open(tmp_path / "memras.db") as s:
        yield s


def server(tmp_path, profile: str):
    return profiles.create(profile, tmp_path / "root")


def run(host, store, dimm: str, **opts) -> Replacement:
    rep = Replacement.start(host, store, dimm, ReplaceOptions(operator="Ada", policy=FAST,
                                                              **opts))
    rep.run()
    return rep


# The 2 GiB default reserve is more than a 2 GiB guest can spare, so the small VM
# states its own (the default is tested by the refusal test below).
@pytest.mark.parametrize(("profile", "dimm", "reserve"), [("demo", "P1-DIMMB1", None),
                                                          ("qemu-guest", "PNP0C80:00", 1 << 28)])
def test_happy_path_replaces_the_module(tmp_path, store, profile: str, dimm: str,
                                        reserve: int | None) -> None:
    host = server(tmp_path, profile).host()
    total_before = host.meminfo.read().total
    rep = run(host, store, dimm, reserve_bytes=reserve)
    assert rep.state is State.CLOSED
    new = [b.block for b in rep.blocks("new")]
    assert new and sorted(new) == sorted(rep.target.blocks)
    for index in new:
        block = host.memory.read(index)
        assert (block.state, block.zone) == ("online", "Movable")
    assert host.meminfo.read().total >= total_before
    actions_seen = [e.action for e in AuditTrail(store).list(replacement_id=rep.id)]
    assert actions_seen == ["select", "preflight", "soft_offline_pages", "offline_blocks",
                            "remove_module", "insert_module", "online_blocks", "verify",
                            "close"]
    assert AuditTrail(store).verify().ok
    assert rep.snapshot()["result"]["ok"] is True


def test_ebusy_is_retried_until_the_block_goes(tmp_path, store) -> None:
    srv = server(tmp_path, "demo")
    host = srv.host()
    first = Replacement.start(host, store, "P1-DIMMB1", ReplaceOptions(policy=FAST))
    block = first.target.blocks[3]
    actions.set_busy(srv.root, block, 2)
    first.run()
    assert first.state is State.CLOSED, first._row().error
    rows = {b.block: b for b in first.blocks("old")}
    assert rows[block].attempts == 3  # two EBUSY, then success


def test_ebusy_forever_rolls_back_to_online_movable(tmp_path, store) -> None:
    srv = server(tmp_path, "demo")
    host = srv.host()
    rep = Replacement.start(host, store, "P1-DIMMB1", ReplaceOptions(policy=FAST))
    blocks = rep.target.blocks
    actions.set_busy(srv.root, blocks[5], 1000)
    outcome = rep.run()
    assert rep.state is State.ROLLED_BACK and outcome.step == "rollback"
    for index in blocks:
        b = host.memory.read(index)
        assert (b.state, b.zone) == ("online", "Movable"), index
    entries = AuditTrail(store).list(replacement_id=rep.id)
    failed = [e for e in entries if e.action == "offline_blocks"][0]
    assert failed.data["outcome"] == "failed" and "EBUSY" in failed.data["error"]
    assert failed.data["next"] == "rollback"
    assert entries[-1].action == "rollback" and entries[-1].data["outcome"] == "ok"
    assert "all 32 blocks of the old module are online" in rep.where_is_memory()


def test_on_failure_leave_keeps_offlined_blocks_offline_and_says_so(tmp_path, store) -> None:
    srv = server(tmp_path, "demo")
    host = srv.host()
    rep = Replacement.start(host, store, "P1-DIMMB1",
                            ReplaceOptions(policy=FAST, on_failure="leave"))
    actions.set_busy(srv.root, rep.target.blocks[2], 1000)
    rep.run()
    assert rep.state is State.LEFT_OFFLINE
    assert [host.memory.read(b).state for b in rep.target.blocks[:3]] == \
        ["offline", "offline", "online"]
    assert "2 of 32 blocks" in rep.where_is_memory()


def refused(rep: Replacement) -> str:
    rep.run()
    assert rep.state is State.REFUSED
    return rep._row().error or ""


def test_refuses_interleaved_or_unmapped_dimm(tmp_path, store) -> None:
    host = server(tmp_path, "skylake-2s").host()
    from memras.topology.inventory import dimm_inventory

    dimm = next(d for d in dimm_inventory(host) if d.mapping != "mapped")
    before = [(b.index, b.state) for b in host.memory.all()]
    msg = refused(Replacement.start(host, store, dimm.id, ReplaceOptions()))
    assert "mapping" in msg
    if dimm.mapping == "interleaved":
        assert "whole interleave set" in msg
    assert [(b.index, b.state) for b in host.memory.all()] == before


def test_refuses_kernel_zone_blocks(tmp_path, store) -> None:
    host = server(tmp_path, "demo").host()
    msg = refused(Replacement.start(host, store, "P2-DIMMA1", ReplaceOptions()))
    assert "zones" in msg and "ZONE_MOVABLE" in msg


def test_refuses_when_memory_reserve_would_be_breached(tmp_path, store) -> None:
    host = server(tmp_path, "demo").host()
    rep = Replacement.start(host, store, "P1-DIMMB1",
                            ReplaceOptions(reserve_bytes=host.meminfo.read().total))
    assert "memory reserve" in refused(rep)


def test_refuses_backend_that_cannot_remove(tmp_path, store) -> None:
    host = server(tmp_path, "demo").host()
    rep = Replacement.start(host, store, "P1-DIMMB1", ReplaceOptions(backend="qemu"))
    assert "backend qemu" in refused(rep) and "QMP" in rep._row().error


def test_second_replacement_is_refused_while_one_is_in_progress(tmp_path, store) -> None:
    host = server(tmp_path, "demo").host()
    first = Replacement.start(host, store, "P1-DIMMB1", ReplaceOptions())
    first.close()
    with pytest.raises(WorkflowError, match=f"#{first.id} is still in progress"):
        Replacement.start(host, store, "P1-DIMMC1", ReplaceOptions())


def test_abort_after_offlining_rolls_back(tmp_path, store) -> None:
    host = server(tmp_path, "demo").host()
    rep = Replacement.start(host, store, "P1-DIMMB1", ReplaceOptions(policy=FAST))
    for _ in range(3):
        rep.next_step()
    assert rep.state is State.OFFLINE
    rep.abort()
    assert rep.state is State.ROLLED_BACK
    assert all(host.memory.read(b).zone == "Movable" for b in rep.target.blocks)
