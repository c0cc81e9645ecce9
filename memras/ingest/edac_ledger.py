"""What the EDAC counter source decides: when a count no event reported is a gap, and
which counter resets memras made itself.

**Gaps, with a grace period.** The kernel counts an error in ``dimm_ce_count`` in the
same call that emits its trace event and log line (drivers/edac/edac_mc.c,
``edac_mc_handle_error``: ``trace_mc_event`` then ``edac_raw_mc_handle_error``), but
memras stores the event later: the kmsg parser holds a fault's lines until its group
closes, the writer batches for 200 ms, a busy writer makes the sources wait. So a
counter poll often sees a count whose event is still on its way, and an event is
often stored before the poll that sees its count. A :class:`Ledger` per DIMM and
error type keeps both, oldest first:

- ``counted``: counter increases no event has explained yet, each with the time the
  poll first read it and how many polls have read it since;
- ``events``: events no counter increase has claimed yet.

Each poll matches the two oldest first (:meth:`Ledger.settle`). A count still
unexplained after ``grace_s`` seconds *and* two polls is a gap (two polls so a grace
shorter than the poll interval still gives a late event one more look); an event still
unclaimed that long is dropped (the counter did not count it: an imported history, a
driver that counts elsewhere). Matching oldest first is what keeps a steady stream of
errors from looking like a gap: each poll's new counts wait for their own events,
instead of one running deficit that never reaches zero. Cost: a few list entries per
DIMM with errors in the last ``grace_s``; nothing for a quiet DIMM.

Why not "a deficit that lasts two polls" (the rule before): with a 5 s poll that is a
5-10 s grace, shorter than a kmsg group held behind a slow writer, and a stream that
never lets the deficit reach zero calls a gap at the second poll.

**memras's own resets.** ``mcN/reset_counters`` zeroes the controller's counters and
``seconds_since_reset``; the source reports a reset it cannot explain (reboot, driver
reload, another tool). The replacement workflow resets the counters of the slot's
controller after a swap; before it writes ``reset_counters`` it records the wall time
in the store under :data:`OWN_RESETS_CURSOR` (:func:`note_own_reset`). A reset the
source sees is memras's own when such a mark for that controller lies after the
source's previous reading (when the counters were not reset yet) and no later than
now: the reset happened between the two readings, and so did memras's. The mark is
written a moment before the write, not after, so a poll that reads the zeroed
counters cannot find no mark; a poll that falls between the mark and the write
(milliseconds) is covered by :data:`OWN_RESET_SLACK_S`. Limit: a second, foreign
reset of the same controller between the same two polls is not reported.
"""

from __future__ import annotations

import json
from collections import deque
from dataclasses import dataclass, field

MIN_GAP_GRACE_S = 0.0
DEFAULT_GAP_GRACE_S = 30.0  # six default polls; a held kmsg group closes within seconds
MAX_GAP_GRACE_S = 3600.0
POLLS_BEFORE_GAP = 2  # a count is a gap only after this many polls have read it

OWN_RESET_SLACK_S = 2.0  # a mark this long before the previous reading still counts
OWN_RESETS_CURSOR = "edac:own-resets"
"""Store cursor name of memras's own resets: JSON ``{"<mc index>": wall time (s)}``."""


@dataclass
class _Entry:
    at: float  # monotonic time first read (a count) or observed (an event)
    count: int
    polls: int = 0  # polls that have read it


@dataclass
class Ledger:
    """One DIMM's counts and events of one error type that are not yet matched."""

    counted: deque[_Entry] = field(default_factory=deque)
    events: deque[_Entry] = field(default_factory=deque)

    def count(self, at: float, increase: int) -> None:
        if increase > 0:
            self.counted.append(_Entry(at, increase))

    def event(self, at: float, count: int) -> None:
        if count > 0:
            self.events.append(_Entry(at, count))

    def settle(self) -> None:
        """Let the oldest events explain the oldest counts."""
        while self.counted and self.events:
            counted, event = self.counted[0], self.events[0]
            matched = min(counted.count, event.count)
            counted.count -= matched
            event.count -= matched
            if not counted.count:
                self.counted.popleft()
            if not event.count:
                self.events.popleft()

    def overdue(self, now: float, grace_s: float) -> int:
        """Counts past the grace period (returned and forgotten); events past it are
        dropped. Every entry left has been read by one more poll."""
        self.settle()
        due = 0
        while self.counted and _expired(self.counted[0], now, grace_s):
            due += self.counted.popleft().count
        while self.events and _expired(self.events[0], now, grace_s):
            self.events.popleft()
        for entry in (*self.counted, *self.events):
            entry.polls += 1
        return due

    @property
    def unexplained(self) -> int:
        return sum(e.count for e in self.counted)

    def __bool__(self) -> bool:
        return bool(self.counted or self.events)


def _expired(entry: _Entry, now: float, grace_s: float) -> bool:
    # polls counts the readings before this one; this poll is one more
    return entry.polls + 1 >= POLLS_BEFORE_GAP and now - entry.at >= grace_s


def own_resets(saved: str | None) -> dict[int, float]:
    """The marks :func:`note_own_reset` wrote: controller index -> wall time (s).
    Unreadable text counts as no marks: a reset is then reported, never hidden."""
    try:
        data = json.loads(saved) if saved else {}
    except ValueError:
        return {}
    if not isinstance(data, dict):
        return {}
    return {int(k): float(v) for k, v in data.items()
            if str(k).isdigit() and isinstance(v, int | float) and not isinstance(v, bool)}


def note_own_reset(saved: str | None, mc: int, at: float) -> str:
    """``saved`` with controller ``mc`` marked as reset by memras at wall time ``at``."""
    marks = own_resets(saved)
    marks[mc] = at
    return json.dumps({str(k): v for k, v in sorted(marks.items())})


def is_own_reset(marks: dict[int, float], mc: int, previous_read: float | None,
                 now: float) -> bool:
    """Whether memras marked a reset of ``mc`` between the source's previous reading
    (wall time; None: not known, so not provably ours) and now."""
    at = marks.get(mc)
    return (at is not None and previous_read is not None
            and previous_read - OWN_RESET_SLACK_S < at <= now)
