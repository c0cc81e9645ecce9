"""The core never imports Textual: each core module is imported alone in a subprocess."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import memras


def core_modules() -> list[str]:
    names = []
    for info in pkgutil.walk_packages(memras.__path__, prefix="memras."):
        if info.name.startswith(("memras.tui", "memras.plugins")) or info.name.endswith("__main__"):
            continue
        names.append(info.name)
    return sorted(names)


def test_core_modules_exist():
    assert "memras.host" in core_modules()


def test_no_core_module_imports_textual():
    script = (
        "import importlib, sys\n"
        "bad = []\n"
        f"for name in {core_modules()!r}:\n"
        "    importlib.import_module(name)\n"
        "    if 'textual' in sys.modules:\n"
        "        bad.append(name); break\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "", f"core module imports textual: {out.stdout.strip()}"
