"""Benchmark: `memras blocks` against util-linux `lsmem` on the 16,384-block profile.

Both read the same simulated tree (memras.sim profile ``large``) with the same
columns; repetitions are interleaved so both see the same machine load. Reports
medians and ratios, and with --write puts the table into docs/performance.md
(section blocks-vs-lsmem).

    .venv/bin/python bench/blocks_vs_lsmem.py --reps 7 --write
"""

from __future__ import annotations

import argparse
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from memras.host import Host
from memras.sim import create
from memras.topology import lsmem

COLS = "RANGE,SIZE,STATE,REMOVABLE,BLOCK,NODE,ZONES"
DOC = Path(__file__).resolve().parent.parent / "docs" / "performance.md"


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--write", action="store_true", help="update docs/performance.md")
    args = ap.parse_args()
    lsmem_bin = shutil.which("lsmem")
    if not lsmem_bin:
        print("lsmem (util-linux) is not installed", file=sys.stderr)
        return 1
    memras_bin = str(Path(sys.executable).with_name("memras"))
    with tempfile.TemporaryDirectory() as tmp:
        root = create("large", Path(tmp) / "root").root
        anchor = [lsmem_bin, "--sysroot", str(root), "-o", COLS]
        cli = [memras_bin, "blocks", "--root", str(root)]
        ours = subprocess.run(cli, capture_output=True, text=True, check=True).stdout
        theirs = subprocess.run(anchor, capture_output=True, text=True, check=True).stdout
        assert ours == theirs, "outputs differ: fix parity before timing"

        def in_process() -> None:
            lsmem.render(lsmem.read_view(Host(root).memory))

        times: dict[str, list[float]] = {"lsmem": [], "in-process": [], "cli": []}
        for _ in range(args.reps):  # interleaved: each round runs all three
            times["lsmem"].append(timed(lambda: subprocess.run(anchor, capture_output=True)))
            times["in-process"].append(timed(in_process))
            times["cli"].append(timed(lambda: subprocess.run(cli, capture_output=True)))
    med = {k: statistics.median(v) for k, v in times.items()}
    rows = [
        "| run | median (ms) | ratio to lsmem |",
        "|---|---:|---:|",
        f"| `lsmem --sysroot T -o {COLS}` (anchor) | {med['lsmem'] * 1000:.1f} | 1.00 |",
        f"| `memras.topology.lsmem.render(read_view(...))` in-process | "
        f"{med['in-process'] * 1000:.1f} | {med['in-process'] / med['lsmem']:.2f} |",
        f"| `memras blocks --root T` (subprocess, with interpreter start) | "
        f"{med['cli'] * 1000:.1f} | {med['cli'] / med['lsmem']:.2f} |",
    ]
    table = "\n".join(rows)
    print(table)
    if args.write:
        write_doc(table, args.reps)
    return 0


def write_doc(table: str, reps: int) -> None:
    body = (
        "`memras blocks` vs util-linux 2.38.1 `lsmem` on the simulated `large` profile "
        "(16,384 blocks of 128 MiB on 4 nodes, mixed states/zones/removable, 376 merged "
        f"rows), same columns, output checked identical first; {reps} interleaved "
        "repetitions, medians.\n\n"
        f"{table}\n\n"
        "Reproduce: `.venv/bin/python bench/blocks_vs_lsmem.py --reps 7 --write`. "
        "Goal: at most 2x lsmem. The reader uses os.open/os.read per attribute and "
        "takes the node of every block from one listing per node directory instead of "
        "lsmem's readdir of each block directory.\n"
    )
    text = DOC.read_text()
    new = re.sub(r"(<!-- section: blocks-vs-lsmem -->\n).*?(<!-- end: blocks-vs-lsmem -->)",
                 lambda m: m.group(1) + body + m.group(2), text, flags=re.S)
    DOC.write_text(new)


if __name__ == "__main__":
    sys.exit(main())
