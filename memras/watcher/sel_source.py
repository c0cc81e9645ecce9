"""The BMC's SEL as a live source of ``memras watch`` (``[bmc]`` set, source ``bmc``).

Every ``[bmc] sel_interval`` (default 60 s) it runs ``ipmitool sel elist``
(:class:`memras.bmc.ipmi.Ipmitool`) and hands the memory records of lines it has not
handed before to the watcher (:mod:`memras.bmc.sel` decides what is one). A SEL is
small (a BMC keeps a few hundred to a few thousand records) and has no cursor a BMC
keeps for us; a line seen in this process is not sent twice, and after a restart the
whole SEL is read again: the store recognises each record it already has (same source
and raw line: a duplicate, not a second error), so nothing is counted twice.

A BMC that does not answer is a skipped poll with its reason (the watcher counts it),
never a dead watcher; the next poll tries again. Redfish BMCs: the SEL is read through
ipmitool only (a Redfish LogService reader is not written).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from memras.bmc.config import BmcConfig
from memras.bmc.ipmi import Ipmitool
from memras.bmc.sel import parse_sel_line, to_record
from memras.errors import MemrasError
from memras.ingest.sources import SourceBatch


class BmcSelSource:
    name = "bmc"

    def __init__(self, config: BmcConfig, *, read: Callable[[], list[str]] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self._read = read or Ipmitool(config).sel_lines
        self._clock = clock
        self._next = 0.0
        self._seen: set[str] = set()

    def start(self, cursor: str | None) -> None:
        self._next = 0.0  # read at once: errors from before this start are the point

    def poll(self, timeout_s: float) -> SourceBatch:
        batch = SourceBatch(self.name)
        now = self._clock()
        if now < self._next:
            return batch
        self._next = now + self.config.sel_interval_s
        try:
            lines = self._read()
        except MemrasError as exc:
            batch.skipped.append(f"SEL not read: {exc.msg}")
            return batch
        for line in lines:
            if not line.strip() or line in self._seen:
                continue
            self._seen.add(line)
            batch.read += 1
            entry = parse_sel_line(line)
            if entry is None and "|" not in line:  # ipmitool's chatter, not a record
                batch.ignored += 1
                continue
            if entry is None:
                batch.skipped.append(line)
                continue
            record = to_record(entry)
            if record is None:
                batch.ignored += 1
            else:
                batch.records.append(record)
        return batch

    def stop(self) -> None:
        pass


__all__ = ["BmcSelSource"]
