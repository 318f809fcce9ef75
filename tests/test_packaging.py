"""Packaging: the namespace imports from anywhere and pyproject lists every package."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from inrstore.cli.app import app

REPO = Path(__file__).resolve().parent.parent


def test_imports_work_outside_the_repository(tmp_path: Path) -> None:
    code = "import inrstore.store, inrstore.models, inrstore.cli, inrstore.datasets, inrstore.bench"
    subprocess.run([sys.executable, "-c", code], cwd=tmp_path, check=True)


def test_pyproject_lists_every_package_directory() -> None:
    """Every folder with an ``__init__.py`` is a listed package, and so is every folder of
    package data (setuptools warns about data folders that it is not told are packages)."""
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    roots = config["package-dir"]
    on_disk = set()
    for package, folder in roots.items():
        for init in (REPO / folder).rglob("__init__.py"):
            relative = init.parent.relative_to(REPO / folder)
            on_disk.add(".".join([package, *relative.parts]))
    data_only = {name for name in config["package-data"] if name not in on_disk}
    for name in data_only:
        prefix = next(root for root in roots if name.startswith(root + "."))
        folder = REPO / roots[prefix] / Path(*name[len(prefix) + 1 :].split("."))
        assert folder.is_dir() and not (folder / "__init__.py").exists(), name
    assert set(config["packages"]) == on_disk | data_only


def test_every_command_has_help() -> None:
    runner = CliRunner()
    top = runner.invoke(app, ["--help"])
    assert top.exit_code == 0
    for command in app.registered_commands:
        name = command.name or command.callback.__name__
        assert name in top.output
        outcome = runner.invoke(app, [name, "--help"])
        assert outcome.exit_code == 0 and "Usage" in outcome.output
