"""Members decoded together: exactly what each decodes to alone."""

from __future__ import annotations

from dataclasses import replace

import constriction
import numpy as np
import pytest
import torch
from PIL import Image

from inrstore.models import codec, shard_codec
from inrstore.models.bitstream.errors import BitstreamError
from inrstore.models.codec import fixed_entropy_model
from inrstore.models.core.architecture import Architecture
from inrstore.models.core.mixture import member_modules, members_modules
from inrstore.models.core.quantized import QuantizedModule, select_members
from inrstore.models.entropy.batched import StackedEntropyModel, batchable, read_latents_batched
from inrstore.models.entropy.coding import (
    ANCHOR_PASS1_CODING,
    TABLE_CODING,
    WINDOW_CODING,
    encode_latents,
    read_latents,
)
from inrstore.models.shard_codec import decode_member, decode_members, encode_shard
from tests.conftest import SAMPLES

from .conftest import TINY_PRESET, random_grids, random_modules

ARU_ONLY = replace(TINY_PRESET, arm_levels=0, iterations=20)


def _decoder(payload: bytes):
    return constriction.stream.queue.RangeDecoder(np.frombuffer(payload, dtype=np.uint32))


@pytest.mark.parametrize("coding", [ANCHOR_PASS1_CODING, WINDOW_CODING])
@pytest.mark.parametrize("zero_flags", [(0, 0, 0), (0b1,) * 3, (0b101,) * 3, (0b101, 0, 0b1000)])
def test_grids_decoded_together_are_each_members_own(
    zero_flags: tuple[int, ...], coding: int
) -> None:
    """Members with different zero flags too: each reads only the levels it codes."""
    arch = Architecture(32, 24, 3, 4, 0)
    modules = [random_modules(arch, seed) for seed in range(3)]
    priors = [10 + seed for seed in range(3)]
    models = [
        fixed_entropy_model(arch, own, prior) for own, prior in zip(modules, priors, strict=True)
    ]
    payloads, originals = [], []
    for seed, (model, own_flags) in enumerate(zip(models, zero_flags, strict=True)):
        grids = random_grids(arch, seed=seed + 7)
        for level in range(arch.levels):
            if own_flags >> level & 1:
                grids[level][:] = 0
        payload, flags = encode_latents(model, grids, coding)
        assert flags == own_flags
        payloads.append(payload)
        originals.append(grids)
    decoders = [_decoder(payload) for payload in payloads]
    stacked = StackedEntropyModel.of_members(arch, _stacked(modules), priors)
    together = read_latents_batched(decoders, stacked, zero_flags, coding)
    for grids, decoded, model, payload, own_flags in zip(
        originals, together, models, payloads, zero_flags, strict=True
    ):
        alone = read_latents(_decoder(payload), model, own_flags, coding)
        for original, batched, single in zip(grids, decoded, alone, strict=True):
            np.testing.assert_array_equal(batched, original)
            np.testing.assert_array_equal(single, original)


def test_only_aru_grids_of_even_width_with_the_latest_codings_decode_together() -> None:
    assert batchable(Architecture(32, 24, 3, 4, 0), ANCHOR_PASS1_CODING)
    assert batchable(Architecture(32, 24, 3, 4, 0), WINDOW_CODING)
    assert not batchable(Architecture(32, 24, 3, 4, 1), ANCHOR_PASS1_CODING)  # an ARM grid
    assert not batchable(Architecture(32, 24, 3, 4, 0), TABLE_CODING)
    assert not batchable(Architecture(32, 22, 3, 4, 0), ANCHOR_PASS1_CODING)  # 11 wide
    arch = Architecture(32, 24, 3, 4, 1)
    model = StackedEntropyModel.of_members(arch, _stacked([random_modules(arch, 0)]), [10])
    with pytest.raises(ValueError, match="cannot be decoded together"):
        read_latents_batched([None], model, [0], ANCHOR_PASS1_CODING)


def _stacked(members: list[dict[str, QuantizedModule]]) -> dict[str, QuantizedModule]:
    """Members' modules (with equal step exponents) as one set with a member dimension."""
    first = members[0]
    return {
        name: QuantizedModule(
            module.exponent,
            {
                key: torch.stack([own[name].integers[key] for own in members])
                for key in module.integers
            },
            module.tensor_exponents,
        )
        for name, module in first.items()
    }


