"""Shared fixtures: paths to the images shipped in the repository."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SAMPLES = REPO / "datasets" / "samples"


@pytest.fixture
def kodak_samples() -> Path:
    """Folder of four 128×128 Kodak crops."""
    return SAMPLES / "kodak"


@pytest.fixture
def cifar_samples() -> Path:
    """Folder of sixteen 32×32 CIFAR-10 images with ``labels.csv``."""
    return SAMPLES / "cifar10"
