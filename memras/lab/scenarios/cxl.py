"""``cxl-events``: CXL event records injected over QMP into the CXL lab guest
(:class:`memras.lab.cxl.CxlLab`) reach ``memras watch`` there, are stored once each,
and judged by the cxl-* rules.

QEMU 10 puts each record in the Type-3 device's event log and raises its interrupt;
the guest's cxl_pci reads the log and emits ``cxl_general_media``/``cxl_dram``/
``cxl_memory_module`` trace events, which the watcher's tracefs instance receives.
Poison is different: ``cxl-inject-poison`` only adds to the device's poison list, and
the guest sees it when it reads that list (``trigger_poison_list``, as ``cxl list
--media-errors`` does), as a ``cxl_poison`` event of type List.

This module registers on import; the 6.1 lab guest has no CXL device, so it is not in
:mod:`memras.lab.scenarios`'s list (tests/lab/test_scenario_cxl.py imports it).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any, cast

from memras.errors import LabError
from memras.lab import actions
from memras.lab.cxl import (
    ensure_ndctl,
    inject_dram,
    inject_general_media,
    inject_memory_module,
    inject_poison,
)
from memras.lab.guest import Lab
from memras.lab.scenarios.common import GUEST_WORK
from memras.lab.scenarios.registry import ScenarioReport, scenario

MEMDEV = "mem0"
CXL_SYSFS = "/sys/bus/cxl/devices"
# DPAs of the injected records (the device's 256 MiB volatile partition starts at DPA 0)
GM_DPAS = (0x1000, 0x2000)
DRAM_DPA = 0x3000
DRAM_DETAIL = {"channel": 2, "rank": 1, "bank_group": 1, "bank": 3, "row": 66, "column": 8}
POISON_DPA, POISON_LEN = 0x40000, 0x40
LIFE_USED = 95  # percent: past memras.health.cxl.LIFE_USED_REPLACE
HEALTH_MAINTENANCE = 1  # health status bit 0, MAINTENANCE_NEEDED (CXL r3.0 Table 8-100)
# the rules the injected records must fire (memras.health.cxl.judge_cxl)
EXPECTED_RULES = ("cxl-maintenance-needed", "cxl-life-used-90", "cxl-poison")

_CXL_ROWS = ("import json, sqlite3, sys; c = sqlite3.connect(sys.argv[1]); "
             "c.row_factory = sqlite3.Row; print(json.dumps([dict(r) for r in c.execute("
             "'SELECT event, memdev, serial, log_type, hdr_flags, dpa, health_status, "
             "life_used, trace_type, source, fields FROM memras_cxl_event ORDER BY id')]))")
_MEDIA_COUNT = ("import sqlite3, sys; print(sqlite3.connect(sys.argv[1]).execute("
                "\"SELECT count(*) FROM memras_error WHERE driver = 'cxl'\").fetchone()[0])")
# what memras_cxl_event must hold: the records that are not memory errors (general media
# and DRAM records are memory errors, memras_error rows: memras.store.Store.add_events)
WANTED = {("memory_module", None): 1, ("poison", POISON_DPA): 1}


def _guest_python(lab: Lab, script: str, *args: str) -> str:
    """A python one-liner in the guest (sqlite3 alone: no memras start-up)."""
    return lab.check(f"{actions.python_argv()} -c {json.dumps(script)} {' '.join(args)}",
                     timeout=120)


def cxl_rows(lab: Lab, db: str) -> list[dict[str, Any]]:
    """The guest database's memras_cxl_event rows."""
    return cast("list[dict[str, Any]]", json.loads(_guest_python(lab, _CXL_ROWS, db)))


def _count(rows: list[dict[str, Any]], event: str, dpa: int | None = None) -> int:
    return sum(1 for r in rows if r["event"] == event and (dpa is None or r["dpa"] == dpa))


def _wait_stored(lab: Lab, db: str, media: int, timeout_s: float = 120) -> str:
    """Wait until the watcher stored ``media`` CXL memory errors and every record of
    :data:`WANTED`; what it had stored by then."""
    deadline = time.monotonic() + timeout_s
    while True:
        rows = cxl_rows(lab, db)
        stored = int(_guest_python(lab, _MEDIA_COUNT, db).strip())
        done = stored >= media and all(_count(rows, event, dpa) >= n
                                       for (event, dpa), n in WANTED.items())
        if done or time.monotonic() > deadline:
            return f"{stored} media errors; " + ", ".join(r["event"] for r in rows)
        time.sleep(3)


