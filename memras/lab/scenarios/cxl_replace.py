"""``cxl-replace``: ``memras replace mem0`` replaces the CXL lab guest's Type-3 device
under a running workload, with no downtime.

On the CXL guest (:class:`memras.lab.cxl.CxlLab`: QEMU 10, Linux 6.12), mem0's ram region
is made and onlined movable (:func:`memras.lab.scenarios.cxl.online_ram_region`). Two
things run across the replacement:

- data on the device: a tmpfs mounted ``mpol=bind:1`` (the CXL node) holds
  :data:`DATA_MIB` MiB of random bytes whose sha256 is taken; the node's ``Shmem`` shows
  them there. Offlining migrates them to node 0 (the kernel's offline migration ignores
  the binding), and they must read back with the same sha256;
- the checksumming workload (memras/lab/workload.py) with the default memory policy,
  whose status must stay fresh with no checksum error (its longest stall is reported).

Not the workload itself on the device: QEMU emulates CXL memory as an I/O region behind
the fixed memory window (``memory_region_init_io(&fw->mr, …, &cfmws_ops, …)`` in
hw/i386/pc.c: every access goes through its interleave decoder, nothing is mapped), and
a process started with its memory preferred on node 1 put its page cache there too:
the interpreter then ran its code out of that region and the guest console stopped
answering within two minutes under TCG (tried with 96, 64 and 8 MiB workloads).

Then ``memras replace mem0 --qmp 10.0.2.100:4444`` runs in the guest: the ``cxl``
backend's steps offline the region's blocks, tear the region down, have QEMU
``device_del`` the cxl-type3 (the guest's pciehp powers the root port's slot off),
``object-add`` a NEW memory-backend-ram and ``device_add`` a cxl-type3 with a new
``sn`` on the same root port, wait for the new memdev, make its region and online it.
Checked: the data verifies, the workload never stopped, the old serial is gone, the new
memdev is in a committed region whose DAX device is system-ram with every block online
movable, MemTotal is back, the replacement is CLOSED in the guest's database and the
audit chain verifies, naming the old and new serials.

Registers on import, like :mod:`memras.lab.scenarios.cxl` (the 6.1 guest has no CXL).
"""

from __future__ import annotations

import json
import time
from typing import Any, cast

from memras.lab import actions
from memras.lab.guest import GUEST_FWD_ADDR, GUEST_QMP_PORT, Lab
from memras.lab.scenarios.common import GUEST_WORK
from memras.lab.scenarios.cxl import (
    CXL_SYSFS,
    MEMDEV,
    _cxl_json,
    _one,
    online_ram_region,
    region_dax_path,
)
from memras.lab.scenarios.registry import ScenarioReport, scenario
from memras.lab.scenarios.replace import GuestMemras
from memras.lab.scenarios.workload import LabWorkload

GUEST_QMP = f"{GUEST_FWD_ADDR}:{GUEST_QMP_PORT}"
WORKLOAD_MIB = 64
DATA_MIB = 16  # random bytes in a tmpfs bound to the CXL node
DATA_DIR = "/tmp/memras-cxl-data"  # its own tmpfs, outside GUEST_WORK (cleared by others)
RESERVE = "128M"  # the guest has ~1.1 GiB: the default 2 GiB reserve would refuse
CXL_NODE = 1


def node_shmem_kb(lab: Lab, node: int) -> int:
    """``Node N Shmem:`` of the node's meminfo (tmpfs pages on it), kB."""
    out = lab.check(f"grep Shmem: /sys/devices/system/node/node{node}/meminfo")
    return int(out.split()[-2])


def memdev_serials(lab: Lab) -> dict[str, int]:
    """memN -> serial of the guest's memdevs now."""
    out = lab.check(f"for m in {CXL_SYSFS}/mem*; do [ -e $m/serial ] && "
                    "echo ${m##*/} $(cat $m/serial); done; true")
    return {name: int(serial, 0) for name, serial in
            (line.split() for line in out.splitlines() if len(line.split()) == 2)}


@scenario("cxl-replace", "CXL guest: memras replace mem0 under a workload, with data on the "
                         "device: region torn down, QEMU device_del/device_add (new memory "
                         "backend, new serial) over QMP from the guest, the new memdev's "
                         "region made and onlined movable; data intact, workload never "
                         "stopped; audit names both serials")
