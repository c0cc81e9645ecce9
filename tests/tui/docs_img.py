"""Copy the snapshots the user guide shows into docs/img (the screenshots are the snapshots).

After ``pytest tests/tui/test_snapshots.py --snapshot-update`` has been checked::

    .venv/bin/python -m tests.tui.docs_img          # copy what changed
    .venv/bin/python -m tests.tui.docs_img --check  # exit 1 if docs/img is out of date
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SNAPSHOTS = REPO / "tests/tui/__snapshots__/test_snapshots"
DOCS_IMG = REPO / "docs/img"

# docs/img name -> the snapshot it is
IMAGES = {
    "tui-dashboard.svg": "dashboard-_dashboard-120x40",
    "tui-dashboard-80x24.svg": "dashboard-_dashboard-80x24",
    "tui-detail.svg": "detail-_detail-120x40",
    "tui-map.svg": "map-_map-120x40",
    "tui-alerts.svg": "alerts-_alerts-120x40",
    "tui-audit.svg": "audit-_audit-120x40",
    "tui-help.svg": "help-_help-120x40",
}


def stale() -> list[str]:
    out = []
    for image, snapshot in IMAGES.items():
        source = SNAPSHOTS / f"test_screen_snapshot[{snapshot}].svg"
        target = DOCS_IMG / image
        if not target.exists() or target.read_bytes() != source.read_bytes():
            out.append(image)
    return out


def main(argv: list[str]) -> int:
    changed = stale()
    if "--check" in argv:
        for image in changed:
            print(f"docs/img/{image} differs from its snapshot {IMAGES[image]}")
        return 1 if changed else 0
    for image in changed:
        source = SNAPSHOTS / f"test_screen_snapshot[{IMAGES[image]}].svg"
        (DOCS_IMG / image).write_bytes(source.read_bytes())
        print(f"docs/img/{image} <- {source.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
