"""The checksumming workload (the script memras/lab/workload.py) in a guest's background."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from memras.errors import LabError
from memras.lab.guest import Lab, checkout_root

WORKLOAD_SCRIPT = str(checkout_root() / "memras" / "lab" / "workload.py")


class LabWorkload:
    """memras/lab/workload.py (checksumming, standard library only) in a guest's background.

    ``status()`` is its JSON status file; ``refill()`` has it copy its data into new
    pages; ``stop()`` SIGTERMs it and waits for the last full verification pass
    (``final``), whose ``errors`` must be 0. ``python`` is the guest's interpreter for
    it (the guest runs the host's userland, so the checkout's venv works too).
    """

    def __init__(self, lab: Lab, mib: int, work: str, pause_s: float = 0.01,
                 phys_range: tuple[int, int] | None = None, python: str = "python3") -> None:
        self.lab, self.work = lab, work
        self.status_file, self.log = f"{work}/workload.json", f"{work}/workload.log"
        lab.check(f"mkdir -p {work}; rm -f {self.status_file}")
        where = f"--range {phys_range[0]:#x}-{phys_range[1]:#x} " if phys_range else ""
        out = lab.check(f"{python} {WORKLOAD_SCRIPT} --mib {mib} --pause {pause_s} {where}"
                        f"--status {self.status_file} >{self.log} 2>&1 & echo $!")
        self.pid = int(out.split()[-1])

    def status(self) -> dict[str, Any]:
        result = self.lab.run(f"cat {self.status_file}")
        try:
            return dict(json.loads(result.output)) if result.ok else {}
        except ValueError:  # the console may cut a line; the file itself is atomic
            return {}

    def running(self) -> bool:
        return self.lab.run(f"kill -0 {self.pid}").status == 0

    def gone(self) -> bool:
        """Dead for sure: not running twice, 2 s apart. One console exchange under a
        loaded host has read as "not running" while the workload was in its final
        verification pass (capacity-policy, CI 2026-12-07: "died" 0.57 s after the
        TERM, with an empty log)."""
        if self.running():
            return False
        time.sleep(2)
        return not self.running()

    def wait(self, condition: Callable[[dict[str, Any]], bool], what: str,
             timeout_s: float = 120) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while True:
            status = self.status()
            if status and condition(status):
                return status
            if self.gone():
                status = self.status()
                if status and condition(status):
                    return status
                log = self.lab.run(f"cat {self.log}").output
                raise LabError(f"the workload died: {log.strip()[-300:] or 'no output'}; "
                               f"last status {status}")
            if time.monotonic() > deadline:
                raise LabError(f"workload: no {what} within {timeout_s:.0f} s: {status}")
            time.sleep(1)

    def refill(self) -> dict[str, Any]:
        """Copy the data into new pages (ZONE_MOVABLE first) and wait until it is done."""
        before = self.status().get("refills", 0)
        self.lab.check(f"kill -USR1 {self.pid}")
        return self.wait(lambda s: s["refills"] > before and s["updated"] > time.time() - 60,
                         "refill")

    def stop(self) -> dict[str, Any]:
        self.lab.run(f"kill -TERM {self.pid}")
        return self.wait(lambda s: bool(s.get("final")), "final verification pass", 180)

    def kill(self) -> None:
        self.lab.run(f"kill -KILL {self.pid} 2>/dev/null")