def cxl_replace(lab: Lab, report: ScenarioReport) -> None:
    online = online_ram_region(lab, report)
    serials = memdev_serials(lab)
    old_serial = serials[MEMDEV]
    memtotal = actions.meminfo_kb(lab)["MemTotal"]
    report.facts.update(region=online.name, old_serial=old_serial,
                        memtotal_before_kb=memtotal)
    lab.check(f"rm -rf {GUEST_WORK}/*; sync; echo 3 > /proc/sys/vm/drop_caches")
    with report.step(f"{DATA_MIB} MiB of random data in a tmpfs bound to node {CXL_NODE}") \
            as step:
        lab.check(f"umount {DATA_DIR} 2>/dev/null; mkdir -p {DATA_DIR} && mount -t tmpfs "
                  f"-o size={2 * DATA_MIB}m,mpol=bind:{CXL_NODE} memras-cxl {DATA_DIR}")
        before_kb = node_shmem_kb(lab, CXL_NODE)
        lab.check(f"dd if=/dev/urandom of={DATA_DIR}/data bs=1M count={DATA_MIB} "
                  "2>/dev/null", timeout=300)
        digest = lab.check(f"sha256sum {DATA_DIR}/data", timeout=300).split()[0]
        on_node = node_shmem_kb(lab, CXL_NODE) - before_kb
        report.facts.update(data_sha256=digest, data_on_cxl_node_kb=on_node)
        step.detail = f"sha256 {digest[:16]}…, node {CXL_NODE} Shmem +{on_node} kB"
        report.expect(on_node >= DATA_MIB * 1024,
                      f"the data is not on node {CXL_NODE}: Shmem +{on_node} kB")
    work = f"{GUEST_WORK}/cxl-replace-work"
    with report.step(f"workload of {WORKLOAD_MIB} MiB (default memory policy)") as step:
        workload = LabWorkload(lab, WORKLOAD_MIB, work, python=actions.python_argv())
        first = workload.wait(lambda s: s["passes"] >= 1, "first pass", timeout_s=300)
        step.detail = f"first pass after {first['iterations']} chunk visits"
    memras = GuestMemras(lab, "cxl-replace")
    try:
        with report.step(f"memras replace {MEMDEV} --qmp {GUEST_QMP} (in the guest)") as step:
            started = time.monotonic()
            status, doc = memras.json(f"replace {MEMDEV} --qmp {GUEST_QMP} --yes "
                                      f"--reserve {RESERVE} --force-node --operator lab",
                                      ok=False)
            seconds = time.monotonic() - started
            report.facts["replace"] = {k: doc.get(k) for k in ("id", "state", "where",
                                                               "steps", "error", "backend")}
            report.facts["replace_seconds"] = round(seconds, 1)
            step.detail = (f"exit {status} in {seconds:.0f} s: {doc.get('state')}: "
                           f"{doc.get('where')}")
            report.expect(status == 0 and doc.get("state") == "closed",
                          f"replace ended {doc.get('state')} (exit {status}): "
                          f"{doc.get('error')}")
        with report.step("the old memdev is gone, a new serial's region is committed and "
                         "its DAX device online movable") as step:
            now = memdev_serials(lab)
            report.facts["serials_after"] = now
            report.expect(old_serial not in now.values(),
                          f"serial {old_serial:#x} is still present: {now}")
            new = [name for name, serial in now.items() if serial != old_serial]
            report.expect(len(new) == 1, f"memdevs after: {now}")
            name = new[0]
            region = _one(_cxl_json(lab, "cxl", f"list -R -m {name}"))
            dax_path = region_dax_path(lab, region["region"])
            dax = _one(_cxl_json(lab, "daxctl", f"list -d {dax_path.rsplit('/', 1)[-1]}"))
            after = actions.meminfo_kb(lab)["MemTotal"]
            report.facts.update(new_memdev=name, new_serial=now[name], new_region=region,
                                new_dax=dax, memtotal_after_kb=after)
            step.detail = (f"{name} serial {now[name]:#x} (was {old_serial:#x}): "
                           f"{region['region']} {region.get('decode_state')}, "
                           f"{dax['chardev']} {dax.get('mode')} {dax.get('online_memblocks')}/"
                           f"{dax.get('total_memblocks')} online, movable "
                           f"{dax.get('movable')}; MemTotal {after} kB (was {memtotal})")
            report.expect(region.get("decode_state") == "commit", step.detail)
            report.expect(dax.get("mode") == "system-ram" and dax.get("movable") is True
                          and dax.get("online_memblocks") == dax.get("total_memblocks"),
                          step.detail)
            report.expect(after >= memtotal, f"MemTotal {after} kB, was {memtotal} kB")
        with report.step("the data that sat on the device reads back the same") as step:
            again = lab.check(f"sha256sum {DATA_DIR}/data", timeout=300).split()[0]
            where = {n: node_shmem_kb(lab, n) for n in (0, CXL_NODE)}
            report.facts.update(data_sha256_after=again, shmem_after_kb=where)
            step.detail = f"sha256 {again[:16]}…; Shmem by node {where} kB"
            report.expect(again == digest, f"sha256 {again} != {digest}")
        with report.step("the workload never stopped and its data verifies") as step:
            live = workload.wait(lambda s: s["updated"] > time.time() - 5, "fresh status")
            final = workload.stop()
            report.facts["workload"] = final
            step.detail = (f"{final['iterations']} chunk visits, {final['errors']} errors, "
                           f"longest stall {final['max_stall_ms']} ms")
            report.expect(live["errors"] == 0 and final["errors"] == 0,
                          f"workload checksum errors: {final}")
        with report.step("audit: CLOSED, both serials recorded, the chain verifies") as step:
            # the rows straight from the guest's database (sqlite3): one memras start-up
            # fewer (~20 s under TCG) than `memras audit list`
            rows = actions.guest_sql(lab, f"{memras.dir}/memras.db",
                                     "SELECT action, payload FROM memras_audit WHERE "
                                     f"replacement_id = {int(doc['id'])} ORDER BY seq")
            seen = [action for action, _ in rows]
            verify: dict[str, Any] = next((json.loads(p) for a, p in rows if a == "verify"),
                                          {})
            identity = cast("dict[str, Any]", (verify.get("data") or {}).get("identity") or {})
            _, verified = memras.json("audit verify")
            report.facts.update(audit_actions=seen, audit_verify=verified,
                                audit_identity=identity)
            step.detail = f"{' '.join(seen)}; identity {identity}"
            report.expect(seen[-1:] == ["close"], f"audit ends {seen[-1:]}")
            report.expect(verified.get("ok") is True, f"audit verify: {verified}")
            report.expect(identity.get("old_serial") == f"{old_serial:#x}" and
                          identity.get("serial") == f"{now[name]:#x}",
                          f"the audit's identity is {identity}")
    finally:
        workload.kill()
        lab.run(f"umount {DATA_DIR}")
