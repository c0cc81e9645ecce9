"""Several ``memras`` command lines in one Python process: ``python -m memras.cli.batch``.

Under TCG a guest ``memras`` spends 20-40 s starting Python and importing SQLAlchemy and
memras before it reads anything. A scenario that checks a replacement with ``audit list``,
``audit verify`` and ``alerts list`` paid that three times. This runs each command line
through :func:`memras.cli.main`, the function the ``memras`` console script calls, one
after another, with each one's file descriptors 1 and 2 sent to files of its own, so
every command prints and exits exactly as it would alone; only the start-up is shared.

    python -m memras.cli.batch SPEC.json OUTDIR

SPEC is a JSON list of argument lists. For command ``i`` OUTDIR gets ``i.out``, ``i.err``
and ``i.status``. A command that raises stops nothing after it: its traceback goes to
``i.err`` and its status is the CLI's "internal error" (``EXIT_INTERNAL``).
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from pathlib import Path

from memras.cli import main as memras_main
from memras.errors import EXIT_INTERNAL


def run_one(argv: list[str], out: Path, err: Path) -> int:
    """``memras ARGV`` with fd 1 to ``out`` and fd 2 to ``err``; its exit status."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with out.open("wb") as out_fh, err.open("wb") as err_fh:
        os.dup2(out_fh.fileno(), 1)
        os.dup2(err_fh.fileno(), 2)
        try:
            status = memras_main(argv)
        except SystemExit as exc:  # argparse and --help exit through SystemExit
            status = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        except BaseException:  # noqa: BLE001 - the next command still runs
            traceback.print_exc()
            status = EXIT_INTERNAL
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])
    return int(status)


def main(args: list[str] | None = None) -> int:
    spec, outdir = (args if args is not None else sys.argv[1:])[:2]
    commands = json.loads(Path(spec).read_text())
    directory = Path(outdir)
    directory.mkdir(parents=True, exist_ok=True)
    for i, argv in enumerate(commands):
        status = run_one([str(a) for a in argv], directory / f"{i}.out", directory / f"{i}.err")
        (directory / f"{i}.status").write_text(f"{status}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
