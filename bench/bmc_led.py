"""What one slot-LED change costs the replacement: Redfish and IPMI against the test BMCs.

The workflow changes the LED twice per replacement (on before the removal, off after
verify), so this is seconds per replacement at most, never per error. It times
``memras.bmc.led.set_slot_led`` (the workflow's call) against sushy-emulator with Memory
resources (tests/fixtures/redfish_emulator.py: service root, Systems, one system, its
Memory collection, each Memory resource, then PATCH and a read back) and against
OpenIPMI's ipmi_sim over lanplus (tests/fixtures/ipmi_sim.py: one ipmitool run), the
latter with ``cipher_suite = 3`` and without it (ipmitool then asks the BMC for its
cipher suites; ipmi_sim does not answer that and ipmitool retries).
Figures go to docs/performance.md ("BMC slot LED").
Run:  .venv/bin/python bench/bmc_led.py [--rounds 10] [--no-docs]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(ROOT))
from _docs import replace_figures  # noqa: E402

from memras.bmc.config import BmcConfig, bmc_config  # noqa: E402
from memras.bmc.led import set_slot_led  # noqa: E402
from memras.config import parse_config_text  # noqa: E402
from tests.fixtures.ipmi_sim import start_ipmi_sim  # noqa: E402
from tests.fixtures.redfish_emulator import start_emulator  # noqa: E402

START, END = "<!-- figures: bmc-led -->", "<!-- end figures: bmc-led -->"
SECTION = """<!-- section: bmc-led -->
## BMC slot LED (`bench/bmc_led.py`)
One LED change as the workflow makes it (`set_slot_led`), twice per replacement, against
the test suite's BMCs on 127.0.0.1: Redfish through sushy-emulator (six GETs to find the
slot, the PATCH, a read back) and IPMI through ipmitool to OpenIPMI's ipmi_sim.

{figures}
<!-- end: bmc-led -->"""


def timed(config: BmcConfig, names: list[str], rounds: int) -> list[float]:
    out = []
    for i in range(rounds):
        t = time.perf_counter()
        result = set_slot_led(config, names, i % 2 == 0)
        out.append(time.perf_counter() - t)
        assert result.ok, result.detail
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--no-docs", action="store_true")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bmc-led-"))
    emu = start_emulator(work / "redfish")
    sim = start_ipmi_sim(work / "ipmi")
    try:
        rf = bmc_config(parse_config_text(emu.toml()))
        ipmi = bmc_config(parse_config_text(sim.toml()))
        assert rf is not None and ipmi is not None
        no_suite = BmcConfig(**{**ipmi.__dict__, "cipher_suite": None})
        rows = [("Redfish (sushy-emulator)", timed(rf, ["P1-DIMMB1"], args.rounds)),
                ("IPMI, cipher_suite = 3", timed(ipmi, [], args.rounds)),
                ("IPMI, no cipher_suite", timed(no_suite, [], max(2, args.rounds // 5)))]
    finally:
        emu.proc.terminate()
        sim.proc.terminate()
    load = os.getloadavg()[0]
    lines = [f"- {name}: median **{statistics.median(t) * 1000:.0f} ms**, max "
             f"{max(t) * 1000:.0f} ms ({len(t)} changes)" for name, t in rows]
    lines.append(f"- {date.today()}, shared 2-core machine, load average {load:.1f}. "
                 "Reproduce: `.venv/bin/python bench/bmc_led.py`")
    figures = "\n".join(lines)
    print(figures)
    if not args.no_docs:
        replace_figures(START, END, figures, new_section=SECTION)


if __name__ == "__main__":
    main()
