"""The lazy command table in memras.cli names exactly what the modules register."""

from __future__ import annotations

import subprocess
import sys

import memras.cli as cli


def test_table_matches_registrations():
    cli._load_commands()
    registered = {name: fn.__module__ for name, (_, _, fn) in cli._REGISTRY.items()}
    assert registered == {n: m for n, m in cli.COMMANDS.items() if n in registered}
    missing = sorted(set(cli.COMMANDS) - set(registered))
    assert missing == [], f"COMMANDS lists commands no module registers: {missing}"


def test_command_name_skips_global_options():
    cases = [
        (["blocks"], "blocks"),
        (["--root", "/tmp/x", "--json", "blocks", "--all"], "blocks"),
        (["--db", "a.db", "summary"], "summary"),
        (["--json"], None),
        ([], None),
    ]
    for argv, expected in cases:
        assert cli.command_name(argv) == expected, argv


def test_running_blocks_imports_only_its_module():
    code = ("import sys, memras.cli as c\n"
            "c.build_parser(['blocks'])\n"
            "print(sorted(m for m in sys.modules if m.startswith('memras.cli.')))\n"
            "print('sqlalchemy' in sys.modules, 'textual' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    modules, heavy = out.stdout.splitlines()
    assert modules == "['memras.cli.blocks', 'memras.cli.context']"
    assert heavy == "False False"
