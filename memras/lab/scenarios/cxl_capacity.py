"""CXL memory as capacity in the CXL lab guest (QEMU 10, Linux 6.12).

``cxl-capacity``: with mem0's ram region online (:func:`memras.lab.scenarios.cxl.
online_ram_region`, shared with the other CXL scenarios), data in the device (a file of
:data:`DATA_MIB` MiB on a tmpfs whose pages prefer node 1, the CXL node) and the
checksumming workload running, ``memras capacity offline --dax`` takes the device's
capacity away (the file's pages migrate to node 0, every block offline, kmem lets go:
the blocks are gone, MemTotal drops by the region's size, daxctl says devdax) and
``memras capacity online --dax`` gives it back (kmem hot-adds the blocks; with
``auto_online_blocks`` set to offline for the step, memras onlines them, movable:
daxctl says system-ram, movable, every block online; lsmem agrees; MemTotal is back).
The file's checksum is the same after both, and the workload's final verification
pass finds no checksum error.

The workload itself keeps the default policy (node 0): QEMU emulates CXL memory
access by access (no direct mapping under TCG), measured ~3 s to write 4 MiB from the
guest and ~25 s to start python3 with its heap on node 1, so a workload living there
would not finish a pass within the scenario.

``cxl-dcd`` runs on the DCD variant of the guest (:class:`memras.lab.cxl_dcd.DcdLab`: DC
regions on the same Type-3 device): QEMU 10 takes ``cxl-add-dynamic-capacity`` (the
extent waits in the device's pending list, which ``cxl-release-dynamic-capacity`` then
refuses to release), while the 6.12 kernel shows no DC partition (no
``memN/dynamic_ram_a``), prints nothing, and never accepts the extent; ``memras
capacity`` says dynamic capacity is not supported by this kernel. These are facts about
6.12 this scenario checks, so a kernel that changes them fails it (and gets noticed).

Registered on import; not in :mod:`memras.lab.scenarios`'s list (the 6.1 guest has no
CXL device): tests/lab/test_scenario_cxl_capacity.py imports it.
"""

from __future__ import annotations

import json
import re
import shlex
import time
from typing import Any, cast

from memras.errors import LabError, QemuError
from memras.lab import actions
from memras.lab.cxl import ensure_ndctl
from memras.lab.cxl_dcd import add_dynamic_capacity, qmp_commands, release_dynamic_capacity
from memras.lab.guest import Lab, checkout_root
from memras.lab.scenarios.common import GUEST_WORK
from memras.lab.scenarios.cxl import CXL_SYSFS, MEMDEV, _one, online_ram_region
from memras.lab.scenarios.registry import ScenarioReport, scenario
from memras.lab.scenarios.replace import GuestMemras
from memras.lab.scenarios.workload import LabWorkload

CXL_NODE = 1
WORKLOAD_MIB = 32  # on node 0 (see the module)
DATA_MIB = 8  # in the CXL region: ~6 s to write through QEMU's emulated accesses
DATA_DIR = f"{GUEST_WORK}/cxl-data"  # a tmpfs of its own, mpol=prefer:1
AUTO_ONLINE = f"{actions.MEMORY}/auto_online_blocks"
DC_EXTENT = (0, 128 << 20)  # offset, length within DC region 0
KiB = 1024


@scenario("cxl-capacity", "CXL guest: memras capacity offline --dax gives mem0's region back "
                          "to devdax under a workload (blocks gone, MemTotal down) and online "
                          "--dax makes it system-ram again, onlined movable; daxctl and lsmem "
                          "agree")
