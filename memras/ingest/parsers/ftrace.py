"""One line of tracefs ``trace``/``trace_pipe`` text → a record.

The ftrace prefix (kernel/trace/trace_output.c ``trace_print_context`` +
``trace_print_lat_fmt``) is ``<task>-<pid> [(tgid)] [cpu] <flags> <ts>: <event>: ``:
the task may be ``<...>`` or hold spaces and dashes (the pid is the *last* ``-N``
before the CPU column); flags are 4 chars before ~5.16 and 5 after, and are absent
with ``options/irq-info`` off; the tgid column appears with ``options/record-tgid``.

Hot path: the watcher feeds mc_event lines at ≥100k lines/s, so an mc_event line is
matched by ONE precompiled regex (prefix + body) after a substring check; every
other event takes the generic prefix regex and a dispatch on the event name.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from datetime import datetime, timedelta

from memras.ingest.parsers._common import NonMemoryMce
from memras.ingest.parsers.cxl import EVENTS as CXL_EVENTS
from memras.ingest.parsers.cxl import parse_cxl_media_record
from memras.ingest.parsers.trace_events import (
    _MATCH_GROUPS,
    MC_EVENT_BODY,
    mc_event_from_groups,
    parse_extlog_mem_event,
    parse_mc_event,
    parse_mce_record,
    parse_memory_failure_event,
)
from memras.records import CxlEvent, Record, Source

PREFIX = (
    r"^\s*(?P<task>.+?)-(?P<pid>\d+)\s+(?:\(\s*[\d-]+\)\s+)?\[(?P<cpu>\d+)\]\s+"
    r"(?:(?P<flags>[^\s\[]{4,5})\s+)?(?P<ts>\d+(?:\.\d+)?):\s+"
)
_LINE = re.compile(PREFIX + r"(?P<event>\w+):\s?(?P<body>.*)$")
_MC_EVENT_LINE = re.compile(PREFIX + r"mc_event: " + MC_EVENT_BODY)
# Match.groups() of _MC_EVENT_LINE: the prefix's five, then the body's in _MATCH_GROUPS
# order (one C call instead of a look-up per group name).
_TS_GROUP = _MC_EVENT_LINE.groupindex["ts"] - 1
_BODY_GROUPS = _MC_EVENT_LINE.groupindex[_MATCH_GROUPS[0]] - 1
assert _TS_GROUP == 4 and [_MC_EVENT_LINE.groupindex[n] - 1 for n in _MATCH_GROUPS] == list(
    range(_BODY_GROUPS, _BODY_GROUPS + len(_MATCH_GROUPS)))

# A CXL event other than a media error comes back as its CxlEvent (not a Record: the
# watcher and importer count it as not a memory error; memras.store.cxl stores it)
TraceResult = Record | NonMemoryMce | CxlEvent

_BODY_PARSERS: dict[str, Callable[..., TraceResult | None]] = {
    "mc_event": parse_mc_event,
    "mce_record": parse_mce_record,
    "memory_failure_event": parse_memory_failure_event,
    "extlog_mem_event": parse_extlog_mem_event,
}
for _name in CXL_EVENTS:
    _BODY_PARSERS[_name] = functools.partial(parse_cxl_media_record, _name)


# An event quoted without its ftrace columns (commit messages, perf/trace-cmd excerpts)
_BARE_EVENT = re.compile(r"^\s*(?P<event>" + "|".join(_BODY_PARSERS) + r"): (?P<body>.*)$")


def split_trace_line(line: str) -> tuple[str, float, str] | None:
    """``(event, uptime_s, body)`` of a trace line, None when it has no ftrace prefix."""
    m = _LINE.match(line)
    if m is None:
        return None
    return m["event"], float(m["ts"]), m["body"]


def parse_trace_line(line: str, *, boot_time: datetime | None = None) -> TraceResult | None:
    """The record in one trace line; NonMemoryMce for other machine checks; else None.

    With ``boot_time``, an mc_event gets its wall time (boot + uptime) as it is built:
    the watcher's hot path, which would otherwise copy every record to add it."""
    line = line.rstrip("\n")
    if "mc_event: " in line:
        m = _MC_EVENT_LINE.match(line)
        if m is not None:
            groups = m.groups()
            uptime_s = float(groups[4])
            when = None if boot_time is None else boot_time + timedelta(seconds=uptime_s)
            return mc_event_from_groups(groups[5:], source=Source.TRACE, uptime_s=uptime_s,
                                        raw=line, timestamp=when)
    parts: tuple[str, float | None, str] | None = split_trace_line(line)
    if parts is None:
        bare = _BARE_EVENT.match(line)
        if bare is None:
            return None
        parts = bare["event"], None, bare["body"]
    event, stamp, body = parts
    parser = _BODY_PARSERS.get(event)
    if parser is None:
        return None
    return parser(body, uptime_s=stamp, raw=line)
