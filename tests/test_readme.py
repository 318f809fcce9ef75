"""The README's quickstart commands and Python example run as written on the shipped samples
(with a few training steps instead of the preset's budget)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from typer.testing import CliRunner

from inrstore.cli.app import app
from inrstore.models.fit import presets

REPO = Path(__file__).resolve().parent.parent
README = (REPO / "README.md").read_text()


def _block(heading: str, language: str) -> str:
    section = README.split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]
    return re.search(rf"```{language}\n(.*?)```", section, re.S).group(1)


@pytest.fixture
def in_a_clone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working folder holding the shipped samples, with a quick ``fast`` preset."""
    (tmp_path / "datasets").mkdir()
    (tmp_path / "datasets" / "samples").symlink_to(REPO / "datasets" / "samples")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("INRSTORE_STORE", raising=False)
    monkeypatch.setitem(presets.PRESETS, "fast", presets.Preset("fast", 10, arm_levels=0))
    return tmp_path


def test_readme_keeps_the_ci_commands() -> None:
    assert _block("Set up", "bash").splitlines() == ['pip install -e ".[dev,bench]"', "pytest"]
    assert len(README.splitlines()) <= 200


def test_quickstart_commands_run(in_a_clone: Path) -> None:
    runner = CliRunner()
    for line in _block("Quickstart", "bash").splitlines():
        arguments = shlex.split(line)
        assert arguments[0] == "inrstore"
        outcome = runner.invoke(app, arguments[1:])
        assert outcome.exit_code == 0, (line, outcome.output)
    assert (in_a_clone / "big.png").is_file() and (in_a_clone / "kodim23-x2.png").is_file()


def test_python_example_runs(in_a_clone: Path) -> None:
    exec(compile(_block("Python", "python"), "README.md", "exec"), {})
