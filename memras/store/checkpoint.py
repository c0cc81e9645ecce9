"""WAL checkpoints on a thread of their own, beside the event writer (SQLite only).

Why: in WAL mode every commit that finds more than ``wal_autocheckpoint`` pages in the
log (1000 by default) copies the log back into the database file, and syncs it, inside
that COMMIT. In a storm that was ~3 µs of every stored line — the largest single cost
of the commit, paid by the thread that is also parsing (bench/ingest_vs_rasdaemon_writer.py
``--floor``). Here the event writer's connections turn automatic checkpoints off and
this thread runs a PASSIVE checkpoint after each batch instead: SQLite runs it without
the GIL, so on a second core it overlaps the next batch's parsing.

PASSIVE never waits for or blocks a writer or reader; a checkpoint that cannot finish
(a reader holds an old snapshot) is simply retried after the next batch — exactly what
automatic checkpoints do. Other connections (CLI, TUI, other areas' sessions) keep
SQLite's automatic checkpoints. If this thread cannot run a checkpoint (an error),
the store goes back to automatic checkpoints, so the log never grows unbounded.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from pathlib import Path

log = logging.getLogger(__name__)

# How long the thread waits for a batch before checkpointing anyway (the writer may have
# stopped mid-storm: what is in the log still goes home).
IDLE_CHECKPOINT_S = 1.0


class WalCheckpointer:
    """A daemon thread running ``PRAGMA wal_checkpoint(PASSIVE)`` after each batch."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.checkpoints = 0
        self.failed: str | None = None  # why the thread stopped; the writer then reverts
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="memras-wal-checkpoint",
                                        daemon=True)
        self._thread.start()

    def batch_committed(self) -> None:
        """Called by the writer after each commit: there are new pages to copy home."""
        self._wake.set()

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        try:
            db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            self._give_up(exc)
            return
        try:
            while not self._stop.is_set():
                self._wake.wait(IDLE_CHECKPOINT_S)
                self._wake.clear()
                db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                self.checkpoints += 1
        except sqlite3.Error as exc:
            self._give_up(exc)
        finally:
            db.close()

    def _give_up(self, exc: sqlite3.Error) -> None:
        self.failed = f"{type(exc).__name__}: {exc}"
        log.warning("background WAL checkpoints stopped (%s); back to automatic ones",
                    self.failed)