def cxl_capacity(lab: Lab, report: ScenarioReport) -> None:
    online = online_ram_region(lab, report)
    name, start, size = online.dax["chardev"], online.start, online.size
    block_size = actions.block_size(lab)
    blocks = list(range(start // block_size, (start + size) // block_size))
    report.facts.update(dax=name, region=online.name, start=f"{start:#x}", size=size,
                        blocks=blocks)
    memras = GuestMemras(lab, "cxl-capacity")
    policy = lab.check(f"cat {AUTO_ONLINE}").strip()
    with report.step(f"{DATA_MIB} MiB of data in the CXL region, the workload running") \
            as st:
        digest = _put_data(lab)
        shmem = _node_kb(lab, CXL_NODE, "Shmem")
        workload = LabWorkload(lab, WORKLOAD_MIB, f"{GUEST_WORK}/cxl-work")
        workload.wait(lambda s: s["passes"] >= 1, "first pass", timeout_s=300)
        report.facts.update(data_md5=digest, node1_shmem_kb=shmem)
        st.detail = f"node {CXL_NODE} Shmem {shmem} kB, md5 {digest}"
        # prefer, not bind: a few pages may land on node 0
        report.expect(shmem >= DATA_MIB * KiB * 9 // 10,
                      f"the data is not on node {CXL_NODE}: {st.detail}")
    try:
        with report.step(f"memras capacity offline --dax {name}, then online --dax {name} "
                         "(auto_online_blocks offline: memras onlines), one guest Python") \
                as st:
            run = _both_ways(lab, name, memras.dir)
            st.detail = (f"offline {run['offline_seconds']:.1f} s, online "
                         f"{run['online_seconds']:.1f} s, process {run['process_seconds']:.0f} s")
            report.facts["timing"] = {k: run[k] for k in ("offline_seconds", "online_seconds",
                                                          "process_seconds")}
            report.expect(lab.check(f"cat {AUTO_ONLINE}").strip() == policy,
                          "auto_online_blocks not restored")
        total_before = run["before"]["mem_total_kb"] * KiB
        with report.step("after offline: devdax, blocks gone, MemTotal down, data intact") \
                as st:
            status, doc = run["offline"]
            after = run["after_offline"]
            dax = _one(after["daxctl"])
            total = after["mem_total_kb"] * KiB
            left = _overlapping(after["lsmem"], start, size)
            report.facts["offline"] = {
                "exit": status, "summary": doc.get("summary"), "mode_after": doc["mode_after"],
                "writes": [w["write"] for w in doc["writes"]],
                "blocks": [o["block"] for o in doc["block_result"]["outcomes"] if o["ok"]],
                "block_seconds": [o["seconds"] for o in doc["block_result"]["outcomes"]],
                "daxctl_mode": dax.get("mode"), "mem_total_drop": total_before - total,
                "lsmem": left, "data_md5": after["md5"]}
            st.detail = (f"{doc.get('summary')}; daxctl {dax.get('mode')}; MemTotal -"
                         f"{(total_before - total) >> 20} MiB; data md5 {after['md5']}")
            report.expect(status == 0 and doc["mode_after"] == "devdax", st.detail)
            report.expect(dax.get("mode") == "devdax", f"daxctl says {dax}")
            report.expect(not left, f"lsmem still lists the region's memory: {left}")
            report.expect(total_before - total == size,
                          f"MemTotal fell by {total_before - total}, not {size}")
            report.expect(after["md5"] == digest, f"the data changed: {after['md5']}")
            report.expect(after["node_kb"] == 0,
                          f"node {CXL_NODE} still has {after['node_kb']} kB")
        with report.step("after online: system-ram, every block online movable, MemTotal "
                         "back; daxctl and lsmem agree") as st:
            status, doc = run["online"]
            after = run["after_online"]
            dax = _one(after["daxctl"])
            total = after["mem_total_kb"] * KiB
            back = _overlapping(after["lsmem"], start, size)
            onlined = [(o["block"], o["write"]) for o in
                       (doc.get("block_result") or {}).get("outcomes", []) if o["ok"]]
            report.facts["online"] = {
                "exit": status, "summary": doc.get("summary"), "mode_after": doc["mode_after"],
                "writes": [w["write"] for w in doc["writes"]], "onlined": onlined,
                "daxctl": {k: dax.get(k) for k in ("mode", "online_memblocks",
                                                   "total_memblocks", "movable",
                                                   "target_node")},
                "mem_total_gain": total - (total_before - size), "lsmem": back}
            st.detail = (f"{doc.get('summary')}; daxctl {report.facts['online']['daxctl']}; "
                         f"lsmem {back}")
            report.expect(status == 0 and doc["mode_after"] == "system-ram", st.detail)
            report.expect(onlined == [(b, "online_movable") for b in blocks],
                          f"memras onlined {onlined}, not {blocks} movable")
            report.expect(dax.get("mode") == "system-ram" and dax.get("movable") is True and
                          dax.get("online_memblocks") == dax.get("total_memblocks") ==
                          len(blocks), f"daxctl says {dax}")
            report.expect(bool(back) and all(r["state"] == "online" and
                                              r["zones"] == "Movable" and
                                              r["node"] == CXL_NODE for r in back),
                          f"lsmem says {back}")
            report.expect(total == total_before, f"MemTotal {total}, was {total_before}")
            report.expect(workload.running(), "the workload died")
        with report.step("the data and the workload's last verification pass") as st:
            md5 = _md5(lab)
            final = workload.stop()
            report.facts.update(workload_final=final, data_md5_after=md5)
            st.detail = (f"md5 {md5}; {final.get('passes')} passes, {final.get('errors')} "
                         "errors")
            report.expect(md5 == digest, f"the data changed: {md5}, was {digest}")
            report.expect(final.get("errors") == 0, f"checksum errors: {final}")
    finally:
        workload.kill()
        lab.run(f"umount {DATA_DIR}; rmdir {DATA_DIR}")


# Both directions in one guest Python: memras's start-up under TCG is most of a memras
# command's time in the guest (25-55 s at load 5-7), the capacity change itself seconds.
# memras.cli.main is the CLI's entry point; the state between the two runs is read by
# the same process (daxctl, /proc/meminfo, lsmem, the data's md5), as the host would.
_DRIVER = r"""
import contextlib, hashlib, io, json, subprocess, sys, time
from memras.cli import main
dax, db, daxctl, auto, data, node = sys.argv[1:7]
def run(*argv):
    out = io.StringIO()
    started = time.monotonic()
    with contextlib.redirect_stdout(out):
        status = main(["--json", "--db", db, "capacity", *argv])
    return (status, json.loads(out.getvalue())), time.monotonic() - started
def sh(cmd):
    return subprocess.run(cmd, shell=True, capture_output=True, text=True).stdout
def state():
    meminfo = open("/proc/meminfo").read().split()
    node_kb = sh(f"grep -w MemTotal: /sys/devices/system/node/node{node}/meminfo").split()
    return {"mem_total_kb": int(meminfo[meminfo.index("MemTotal:") + 1]),
            "node_kb": int(node_kb[-2]) if node_kb else 0,
            "daxctl": json.loads(sh(f"{daxctl} list -d {dax}") or "[]"),
            "lsmem": json.loads(sh("lsmem -b --json -o RANGE,SIZE,STATE,BLOCK,NODE,ZONES")
                                ).get("memory", []),
            "md5": hashlib.md5(open(data, "rb").read()).hexdigest()}
started = time.monotonic()
doc = {"before": state()}
doc["offline"], doc["offline_seconds"] = run("offline", "--dax", dax, "--yes")
doc["after_offline"] = state()
policy = open(auto).read().strip()
open(auto, "w").write("offline")
try:
    doc["online"], doc["online_seconds"] = run("online", "--dax", dax)
finally:
    open(auto, "w").write(policy)
doc["after_online"] = state()
doc["process_seconds"] = time.monotonic() - started
print(json.dumps(doc))
"""


def _both_ways(lab: Lab, name: str, work: str) -> dict[str, Any]:
    """``capacity offline --dax`` then ``online --dax`` of ``name`` in one guest Python,
    with the state after each (see :data:`_DRIVER`)."""
    args = " ".join(shlex.quote(a) for a in (
        name, f"{work}/memras.db", ensure_ndctl().argv("daxctl"), AUTO_ONLINE,
        f"{DATA_DIR}/data", str(CXL_NODE)))
    actions.write_guest_file(lab, f"{work}/driver.py", _DRIVER)
    result = lab.run(f"PYTHONPATH={shlex.quote(str(checkout_root()))} "
                     f"{actions.python_argv()} {work}/driver.py {args} "
                     f"2>{work}/driver.err", timeout=600)
    try:
        return cast("dict[str, Any]", json.loads(result.output.strip().splitlines()[-1]))
    except (ValueError, IndexError):
        err = lab.run(f"tail -5 {work}/driver.err").output
        raise LabError(f"the capacity driver printed no JSON (exit {result.status}): "
                       f"{(result.output + err).strip()[-400:]}") from None


def _overlapping(rows: list[dict[str, Any]], start: int, size: int) -> list[dict[str, Any]]:
    """lsmem's ranges that overlap [start, start+size)."""
    hits = []
    for row in rows:
        lo, hi = (int(x, 16) for x in row["range"].split("-"))
        if lo < start + size and hi >= start:
            hits.append(row)
    return hits


def _put_data(lab: Lab) -> str:
    """:data:`DATA_MIB` MiB of random data on a tmpfs preferring the CXL node; its md5."""
    lab.check(f"umount {DATA_DIR} 2>/dev/null; mkdir -p {DATA_DIR} && mount -t tmpfs -o "
              f"size={2 * DATA_MIB}m,mpol=prefer:{CXL_NODE} tmpfs {DATA_DIR} && "
              f"head -c {DATA_MIB}M /dev/urandom > {DATA_DIR}/data", timeout=300)
    return _md5(lab)


def _md5(lab: Lab) -> str:
    return lab.check(f"md5sum {DATA_DIR}/data", timeout=300).split()[0]


def _node_kb(lab: Lab, node: int, key: str) -> int:
    out = lab.check(f"grep -w {key}: /sys/devices/system/node/node{node}/meminfo")
    return int(out.split()[-2])


def _dmesg_lines(lab: Lab) -> list[str]:
    return lab.check("dmesg").splitlines()


@scenario("cxl-dcd", "CXL DCD guest: QEMU 10 takes cxl-add-dynamic-capacity, Linux 6.12 "
                     "shows no DC partition, never accepts the extent (QEMU then refuses to "
                     "release it as pending), and memras says dynamic capacity is not "
                     "supported by this kernel")
def cxl_dcd(lab: Lab, report: ScenarioReport) -> None:
    with report.step("QEMU offers the dynamic capacity commands") as st:
        commands = [c for c in qmp_commands(lab) if "dynamic-capacity" in c]
        st.detail = ", ".join(commands)
        report.facts["qmp_commands"] = commands
        report.expect(commands == ["cxl-add-dynamic-capacity", "cxl-release-dynamic-capacity"],
                      f"QMP offers {commands}")
    kernel = lab.check("uname -r").strip()
    report.facts["kernel"] = kernel
    with report.step(f"{kernel}: {MEMDEV}'s partitions in sysfs") as st:
        attrs = lab.check(f"ls {CXL_SYSFS}/{MEMDEV}").split()
        partitions = [a for a in attrs if a in ("ram", "pmem") or a.startswith("dynamic_ram")]
        report.facts["memdev_attributes"] = attrs
        st.detail = f"partitions {partitions}"
        report.expect("ram" in attrs and not any(a.startswith("dynamic_ram") for a in attrs),
                      f"{MEMDEV} shows {attrs}")
    before = _dmesg_lines(lab)
    with report.step(f"cxl-add-dynamic-capacity: region 0, extent {DC_EXTENT}") as st:
        reply = add_dynamic_capacity(lab, region=0, extents=[DC_EXTENT])
        time.sleep(5)  # time for an event interrupt and the kernel's log, if any
        new = [line for line in _dmesg_lines(lab)[len(before):]
               if re.search(r"cxl|dax|extent|dynamic", line, re.I)]
        report.facts["add_reply"], report.facts["dmesg_after_add"] = reply, new
        st.detail = f"QMP {reply}; kernel lines: {new or 'none'}"
        report.expect(reply == {}, f"QMP add replied {reply}")
        report.expect(not new, f"the kernel logged {new}")
    with report.step("cxl-release-dynamic-capacity of the same extent") as st:
        try:
            release_dynamic_capacity(lab, region=0, extents=[DC_EXTENT])
            refused = ""
        except (QemuError, LabError) as exc:
            refused = str(exc)
        report.facts["release_refused"] = refused
        st.detail = refused or "released"
        # QEMU keeps an offered extent pending until the host accepts it (Add Dynamic
        # Capacity Response); one still pending cannot be released
        report.expect("pending" in refused, f"release: {refused or 'accepted'}")
    with report.step("memras capacity --json: dynamic capacity") as st:
        status, doc = GuestMemras(lab, "cxl-dcd").json("capacity")
        dc = doc["dynamic_capacity"]
        report.facts["memras_dynamic_capacity"] = dc
        st.detail = dc["line"]
        report.expect(dc["supported"] is False and dc["partitions"] == [] and
                      dc["line"] == f"dynamic capacity: not supported by this kernel ({kernel})",
                      f"memras says {dc}")
