"""The watcher's writer holds a bounded number of records however fast a source reads.

A storm used to let the writer collect for its whole flush window while the source
refilled the bounded queue, so ~10-20k parsed records sat in memory at once
(docs/performance.md, watcher-rss). These tests pin the bound and that nothing is lost
or doubled by it.
"""

from __future__ import annotations

import threading
import time

from memras.ingest.sources import SourceBatch
from memras.store.results import AddResult
from memras.watcher import watch

BATCH = 100
BATCHES = 60


class FastSource:
    """Returns BATCHES batches of BATCH records as fast as it is polled, then nothing."""

    name = "trace"

    def __init__(self) -> None:
        self.next = 0

    def start(self, cursor: str | None) -> None:
        pass

    def poll(self, timeout_s: float) -> SourceBatch:
        if self.next >= BATCHES * BATCH:
            return SourceBatch(source=self.name)
        records = list(range(self.next, self.next + BATCH))
        self.next += BATCH
        return SourceBatch(source=self.name, records=records, cursor=str(self.next))

    def stop(self) -> None:
        pass


class SlowStore:
    """Records what it is asked to store; slow enough that the source runs ahead."""

    def __init__(self) -> None:
        self.stored: list[int] = []
        self.cursors: list[str | None] = []

    def get_cursor(self, name: str) -> str | None:
        return None

    def check_sound(self) -> None:  # the watcher's start-up integrity check: nothing to check
        pass

    def add_events(self, records, cursor=None):
        time.sleep(0.01)
        self.stored.extend(records)
        self.cursors.append(cursor[1] if cursor else None)
        return AddResult(inserted=len(records), new_events=list(records))


def test_writer_holds_at_most_collect_records_plus_one_batch(monkeypatch) -> None:
    store = SlowStore()
    watcher = watch.Watcher(store, [FastSource()])
    held: list[int] = []
    collect = watcher._collect

    def counting_collect():
        batches, finished = collect()
        held.append(sum(len(b.records) for b in batches))
        return batches, finished

    monkeypatch.setattr(watcher, "_collect", counting_collect)
    stats = watcher.run(threading.Event(), once=True)
    assert max(held) <= watch.COLLECT_RECORDS + BATCH - 1 + BATCH  # bound + the batch crossing it
    assert max(held) < BATCHES * BATCH // 4  # without the bound it took most of the stream
    assert store.stored == list(range(BATCHES * BATCH))  # every record once, in order
    assert store.cursors[-1] == str(BATCHES * BATCH)
    assert stats.sources["trace"].inserted == BATCHES * BATCH
