"""``memras summary`` vs the real ``ras-mc-ctl --summary`` on the same 1M-row database.

Both are run as commands (process start included), 3 times each, median compared;
the per-DIMM counts are checked equal first. Goal: memras <= 0.25x ras-mc-ctl's time.
Run:  .venv/bin/python bench/summary_vs_ras_mc_ctl.py [--rows 1000000]
(needs root for unshare -m: ras-mc-ctl reads only /var/lib/rasdaemon/ras-mc_event.db)
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from ingest_scaling import build_db  # noqa: E402

RAS = ["unshare", "-m", "sh", "-c",
       'mount --bind "$0" /var/lib/rasdaemon && exec ras-mc-ctl --summary']
LINE = re.compile(r"^\t(\S+) on DIMM Label\(s\): '(.*)' location: (\S+) errors: (\d+)$")


def timed(cmd: list[str]) -> tuple[float, str]:
    t = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return time.perf_counter() - t, out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="memras-bench-"))
    Path("/var/lib/rasdaemon").mkdir(parents=True, exist_ok=True)
    try:
        build_db(tmp / "memras.db", args.rows).close()
        ras_dir = tmp / "ras"
        ras_dir.mkdir()
        src, dst = sqlite3.connect(tmp / "memras.db"), sqlite3.connect(
            ras_dir / "ras-mc_event.db")
        src.backup(dst)
        dst.execute("PRAGMA journal_mode=DELETE")
        dst.close()
        memras = [sys.executable, "-m", "memras", "summary", "--db", str(tmp / "memras.db")]
        ras = [*RAS, str(ras_dir)]
        theirs = {m.group(1, 2, 3): int(m[4]) for line in timed(ras)[1].splitlines()
                  if (m := LINE.match(line))}
        ours = {(g["type"], g["label"], ":".join(str(-1 if v is None else v) for v in (
            g["mc"], g["top_layer"], g["middle_layer"], g["lower_layer"]))): g["events"]
            for g in json.loads(timed([*memras, "--json"])[1])["groups"]}
        assert ours == theirs, "memras summary differs from ras-mc-ctl --summary"
        t_ras, t_memras = [], []
        for _ in range(3):  # alternate, so load changes hit both
            t_ras.append(timed(ras)[0])
            t_memras.append(timed(memras)[0])
        r, m = statistics.median(t_ras), statistics.median(t_memras)
        print(f"{args.rows} rows, {len(ours)} groups, results equal")
        print(f"ras-mc-ctl --summary {r:.3f} s, memras summary {m:.3f} s: ratio {m / r:.2f} "
              "(goal <= 0.25)")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
