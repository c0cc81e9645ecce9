"""The lab sits above production code, never below it: no module outside memras.lab (and
``memras lab``'s own CLI) imports it, and the lab reaches no plugin. Read from the source
with ast, so a lazy import inside a function counts too."""

from __future__ import annotations

import ast
from pathlib import Path

import memras

ROOT = Path(memras.__file__).parent
PLUGINS = ROOT.parent / "plugins"
LAB_CLI = ROOT / "cli" / "lab.py"


def imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def _is_lab(name: str) -> bool:
    return name == "memras.lab" or name.startswith("memras.lab.")


def test_imported_modules_sees_lazy_imports(tmp_path: Path) -> None:
    source = tmp_path / "m.py"
    source.write_text("def f():\n    from memras.lab.guest import Lab\n")
    assert any(_is_lab(n) for n in imported_modules(source))


def test_no_production_module_imports_the_lab() -> None:
    lab = ROOT / "lab"
    production = [p for p in [*ROOT.rglob("*.py"), *PLUGINS.rglob("*.py")]
                  if lab not in p.parents and p != LAB_CLI]
    assert len(production) > 50
    offenders = {str(p.relative_to(ROOT.parent)): sorted(filter(_is_lab, imported_modules(p)))
                 for p in production}
    assert {k: v for k, v in offenders.items() if v} == {}


def test_the_lab_imports_no_plugin() -> None:
    offenders = {str(p.relative_to(ROOT.parent)): sorted(
                     n for n in imported_modules(p) if n.startswith("memras.plugins"))
                 for p in (ROOT / "lab").rglob("*.py")}
    assert {k: v for k, v in offenders.items() if v} == {}
