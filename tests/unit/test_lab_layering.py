"""The lab sits above production code, never below it: no module outside memras.lab (and
``memras lab``'s own CLI) imports it, and the lab reaches no plugin. Read from the source
by the layer contract's reader (tests/unit/test_layers.py), so a lazy import inside a
function counts too."""

from __future__ import annotations

from pathlib import Path

from tests.unit.test_layers import FOLDERS, ROOT, imports_of, source_modules

MODULES = source_modules(ROOT, FOLDERS)
LAB_CLI = "memras.cli.lab"


def _is_lab(name: str) -> bool:
    return name == "memras.lab" or name.startswith("memras.lab.")


def _imported(module: str) -> set[str]:
    return {target for target, _line in imports_of(module, MODULES[module])}


def test_imported_modules_sees_lazy_imports(tmp_path: Path) -> None:
    source = tmp_path / "m.py"
    source.write_text("def f():\n    from memras.lab.guest import Lab\n")
    assert any(_is_lab(n) for n, _line in imports_of("memras.m", source))


def test_no_production_module_imports_the_lab() -> None:
    production = [m for m in MODULES if not _is_lab(m) and m != LAB_CLI]
    assert len(production) > 50
    offenders = {m: sorted(filter(_is_lab, _imported(m))) for m in production}
    assert {k: v for k, v in offenders.items() if v} == {}


def test_the_lab_imports_no_plugin() -> None:
    offenders = {m: sorted(n for n in _imported(m) if n.startswith("memras.plugins"))
                 for m in MODULES if _is_lab(m)}
    assert {k: v for k, v in offenders.items() if v} == {}
