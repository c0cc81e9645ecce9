"""The man page and shell completions come from the argparse tree and stay current.

contrib/man/memras.1 is committed (packagers and config management install it as is);
this fails when a command or help text changed and the page was not regenerated with
scripts/gen_manpage.py. Completion is checked the way bash uses it: the script is
sourced and its function asked to complete partial command lines.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from memras.cli import COMMANDS, main

ROOT = Path(__file__).resolve().parents[3]
PAGE = ROOT / "contrib" / "man" / "memras.1"


def test_the_committed_man_page_is_the_generated_one(tmp_path: Path) -> None:
    pytest.importorskip("argparse_manpage", reason="argparse-manpage is in the test extra")
    # another terminal width, home and database must not change a byte
    env = {**os.environ, "COLUMNS": "211", "HOME": str(tmp_path), "MEMRAS_DB": "/x.db"}
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "gen_manpage.py"), "--check"],
                          capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    assert done.returncode == 0, (done.stdout[-3000:] + done.stderr)


def test_the_man_page_names_every_command() -> None:
    text = PAGE.read_text()
    assert text.startswith('.TH MEMRAS "1"')
    for name in COMMANDS:
        assert f"\\fBmemras\\fR \\fI\\,{name.replace('-', chr(92) + '-')}\\/\\fR" in text, name
    assert "\\-\\-log\\-events" in text  # an option of a subcommand, not only the commands


def test_the_man_page_renders(tmp_path: Path) -> None:
    man = shutil.which("man")
    if man is None:
        pytest.skip("man is not installed")
    done = subprocess.run([man, "-l", str(PAGE)], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "MANWIDTH": "80", "MANPAGER": "cat"})
    assert done.returncode == 0, done.stderr
    assert "memras watch" in done.stdout and "SEE ALSO" in done.stdout
    assert "warning" not in done.stderr.lower(), done.stderr


def _complete(script: Path, *words: str) -> list[str]:
    """What bash offers for the last word of ``memras WORDS…``."""
    argv = ["memras", *words]
    cmd = (f"source {script}; COMP_WORDS=({' '.join(repr(w) for w in argv)}); "
           f"COMP_CWORD={len(argv) - 1}; _shtab_memras; printf '%s\\n' \"${{COMPREPLY[@]}}\"")
    done = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


@pytest.fixture
def bash_script(tmp_path: Path, capsys) -> Path:
    if shutil.which("bash") is None:
        pytest.skip("bash is not installed")
    assert main(["completion", "bash"]) == 0
    script = tmp_path / "memras.bash"
    script.write_text(capsys.readouterr().out)
    return script


@pytest.mark.parametrize(("words", "expected"), [
    (("wa",), ["watch"]),
    (("ver",), ["verdicts"]),
    (("hot",), ["hotplug-test"]),
    (("watch", "--log"), ["--log-events"]),
    (("labels", ""), ["register", "show"]),
    (("completion", ""), ["bash", "tcsh", "zsh"]),
])
def test_bash_completes_commands_options_and_choices(bash_script: Path, words: tuple[str, ...],
                                                     expected: list[str]) -> None:
    assert sorted(_complete(bash_script, *words)) == expected


def test_zsh_and_json(capsys) -> None:
    assert main(["completion", "zsh"]) == 0
    assert capsys.readouterr().out.startswith("#compdef memras")
    assert main(["completion", "tcsh", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["shell"] == "tcsh" and "complete memras" in out["script"]


def test_an_unknown_shell_is_a_usage_error(capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["completion", "fish"])
    assert exc.value.code == 2
    assert "unknown shell 'fish' (choose from" in capsys.readouterr().err
