"""Each shard's quality chosen so that the mean PSNR of what ``add`` stores meets a target."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from inrstore.models.fit.presets import QUALITY_MAX, QUALITY_MIN

DB_PER_QUALITY = 0.15
"""PSNR (dB) gained per quality point until two shards have measured it (Kodak `fast`:
0.16 from quality 25 to 50, 0.19 from 50 to 75; CIFAR shards: 0.18 from 40 to 60)."""

SLOPE_RANGE = (0.03, 0.5)
"""Measured slopes (dB per quality point) are clipped to this range (one that is not positive
is noise: :data:`DB_PER_QUALITY` instead)."""

MAX_CATCH_UP_DB = 1.0
"""A shard is asked for at most this far from the target, however far the mean lags."""

PSNR_RANGE = (15.0, 60.0)
"""Targets ``add`` accepts (dB)."""


@dataclass
class PsnrTarget:
    """Steers the qualities of ``add``'s shards so that the mean PSNR (dB) of the members
    stored meets ``target``.

    The first shard is encoded at ``quality``. After each shard :meth:`observe` takes the
    quality it was encoded at and its members' PSNRs; :meth:`next_quality` then asks the next
    shard for the mean PSNR that brings the running mean to the target (at most
    :data:`MAX_CATCH_UP_DB` from it) and moves from the latest shard's quality along the
    slope the latest two shards measured (:data:`DB_PER_QUALITY` until they have). A
    member's PSNR counts as stored (at most 999 dB for one decoded exactly).
    """

    target: float
    quality: float = 50.0
    shards: list[tuple[float, float, int]] = field(default_factory=list)
    """(quality, mean PSNR, members) of every shard observed, in order."""

    def __post_init__(self) -> None:
        low, high = PSNR_RANGE
        if not low <= self.target <= high:
            raise ValueError(f"target PSNR must be in [{low:g}, {high:g}] dB, not {self.target}")

    def observe(self, quality: float, psnrs: Sequence[float]) -> None:
        """Note a stored shard: its quality and its members' PSNRs (dB)."""
        if psnrs:
            self.shards.append((quality, sum(psnrs) / len(psnrs), len(psnrs)))

    def next_quality(self, members: int) -> float:
        """The quality for the next shard, of ``members`` members."""
        if not self.shards:
            return self.quality
        stored = sum(count for _, _, count in self.shards)
        mean = sum(psnr * count for _, psnr, count in self.shards) / stored
        wanted = self.target + (self.target - mean) * stored / max(1, members)
        wanted = min(max(wanted, self.target - MAX_CATCH_UP_DB), self.target + MAX_CATCH_UP_DB)
        quality, psnr, _ = self.shards[-1]
        moved = quality + (wanted - psnr) / self._slope()
        return min(max(moved, QUALITY_MIN), QUALITY_MAX)

    def _slope(self) -> float:
        """dB per quality point between the latest two shards (see :data:`SLOPE_RANGE`), or
        :data:`DB_PER_QUALITY`."""
        if len(self.shards) < 2:
            return DB_PER_QUALITY
        (before, psnr_before, _), (after, psnr_after, _) = self.shards[-2:]
        if abs(after - before) < 1.0:
            return DB_PER_QUALITY
        slope = (psnr_after - psnr_before) / (after - before)
        if slope <= 0:  # noise (a time-limited encode can lose PSNR at a higher quality)
            return DB_PER_QUALITY
        return min(max(slope, SLOPE_RANGE[0]), SLOPE_RANGE[1])
