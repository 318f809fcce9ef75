"""Which architecture an image gets, and the ARM neighbourhoods the format knows."""

from __future__ import annotations

import pytest

from inrstore.models.core.architecture import (
    WIDE_ARM,
    Architecture,
    image_architecture,
)
from inrstore.models.core.context import ARM_WINDOWS


def test_small_images_with_an_arm_code_every_grid_below_the_coarsest_with_it() -> None:
    arch = image_architecture(256, 256, 3, arm_levels=1, zero_levels=1)
    assert arch.levels == 7 and arch.arm_levels == 6 and arch.aru_levels == 0
    assert (arch.arm_context, arch.arm_hidden) == (24, WIDE_ARM["arm_hidden"])
    assert "aru" not in arch.modules() and arch.arm.widths[0] == 24 + 4


def test_large_images_get_the_wide_arm_only_when_asked() -> None:
    wide = image_architecture(512, 768, 3, arm_levels=2, wide_arm=True)
    assert (wide.arm_levels, wide.aru_levels, wide.arm_context) == (6, 0, 24)
    assert wide.head_hidden == 24  # full widths: only the ARM changes


def test_small_all_aru_images_and_large_images_keep_the_marm_split() -> None:
    all_aru = image_architecture(256, 256, 3, arm_levels=0)
    assert all_aru.arm_levels == 0 and all_aru.arm_context == 12
    large = image_architecture(512, 768, 3, arm_levels=1)
    assert (large.arm_levels, large.aru_levels, large.arm_context) == (1, 5, 12)
    # The only ARM grid is dropped: no ARM at all, so no ARM weights to train or store.
    dropped = image_architecture(512, 768, 3, arm_levels=1, zero_levels=1)
    assert dropped.arm_levels == 0 and "arm" not in dropped.modules()


@pytest.mark.parametrize("neighbours", sorted(ARM_WINDOWS))
def test_arm_windows_are_causal_and_fit_their_wavefronts(neighbours: int) -> None:
    window = ARM_WINDOWS[neighbours]
    assert len(window.offsets) == len(set(window.offsets)) == neighbours
    for dr, dc in window.offsets:
        assert dr < 0 or (dr == 0 and dc < 0)
        assert -window.rows <= dr and abs(dc) <= window.radius
        # Every neighbour lies on an earlier wavefront (radius + 1) r + c.
        assert (window.radius + 1) * dr + dc < 0


def test_unknown_arm_neighbourhoods_are_refused() -> None:
    with pytest.raises(ValueError, match="arm_context must be one of 12, 24, not 13"):
        Architecture(64, 64, 3, 4, 1, arm_context=13)
