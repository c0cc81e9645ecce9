"""``memras partition move`` between two real guests, with a workload in the donor.

Two QEMU guests run at once: the shared lab guest S (1 GiB boot + dimm0/dimm1 +
an empty 256 MiB virtio-mem ``vmem0``) and a donor D booted here (768 MiB boot +
one 256 MiB pc-dimm ``d0`` in its only slot, no virtio-mem, a qemu-guest-agent
channel), each with its own state directory, QMP socket and user-mode network.
``memras partition move`` runs on the host and drives both over QMP:

1. D -> S 256M while a checksumming workload runs in D (most of its pages sit in
   d0): the spare check reads D's MemAvailable through qemu-ga (``--from-agent``;
   a too-high ``--reserve`` is refused first, nothing changed); D's kernel offlines
   d0 through the ACPI eject path (its pages migrate) and QEMU deletes it; S grows
   vmem0. D's MemTotal -256M, S's +256M, the workload verifies with 0 errors.
2. S -> D 256M: S shrinks vmem0, D hot-adds a DIMM into the freed slot; both back to
   where they started, the workload still clean.
3. Rollback: S -> D 256M again, but D's only slot is taken: S gives dimm0 up, D
   refuses the hot-add, memras puts dimm0 back into S (same id, size, slot).

The donor is booted only by this module and shut down after it; the shared guest
is left as found (vmem0 empty, dimm0 and dimm1 in their slots).
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from memras.capacity import partition, vm
from memras.errors import LabError
from memras.lab import actions
from memras.lab.guest import DimmSpec, Lab, LabConfig, checkout_root
from memras.lab.scenarios.workload import LabWorkload
from tests.lab.loud import lab_unavailable

pytestmark = pytest.mark.lab
MEMRAS = str(checkout_root() / ".venv" / "bin" / "memras")
MiB = 1 << 20
SIZE = 256 * MiB
WORK = "/tmp/memras-lab/partition"
DONOR = LabConfig(name="memras-lab-donor", boot_mib=768, slots=1, maxmem_mib=1024, cpus=1,
                  dimms=(DimmSpec("d0", 256, 0),), virtio_mem_mib=0, guest_agent=True,
                  forwards=(), guest_qmp=False)


@pytest.fixture(scope="module")
def donor(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """A second guest, booted beside the shared one, with qemu-ga running in it."""
    guest = Lab(DONOR, state_dir=tmp_path_factory.mktemp("donor-state"))
    started = time.monotonic()
    try:
        guest.boot()
    except LabError as exc:
        guest.shutdown()
        if "apt-get" in f"{exc.msg} {exc.hint or ''}":
            lab_unavailable(f"the donor guest cannot boot: {exc.msg} ({exc.hint})")
        raise
    try:
        booted = time.monotonic() - started
        port = guest.start_guest_agent()
        accel = guest.state.accel if guest.state else "?"
        print(f"\ndonor guest booted in {booted:.1f} s ({accel}), qemu-ga on {port} after "
              f"{time.monotonic() - started - booted:.1f} s")
        yield guest
    finally:
        guest.shutdown()


def _partition(lab_db: Path, *args: str) -> tuple[int, dict[str, object], str]:
    proc = subprocess.run([MEMRAS, "--json", "--db", str(lab_db), "partition", "move", *args,
                           "--yes"], capture_output=True, text=True, timeout=300, check=False)
    try:
        data = json.loads(proc.stdout) if proc.stdout.strip() else {}
    except ValueError:
        data = {}
    return proc.returncode, data, (proc.stdout + proc.stderr).strip()


def _total_mib(lab: Lab) -> int:
    return actions.meminfo_kb(lab)["MemTotal"] // 1024


def _devices(lab: Lab) -> dict[str, vm.MemoryDevice]:
    devices = {d.id: d for d in vm.list_devices(lab.qmp)}
    lab.release_qmp()  # memras partition connects to the same one-client monitor
    return devices


def _audit(db: Path) -> list[str]:
    proc = subprocess.run([MEMRAS, "--json", "--db", str(db), "audit", "list"],
                          capture_output=True, text=True, timeout=120, check=True)
    data = json.loads(proc.stdout)
    rows = data if isinstance(data, list) else data.get("entries", data.get("rows", []))
    return [str(r.get("action")) for r in rows]


def test_partition_move_with_workload_and_back(lab: Lab, donor: Lab, tmp_path: Path) -> None:
    db = tmp_path / "host.db"
    s_qmp, d_qmp, agent = str(lab.qmp_socket), str(donor.qmp_socket), str(donor.guest_agent_socket)
    s_before, d_before = _devices(lab), _devices(donor)
    assert s_before["vmem0"].requested_size == 0, "the shared guest's vmem0 is not empty"
    d0 = d_before["d0"]
    s_total0, d_total0 = _total_mib(lab), _total_mib(donor)

    workload = LabWorkload(donor, 200, WORK, pause_s=0.01, phys_range=(d0.addr or 0,
                                                                       (d0.addr or 0) + d0.size))
    try:
        first = workload.wait(lambda s: s["passes"] >= 1, "first verification pass", 240)
        agent_view = partition.guest_meminfo(agent)
        available = agent_view["MemAvailable"]
        print(f"donor MemAvailable via qemu-ga {available // MiB}M; workload {first['mib']} MiB, "
              f"{first['pages_in_range']} of its pages in d0")

        # The spare check decides for real: a reserve the donor cannot keep is refused.
        code, _, out = _partition(db, "256M", "--from", d_qmp, "--to", s_qmp,
                                  "--from-agent", agent, "--reserve", f"{available // MiB}M")
        assert code == 3 and "refused" in out, out  # Refused (exit 3): nothing changed
        assert _devices(donor).keys() == d_before.keys(), "a refused move changed the donor"

        started = time.monotonic()
        code, result, out = _partition(db, "256M", "--from", d_qmp, "--to", s_qmp,
                                       "--from-agent", agent, "--reserve", "256M")
        moved_s = time.monotonic() - started
        assert code == 0 and result.get("ok"), out
        mid = workload.status()
        s_total1, d_total1 = _total_mib(lab), _total_mib(donor)
        s_mid, d_mid = _devices(lab), _devices(donor)
        print(f"D->S 256M in {moved_s:.1f} s: steps "
              f"{[(s['vm'], s['op'], s['device'], s['seconds']) for s in result['steps']]}; "
              f"MemTotal S {s_total0} -> {s_total1} MiB, D {d_total0} -> {d_total1} MiB; "
              f"workload pass {mid.get('passes')}, errors {mid.get('errors')}, "
              f"max stall {mid.get('max_stall_ms')} ms, "
              f"workload pages in d0 max {mid.get('pages_in_range_max')}")
        assert "d0" not in d_mid and s_mid["vmem0"].size == SIZE
        assert s_total1 - s_total0 == 256 and d_total0 - d_total1 == 256
        assert workload.running() and mid.get("errors") == 0

        started = time.monotonic()
        code, back, out = _partition(db, "256M", "--from", s_qmp, "--to", d_qmp, "--force")
        back_s = time.monotonic() - started
        assert code == 0 and back.get("ok"), out
        s_total2, d_total2 = _total_mib(lab), _total_mib(donor)
        print(f"S->D 256M (back) in {back_s:.1f} s: steps "
              f"{[(s['vm'], s['op'], s['device'], s['seconds']) for s in back['steps']]}; "
              f"MemTotal S {s_total2} MiB, D {d_total2} MiB")
        assert (s_total2, d_total2) == (s_total0, d_total0)
        assert _devices(lab)["vmem0"].size == 0
        assert workload.running()
    finally:
        final = workload.stop() if workload.running() else workload.status()
    print(f"donor workload: {final.get('passes')} passes, {final.get('errors')} checksum errors, "
          f"max stall {final.get('max_stall_ms')} ms")
    assert final.get("final") and final.get("errors") == 0, final
    actions_seen = _audit(db)
    print(f"audit: {actions_seen}")
    assert actions_seen.count("partition.start") == 2
    assert actions_seen.count("partition.result") == 2
    assert {"partition.remove", "partition.add"} <= set(actions_seen)


def test_partition_rollback_when_the_taker_is_full(lab: Lab, donor: Lab, tmp_path: Path) -> None:
    db = tmp_path / "host.db"
    s_before, d_before = _devices(lab), _devices(donor)
    assert sum(d.type == "dimm" for d in d_before.values()) == DONOR.slots, "donor slot free"
    assert s_before["vmem0"].requested_size == 0
    s_total0, d_total0 = _total_mib(lab), _total_mib(donor)
    started = time.monotonic()
    try:
        code, result, out = _partition(db, "256M", "--from", str(lab.qmp_socket),
                                       "--to", str(donor.qmp_socket), "--force")
        seconds = time.monotonic() - started
        steps = [(s["vm"], s["op"], s["device"], s["ok"], s["detail"][:60])
                 for s in result.get("steps", [])]
        print(f"S->D 256M with D full, {seconds:.1f} s: exit {code}; steps {steps}")
        assert code == 1 and result.get("rolled_back") and not result.get("ok"), out
        s_after = _devices(lab)
        given = result["steps"][0]["device"]
        assert given in s_before and s_before[given].type == "dimm"
        assert s_after[given].slot == s_before[given].slot
        assert s_after[given].size == s_before[given].size
        assert _total_mib(lab) == s_total0 and _total_mib(donor) == d_total0
        actions.wait_blocks_online_movable(lab, tuple(
            f"memory{(s_after[given].addr or 0) // actions.block_size(lab) + i}"
            for i in range(s_after[given].size // (128 * MiB))))
    finally:  # never leave the shared guest without one of its DIMMs
        now = {d.id for d in vm.list_devices(lab.qmp)}
        for dimm in lab.config.dimms:
            if dimm.id in s_before and dimm.id not in now:
                actions.replug_dimm(lab, dimm)
    assert "partition.rollback" in _audit(db)
