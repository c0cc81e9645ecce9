"""``pstore``: a fatal machine check crashes the guest; after the reset memras finds the
previous kernel's last log in pstore (ramoops) and the DIMM's verdict has moved.

The guest must boot with ``RAMOOPS_CMDLINE`` (``memmap=1M$0x30000000``): 1 MiB of boot
RAM marked reserved, which no kernel of either boot uses, and which QEMU keeps across a
``system_reset`` (a reset does not clear guest RAM). Debian's 6.1 kernel has
``CONFIG_PSTORE=y`` and ``CONFIG_PSTORE_RAM=m``: ``ramoops.ko`` (and ``reed_solomon.ko``)
are insmodded from the unpacked kernel package, which the guest sees through the 9p
share, with the region as module parameters — ``ramoops.mem_address=`` on the command
line would only reach a built-in ramoops (insmod does not read /proc/cmdline).

QEMU runs with ``-no-reboot`` (a guest reboot ends QEMU); the scenario switches that to
``reset`` over QMP (``set-action``) for the crash and back afterwards. The guest boots
with ``panic=-1``: the panic reboots at once, after kmsg_dump has written the log
into ramoops.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

from memras.errors import LabError
from memras.lab import actions
from memras.lab.guest import Lab
from memras.lab.initramfs import READY_BANNER
from memras.lab.kernel import cache_dir
from memras.lab.scenarios.common import GUEST_WORK, ce_address
from memras.lab.scenarios.registry import ScenarioReport, scenario

RAMOOPS_ADDRESS = 0x30000000  # 768 MiB: inside the 1 GiB of boot RAM, far below the initrd
RAMOOPS_SIZE = 0x100000
RAMOOPS_RECORD_SIZE = 0x20000  # 128 KiB per dmesg dump
RAMOOPS_CMDLINE = f"memmap={RAMOOPS_SIZE >> 20}M${RAMOOPS_ADDRESS:#x}"
# MCi_STATUS: VAL|UC|EN|MISCV|ADDRV|PCC, MCACOD 0x9f (memory controller read error);
# MCG_STATUS: MCIP without RIPV (the interrupted context cannot restart): mce_panic()
FATAL_STATUS = 0xBE0000000000009F
FATAL_MCG_STATUS = 0x4
FATAL_BANK = 9
REBOOT_TIMEOUT_S = 600.0


def _module(lab: Lab, name: str) -> str:
    version = lab.state.kernel if lab.state else ""
    found = sorted((cache_dir() / "kernels" / version / "lib" / "modules" / version
                    / "kernel").rglob(f"{name}.ko"))
    if not found:
        raise LabError(f"{name}.ko is not in the lab kernel {version}",
                       hint="Debian's kernel has CONFIG_PSTORE_RAM=m; is the cache complete?")
    return str(found[0])


def load_ramoops(lab: Lab) -> str:
    """insmod ramoops on the reserved region, mount pstore; the dump files found there."""
    rs, ramoops = _module(lab, "reed_solomon"), _module(lab, "ramoops")
    lab.run(f"insmod {rs}")  # already loaded after an earlier call: "File exists"
    if "ramoops" not in lab.run("cat /proc/modules").output:
        lab.check(f"insmod {ramoops} mem_address={RAMOOPS_ADDRESS:#x} "
                  f"mem_size={RAMOOPS_SIZE:#x} record_size={RAMOOPS_RECORD_SIZE:#x}")
    if "pstore" not in lab.run("grep pstore /proc/mounts").output:
        lab.check("mount -t pstore pstore /sys/fs/pstore")
    return lab.run("ls /sys/fs/pstore").output.strip()


def wait_reboot(lab: Lab, timeout_s: float = REBOOT_TIMEOUT_S) -> float:
    """Seconds until the guest's shell is back after a reset (its ready banner)."""
    started = time.monotonic()
    lab.console.expect(re.escape(READY_BANNER), timeout_s, lab.is_alive)
    lab.console.sync(timeout=60)
    return time.monotonic() - started


def _panic_lines(kernel_log: Path) -> list[str]:
    """The crashed boot's machine-check and panic lines from the kernel console log."""
    text = kernel_log.read_text(errors="replace") if kernel_log.exists() else ""
    lines = text.splitlines()
    ends = [i for i, line in enumerate(lines) if "Kernel panic" in line]
    if not ends:
        return []
    return [line.strip() for line in lines[:ends[-1] + 1]
            if "Hardware Error" in line or "Kernel panic" in line][-8:]


@scenario("pstore", "a fatal MCE in dimm0 panics the guest; after the reset memras imports "
                    "the ramoops dump and dimm0's verdict is replace-now")
