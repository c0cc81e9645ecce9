"""The layer contract: imports flow downward only (docs/architecture.md, "Layers").

Every ``import``/``from … import`` of a memras module in memras/, tui/ and plugins/ is
read from the source (inside functions and ``TYPE_CHECKING`` blocks too: a lazy import
is still a dependency), and each edge must go from a higher layer to a lower one, or
stay inside one package. Layers that share a rank are independent of each other.
A new upward import fails here with the edge and the line that made it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# Installed names of the three source folders (pyproject's package-dir).
FOLDERS = {"memras": "memras", "tui": "memras.tui", "plugins": "memras.plugins"}

# Lowest first. A tuple is one rank of independent layers. Each layer is a module
# prefix; the longest matching prefix decides (memras.plugins.backends.simulated
# serves the simulator, the other backends serve the workflow).
LAYERS: list[tuple[str, ...]] = [
    ("memras.errors",),
    ("memras.records", "memras.text", "memras.jsonenc", "memras.config"),
    ("memras.host", "memras.qemu", "memras.bmc"),  # bmc: ipmitool/Redfish, the SEL parser
    ("memras.topology",),
    ("memras.ingest",),
    ("memras.store",),
    ("memras.health",),
    ("memras.alerts",),
    ("memras.plugins.alerts",),  # plugins sit right above the area they serve
    ("memras.audit",),
    ("memras.workflow",),
    ("memras.plugins.backends",),
    ("memras.capacity", "memras.hotplug_test"),
    ("memras.watcher",),
    ("memras.evaluate",),  # replays histories the watcher's importers read
    ("memras.fleet",),  # ships the areas' tables to a central store; runs evaluate on it
    ("memras.views",),
    # Above production code: nothing below imports the simulator or the lab.
    ("memras.sim", "memras.lab"),
    ("memras.plugins.backends.simulated",),
    ("memras.cli", "memras.tui"),
    ("memras.__main__",),
]
# The package roots only re-export or declare versions; they import nothing of ours.
ROOTS = {"memras", "memras.tui", "memras.plugins"}
# Entry points may import each other where one front end starts the other.
SIBLING_EDGES_ALLOWED = {("memras.cli", "memras.tui")}  # `memras tui` starts the app


def _rank(module: str) -> tuple[int, str]:
    best: tuple[int, int, str] | None = None
    for rank, layer in enumerate(LAYERS):
        for prefix in layer:
            inside = module == prefix or module.startswith(prefix + ".")
            if inside and (best is None or len(prefix) > best[1]):
                best = (rank, len(prefix), prefix)
    if best is None:
        raise AssertionError(f"{module} is in no layer: add it to LAYERS in {__file__}")
    return best[0], best[2]


def source_modules(root: Path, folders: dict[str, str]) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for folder, package in folders.items():
        for path in sorted((root / folder).rglob("*.py")):
            parts = list(path.relative_to(root / folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join([package, *parts])] = path
    return found


def imports_of(module: str, path: Path) -> list[tuple[str, int]]:
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(a.name, node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            out.append((target, node.lineno))
            out += [(f"{target}.{a.name}", node.lineno) for a in node.names]
    return [(t, line) for t, line in out if t == "memras" or t.startswith("memras.")]


def _resolve(target: str, modules: dict[str, Path]) -> str | None:
    while target and target not in modules:
        target = target.rpartition(".")[0]
    return target or None


def upward_edges(root: Path = ROOT, folders: dict[str, str] = FOLDERS) -> list[str]:
    modules = source_modules(root, folders)
    problems: dict[tuple[Path, int, str], str] = {}  # one per line and layer crossed
    for module, path in modules.items():
        if module in ROOTS:
            continue
        rank, layer = _rank(module)
        for target, line in imports_of(module, path):
            resolved = _resolve(target, modules)
            if resolved is None or resolved == module:
                continue
            if resolved in ROOTS:
                if resolved == "memras" and target in ("memras", "memras.__version__"):
                    continue  # the version string
                resolved = _resolve(target, modules) or resolved
                if resolved in ROOTS:
                    continue  # `from memras import x` names a submodule, checked as x
            t_rank, t_layer = _rank(resolved)
            if t_layer == layer or t_rank < rank or (layer, t_layer) in SIBLING_EDGES_ALLOWED:
                continue
            where = f"{path.relative_to(root)}:{line}"
            kind = "sideways" if t_rank == rank else "upward"
            # `from memras.x import y` names x and x.y: keep the most precise
            problems[(path, line, t_layer)] = (
                f"{where}: {module} -> {resolved} ({kind}: {layer} -> {t_layer})")
    return list(problems.values())


def test_every_module_is_in_a_layer() -> None:
    for module in source_modules(ROOT, FOLDERS):
        if module not in ROOTS:
            _rank(module)


def test_imports_only_flow_downward() -> None:
    problems = upward_edges()
    assert not problems, "imports against the layer contract:\n" + "\n".join(problems)


@pytest.mark.parametrize(("source", "expected"), [
    ("from memras.workflow.runner import Replacement\n", "(upward: memras.host"),
    ("def f():\n    from memras.sim import actions\n", "-> memras.sim.actions (upward"),
    ("from memras.qemu import qmp\n", "(sideways: memras.host -> memras.qemu)"),
    ("from ..workflow import runner\n", "-> memras.workflow.runner (upward"),
])
def test_the_contract_catches_a_wrong_import(tmp_path: Path, source: str, expected: str) -> None:
    """The checker itself: a host module importing upward or sideways is reported,
    lazily inside a function and relatively too."""
    for rel in ("host/bad.py", "host/__init__.py", "workflow/runner.py", "workflow/__init__.py",
                "sim/actions.py", "sim/__init__.py", "qemu/qmp.py", "qemu/__init__.py"):
        (tmp_path / "memras" / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "memras" / rel).touch()
    (tmp_path / "memras" / "host" / "bad.py").write_text(source)
    problems = upward_edges(tmp_path, {"memras": "memras"})
    assert len(problems) == 1 and expected in problems[0], problems


if __name__ == "__main__":  # scripts/test.sh runs this as its own step
    found = upward_edges()
    print("\n".join(found) or "layer contract: every import flows downward")
    raise SystemExit(1 if found else 0)
