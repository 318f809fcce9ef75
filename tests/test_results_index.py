"""``bench/results/README.md`` indexes every results folder, and only existing ones."""

from __future__ import annotations

import re
from pathlib import Path

RESULTS = Path(__file__).resolve().parent.parent / "bench" / "results"


def test_every_results_folder_is_indexed() -> None:
    index = (RESULTS / "README.md").read_text()
    listed = set(re.findall(r"^\| `([\w.-]+)/` \|", index, re.M))
    folders = {p.name for p in RESULTS.iterdir() if p.is_dir()}
    assert listed == folders