@scenario("cxl-events", "CXL guest: general media, DRAM, memory-module and poison records "
                        "injected over QMP are stored once each by memras watch and judged "
                        "by the cxl-* rules (memras dimms/verdicts)")
def cxl_events(lab: Lab, report: ScenarioReport) -> None:
    db, log = f"{GUEST_WORK}/cxl.db", f"{GUEST_WORK}/cxl-watch.log"
    memdevs = lab.check(f"ls {CXL_SYSFS}").split()
    if MEMDEV not in memdevs:
        raise LabError(f"the guest has no CXL {MEMDEV} ({' '.join(memdevs) or 'no cxl bus'}): "
                       "cxl-events runs on the CXL lab guest (memras.lab.cxl.CxlLab)")
    serial = int(lab.check(f"cat {CXL_SYSFS}/{MEMDEV}/serial").strip(), 0)
    report.facts["serial"] = serial
    with report.step("start memras watch (trace) in the CXL guest") as step:
        lab.check(f"mkdir -p {GUEST_WORK}")
        actions.start_guest_watch(lab, db, log, sources="trace")
        # the start line comes before the trace source enables its events; a record
        # the device delivers before that is in no trace buffer memras reads
        enables = f"{actions.TRACING}/instances/memras/events/cxl/*/enable"
        actions.wait_guest_output(lab, f"echo $(cat {enables} | sort -u)", r"^1$",
                                  timeout_s=120)
        enabled = lab.check(f"cat {enables}").split()
        step.detail = f"{len(enabled)} cxl events enabled in memras's instance"
        report.expect(set(enabled) == {"1"}, step.detail)
    try:
        with report.step("inject 2 general media CEs, a DRAM CE, a memory module record") as st:
            for i, dpa in enumerate(GM_DPAS):
                inject_general_media(lab, dpa=dpa, channel=i, rank=0)
            inject_dram(lab, dpa=DRAM_DPA, log="warning", **DRAM_DETAIL)
            inject_memory_module(lab, log="warning", health_status=HEALTH_MAINTENANCE,
                                 life_used=LIFE_USED, temperature=45)
            st.detail = (f"general media at {', '.join(map(hex, GM_DPAS))}, DRAM at "
                         f"{DRAM_DPA:#x} {DRAM_DETAIL}, memory module: health status "
                         f"{HEALTH_MAINTENANCE}, life used {LIFE_USED}%")
        with report.step("cxl-inject-poison, then the guest reads its poison list") as st:
            inject_poison(lab, start=POISON_DPA, length=POISON_LEN)
            # the guest's own sysfs (never the host's): the driver reads the list and
            # emits one cxl_poison record per entry
            lab.check(f"echo 1 > {CXL_SYSFS}/{MEMDEV}/trigger_poison_list")
            st.detail = f"poison [{POISON_DPA:#x}, +{POISON_LEN:#x}) listed"
        with report.step("wait until the watcher stored every record") as st:
            st.detail = _wait_stored(lab, db, media=len(GM_DPAS) + 1)
        with report.step("SIGTERM the watcher") as st:
            st.detail = actions.stop_guest_watch(lab, log)
            report.facts["watch_output"] = st.detail
    finally:
        lab.run(f"kill $(cat {log}.pid) 2>/dev/null")
    rows = cxl_rows(lab, db)  # after the watcher's last write
    report.facts["cxl_events"] = [{k: r[k] for k in ("event", "memdev", "serial", "log_type",
                                                     "dpa", "health_status", "life_used",
                                                     "trace_type", "source")} for r in rows]
    with report.step("memras_cxl_event: the module and poison records once, on mem0") as st:
        for (event, at), n in WANTED.items():
            got = _count(rows, event, at)
            report.expect(got == n, f"{event} at {at if at is None else hex(at)} stored "
                                    f"{got} times, not {n}")
        report.expect({r["memdev"] for r in rows} == {MEMDEV}, f"memdevs {rows}")
        report.expect({r["serial"] for r in rows} == {serial}, "serial not the memdev's")
        module = next(r for r in rows if r["event"] == "memory_module")
        report.expect(module["life_used"] == LIFE_USED and
                      module["health_status"] == HEALTH_MAINTENANCE,
                      f"memory module row {module}")
        poison = next(r for r in rows if r["event"] == "poison")
        report.expect(poison["trace_type"] == "List", f"poison row {poison}")
        st.detail = f"{len(rows)} rows"
    # errors, dimms and verdicts in one guest Python (a CLI start-up is ~25 s under TCG)
    read = actions.guest_memras_json_many(
        lab, [f"--db {db} errors", f"--db {db} dimms", f"--db {db} verdicts"],
        GUEST_WORK, timeout_s=600)
    with report.step("memras errors --json: the media errors once, with DPA and detail") as st:
        errors = cast("list[dict[str, Any]]", read[0])
        # the memdev's other records (poison list, health) are listed too, as "cxl"
        media = [e for e in errors if e.get("driver") == "cxl" and e.get("record") == "error"]
        listed = {e["cxl"].get("event") for e in errors if e.get("record") == "cxl"}
        report.facts["cxl_records_listed"] = sorted(map(str, listed))
        report.expect({"poison", "memory_module"} <= listed,
                      f"memras errors lists the memdev's records {sorted(map(str, listed))}")
        report.facts["media_errors"] = [{k: e.get(k) for k in ("type", "label", "source",
                                                               "driver_detail", "location")}
                                        for e in media]
        for dpa in (*GM_DPAS, DRAM_DPA):
            mine = [e for e in media if f"dpa={dpa:x} " in e["driver_detail"]]
            report.expect(len(mine) == 1, f"media error at DPA {dpa:#x} stored {len(mine)} "
                                          "times")
            report.expect(mine[0]["type"] == "Corrected" and mine[0]["label"] == MEMDEV,
                          f"media error at DPA {dpa:#x}: {mine[0]['type']} on "
                          f"{mine[0]['label']}")
        dram = next(e for e in media if f"dpa={DRAM_DPA:x} " in e["driver_detail"])
        location = {k: dram["location"].get(k) for k in DRAM_DETAIL}
        report.expect(location == DRAM_DETAIL, f"DRAM location {location} != {DRAM_DETAIL}")
        st.detail = f"{len(media)} CXL media errors; DRAM at {location}"
    with report.step("memras dimms --json: mem0 judged by the cxl-* rules") as st:
        dimms = cast("dict[str, Any]", read[1])
        row = next((c for c in dimms["cxl"] if c["id"] == MEMDEV), None)
        report.expect(row is not None, f"memras dimms lists no {MEMDEV}: {dimms['cxl']}")
        assert row is not None
        report.facts["dimms_cxl"] = {k: row.get(k) for k in ("id", "serial", "verdict", "rules",
                                                              "reasons")}
        missing = [r for r in EXPECTED_RULES if r not in row["rules"]]
        report.expect(not missing, f"{MEMDEV}'s rules {row['rules']} lack {missing}")
        report.expect(row["verdict"] == "replace-at-next-maintenance",
                      f"{MEMDEV}'s verdict is {row['verdict']}")
        st.detail = f"{row['verdict']}: {', '.join(row['rules'])}"
    with report.step("memras verdicts --json: mem0's media errors judged") as st:
        verdicts = cast("list[dict[str, Any]]", read[2])
        # the engine judges a memdev's media errors as a DIMM's, id label:memN
        mine = [v for v in verdicts if v.get("dimm") == f"label:{MEMDEV}"]
        report.facts["verdicts"] = mine
        report.expect(len(mine) == 1, f"memras verdicts has no label:{MEMDEV}: {verdicts}")
        st.detail = f"{mine[0]['dimm']}: {mine[0]['verdict']} {mine[0]['rules']}"


