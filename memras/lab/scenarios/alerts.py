"""``alerts``: a page crossing its CE threshold is soft-offlined, the exec hook runs with
rasdaemon's environment and a signed webhook reaches a receiver on the host."""

from __future__ import annotations

import time

from memras.lab import actions
from memras.lab.guest import GUEST_FWD_ADDR, WEBHOOK_GUEST_PORT, Lab
from memras.lab.scenarios.common import GUEST_WORK, ce_address, dimm_spec
from memras.lab.scenarios.registry import ScenarioReport, scenario
from memras.lab.scenarios.webhook_receiver import WebhookReceiver

_ALERT_HOOK = """#!/bin/sh
# memras lab exec hook: keep the environment memras gave this alert
env > "$(dirname "$0")/hook-env.$$"
"""

# The variables rasdaemon's ras-mc-handler gives its CE/UE trigger.
RASDAEMON_ENV = ("TIMESTAMP", "COUNT", "TYPE", "MESSAGE", "LABEL", "MC_INDEX", "TOP_LAYER",
                 "MIDDLE_LAYER", "LOWER_LAYER", "ADDRESS", "GRAIN", "SYNDROME", "DRIVER_DETAIL")


@scenario("alerts", "CEs on one page cross the page threshold: memras soft-offlines it, runs "
                    "the exec hook and POSTs a signed webhook to the host")
def alerts(lab: Lab, report: ScenarioReport) -> None:
    dimm0 = dimm_spec(lab, "dimm0")
    work = f"{GUEST_WORK}/c"
    db, log, config, hook = f"{work}/c.db", f"{work}/watch.log", f"{work}/memras.toml", \
        f"{work}/hook.sh"
    page_addr = ce_address(lab, dimm0.id, 0x6000)
    page = page_addr >> 12
    secret = "memras-lab-secret"
    report.facts.update(page=f"{page:#x}")
    receiver = WebhookReceiver(secret)
    lab.forward(WEBHOOK_GUEST_PORT, receiver.port)
    try:
        with report.step("config: page CE threshold 3/24h, soft action, exec + webhook hooks"):
            lab.check(f"rm -rf {work}; mkdir -p {work}")
            actions.write_guest_file(lab, hook, _ALERT_HOOK, 0o755)
            actions.write_guest_file(lab, config, "\n".join([
                "[thresholds.page]", 'ce = "3 / 24h"', "[page]", 'action = "soft"',
                "[alerts.hooks.exec]", f'command = ["{hook}"]',
                "[alerts.hooks.webhook]", f'url = "http://{GUEST_FWD_ADDR}:{WEBHOOK_GUEST_PORT}/"',
                f'secret = "{secret}"', ""]))
            actions.enable_mce_observation(lab)
            actions.start_guest_watch(lab, db, log, config=config)
        hc_before = actions.meminfo_kb(lab)["HardwareCorrupted"]
        with report.step("3 CEs on one page (mce-inject sw), 3 cache lines") as step:
            for n in range(3):
                actions.inject_sw_ce(lab, page_addr + 0x40 * (n + 1))
                time.sleep(0.3)
            step.detail = f"page {page:#x}"
        with report.step("memras soft-offlines the page: HardwareCorrupted +4 kB") as step:
            deadline = time.monotonic() + 60
            hc_after = hc_before
            while time.monotonic() < deadline and hc_after == hc_before:
                time.sleep(1)
                hc_after = actions.meminfo_kb(lab)["HardwareCorrupted"]
            report.facts["hardware_corrupted_kb"] = [hc_before, hc_after]
            step.detail = f"{hc_before} -> {hc_after} kB"
            report.expect(hc_after == hc_before + 4, f"HardwareCorrupted {hc_before} -> {hc_after}")
        with report.step("hooks delivered; watcher stopped") as step:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and not receiver.deliveries:
                time.sleep(0.5)
            time.sleep(3)  # anything extra would arrive now
            report.facts["watch_output"] = actions.stop_guest_watch(lab, log)
    finally:
        receiver.close()
        lab.run(f"kill $(cat {log}.pid) 2>/dev/null")
    with report.step("page outcome recorded") as step:
        rows = actions.guest_sql(lab, db, "select page, action, outcome, hw_corrupted_before, "
                                          "hw_corrupted_after from memras_page_state")
        report.facts["page_state"] = rows
        step.detail = str(rows)
        # memras_page_state keys a page by its physical address (page << 12)
        report.expect(any(int(r[0]) == page_addr & ~0xFFF and r[1] == "soft" and r[2] == "done"
                          for r in rows),
                      f"no soft page outcome for {page:#x}: {rows}")
        alerts_rows = actions.guest_sql(lab, db, "select id, kind, severity from memras_alert")
        report.facts["alerts"] = alerts_rows
    with report.step("exec hook ran with rasdaemon-compatible env") as step:
        env_text = lab.check(f"cat {work}/hook-env.* 2>/dev/null; true")
        runs = int(lab.check(f"ls {work} | grep -c hook-env; true").strip() or 0)
        env = dict(line.split("=", 1) for line in env_text.splitlines() if "=" in line)
        report.facts.update(exec_runs=runs, exec_env={k: v for k, v in env.items()
                                                      if k in RASDAEMON_ENV or
                                                      k.startswith("MEMRAS_")})
        step.detail = f"{runs} runs; ADDRESS={env.get('ADDRESS')} TYPE={env.get('TYPE')}"
        report.expect(runs == len(alerts_rows), f"{runs} exec runs for {len(alerts_rows)} alerts")
        missing = [k for k in RASDAEMON_ENV if k not in env]
        report.expect(not missing, f"exec hook env lacks {missing}")
    with report.step("webhook: one signed memras.alert/v1 POST per alert") as step:
        bodies = [d["body"] for d in receiver.deliveries]
        report.facts["webhook"] = [{"schema": b.get("schema"), "kind": b.get("kind"),
                                    "signed": d["signed"]}
                                   for b, d in zip(bodies, receiver.deliveries, strict=True)]
        step.detail = str(report.facts["webhook"])
        report.expect(len(bodies) == len(alerts_rows),
                      f"{len(bodies)} webhook POSTs for {len(alerts_rows)} alerts")
        report.expect(all(d["signed"] for d in receiver.deliveries), "a bad HMAC signature")
        report.expect(all(b.get("schema") == "memras.alert/v1" for b in bodies),
                      f"schemas {[b.get('schema') for b in bodies]}")
    with report.step("unpoison the offlined page (best effort)") as step:
        report.facts["unpoisoned"] = actions.unpoison_pfn(lab, page)
        step.detail = str(report.facts["unpoisoned"])
