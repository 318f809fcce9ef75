"""The top-level packages import each other without a cycle, at module level or inside
functions: the graph is read from the sources, so an import hidden in a function counts."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PACKAGES = {"datasets": "datasets", "store": "store", "models": "models", "cli": "cli",
            "bench": "bench"}  # fmt: skip
ALLOWED = {
    "datasets": set(),
    "models": {"datasets"},
    "store": {"datasets", "models"},
    "cli": {"datasets", "models", "store", "bench"},
    "bench": {"datasets", "models", "store"},
}
"""What each package may import: the data flow datasets → store → models → store → cli;
the benchmarks drive the product through its Python API, and ``inrstore bench`` runs them."""


def _imported_packages(folder: Path) -> dict[str, set[str]]:
    """Top-level ``inrstore`` package → the files in ``folder`` that import it."""
    found: dict[str, set[str]] = {}
    for source in folder.rglob("*.py"):
        for node in ast.walk(ast.parse(source.read_text(), str(source))):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            for name in names:
                parts = name.split(".")
                if parts[0] == "inrstore" and len(parts) > 1:
                    found.setdefault(parts[1], set()).add(source.relative_to(REPO).as_posix())
    return found


@pytest.mark.parametrize("package", sorted(PACKAGES))
def test_each_package_imports_only_what_the_data_flow_allows(package: str) -> None:
    imported = _imported_packages(REPO / PACKAGES[package])
    extra = {name: files for name, files in imported.items() if name != package
             and name not in ALLOWED[package]}  # fmt: skip
    assert not extra, f"{package} imports {extra}"


def test_the_allowed_graph_has_no_cycle() -> None:
    order = ["datasets", "models", "store", "bench", "cli"]
    for index, package in enumerate(order):
        assert ALLOWED[package] <= set(order[:index])