def _cxl_json(lab: Lab, tool: str, args: str, timeout_s: float = 300) -> Any:
    """``cxl``/``daxctl`` ARGS in the guest (ndctl unpacked in the lab cache), parsed;
    an empty listing is []."""
    out = lab.check(f"{ensure_ndctl().argv(tool)} {args}", timeout=timeout_s).strip()
    try:
        return json.loads(out) if out else []
    except json.JSONDecodeError:
        raise LabError(f"{tool} {args}: not JSON: {out[-300:]}") from None


def _one(listing: Any) -> dict[str, Any]:
    """ndctl prints one object bare and several as a list."""
    if isinstance(listing, list):
        if len(listing) != 1:
            raise LabError(f"expected one object, ndctl listed {listing}")
        return cast("dict[str, Any]", listing[0])
    return cast("dict[str, Any]", listing)


def region_dax_path(lab: Lab, region: str, timeout_s: float = 120) -> str:
    """The sysfs path of ``region``'s DAX device (regionN/dax_regionN/daxN.M). The
    cxl_dax_region driver adds it some time after the region is bound — seconds under
    TCG on a busy host (a CI run beside other work listed nothing right after the
    bind) — so the guest polls for it, as memras.workflow.cxl.wait does on a server."""
    pattern = f"{CXL_SYSFS}/{region}/dax_region*/dax*.*"
    tries = max(1, int(timeout_s * 2))
    return lab.check(f"for i in $(seq 1 {tries}); do ls -d {pattern} >/dev/null 2>&1 && "
                     f"break; sleep 0.5; done; ls -d {pattern}", timeout=timeout_s + 30).strip()


