"""contrib/memras.toml.example documents every key of the schema and nothing else."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from memras.cli import main
from memras.config import SCHEMA, Key, Table

EXAMPLE = Path(__file__).resolve().parents[3] / "contrib" / "memras.toml.example"


def _schema_keys(table: Table, path: tuple[str, ...] = ()) -> set[str]:
    out: set[str] = set()
    for name, spec in table.keys.items():
        if isinstance(spec, Key):
            out.add(".".join((*path, name)))
        else:
            out |= _schema_keys(spec, (*path, name))
    return out


def _example_keys(text: str) -> set[str]:
    """Every key set or shown commented out (``# key = …``), with its table."""
    keys, table = set(), ""
    for line in text.splitlines():
        header = re.match(r"^\[([^\]]+)\]", line)
        if header:
            table = header[1].strip()
            continue
        key = re.match(r'^(?:# )?"?([A-Za-z0-9_-]+)"? = ', line)
        if key:
            keys.add(f"{table}.{key[1]}" if table else key[1])
    return keys


def test_config_check_passes_on_the_example(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "check", "--config", str(EXAMPLE)]) == 0
    assert capsys.readouterr().out.strip().endswith(": ok")


def test_every_schema_key_is_in_the_example_and_nothing_else() -> None:
    text = EXAMPLE.read_text()
    documented, schema = _example_keys(text), _schema_keys(SCHEMA)
    assert schema - documented == set(), "keys of the schema missing from the example"
    assert documented - schema == set(), "keys in the example the schema does not know"
    assert tomllib.loads(text)  # and it is TOML as written


def test_the_user_guide_points_at_the_example() -> None:
    guide = (EXAMPLE.parents[1] / "docs" / "user-guide.md").read_text()
    assert "contrib/memras.toml.example" in guide
