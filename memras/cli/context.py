"""What every command receives: the host, the database URL, output helpers."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from memras.errors import MemrasError, UsageError
from memras.jsonenc import json_default
from memras.text import escape, redact

if TYPE_CHECKING:
    from memras.host import Host
    from memras.store import Store

DEFAULT_DB_PATH = "/var/lib/memras/memras.db"


def default_db_url() -> str:
    return os.environ.get("MEMRAS_DB") or DEFAULT_DB_PATH


@dataclass
class Context:
    root: Path
    db: str
    json: bool
    config: str | None
    wide: bool = False  # --wide: every table column at full width
    out: TextIO = field(default_factory=lambda: sys.stdout)
    err: TextIO = field(default_factory=lambda: sys.stderr)

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Context:
        return cls(
            root=Path(getattr(args, "root", "/") or "/"),
            db=getattr(args, "db", None) or default_db_url(),
            json=bool(getattr(args, "json", False)),
            config=getattr(args, "config", None),
            wide=bool(getattr(args, "wide", False)),
        )

    # memras.host is imported on first use, not at the top: every command loads this
    # module, and the ones that read no host (summary, errors, import, config) would
    # pay ~35 ms of start-up for it.
    @cached_property
    def host(self) -> Host:
        return self._host(allow_real_writes=False)

    def writable_host(self) -> Host:
        """A Host allowed to change the real machine (only for commands meant to)."""
        return self._host(allow_real_writes=True)

    def _host(self, *, allow_real_writes: bool) -> Host:
        from memras.host import Host  # lazy: see host above

        self.load_simulator_if_simulated()
        return Host(self.root, allow_real_writes=allow_real_writes)

    def load_simulator_if_simulated(self) -> None:
        """A simulated server's writes go to the simulated kernel, which registers itself
        with the host layer when imported (the host layer never imports the simulator)."""
        from memras.host import SIM_MARKER  # lazy: see host above

        if (self.root / SIM_MARKER).is_dir():
            import memras.sim  # noqa: F401  (lazy: only simulated roots need it)

    def store(self, *, write: bool = False) -> Store:
        """The database. Read-only unless the command changes it (``write=True``: watch,
        import and the changing commands), so reading needs only read access to the file
        and never creates or migrates anything (Store.open_readonly); a writer creates
        and migrates the database."""
        from memras.store import Store  # lazy: SQLAlchemy costs start-up (see host)

        return Store.open(self.db) if write else Store.open_readonly(self.db)

    def print(self, text: str = "") -> None:
        print(text, file=self.out)

    def emit_json(self, data: Any) -> None:
        json.dump(data, self.out, indent=2, sort_keys=False, default=json_default)
        self.out.write("\n")

    @property
    def width(self) -> int:
        """Columns human output fits in: $COLUMNS, the terminal's, else 80."""
        from memras.cli.render import output_width  # lazy: Rich only when printing text

        return output_width(self.out)

    def wrapped(self, text: str, *, hang: int = 2) -> None:
        """``text`` (already escaped) wrapped at ``self.width``; continuation lines
        indented ``hang`` columns (a long path or message stays readable at 80)."""
        import textwrap

        indent = len(text) - len(text.lstrip(" "))
        for line in textwrap.wrap(text, width=self.width, subsequent_indent=" " * (indent + hang),
                                  break_on_hyphens=False, drop_whitespace=True) or [""]:
            self.print(line)

    def table(self, headers: Sequence[str], rows: Sequence[Sequence[Any]],
              *, right: Sequence[str] = (), optional: Sequence[str] | None = None,
              flex: str | None = None, wrap: str | None = None,
              show_header: bool = True) -> None:
        """An aligned table that fits ``self.width`` (memras.cli.render.render_table):
        ``flex`` (default: the last column) is ellipsized first, then the ``optional``
        columns are dropped, least important first (default: from the last one back);
        ``--wide`` shows every column in full; ``wrap`` names a column wrapped under
        itself instead (nothing dropped or cut). Cell text is escaped (it may come from
        firmware); plain output has no colour or box characters."""
        from memras.cli.render import render_table  # lazy: see width

        try:
            styled = self.out.isatty()
        except (AttributeError, ValueError):
            styled = False
        for line in render_table(headers, rows, width=self.width, wide=self.wide,
                                 right=right, optional=optional, flex=flex, wrap=wrap,
                                 show_header=show_header, styled=styled):
            self.print(line)

    def confirm(self, what: str, *, yes: bool = False) -> None:
        """Ask before a destructive step; ``--yes`` skips it, no terminal refuses it.

        Raises UsageError when not confirmed, so the caller changes nothing.
        """
        if yes:
            return
        if not sys.stdin.isatty():
            raise UsageError(f"refusing to {what} without confirmation: no terminal",
                             hint="run it on a terminal, or pass --yes")
        self.print(f"This will {what}.")
        if input("Type yes to go on: ").strip().lower() != "yes":
            raise UsageError("not confirmed; nothing was changed")

    def error(self, exc: MemrasError) -> None:
        # a --db URL's password or a hook's token never reaches the terminal or a log
        msg, hint = redact(exc.msg), redact(exc.hint) if exc.hint else exc.hint
        if self.json:
            json.dump({"error": msg, "hint": hint, "type": type(exc).__name__}, self.err)
            self.err.write("\n")
        else:
            line = f"memras: {escape(msg)}"
            if hint:
                line += f" ({escape(hint)})"  # hints may quote firmware labels
            print(line, file=self.err)