def pstore(lab: Lab, report: ScenarioReport) -> None:
    if RAMOOPS_CMDLINE not in lab.run("cat /proc/cmdline").output:
        raise LabError("the guest was not booted with the ramoops reservation",
                       hint=f"LabConfig(cmdline_extra={RAMOOPS_CMDLINE!r})")
    db = f"{GUEST_WORK}/pstore.db"
    addr = ce_address(lab, "dimm0", 0x5000)
    report.facts["addr"] = f"{addr:#x}"
    with report.step("ramoops on the reserved region, pstore mounted") as step:
        before = load_ramoops(lab)
        if before:  # an earlier run's dumps: erase them (frees the ramoops records)
            lab.check("rm -f /sys/fs/pstore/*")
        step.detail = lab.check("dmesg | grep -m1 'ramoops: using 0x'").strip()
    with report.step("QEMU resets on the guest's reboot instead of exiting"):
        lab.qmp.cmd("set-action", reboot="reset")
    try:
        with report.step(f"fatal MCE at {addr:#x}: panic, ramoops dump, reset, boot") as step:
            lab.qmp.inject_mce(0, FATAL_BANK, FATAL_STATUS, FATAL_MCG_STATUS, addr,
                               actions.CE_MISC_QEMU, broadcast=True)
            seconds = wait_reboot(lab)
            report.facts["reboot_seconds"] = round(seconds, 1)
            report.facts["panic"] = _panic_lines(lab.kernel_log)
            step.detail = f"shell back after {seconds:.0f} s; " + " | ".join(
                report.facts["panic"][-2:])
    finally:
        lab.qmp.cmd("set-action", reboot="shutdown")  # as -no-reboot had it
    with report.step("after the reset: ramoops again, the dump is there") as step:
        files = load_ramoops(lab)
        report.facts["pstore_files"] = files.split()
        report.expect(any(f.startswith("dmesg-ramoops-") for f in files.split()),
                      f"no dmesg-ramoops dump after the crash: {files!r}")
        # The new boot's kernel finds the machine check still in the MCA bank (QEMU's
        # reset keeps it, as hardware does for a warm reset) and logs it again: a live
        # report of the same error, recorded here as a fact.
        report.facts["bank_logged_again"] = lab.run(
            f"dmesg | grep -m2 'Bank {FATAL_BANK}: {FATAL_STATUS:x}'").output.strip()
        dump = lab.check("cat /sys/fs/pstore/dmesg-ramoops-*")
        report.facts["dump_tail"] = dump.strip().splitlines()[-6:]
        report.expect("Machine check" in dump or "Machine Check" in dump,
                      "the dump does not hold the machine check")
        step.detail = " | ".join(report.facts["dump_tail"][-2:])
    with report.step("memras import pstore, twice") as step:
        lab.check(f"mkdir -p {GUEST_WORK}; rm -f {db}*")
        first = actions.guest_memras_json(lab, f"--db {db} import pstore", 300)
        # the second import a process of its own; the reads of the next step share its
        # guest Python (a CLI start-up is ~25 s under TCG)
        again, errors, verdicts = actions.guest_memras_json_many(
            lab, [f"--db {db} import pstore", f"--db {db} errors", f"--db {db} verdicts"],
            GUEST_WORK, 600)
        assert isinstance(first, dict) and isinstance(again, dict)
        report.facts["import"] = first
        report.facts["import_again"] = again
        report.expect(first["inserted"] >= 1, f"import pstore stored nothing: {first}")
        report.expect(again["inserted"] == 0,
                      f"a second import stored {again['inserted']} rows again")
        step.detail = (f"{first['inserted']} inserted; again: {again['inserted']} inserted, "
                       f"{again['duplicates']} duplicates")
    with report.step("the fatal error is stored on dimm0 and its verdict moved") as step:
        rows = errors["errors"] if isinstance(errors, dict) else errors
        assert isinstance(rows, list)
        mine = [e for e in rows if e.get("address") == addr]
        report.facts["errors"] = [{k: e.get(k) for k in ("type", "address", "source",
                                                         "dimm_id", "time")} for e in rows]
        report.expect(len(mine) == 1, f"{len(mine)} rows at {addr:#x}: {report.facts['errors']}")
        report.expect(mine[0]["type"] == "Fatal", f"stored as {mine[0]['type']}")
        dimm_id = mine[0].get("dimm_id")
        report.expect(bool(dimm_id), "the fatal error is on no DIMM")
        vrows = verdicts["verdicts"] if isinstance(verdicts, dict) else verdicts
        assert isinstance(vrows, list)
        report.facts["verdicts"] = [{k: v.get(k) for k in ("dimm", "verdict", "rules")}
                                    for v in vrows]
        ours = [v for v in vrows if v.get("dimm") == dimm_id]
        report.expect(bool(ours) and ours[0].get("verdict") == "replace-now",
                      f"{dimm_id}'s verdict: {report.facts['verdicts']}")
        step.detail = f"{dimm_id}: {ours[0].get('verdict')}"
