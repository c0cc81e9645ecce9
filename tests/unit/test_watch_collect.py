"""The writer stores a lone batch as soon as the sources go quiet, and a stream together.

A fixed 200 ms wait after every first batch was most of a single CE's kernel-to-stored
latency in the lab (docs/performance.md, ingest-latency-lab). While batches are sparse
the writer now waits at most ``QUIET_S`` for each further batch; a stream
(``SPARSE_BATCHES`` in a second) keeps the whole flush window. No clock is asserted:
the tests record the timeouts the writer asks its queue for.
"""

from __future__ import annotations

import queue
from typing import Any

from memras.ingest.sources import SourceBatch
from memras.watcher import watch


class RecordingQueue(queue.Queue):
    """A queue that remembers the timeout of every ``get`` and, empty, does not wait it
    out (the test would only sleep)."""

    def __init__(self) -> None:
        super().__init__()
        self.timeouts: list[float | None] = []

    def get(self, block: bool = True, timeout: float | None = None) -> Any:
        self.timeouts.append(timeout)
        return super().get(block=False)


def _watcher(flush_interval_s: float) -> tuple[watch.Watcher, RecordingQueue]:
    w = watch.Watcher(store=None, sources=[], flush_interval_s=flush_interval_s)  # type: ignore[arg-type]
    q = RecordingQueue()
    w._queue = q
    return w, q


def _batch(n: int) -> SourceBatch:
    return SourceBatch(source="trace", records=list(range(n)), cursor=str(n))


def test_a_lone_batch_waits_quiet_s_not_the_flush_interval() -> None:
    w, q = _watcher(flush_interval_s=60.0)
    q.put(_batch(1))
    batches, finished = w._collect()
    assert [len(b.records) for b in batches] == [1] and finished == 0
    # the first get waits for work; the one after it only for a quiet gap
    assert q.timeouts[0] == 1.0
    assert q.timeouts[1:] and all(t is not None and t <= watch.QUIET_S for t in q.timeouts[1:])


def test_batches_already_queued_are_collected_together() -> None:
    w, q = _watcher(flush_interval_s=60.0)
    for n in (3, 4, 5):
        q.put(_batch(n))
    q.put(None)  # a source finished: counted, not stored
    batches, finished = w._collect()
    assert [len(b.records) for b in batches] == [3, 4, 5] and finished == 1


def test_collection_still_stops_at_collect_records() -> None:
    w, q = _watcher(flush_interval_s=60.0)
    for _ in range(3):
        q.put(_batch(watch.COLLECT_RECORDS // 2))
    batches, _ = w._collect()
    assert len(batches) == 2 and q.qsize() == 1


def test_a_zero_flush_interval_takes_only_the_first_batch() -> None:
    w, q = _watcher(flush_interval_s=0.0)
    q.put(_batch(1))
    q.put(_batch(2))
    batches, _ = w._collect()
    assert [len(b.records) for b in batches] == [1] and q.qsize() == 1


def test_a_stream_keeps_the_whole_flush_window() -> None:
    w, q = _watcher(flush_interval_s=60.0)
    for _ in range(watch.SPARSE_BATCHES):  # taken just now: a stream
        q.put(_batch(1))
        w._collect()
    q.timeouts.clear()
    q.put(_batch(1))
    q.put(_batch(2))
    batches, _ = w._collect()
    assert [len(b.records) for b in batches] == [1, 2]
    # the queue emptied: the writer waits for the rest of the 60 s window, not 20 ms
    assert q.timeouts[-1] is not None and q.timeouts[-1] > 1.0


def test_the_window_shrinks_again_once_the_stream_is_over() -> None:
    w, q = _watcher(flush_interval_s=60.0)
    w._taken.extend([0.0] * watch.SPARSE_BATCHES)  # a stream, long ago (monotonic 0)
    q.put(_batch(1))
    w._collect()
    assert all(t is not None and t <= watch.QUIET_S for t in q.timeouts[1:])
