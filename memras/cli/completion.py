"""``memras completion bash|zsh|tcsh``: a shell completion script for every command.

Generated from the same argparse tree ``memras --help`` prints (shtab), so a new
command or option completes without anyone editing a script. Meant for config
management: ``memras completion bash > /etc/bash_completion.d/memras`` (zsh: a file
named ``_memras`` in a directory on ``$fpath``). The man page, contrib/man/memras.1, is
generated from the same tree by scripts/gen_manpage.py.
"""

from __future__ import annotations

import argparse

import shtab

from memras.cli import build_parser, command
from memras.cli.context import Context

# Named here, not shtab.SUPPORTED_SHELLS: the choices (and so the man page) must not
# change with the installed shtab (1.13 adds fish).
SHELLS = ("bash", "zsh", "tcsh")


def _args(p: argparse.ArgumentParser) -> None:
    p.add_argument("shell", choices=SHELLS, help="the shell to complete in")


@command("completion", "print a shell completion script for memras (bash, zsh or tcsh)")(_args)
def run(args: argparse.Namespace, ctx: Context) -> int:
    script = shtab.complete(build_parser(), shell=args.shell)
    if ctx.json:
        ctx.emit_json({"shell": args.shell, "script": script})
    else:
        ctx.out.write(script)
    return 0
