"""Run the real Debian ``ras-mc-ctl`` against a private database and parse its output.

ras-mc-ctl reads only /var/lib/rasdaemon/ras-mc_event.db, so each run happens in a
private mount namespace (``unshare -m``) where a temporary directory is bind-mounted
over /var/lib/rasdaemon: the system copy, if any, is never seen nor touched.
"""

from __future__ import annotations

import os
import re
import shutil
import sqlite3
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

RAS_DIR = Path("/var/lib/rasdaemon")
DB_NAME = "ras-mc_event.db"

_SUMMARY = re.compile(r"^\t(?P<type>\S+) on DIMM Label\(s\): '(?P<label>.*)' "
                      r"location: (?P<loc>-?\d+:-?\d+:-?\d+:-?\d+) errors: (?P<n>\d+)$")
_ERROR = re.compile(
    r"^(?P<id>\d+) (?P<time>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d [+-]\d{4}) (?P<count>\d+) "
    r"(?P<type>\S+) error\(s\): (?P<msg>.*) at (?P<label>.*) location: "
    r"(?P<loc>-?\d+:-?\d+:-?\d+:-?\d+), addr (?P<addr>-?\d*), grain (?P<grain>-?\d*), "
    r"syndrome (?P<syndrome>-?\d*) (?P<detail>.*)$")


@dataclass(frozen=True)
class McError:
    id: int
    time: str
    count: int
    type: str
    msg: str
    label: str
    location: str
    addr: int
    grain: int
    syndrome: int
    detail: str


def unavailable_reason() -> str | None:
    """Why the real ras-mc-ctl cannot run here, or None when it can."""
    for tool in ("ras-mc-ctl", "unshare", "modprobe"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (apt-get install rasdaemon kmod util-linux)"
    if os.geteuid() != 0:
        return "unshare -m and mount --bind need root"
    return None


def require_ras_mc_ctl() -> None:
    """Skip with the reason, except in CI (CI=true) where the real tool must be there."""
    reason = unavailable_reason()
    if reason is None:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI needs the real ras-mc-ctl: {reason}")
    pytest.skip(reason)


def run(db_dir: Path, *args: str) -> str:
    """``ras-mc-ctl ARGS`` with ``db_dir/ras-mc_event.db`` as its database."""
    assert (db_dir / DB_NAME).exists()
    RAS_DIR.mkdir(parents=True, exist_ok=True)  # the mount point; never written into
    script = f'mount --bind "$0" {RAS_DIR} && exec ras-mc-ctl "$@"'  # $0 = db_dir
    done = subprocess.run(["unshare", "-m", "sh", "-c", script, str(db_dir), *args],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, f"ras-mc-ctl {args} failed: {done.stderr}"
    assert "prepare failed" not in done.stderr, done.stderr
    return done.stdout


def summary(db_dir: Path) -> dict[tuple[str, str, str], int]:
    """(type, label, location) -> count(*) from ``ras-mc-ctl --summary``."""
    out: dict[tuple[str, str, str], int] = {}
    for line in run(db_dir, "--summary").splitlines():
        m = _SUMMARY.match(line)
        if m:
            out[(m["type"], m["label"], m["loc"])] = int(m["n"])
    return out


def errors(db_dir: Path) -> list[McError]:
    """The mc_event lines of ``ras-mc-ctl --errors``."""
    found = []
    for line in run(db_dir, "--errors").splitlines():
        m = _ERROR.match(line)
        if m:
            found.append(McError(
                id=int(m["id"]), time=m["time"], count=int(m["count"]), type=m["type"],
                msg=m["msg"], label=m["label"], location=m["loc"], addr=int(m["addr"]),
                grain=int(m["grain"]), syndrome=int(m["syndrome"]), detail=m["detail"]))
    return found


def checkpointed_copy(db: Path, into: Path) -> Path:
    """Copy a (WAL) database to ``into/ras-mc_event.db`` as one self-contained file."""
    into.mkdir(parents=True, exist_ok=True)
    target = into / DB_NAME
    src = sqlite3.connect(db)
    dst = sqlite3.connect(target)
    with dst:
        src.backup(dst)
    src.close()
    dst.execute("PRAGMA journal_mode=DELETE")
    dst.close()
    return into
