"""One progress display for the CLI's long commands, and Ctrl-C as a request to stop.

``import``, ``capacity``, ``replace``, ``hotplug-test`` and ``lab up`` report progress
through :class:`ProgressDisplay`. How it shows is decided once, from where the output
goes, never by the command:

- stderr is a terminal, no ``--json``: a Rich bar on stderr with a spinner and the
  latest message (the bar pulses while the total is unknown), erased when it ends;
- stderr is not a terminal (a pipe, a log file, cron): one plain line on stderr per
  message (``lab: booting the guest``) or block (``[3/8] 384M capacity offline:
  memory35``); bare counts (bytes read so far) print nothing there, as a log of
  numbers helps no reader;
- ``--json``: nothing; stdout holds the JSON and stderr stays for errors.

Progress never goes to stdout, so ``memras … > file`` captures only the result.

Cancelling: given a ``cancel`` event, ``with display:`` turns Ctrl-C into
``cancel.set()`` for the operations that poll it between units of work (a block, a
cycle): the kernel write in flight finishes instead of being torn, and the command
ends through its normal path (rollback, report, exit status). Commands that cannot
stop half-way pass no event; Ctrl-C then interrupts them as anywhere else (exit 130).
"""

from __future__ import annotations

import signal
import threading
from types import FrameType, TracebackType
from typing import TYPE_CHECKING, Any, Literal

from memras.cli.context import Context
from memras.text import format_bytes

if TYPE_CHECKING:
    from rich.progress import Progress as RichProgress
    from rich.progress import TaskID

    from memras.workflow.offline import Progress as BlockProgress

Mode = Literal["rich", "plain", "off"]


def display_mode(ctx: Context) -> Mode:
    """rich on a terminal, plain lines on a pipe, nothing under --json."""
    if ctx.json:
        return "off"
    return "rich" if ctx.err.isatty() else "plain"


class ProgressDisplay:
    """Progress of one command; see the module docstring for how it shows.

    ``name`` prefixes the plain lines; ``total`` and ``in_bytes`` shape the bar of
    :meth:`update`. The bar starts on the first report and :meth:`close` erases it,
    so a command can print a result line between two phases.
    """

    def __init__(self, ctx: Context, name: str, *, total: int | None = None,
                 in_bytes: bool = False, cancel: threading.Event | None = None) -> None:
        self.ctx, self.name, self.total, self.in_bytes = ctx, name, total, in_bytes
        self.cancel = cancel
        self.mode: Mode = display_mode(ctx)
        self._bar: RichProgress | None = None
        self._task: TaskID | None = None
        self._previous_handler: Any = None  # what signal.signal returned: handler or int

    # --- what operations call ------------------------------------------------------------
    def message(self, text: str) -> None:
        """A stage of the work (``booting the guest``): the spinner's text, or a line."""
        if self.mode == "rich":
            self._live(text)
        elif self.mode == "plain":
            self._line(f"{self.name}: {text}")

    def update(self, done: int, total: int | None = None) -> None:
        """A count so far (bytes or rows): the bar only; plain and --json print nothing."""
        if self.mode == "rich":
            self._live(None, done=done, total=self.total if total is None else total)

    def blocks(self, p: BlockProgress) -> None:
        """A memory-block step's progress (offline, online: capacity and replace)."""
        if self.mode == "rich":
            self._live(f"{p.step} {p.done_blocks}/{p.total_blocks} {p.message}",
                       done=p.done_bytes, total=p.total_bytes)
        elif self.mode == "plain":
            eta = f", ~{p.eta_s:.0f}s left" if p.eta_s is not None else ""
            # No name prefix: the step names the work ("capacity offline", "offline").
            self._line(f"[{p.done_blocks}/{p.total_blocks}] "
                       f"{format_bytes(p.done_bytes)} {p.step}: {p.message}{eta}")

    def say(self, text: str) -> None:
        """A line the engineer should keep (not progress): printed in both text modes."""
        if self.mode == "off":
            return
        if self._bar is not None:
            self._bar.console.print(text, markup=False, highlight=False)
        else:
            self._line(text)

    # --- lifetime -------------------------------------------------------------------------
    def close(self) -> None:
        """Erase the bar; the next report starts a new one."""
        if self._bar is not None:
            self._bar.stop()
            self._bar, self._task = None, None

    def __enter__(self) -> ProgressDisplay:
        # Signals can only be handled in the main thread; elsewhere Ctrl-C is not ours.
        if self.cancel is not None and threading.current_thread() is threading.main_thread():
            self._previous_handler = signal.signal(signal.SIGINT, self._on_interrupt)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._previous_handler is not None:
            signal.signal(signal.SIGINT, self._previous_handler)
            self._previous_handler = None
        self.close()

    def _on_interrupt(self, _signum: int, _frame: FrameType | None) -> None:
        assert self.cancel is not None
        if not self.cancel.is_set():
            self.say(f"memras {self.name}: stopping after the current step…")
        self.cancel.set()

    # --- rendering --------------------------------------------------------------------------
    def _line(self, text: str) -> None:
        print(text, file=self.ctx.err, flush=True)

    def _live(self, text: str | None, *, done: int | None = None,
              total: int | None = None) -> None:
        if self._bar is None or self._task is None:
            self._bar, self._task = self._start(text or self.name, total)
        fields: dict[str, Any] = {}
        if total is not None:
            fields["total"] = total
        if text is not None:
            fields["description"] = text
        if done is not None:
            fields["completed"] = done
        self._bar.update(self._task, **fields)

    def _start(self, text: str, total: int | None) -> tuple[RichProgress, TaskID]:
        # Rich is imported only when a terminal will show it: a pipe or --json run
        # does not pay for it.
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            MofNCompleteColumn,
            Progress,
            SpinnerColumn,
            TextColumn,
            TimeRemainingColumn,
        )

        count = DownloadColumn(binary_units=True) if self.in_bytes else MofNCompleteColumn()
        bar = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), count,
                       TimeRemainingColumn(), console=Console(file=self.ctx.err),
                       transient=True)
        bar.start()
        return bar, bar.add_task(text, total=total)

