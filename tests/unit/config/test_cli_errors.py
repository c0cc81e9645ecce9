"""Bad arguments: exit 2, one line, the nearest command or option suggested (issue 16)."""

from __future__ import annotations

from pathlib import Path

import pytest

from memras.cli import COMMANDS, main


def _error(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    with pytest.raises(SystemExit) as info:
        main(argv)
    err = capsys.readouterr().err
    assert info.value.code == 2, err
    assert len(err.splitlines()) == 1 and err.startswith("memras: "), err
    return err


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_command_refuses_a_bad_option_in_one_line(
        capsys: pytest.CaptureFixture[str], command: str) -> None:
    err = _error(capsys, [command, "--no-such-option"])
    assert "--no-such-option" in err or "required" in err
    assert f"`memras {command}" in err or "`memras --help`" in err


@pytest.mark.parametrize(("argv", "expected"), [
    (["stauts"], "memras: unknown command 'stauts'; did you mean status?"),
    (["dimms", "--jsn"], "memras: unrecognized arguments: --jsn; did you mean --json?"),
    (["config", "chek"], "memras: unknown action 'chek'; did you mean check?"),
    (["replace", "--resme"], "did you mean --resume?"),
])
def test_the_nearest_is_suggested(capsys: pytest.CaptureFixture[str], argv: list[str],
                                  expected: str) -> None:
    assert expected in _error(capsys, argv)


def test_a_bad_root_and_an_unknown_backend_exit_2(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["blocks", "--root", str(tmp_path / "nope")]) == 2
    assert "--root" in capsys.readouterr().err
    code = main(["replace", "X", "--backend", "acpy", "--dry-run", "--root", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and "unknown backend 'acpy'; did you mean 'acpi'?" in err
