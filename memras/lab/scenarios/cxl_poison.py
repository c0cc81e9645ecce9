"""``cxl-poison``: poison injected into an online CXL ram region leaves service once.

In the CXL lab guest (:class:`memras.lab.cxl.CxlLab`): mem0's ram region is onlined as
system RAM (:func:`memras.lab.scenarios.cxl.online_ram_region`, shared with cxl-region),
``memras watch`` runs with the default ``[page] action`` (soft, which for poison means
hard: memras.health.cxl_poison), QMP ``cxl-inject-poison`` puts a 64-byte range near
the region's end in the device's poison list, and the guest reads that list
(``trigger_poison_list``, in the guest's own sysfs). Then: the ``cxl_poison`` record is
stored once with the HPA the kernel computed, memras's page action names that page,
the guest kernel holds the page poisoned (HardwareCorrupted +4 kB, the HWPOISON bit in
/proc/kpageflags), a second read of the list acts on nothing new, and the watcher's
event log (``--log-events``) has one page action, mem0's verdict citing cxl-poison, and
the kernel's one memory_failure record of the page, not judged as a UE. (``memras dimms``
showing the verdict is a unit test's: one more memras start costs ~25 s under TCG.)

This module registers on import; the 6.1 lab guest has no CXL device, so it is not in
:mod:`memras.lab.scenarios`'s list (tests/lab/test_scenario_cxl_poison.py imports it).
"""

from __future__ import annotations

import json
import shlex
import time
from typing import Any, cast

from memras.lab import actions
from memras.lab.cxl import inject_poison
from memras.lab.guest import Lab
from memras.lab.scenarios.common import GUEST_WORK
from memras.lab.scenarios.cxl import CXL_SYSFS, MEMDEV, online_ram_region
from memras.lab.scenarios.registry import ScenarioReport, scenario

POISON_LEN = 0x40  # QEMU takes 64-byte multiples (the CXL poison list's unit)
FROM_END = 0x100000  # the poisoned DPA: 1 MiB before the region's end (a page rarely used)
PAGE = 4096
KPF_HWPOISON_BIT = 19  # include/uapi/linux/kernel-page-flags.h

# One guest python (sqlite3 alone, no memras start-up): the poison rows, the page state
# rows of the page, HardwareCorrupted, and the page's kpageflags word.
_PROBE = """
import json, sqlite3, sys
db, page = sys.argv[1], int(sys.argv[2])
c = sqlite3.connect(db)
c.row_factory = sqlite3.Row
def rows(sql, *a):
    try:
        return [dict(r) for r in c.execute(sql, a)]
    except sqlite3.OperationalError:
        return []
poison = rows("SELECT memdev, dpa, hpa, region, trace_type, raw FROM memras_cxl_event "
              "WHERE event = 'poison' ORDER BY id")
pages = rows("SELECT page, dimm_id, action, outcome, steps, attempts, hw_corrupted_before, "
             "hw_corrupted_after FROM memras_page_state WHERE page = ?", page)
hc = next(int(l.split()[1]) for l in open('/proc/meminfo') if l.startswith('HardwareCorrupted'))
with open('/proc/kpageflags', 'rb') as f:
    f.seek(page // 4096 * 8)
    flags = int.from_bytes(f.read(8), 'little')
print(json.dumps({"poison": poison, "pages": pages, "hw_corrupted_kb": hc, "kpageflags": flags}))
"""


def _probe(lab: Lab, db: str, page: int) -> dict[str, Any]:
    out = lab.check(f"{actions.python_argv()} -c {shlex.quote(_PROBE)} {db} {page}",
                    timeout=120)
    return cast("dict[str, Any]", json.loads(out))


def _wait(lab: Lab, db: str, page: int, done: Any, timeout_s: float = 60) -> dict[str, Any]:
    """Probe until ``done(probe)``; the last probe (the caller checks what it says)."""
    deadline = time.monotonic() + timeout_s
    while True:
        seen = _probe(lab, db, page)
        if done(seen) or time.monotonic() > deadline:
            return seen
        time.sleep(2)


def _mine(seen: dict[str, Any], dpa: int) -> list[dict[str, Any]]:
    return [r for r in seen["poison"] if r["memdev"] == MEMDEV and r["dpa"] == dpa]


@scenario("cxl-poison", "CXL guest: poison injected (QMP) into mem0's online ram region and "
                        "read from its poison list is stored once with its HPA; memras watch "
                        "hard-offlines that page once (HardwareCorrupted, kpageflags), mem0's "
                        "verdict cites cxl-poison, and a second list read acts on nothing new")
