"""What every benchmark result records about the run that produced it."""

from __future__ import annotations

import datetime
import os
import platform
import subprocess
from pathlib import Path


def commit() -> str:
    """The repository's HEAD commit (``+dirty`` when the tree has changes), or ``unknown``."""
    root = Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root, capture_output=True, text=True, check=True,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("+dirty" if dirty else "")


def machine() -> dict[str, object]:
    """CPU model, cores, Python and torch versions."""
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        import torch

        torch_version = torch.__version__
    except ImportError:
        torch_version = None
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "torch": torch_version,
        "device": "cpu",
    }


def provenance(**settings: object) -> dict[str, object]:
    """The ``commit``, ``machine``, ``date`` and store/bitstream format versions of a run,
    plus ``settings`` (what the run was asked to do)."""
    from inrstore.models.bitstream.image_format import FORMAT_VERSION
    from inrstore.store.env import STORE_FORMAT_VERSION

    return {
        "commit": commit(),
        "format_version": FORMAT_VERSION,
        "store_format_version": STORE_FORMAT_VERSION,
        "machine": machine(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "settings": settings,
    }