def test_selected_members_of_mixed_modules_are_each_members_own_mix() -> None:
    rng = np.random.default_rng(0)
    bases = {"m": QuantizedModule(9, {"w": torch.from_numpy(rng.integers(-999, 999, (3, 4, 2)))})}
    alphas = [{"m": rng.integers(-(2**11), 2**11, 3)} for _ in range(5)]
    together = members_modules(bases, alphas, {"m": 11}, 5)
    picked = select_members(together, [4, 1])["m"].integers["w"]
    for row, member in enumerate((4, 1)):
        alone = member_modules(bases, alphas[member], {"m": 11})["m"].integers["w"]
        assert torch.equal(together["m"].integers["w"][member], alone)
        assert torch.equal(picked[row], alone)
    shared = members_modules(bases, None, None, 5)["m"].integers["w"]
    assert shared.shape == (5, 4, 2) and all(
        torch.equal(m, bases["m"].integers["w"][0]) for m in shared
    )


@pytest.fixture
def groups(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The size of every group whose grids :func:`decode_members` decodes together."""
    sizes: list[int] = []
    real = shard_codec.read_latents_batched

    def spy(decoders, *args):
        sizes.append(len(decoders))
        return real(decoders, *args)

    monkeypatch.setattr(shard_codec, "read_latents_batched", spy)
    return sizes


@pytest.fixture
def renders(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The number of members of every rendering (1 for a member rendered alone)."""
    sizes: list[int] = []
    real = codec.render

    def spy(arch, params, grids, *args):
        sizes.append(len(grids[0]) if grids[0].dim() == 3 else 1)
        return real(arch, params, grids, *args)

    monkeypatch.setattr(codec, "render", spy)
    return sizes


def _images() -> list[np.ndarray]:
    cifar = [
        np.asarray(Image.open(SAMPLES / "cifar10" / f"{n:04d}.png").convert("RGB"))
        for n in (1, 2, 4, 6, 7)
    ]
    crop = cifar[0][:24, :20]  # another size: a group of its own
    return [*cifar, np.ascontiguousarray(crop)]


@pytest.mark.parametrize(
    ("preset", "bases", "sharing"),
    [(ARU_ONLY, 3, "shared"), (ARU_ONLY, 1, "shared"), (TINY_PRESET, 2, "shared"),
     (ARU_ONLY, 1, "own")],
)  # fmt: skip
def test_a_shards_members_decoded_together_match_each_decoded_alone(
    preset, bases: int, sharing: str, groups: list[int], renders: list[int]
) -> None:
    images = _images()
    shard = encode_shard(images, preset, quality=60, bases=bases, sharing=sharing)
    for scale in (1.0, 2.0):
        renders.clear()
        together = decode_members(shard.header, shard.members, scale)
        # Shared networks: the five 32×32 members render together, the crop alone.
        assert sorted(renders) == ([1] * 6 if sharing == "own" else [1, 5])
        alone = [decode_member(shard.header, member, scale) for member in shard.members]
        assert len(together) == len(images)
        for a, b in zip(together, alone, strict=True):
            np.testing.assert_array_equal(a, b)
    # 32×32 members of an ARU-only shard with equal zero flags decode together, the crop
    # alone; a shard with ARM grids or own networks decodes member by member.
    if preset is ARU_ONLY and sharing == "shared":
        assert groups and groups[: len(groups) // 2] == groups[len(groups) // 2 :]
        assert all(2 <= size <= 5 for size in groups)
    else:
        assert groups == []


def test_a_damaged_member_among_others_is_a_bitstream_error() -> None:
    shard = encode_shard(_images()[:3], ARU_ONLY, quality=60, bases=2, sharing="shared")
    damaged = shard.members[1][:-6]
    with pytest.raises(BitstreamError):
        decode_members(shard.header, [shard.members[0], damaged, shard.members[2]])


def test_members_decode_in_batches_of_bounded_pixels(
    groups: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    images = _images()[:5]
    shard = encode_shard(images, ARU_ONLY, quality=60, bases=1, sharing="shared")
    alone = [decode_member(shard.header, member) for member in shard.members]
    monkeypatch.setattr(shard_codec, "BATCH_DECODE_PIXELS", 2 * 32 * 32)
    together = decode_members(shard.header, shard.members)
    assert groups and max(groups) == 2
    for a, b in zip(together, alone, strict=True):
        np.testing.assert_array_equal(a, b)
