"""Package discovery for the three source folders that form the one ``memras`` namespace.

``tui/`` is installed as ``memras.tui`` and ``plugins/`` as ``memras.plugins``
(pyproject's package-dir); listing the packages here, discovered at build time,
means a new sub-package needs no edit to the packaging.
"""

from setuptools import find_packages, setup


def _mapped(folder: str, prefix: str) -> list[str]:
    return [prefix] + [f"{prefix}.{p}" for p in find_packages(folder)]


setup(
    packages=find_packages(include=["memras", "memras.*"])
    + _mapped("tui", "memras.tui")
    + _mapped("plugins", "memras.plugins"),
)
