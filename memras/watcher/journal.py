"""One log line per stored error and per health change, for the journal (``--log-events``).

The store is the record; these lines are for the operator who reads ``journalctl -u
memras-watch`` and for log shippers that already collect the journal. Each line is
``key=value`` pairs, the first always ``MEMRAS_EVENT=<kind>``, so one grep or one
logfmt parser takes them all::

    MEMRAS_EVENT=error source=kmsg type=Corrected count=1 dimm=P1-DIMMC1 address=0x1234000
    MEMRAS_EVENT=memory-failure source=trace pfn=0x1234 page_type="dirty LRU page" action=Recovered
    MEMRAS_EVENT=verdict dimm=P1-DIMMC1 verdict=replace-now severity=critical rules=ce-storm …
    MEMRAS_EVENT=page-offlined dimm=… severity=warning message="…"

Kinds: ``error`` and ``memory-failure`` for each stored record (new rows only: a second
source's report of a stored error is not logged twice), ``verdict`` for a verdict change
and the health change kind (``threshold-crossed``, ``page-offlined``, ``ue``) otherwise.
A value with a space, a quote, ``=`` or a control character is double-quoted with JSON
escapes, so text from the kernel can neither split a line nor forge a key.

When on: ``--log-events`` / ``--no-log-events``; by default when stderr is the journal
(systemd sets ``$JOURNAL_STREAM`` to its device:inode), so the unit in contrib/systemd/
logs events and a shell does not. On the journal each line carries its priority as a
``<N>`` prefix (journald's SyslogLevelPrefix), so ``journalctl -p warning`` shows the
watcher's failures without the event lines. A storm is one line per stored error:
journald's per-service rate limit (10000 lines per 30 s by default) then drops lines and
says how many; the database keeps every row regardless.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import sys
from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, TextIO

from memras.records import MemoryErrorEvent, MemoryFailureEvent, Record

if TYPE_CHECKING:
    from memras.health.engine import HealthChange
    from memras.health.keys import DimmResolver

log = logging.getLogger("memras.events")

_BARE = re.compile(r"[A-Za-z0-9_.,:/+@%-]+")
# syslog priorities journald reads from a "<N>" line prefix (sd-daemon.h SD_ERR…SD_DEBUG)
_PRIORITY = {logging.CRITICAL: 2, logging.ERROR: 3, logging.WARNING: 4, logging.INFO: 6,
             logging.DEBUG: 7}


def value(v: object) -> str:
    """One value: bare when it is a plain word, else double-quoted with JSON escapes."""
    if v is None:
        return "-"
    text = str(v)
    return text if _BARE.fullmatch(text) else json.dumps(text, ensure_ascii=False)


def line(kind: str, fields: Mapping[str, object]) -> str:
    return " ".join([f"MEMRAS_EVENT={value(kind)}",
                     *(f"{k}={value(v)}" for k, v in fields.items())])


def _location(event: MemoryErrorEvent) -> str | None:
    loc = event.location
    if loc.label:
        return loc.label
    layers = (loc.top_layer, loc.middle_layer, loc.lower_layer)
    if loc.mc is None:
        return None
    return f"mc{loc.mc}:" + ":".join("-" if n is None else str(n) for n in layers)


def record_line(record: Record, dimm: str | None = None) -> str:
    if isinstance(record, MemoryFailureEvent):
        return line("memory-failure", {"source": record.source.value, "pfn": f"{record.pfn:#x}",
                                       "page_type": record.page_type,
                                       "action": record.action_result})
    time = record.timestamp.isoformat() if record.timestamp else None
    return line("error", {
        "source": record.source.value, "type": record.error_type.value, "count": record.count,
        "dimm": dimm or _location(record), "location": _location(record),
        "address": None if record.address is None else f"{record.address:#x}",
        "driver": record.driver or None, "time": time, "message": record.message or None})


def change_line(change: HealthChange) -> str:
    kind = "verdict" if change.kind.value == "verdict-changed" else change.kind.value
    return line(kind, {"dimm": change.dimm_id, "verdict": change.verdict,
                       "severity": change.severity, "rules": ",".join(change.rule_ids) or None,
                       "message": change.message})


class EventLog:
    """Logs each stored record and each health change at INFO on ``memras.events``.

    ``resolver`` (the health engine's) names the DIMM an error is judged under; without
    it (``--no-health``) the line names the location the source reported."""

    def __init__(self, resolver: DimmResolver | None = None) -> None:
        self.resolver = resolver

    def records(self, records: Iterable[Record]) -> None:
        if not log.isEnabledFor(logging.INFO):
            return
        for record in records:
            dimm = None
            if self.resolver is not None and isinstance(record, MemoryErrorEvent):
                dimm = self.resolver(record)
            log.info("%s", record_line(record, dimm))

    def change(self, change: HealthChange) -> None:
        log.info("%s", change_line(change))


class _JournalFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return f"<{_PRIORITY.get(record.levelno, 6)}>{super().format(record)}"


def stderr_is_journal(env: Mapping[str, str] | None = None, stream: TextIO | None = None) -> bool:
    """Whether ``stream`` (stderr) is the journal stream systemd connected (JOURNAL_STREAM)."""
    env = os.environ if env is None else env
    dev, _, ino = env.get("JOURNAL_STREAM", "").partition(":")
    if not (dev.isdigit() and ino.isdigit()):
        return False
    try:
        st = os.fstat((stream or sys.stderr).fileno())
    except (OSError, ValueError):
        return False
    return (st.st_dev, st.st_ino) == (int(dev), int(ino))


@contextlib.contextmanager
def logging_to(stream: TextIO, *, journal: bool, events: bool) -> Iterator[None]:
    """memras's log records on ``stream`` (stderr) while the block runs: the event lines
    when ``events``, the watcher's own lines (reloads, failures) always, each with its
    priority prefix when ``journal``. Without either, Python's default stays (warnings
    and errors, plain)."""
    if not (journal or events):
        yield
        return
    handler = logging.StreamHandler(stream)
    handler.setFormatter(_JournalFormatter("%(message)s") if journal
                         else logging.Formatter("%(message)s"))
    root = logging.getLogger("memras")
    levels = root.level, log.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    log.setLevel(logging.INFO if events else logging.WARNING)
    try:
        yield
    finally:
        root.removeHandler(handler)
        root.setLevel(levels[0])
        log.setLevel(levels[1])