def cxl_poison(lab: Lab, report: ScenarioReport) -> None:
    db, log = f"{GUEST_WORK}/cxl-poison.db", f"{GUEST_WORK}/cxl-poison-watch.log"
    online = online_ram_region(lab, report)
    with report.step("the poisoned DPA, its HPA and block in the guest's sysfs") as st:
        dpa_base = int(lab.check(f"cat {CXL_SYSFS}/{online.endpoint}/dpa_resource").strip(), 0)
        dpa = dpa_base + online.size - FROM_END
        hpa = online.start + (dpa - dpa_base)  # a 1-way region: the DPA offset is the HPA's
        page = hpa - hpa % PAGE
        block_size = int(lab.check(f"cat {actions.MEMORY}/block_size_bytes").strip(), 16)
        block = hpa // block_size
        state = lab.check(f"cat {actions.MEMORY}/memory{block}/state").strip()
        zone = lab.check(f"cat {actions.MEMORY}/memory{block}/valid_zones").split()[0]
        report.facts.update(dpa=dpa, hpa=hpa, page=page, block=block, region=online.name)
        st.detail = f"DPA {dpa:#x} -> HPA {hpa:#x}, memory{block} {state} {zone}"
        report.expect(state == "online" and zone == "Movable", st.detail)
    with report.step("start memras watch (kmsg, trace, --log-events) in the CXL guest") as st:
        lab.check(f"mkdir -p {GUEST_WORK}")
        actions.start_guest_watch(lab, db, log, sources="kmsg,trace", extra="--log-events")
        enable = f"{actions.TRACING}/instances/memras/events/cxl/cxl_poison/enable"
        actions.wait_guest_output(lab, f"cat {enable}", r"^1$", timeout_s=60)
        before = _probe(lab, db, page)
        report.facts["before"] = {k: before[k] for k in ("hw_corrupted_kb", "kpageflags")}
        st.detail = f"HardwareCorrupted {before['hw_corrupted_kb']} kB before"
    try:
        with report.step("cxl-inject-poison, the guest reads mem0's poison list") as st:
            inject_poison(lab, start=dpa, length=POISON_LEN)
            lab.check(f"echo 1 > {CXL_SYSFS}/{MEMDEV}/trigger_poison_list")  # the guest's
            first = _wait(lab, db, page, lambda s: any(
                p["outcome"] == "done" for p in s["pages"]))
            report.facts["first"] = first
            st.detail = (f"poison rows {_mine(first, dpa)}; page state {first['pages']}; "
                         f"HardwareCorrupted {first['hw_corrupted_kb']} kB")
        with report.step("the record once, with the kernel's HPA and region") as st:
            rows = _mine(first, dpa)
            report.expect(len(rows) == 1, f"poison at DPA {dpa:#x} stored {len(rows)} times: "
                                          f"{first['poison']}")
            report.expect((rows[0]["hpa"], rows[0]["region"], rows[0]["trace_type"]) == (
                hpa, online.name, "List"), f"poison row {rows[0]}, want HPA {hpa:#x} in "
                                           f"{online.name}")
            st.detail = f"{rows[0]}"
            report.facts["raw"] = rows[0]["raw"]  # the kernel's line, for the unit tests
        with report.step("the page hard-offlined by memras, poisoned in the guest") as st:
            pages = first["pages"]
            report.expect(len(pages) == 1 and pages[0]["outcome"] == "done"
                          and json.loads(pages[0]["steps"]) == [["hard", "done"]]
                          and pages[0]["dimm_id"] == f"label:{MEMDEV}",
                          f"page state of {page:#x}: {pages}")
            grew = first["hw_corrupted_kb"] - before["hw_corrupted_kb"]
            poisoned = bool(first["kpageflags"] >> KPF_HWPOISON_BIT & 1)
            st.detail = f"HardwareCorrupted +{grew} kB, kpageflags HWPOISON {poisoned}"
            report.expect(grew == 4 and poisoned, st.detail)
        with report.step("the poison list read again: stored, nothing acted on") as st:
            lab.check(f"echo 1 > {CXL_SYSFS}/{MEMDEV}/trigger_poison_list")
            # a later read is a later record (the store dates poison by its wall clock);
            # the watcher acts on it in the same writer turn, before SIGTERM is handled
            second = _wait(lab, db, page, lambda s: len(_mine(s, dpa)) >= 2)
            report.expect(len(_mine(second, dpa)) == 2, f"second read not stored: "
                                                        f"{second['poison']}")
            output = actions.stop_guest_watch(lab, log)
            after = _probe(lab, db, page)
            report.facts["after"] = after
            st.detail = (f"page state {after['pages']}; HardwareCorrupted "
                         f"{after['hw_corrupted_kb']} kB")
            report.expect(after["pages"] == first["pages"], f"the page state changed: "
                                                            f"{first['pages']} -> {after['pages']}")
            report.expect(after["hw_corrupted_kb"] == first["hw_corrupted_kb"], st.detail)
    finally:
        lab.run(f"kill $(cat {log}.pid) 2>/dev/null")
    with report.step("the watcher's event log: one page action, mem0's verdict, the "
                     "kernel's one memory_failure") as st:
        events = [ln for ln in output.splitlines() if "MEMRAS_EVENT=" in ln]
        report.facts["events"] = events
        offlined = [ln for ln in events if "MEMRAS_EVENT=page-offlined" in ln]
        verdicts = [ln for ln in events if "MEMRAS_EVENT=verdict" in ln
                    and f"dimm=label:{MEMDEV}" in ln]
        failures = [ln for ln in events if "MEMRAS_EVENT=memory-failure" in ln
                    and f"pfn={page // PAGE:#x}" in ln]
        report.facts["verdict_lines"] = verdicts
        st.detail = " | ".join([*offlined, *verdicts, *failures])
        report.expect(len(offlined) == 1 and f"page {page:#x}" in offlined[0]
                      and "hard -> done" in offlined[0], f"page actions: {offlined}")
        report.expect(len(verdicts) == 1 and "rules=cxl-poison" in verdicts[0],
                      f"{MEMDEV}'s verdict lines: {verdicts}")
        # memras's own hard offline is one kernel memory_failure, not a hardware UE
        report.expect(len(failures) == 1, f"memory_failure records of the page: {failures}")
        report.expect(not [ln for ln in events if "MEMRAS_EVENT=ue" in ln],
                      f"a UE was judged: {events}")