def create_ram_region(lab: Lab, root: str, endpoint: str, size: int,
                      granularity: int) -> str:
    """A 1-way ram region of ``size`` bytes on ``endpoint`` (an endpoint decoder) under
    the root decoder ``root``, made through the kernel's sysfs ABI (Documentation/ABI/
    testing/sysfs-bus-cxl: create_ram_region, interleave, the endpoint decoder's mode and
    dpa_size, size, target0, commit, then the cxl_region driver binds it): the steps
    ndctl's ``cxl create-region -t ram`` takes from v77 on; Debian bookworm's 76.1
    refuses ram regions. Its name (``regionN``)."""
    d = CXL_SYSFS
    name = lab.check(f"cat {d}/{root}/create_ram_region").strip()
    lab.check(f"echo {name} > {d}/{root}/create_ram_region && "
              f"echo {granularity} > {d}/{name}/interleave_granularity && "
              f"echo 1 > {d}/{name}/interleave_ways && "
              f"echo ram > {d}/{endpoint}/mode && "
              f"echo {size:#x} > {d}/{endpoint}/dpa_size && "
              f"echo {size:#x} > {d}/{name}/size && "
              f"echo {endpoint} > {d}/{name}/target0 && "
              f"echo 1 > {d}/{name}/commit && "
              f"echo {name} > /sys/bus/cxl/drivers/cxl_region/bind")
    return name


@dataclass(frozen=True)
class OnlineRegion:
    """A ram region of a memdev, committed, its DAX device onlined as system-ram."""

    name: str  # regionN
    root: str  # the root decoder it was made under
    endpoint: str  # the memdev's endpoint decoder it decodes through
    start: int  # its HPA
    size: int
    region: dict[str, Any] = field(default_factory=dict)  # `cxl list -R` of it
    dax: dict[str, Any] = field(default_factory=dict)  # `daxctl list` of its DAX device


def online_ram_region(lab: Lab, report: ScenarioReport, memdev: str = MEMDEV) -> OnlineRegion:
    """``memdev``'s whole ram partition as a committed ram region whose DAX device is
    system-ram, every block online and movable: made by the kernel's sysfs ABI and
    daxctl, or the one an earlier scenario of this guest made (so CXL scenarios can share
    one boot). Two report steps; fails the report (LabError) when the guest refuses."""
    with report.step(f"a ram region on {memdev}'s endpoint decoder, listed by cxl list -R") \
            as st:
        # the memdev's endpoint port (its uport); its decoders are allocated in order, so
        # the region takes its first, decoderE.0
        port = _one(_cxl_json(lab, "cxl", f"list -E -m {memdev}"))["endpoint"]
        endpoint = f"decoder{port.removeprefix('endpoint')}.0"
        listing = _cxl_json(lab, "cxl", "list -D -d root")
        decoders = listing if isinstance(listing, list) else [listing]
        root = next((d for d in decoders if d.get("volatile_capable")), None)
        if root is None:
            raise LabError(f"no volatile-capable root decoder: {decoders}")
        size = int(lab.check(f"cat {CXL_SYSFS}/{memdev}/ram/size").strip(), 16)
        existing = lab.check(f"cat {CXL_SYSFS}/{endpoint}/region 2>/dev/null; true").strip()
        if existing:
            name = existing
        else:
            granularity = int(lab.check(
                f"cat {CXL_SYSFS}/{root['decoder']}/interleave_granularity").strip())
            name = create_ram_region(lab, root["decoder"], endpoint, size, granularity)
        region = _one(_cxl_json(lab, "cxl", f"list -R -r {name}"))
        st.detail = (f"{name} on {root['decoder']} via {endpoint}"
                     f"{' (made earlier)' if existing else ''}: resource "
                     f"{region['resource']:#x}, size {region['size']:#x}, "
                     f"{region.get('decode_state')}")
        report.expect(region.get("decode_state") == "commit", st.detail)
    with report.step("daxctl: the region's DAX device is system-ram, online, movable") as st:
        # the region's DAX device: regionN/dax_regionN/daxN.M
        chardev = region_dax_path(lab, name)
        dax = _one(_cxl_json(lab, "daxctl", f"list -d {chardev.rsplit('/', 1)[-1]}"))
        if dax.get("mode") != "system-ram":  # a kernel that leaves it to daxctl
            dax = _one(_cxl_json(lab, "daxctl", "reconfigure-device --mode=system-ram "
                                                f"{dax['chardev']}"))
        elif dax.get("online_memblocks") != dax.get("total_memblocks"):
            lab.check(f"{ensure_ndctl().argv('daxctl')} online-memory {dax['chardev']}")
            dax = _one(_cxl_json(lab, "daxctl", f"list -d {dax['chardev']}"))
        st.detail = (f"{dax['chardev']}: {dax.get('mode')}, {dax.get('online_memblocks')}/"
                     f"{dax.get('total_memblocks')} blocks online, movable "
                     f"{dax.get('movable')}, node {dax.get('target_node')}")
        report.expect(dax.get("mode") == "system-ram" and dax.get("movable") is True and
                      dax.get("online_memblocks") == dax.get("total_memblocks"), st.detail)
    return OnlineRegion(name=name, root=root["decoder"], endpoint=endpoint,
                        start=int(region["resource"]), size=size, region=region, dax=dax)


