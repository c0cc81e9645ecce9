"""Strip whatever wraps a kernel message: /dev/kmsg headers, syslog, journal, dmesg.

Accepted, and stackable in any order (a syslog line quoting a dmesg line, say):

- /dev/kmsg records (Documentation/ABI/testing/dev-kmsg):
  ``pri,seq,ts_usec,flags[,more];message``; continuation lines start with a space and
  carry ``KEY=VALUE`` dictionary entries (SUBSYSTEM=, DEVICE=): the caller skips them.
- syslog / journalctl short: ``Feb 23 03:28:16 host kernel: `` (no year: no wall clock
  is recorded rather than a guessed year); ``short-precise`` adds ``.123456``;
  journalctl short-iso / RFC 3339 syslog: ``2020-01-27T19:27:15+0000 host kernel: ``;
  dmesg ``--time-format iso``: ``2020-01-27T19:27:15,123456+00:00 `` (no host).
- dmesg: ``[ 12.345678]`` (uptime), ``-T`` ``[Mon Jan 27 19:27:15 2020]`` (local time,
  recorded naive), printk caller ids ``[T123]``/``[C1]`` (serial consoles glue them to
  the stamp: ``[  1.2][    T1] ``), ``-r`` levels ``<4>``, ``-x`` ``kern  :warn  : ``,
  and ``-H`` (``[Apr 1 15:47]`` then ``[  +0.006110]`` deltas: no uptime is recorded).
- host-only prefixes without a date (``host kernel: ``, journalctl short-monotonic
  ``[  12.3] host kernel: ``), bracketed ISO stamps from console loggers beside the
  uptime (``[2024-01-02 03:04:05] [  12.3] ``), unpadded days (``Mar 9``) and doubled
  spaces between any of these: every layer's trailing blanks are dropped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

_KMSG = re.compile(r"^(\d+),(\d+),(\d+),[^;]*;")
# The host is optional (radiasoft/devops#134 logs "Feb 23 03:28:16 kernel: …", once
# with two spaces before "kernel:"); journalctl in some locales prints the month in
# lower case ("jan 20 12:40:57 beelink kernel:").
_SYSLOG = re.compile(
    r"^(?:<\d+>)?[^\W\d_]{3} +\d{1,2} \d\d:\d\d:\d\d(?:\.\d+)?(?: \S+)? +kernel:(?: +|$)"
)
_ISO = re.compile(
    r"^(?:<\d+>)?\[?(?P<iso>\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(?:[.,]\d+)?(?:Z|[+-]\d\d:?\d\d)?)"
    r"\]?(?: \S+ +kernel:)? *"
)
_UPTIME = re.compile(r"^\[\s*(\d+\.\d+)\] *")
_DMESG_T = re.compile(r"^\[([A-Z][a-z]{2} [A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d \d{4})\] *")
# dmesg -H: a "[Apr 1 15:47]" minute stamp, then "[  +0.006110]" deltas (no uptime)
_HUMAN = re.compile(r"^\[(?:[A-Z][a-z]{2} +\d{1,2} \d\d:\d\d(?::\d\d)?|\s*\+\d+\.\d+)\] *")
_CALLER = re.compile(r"^\[\s*[TC]\d+\] *")
_LEVEL = re.compile(r"^<\d+> *")
_FACILITY = re.compile(r"^[a-z]+ *:[a-z]+ *: ")
_HOST_ONLY = re.compile(r"^(?:[\w.-]+ +)?kernel: *")
_KMSG_DICT = re.compile(r"^ [A-Z_]+=")  # /dev/kmsg dictionary continuation line
_MAX_LAYERS = 8


@dataclass(frozen=True, slots=True)
class Prefixed:
    message: str
    uptime_s: float | None = None
    timestamp: datetime | None = None
    kmsg_seq: int | None = None


def _iso_time(text: str) -> datetime | None:
    text = text.replace(",", ".").replace(" ", "T", 1)
    if re.search(r"[+-]\d{4}$", text):
        text = f"{text[:-2]}:{text[-2:]}"
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def strip_prefixes(line: str) -> Prefixed | None:
    """The bare kernel message and what its prefixes said; None for kmsg continuations."""
    line = line.rstrip("\r\n")
    uptime = timestamp = seq = None
    m = _KMSG.match(line)
    if m:
        seq, uptime = int(m[2]), int(m[3]) / 1e6
        line = line[m.end() :]
    elif line.startswith(" ") and _KMSG_DICT.match(line):
        return None  # /dev/kmsg dictionary continuation (" SUBSYSTEM=edac")
    line = line.lstrip(" \t")  # quoted or indented captures
    for _ in range(_MAX_LAYERS):
        m = _UPTIME.match(line)
        if m:
            uptime = float(m[1])
        elif m := _DMESG_T.match(line):
            try:
                timestamp = datetime.strptime(m[1], "%a %b %d %H:%M:%S %Y")
            except ValueError:
                timestamp = None
        elif m := _ISO.match(line):
            timestamp = _iso_time(m["iso"]) or timestamp
        else:
            m = (
                _SYSLOG.match(line)
                or _CALLER.match(line)
                or _LEVEL.match(line)
                or _FACILITY.match(line)
                or _HUMAN.match(line)
                or _HOST_ONLY.match(line)
            )
        if m is None or m.end() == 0:
            break
        line = line[m.end() :]
    return Prefixed(line, uptime, timestamp, seq)
