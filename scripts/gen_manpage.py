#!/usr/bin/env python3
"""Write contrib/man/memras.1 from the argparse tree, or ``--check`` that it is current.

The page is what ``memras --help`` and every ``memras COMMAND --help`` say, as roff
(argparse-manpage, in the test extra), so it cannot drift from the options: a command or
help text that changes makes tests/unit/deploy/test_manpage.py fail until this is rerun:

    .venv/bin/python scripts/gen_manpage.py          # rewrite contrib/man/memras.1
    .venv/bin/python scripts/gen_manpage.py --check  # exit 1 when it differs

Help text is wrapped at 80 columns whatever the terminal, and the page carries no date,
so the same tree always gives the same bytes.
"""

from __future__ import annotations

import argparse
import difflib
import os
import sys
from pathlib import Path

PAGE = Path(__file__).resolve().parent.parent / "contrib" / "man" / "memras.1"
SEE_ALSO = """\
.SH FILES
.TP
.I /etc/memras/memras.toml
configuration (thresholds, alert hooks, page action, capacity); the watcher re-reads it on SIGHUP
.TP
.I /var/lib/memras/memras.db
the error, verdict, alert and audit database (\\fB$MEMRAS_DB\\fR or \\fB\\-\\-db\\fR elsewhere)
.SH SEE ALSO
.BR systemctl (1),
.BR journalctl (1),
.BR ras\\-mc\\-ctl (8),
.BR rasdaemon (8).
The user guide, docs/user-guide.md, has a chapter on deploying memras.
"""


def render() -> str:
    os.environ["COLUMNS"] = "80"  # argparse wraps help at the terminal's width
    from argparse_manpage.manpage import Manpage

    from memras import __version__
    from memras.cli import build_parser

    page = Manpage(build_parser(), _data={
        "project_name": "memras", "version": __version__, "date": " ",
        "manual_title": "memras manual", "manual_section": 1,
        "description": "watch memory errors, judge DIMMs, replace failing memory live"})
    return str(page).rstrip("\n") + "\n" + SEE_ALSO


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--check", action="store_true", help="compare, do not write")
    args = p.parse_args()
    text = render()
    if not args.check:
        PAGE.parent.mkdir(parents=True, exist_ok=True)
        PAGE.write_text(text)
        return 0
    current = PAGE.read_text() if PAGE.is_file() else ""
    if current == text:
        return 0
    sys.stdout.writelines(difflib.unified_diff(current.splitlines(True), text.splitlines(True),
                                               str(PAGE), "generated"))
    print(f"{PAGE} is stale: run scripts/gen_manpage.py", file=sys.stderr)
    return 1


if __name__ == "__main__":
    raise SystemExit(main())