@scenario("cxl-region", "CXL guest: a ram region of mem0 (the kernel's sysfs ABI), listed "
                        "by ndctl's cxl and daxctl, onlined movable by kmem, and memras locate "
                        "maps an HPA in it to memdev, DPA, region, block, node and zone as the "
                        "guest's sysfs does")
def cxl_region(lab: Lab, report: ScenarioReport) -> None:
    ndctl = ensure_ndctl()
    report.facts["ndctl"] = lab.check(f"{ndctl.argv('cxl')} version").strip()
    online = online_ram_region(lab, report)
    report.facts["region"], report.facts["dax"] = online.region, online.dax
    name, endpoint, start, size, dax = (online.name, online.endpoint, online.start,
                                        online.size, online.dax)
    address = start + size // 2 + 0x1000
    with report.step("the guest's own view: endpoint decoder DPA, block, node, zone") as st:
        block_size = int(lab.check(f"cat {actions.MEMORY}/block_size_bytes").strip(), 16)
        block = address // block_size
        node = lab.check(f"ls -d {actions.MEMORY}/memory{block}/node* | sed 's/.*node//'")
        zones = lab.check(f"cat {actions.MEMORY}/memory{block}/valid_zones").split()
        state = lab.check(f"cat {actions.MEMORY}/memory{block}/state").strip()
        dpa_base = int(lab.check(f"cat {CXL_SYSFS}/{endpoint}/dpa_resource").strip(), 0)
        sysfs = {"block": block, "node": int(node.strip()), "zone": zones[0], "state": state,
                 "decoder": endpoint, "dpa": dpa_base + (address - start)}
        report.facts["address"] = f"{address:#x}"
        report.facts["sysfs"] = sysfs
        st.detail = f"{address:#x}: {sysfs}"
        report.expect(state == "online", f"memory{block} is {state}")
    with report.step(f"memras locate {address:#x} --json in the guest") as st:
        located = cast("dict[str, Any]", actions.guest_memras_json(
            lab, f"locate {address:#x}", timeout_s=300))
        cxl = located.get("cxl") or {}
        report.facts["locate"] = cxl
        got = {k: cxl.get(k) for k in ("memdev", "dpa", "region", "block", "node", "zone",
                                       "dax")}
        want = {"memdev": MEMDEV, "dpa": sysfs["dpa"], "region": name, "block": block,
                "node": sysfs["node"], "zone": sysfs["zone"], "dax": dax["chardev"]}
        st.detail = f"{got}"
        report.expect(got == want, f"memras locate says {got}, the guest {want}")
    with report.step("memras dimms --json: mem0 as a unit with its region and blocks") as st:
        # no database here: the verdict notes go to stderr, which is not JSON
        dimms = cast("dict[str, Any]", actions.guest_memras_json(
            lab, f"--db {GUEST_WORK}/cxl-region.db dimms 2>/dev/null", timeout_s=300))
        row: dict[str, Any] = next((c for c in dimms["cxl"] if c["id"] == MEMDEV), {})
        report.facts["dimms_cxl_region"] = {k: row.get(k) for k in ("regions", "dax",
                                                                     "block_list", "nodes")}
        report.expect(row.get("regions") == [name] and block in row.get("block_list", [])
                      and row.get("dax") == [dax["chardev"]], f"memras dimms: {row}")
        st.detail = f"{row.get('regions')} {row.get('dax')} blocks {row.get('block_list')}"
