"""Initial network weights learned offline: the encoder's warm start.

A few hundred iterations (the ``fast`` preset on a CPU) barely move randomly initialised
networks, so the synthesis and the entropy model stay far from what natural images need.
Starting from weights trained on other images (mosaics of CIFAR-10 test images, never Kodak;
``python -m inrstore.bench.pretrain`` rebuilds them) lets every iteration go to this image.

Only the encoder reads these weights: the bitstream codes the trained weights in full, so the
decoder and the format do not depend on them. They are stored as float32 arrays in a NumPy
``.npz`` read with ``allow_pickle=False``; each *set* is keyed ``"<set>/<parameter name>"``
plus ``"<set>/zero_levels"`` (the finest grids held at zero when it was trained) and
``"<set>/lambda"`` (the rate weight λ it was trained at: a network trained for 0.3 bpp is a
worse start for 1.5 bpp than one trained near that rate).
"""

from __future__ import annotations

import functools
import math
from pathlib import Path

import numpy as np
import torch

from inrstore.models.core.architecture import Architecture

WEIGHTS_PATH = Path(__file__).with_name("initial_weights.npz")

ZERO_LEVELS_KEY = "zero_levels"
LAMBDA_KEY = "lambda"
SETTING_KEYS = {ZERO_LEVELS_KEY, LAMBDA_KEY}
"""Keys of a set that describe how it was trained rather than a parameter."""
WARM_MODULES = ("synthesis", "aru", "arm")
"""The modules stored sets may hold; the grids' pre-filters always start as the identity."""


@functools.cache
def stored_sets(path: Path = WEIGHTS_PATH) -> tuple[dict[str, np.ndarray], ...]:
    """The weight sets in ``path``, in file order (none when the file is absent)."""
    if not path.exists():
        return ()
    sets: dict[str, dict[str, np.ndarray]] = {}
    with np.load(path, allow_pickle=False) as archive:
        for key in archive.files:
            set_name, name = key.split("/", 1)
            sets.setdefault(set_name, {})[name] = archive[key]
    return tuple(sets.values())


def warm_start_parameters(
    arch: Architecture, zero_levels: int, lam: float, path: Path = WEIGHTS_PATH
) -> dict[str, torch.Tensor]:
    """Stored weights for each module of ``arch`` (:data:`WARM_MODULES`) that a stored set
    holds with exactly its parameter names and shapes; modules no set holds are left out
    (they start from the random draw). Sets are ranked once: those holding the whole
    architecture first, then those trained with the same ``zero_levels``, then by how close
    their λ is to ``lam`` on a log scale (then file order); each module comes from the first
    set in that order that holds it."""
    modules = {name: shapes for name, shapes in arch.modules().items() if name in WARM_MODULES}
    shapes = {name: shape for module in modules.values() for name, shape in module.items()}

    def holds(weights: dict[str, np.ndarray], wanted: dict[str, tuple[int, ...]]) -> bool:
        return all(
            name in weights and weights[name].shape == shape for name, shape in wanted.items()
        )

    def rank(weights: dict[str, np.ndarray]) -> tuple[bool, bool, float]:
        whole = set(weights) - SETTING_KEYS == set(shapes) and holds(weights, shapes)
        same_levels = int(weights[ZERO_LEVELS_KEY]) == zero_levels
        return (not whole, not same_levels, abs(math.log(float(weights[LAMBDA_KEY]) / lam)))

    ranked = sorted(stored_sets(path), key=rank)
    chosen: dict[str, torch.Tensor] = {}
    for module in modules.values():
        source = next((weights for weights in ranked if holds(weights, module)), None)
        if source is not None:
            chosen |= {name: torch.from_numpy(source[name].astype(np.float32)) for name in module}
    return chosen


def save_sets(sets: list[tuple[dict[str, torch.Tensor], int, float]], path: Path) -> None:
    """Write ``(parameters, zero_levels, λ)`` sets to ``path`` in the layout
    :func:`stored_sets` reads."""
    arrays: dict[str, np.ndarray] = {}
    for index, (params, zero_levels, lam) in enumerate(sets):
        for name, value in params.items():
            arrays[f"{index}/{name}"] = value.detach().cpu().numpy().astype(np.float32)
        arrays[f"{index}/{ZERO_LEVELS_KEY}"] = np.array(zero_levels, dtype=np.int64)
        arrays[f"{index}/{LAMBDA_KEY}"] = np.array(lam, dtype=np.float64)
    np.savez(path, **arrays)
