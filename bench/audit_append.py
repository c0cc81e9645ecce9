"""What anchoring the audit head outside the database costs per append, and verify's cost.

Every ``AuditTrail.append`` now also writes the anchor file (tmp + fsync + rename + fsync
of the directory, under a flock); this times appends with the anchors on and with
``publish`` stubbed out (the database commit alone), on a plain and an HMAC chain, and
``audit verify`` (the service call) over the rows. Syslog is off in both (its cost is a
datagram). Figures go to docs/performance.md ("Audit anchors").
Run:  .venv/bin/python bench/audit_append.py [--appends 300] [--no-docs]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _docs import replace_figures  # noqa: E402

from memras.audit import service  # noqa: E402
from memras.audit.anchor import AuditSettings  # noqa: E402
from memras.audit.service import Actor, AuditTrail  # noqa: E402
from memras.store import Store  # noqa: E402

START, END = "<!-- figures: audit-anchors -->", "<!-- end figures: audit-anchors -->"
SECTION = """<!-- section: audit-anchors -->
## Audit anchors: the cost of an append and of `audit verify`
`bench/audit_append.py`: each audit append commits its row, then writes the head to the
anchor file (two fsyncs) under a lock; a replacement appends about ten rows, a capacity
offline one per block, so the anchor adds milliseconds per step, never per error event.

{figures}
<!-- end: audit-anchors -->"""
ACTOR = Actor(uid=0, user="root", operator=None, host="bench")


def per_append_ms(directory: Path, settings: AuditSettings, n: int) -> tuple[float, float]:
    with Store.open(directory / "memras.db") as store:
        trail = AuditTrail(store, settings)
        trail.append("warm-up", {}, actor=ACTOR)
        times = []
        for i in range(n):
            t = time.perf_counter()
            trail.append("step", {"i": i, "blocks": list(range(8))}, actor=ACTOR)
            times.append(time.perf_counter() - t)
        t = time.perf_counter()
        report = trail.verify()
        verify_s = time.perf_counter() - t
    assert report.rows == n + 1
    return statistics.median(times) * 1e3, verify_s * 1e3


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--appends", type=int, default=300)
    ap.add_argument("--no-docs", action="store_true", help="print only")
    args = ap.parse_args()
    lines = []
    with tempfile.TemporaryDirectory(prefix="memras-bench-") as tmp:
        key = Path(tmp) / "audit.key"
        key.write_text("0123456789abcdef0123456789abcdef\n")
        key.chmod(0o600)
        for label, settings in (("plain SHA-256", AuditSettings(syslog=False)),
                                ("HMAC", AuditSettings(syslog=False, key_file=key))):
            on_dir, off_dir = Path(tmp) / f"{label}-on", Path(tmp) / f"{label}-off"
            on_dir.mkdir()
            off_dir.mkdir()
            on, verify_ms = per_append_ms(on_dir, settings, args.appends)
            real = service.publish
            service.publish = lambda *a, **k: []  # type: ignore[assignment]
            try:
                off, _ = per_append_ms(off_dir, settings, args.appends)
            finally:
                service.publish = real
            lines.append(f"- {label}: **{on:.1f} ms** an append with the anchor file, "
                         f"{off:.1f} ms without (median of {args.appends}); `verify` of "
                         f"{args.appends + 1} rows {verify_ms:.0f} ms")
    load = os.getloadavg()[0]
    lines.append(f"- {time.strftime('%Y-%m-%d')}, shared 2-core machine, load average "
                 f"{load:.1f}. Reproduce: `.venv/bin/python bench/audit_append.py`")
    figures = "\n".join(lines)
    print(figures)
    if not args.no_docs:
        replace_figures(START, END, figures, new_section=SECTION)


if __name__ == "__main__":
    main()
