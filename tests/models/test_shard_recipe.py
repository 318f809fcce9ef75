"""One codec: a single image is a shard of one, and every preset feature works in a shard."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from PIL import Image

from inrstore.models import shard_codec
from inrstore.models.bitstream.errors import BitstreamError
from inrstore.models.bitstream.fields import seal
from inrstore.models.bitstream.shard_format import unpack_member
from inrstore.models.codec import decode_image, encode_image
from inrstore.models.core import architecture
from inrstore.models.core.architecture import COMPACT_WIDTHS, Architecture, image_architecture
from inrstore.models.fit import shard_quantization, train
from inrstore.models.fit.candidates import EncodeJob
from inrstore.models.fit.network_rate import network_bits
from inrstore.models.fit.network_source import MixedNetworks, SharedNetworks
from inrstore.models.fit.presets import Preset, quality_to_lambda
from inrstore.models.fit.shard_train import ShardSettings, fit_shard
from inrstore.models.metrics import psnr
from inrstore.models.shard_codec import (
    EncodedShard,
    choose_sharing,
    decode_member,
    encode_shard,
    pack_shard,
    read_shard_header,
    shard_rate_distortion,
)
from tests.conftest import SAMPLES

from .conftest import TINY_PRESET

BEST_LIKE = Preset(
    "best-like", iterations=60, arm_levels=2, wide_arm=True, prefilter=True,
    compact_synthesis="refine", compact_keeps_finest_grid=True, weight_deadzones=(0.2,),
    finest_grid_bpp=0.6,
)  # fmt: skip


def _cifar(*numbers: int) -> list[np.ndarray]:
    return [
        np.asarray(Image.open(SAMPLES / "cifar10" / f"{n:04d}.png").convert("RGB")) for n in numbers
    ]


def _kodak_crop() -> np.ndarray:
    pixels = np.asarray(Image.open(SAMPLES / "kodak" / "kodim23-128.png").convert("RGB"))
    return np.ascontiguousarray(pixels[:72, :80])


def test_a_shard_of_one_with_own_networks_is_the_single_image_bitstream() -> None:
    image = _kodak_crop()
    shard = encode_shard([image], TINY_PRESET, quality=60, sharing="own", seed=3)
    alone = encode_image(image, TINY_PRESET, quality=60, seed=3)
    assert shard.members == [alone]
    assert len(shard.header) == 10  # magic, version, sharing byte, CRC
    header = read_shard_header(shard.header)
    assert header.header.own_networks and header.bases == {}
    assert np.array_equal(decode_member(header, alone), decode_image(alone))
    assert np.array_equal(decode_member(header, alone, 2.0), decode_image(alone, 2.0))


def test_an_own_networks_header_with_anything_more_is_refused() -> None:
    header = encode_shard(_cifar(3), TINY_PRESET, sharing="own").header
    with pytest.raises(BitstreamError, match="do not match the data"):
        read_shard_header(seal(header[:-4] + b"\x00"))


def test_auto_weighs_shared_networks_for_several_small_images_only() -> None:
    assert choose_sharing(_cifar(3, 5)) == "compare"
    assert choose_sharing(_cifar(3)) == "own"
    assert choose_sharing([*_cifar(3), _kodak_crop()]) == "own"
    with pytest.raises(ValueError, match="sharing must be one of auto, own, shared"):
        encode_shard(_cifar(3), TINY_PRESET, sharing="some")


def test_a_shard_of_best_like_settings_declares_them_and_decodes() -> None:
    images = _cifar(3, 5)
    shard = encode_shard(images, BEST_LIKE, quality=60, sharing="shared", bases=2)
    template = read_shard_header(shard.header).header.template
    assert template.arm_context == 24 and template.arm_levels == template.levels - 1
    assert template.prefilter and template.synthesis_kind == "refine"
    for image, member in zip(images, shard.members, strict=True):
        assert psnr(image, decode_member(shard.header, member)) > 20.0


def test_the_finest_grid_rule_decides_per_member() -> None:
    """A flat image loses nothing at half resolution: its finest grid is held at zero,
    flagged and not coded; the detailed one keeps its own."""
    flat = np.full((32, 32, 3), 120, dtype=np.uint8)
    images = [flat, *_cifar(5)]
    preset = replace(TINY_PRESET, finest_grid_bpp=1.5, compact_keeps_finest_grid=False)
    lam = quality_to_lambda(60)
    template = Architecture(1, 1, 3, 3, 0)
    fitted = fit_shard(images, template, preset, lam, ShardSettings(bases=1), [1, 0])
    assert not fitted.grids[0][0].any() and fitted.grids[1][0].any()
    shard = encode_shard(images, preset, quality=60, sharing="shared", bases=1)
    template = read_shard_header(shard.header).header.template
    flags = [unpack_member(member, template)[0].zero_flags & 1 for member in shard.members]
    assert flags == [1, 0]


def test_coarse_phases_train_a_shard_at_the_coarser_scale_first() -> None:
    """All of the training at quarter resolution: no member's two finest grids are read."""
    images = _cifar(3, 5)
    preset = replace(TINY_PRESET, arm_levels=0, prefilter=False, coarse_phases=(1.0, 1.0))
    template = Architecture(1, 1, 3, 4, 0)
    fitted = fit_shard(images, template, preset, 1e-3, ShardSettings(bases=2), [0, 0])
    for grids in fitted.grids:
        assert not grids[0].any() and not grids[1].any()
        assert all(grid.any() for grid in grids[2:])


def test_the_networks_rate_in_the_loss_is_spread_over_every_member() -> None:
    template = Architecture(1, 1, 3, 3, 0)
    generator = torch.Generator().manual_seed(0)
    start = train.init_parameters(template, generator)
    shared = SharedNetworks(template, start, torch.device("cpu"))
    assert shared.bits().item() == pytest.approx(network_bits(template, start).item())
    bases = {name: torch.stack([value, 2 * value]) for name, value in start.items()}
    mixed = MixedNetworks(template, bases, torch.device("cpu"))
    twice = {name: 2 * value for name, value in start.items()}
    expected = network_bits(template, start) + network_bits(template, twice)
    assert mixed.bits().item() == pytest.approx(expected.item())

    def bpp(preset: Preset, count: int) -> float:
        statuses = []
        fit_shard(
            _cifar(*range(3, 3 + count)), template, preset, 1e-3, ShardSettings(bases=1),
            [0] * count, on_status=statuses.append, status_every=1,
        )  # fmt: skip
        return statuses[0].bpp

    with_rate = replace(TINY_PRESET, iterations=1, arm_levels=0, warm_start=False)
    without = replace(with_rate, network_rate_in_loss=False)
    networks_bpp = network_bits(template, start).item() / (2 * 32 * 32)
    # The first step's rate: the first group's latents plus the networks over both members.
    assert bpp(with_rate, 2) - bpp(without, 2) == pytest.approx(networks_bpp, rel=0.05)


def test_shared_bases_start_from_the_offline_warm_start_sets(monkeypatch) -> None:
    calls = []
    original = train.warm_start_parameters

    def spy(arch, zero_levels, lam):
        calls.append((arch, zero_levels, lam))
        return original(arch, zero_levels, lam)

    monkeypatch.setattr(train, "warm_start_parameters", spy)
    encode_shard(
        _cifar(3, 5), replace(TINY_PRESET, iterations=2), quality=60, sharing="shared", bases=2
    )
    assert len(calls) == 1 and calls[0][0].height == 1 and calls[0][2] == quality_to_lambda(60)
    calls.clear()
    encode_shard(
        _cifar(3), replace(TINY_PRESET, iterations=2, warm_start=False), sharing="shared", bases=1
    )
    assert calls == []


def test_bases_get_per_tensor_steps_and_the_presets_dead_zones(monkeypatch) -> None:
    seen = []
    original = shard_quantization.quantize_modules

    def spy(costs, floats, deadzones=()):
        chosen = original(costs, floats, deadzones)
        seen.append((deadzones, chosen))
        return chosen

    monkeypatch.setattr(shard_quantization, "quantize_modules", spy)
    shard = encode_shard(_cifar(3, 5), BEST_LIKE, quality=60, sharing="shared", bases=2)
    ((deadzones, chosen),) = seen
    assert deadzones == (0.2,)
    header = read_shard_header(shard.header)
    for module, quantized in chosen.items():
        for name, value in quantized.integers.items():
            assert header.header.tensors[name].exponent == quantized.exponent_of(name)
            assert torch.equal(header.bases[module].integers[name], value)


def test_a_shard_of_small_images_keeps_the_best_of_its_candidate_seeds() -> None:
    images = _cifar(3, 5)
    two = replace(TINY_PRESET, compact_candidates=2)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        kept = encode_shard(images, two, quality=60, sharing="shared", bases=2, seed=4)
    finally:
        torch.set_num_threads(threads)
    torch.set_num_threads(1)
    try:
        seeds = [
            encode_shard(images, TINY_PRESET, quality=60, sharing="shared", bases=2, seed=s)
            for s in (4, 5)
        ]
    finally:
        torch.set_num_threads(threads)
    job = EncodeJob(images[0], TINY_PRESET, 60, "cpu", None, tuple(images[1:]), 2)
    scores = [shard_rate_distortion(job, pack_shard(shard)) for shard in seeds]
    assert scores[0] != scores[1]
    assert (kept.header, kept.members) in [(s.header, s.members) for s in seeds]
    assert shard_rate_distortion(job, pack_shard(kept)) == min(scores)


def test_own_networks_start_from_the_previous_members(monkeypatch) -> None:
    calls = []
    original = shard_codec.encode_image

    def spy(image, *args, warm_start=None, **kwargs):
        calls.append(warm_start)
        return original(image, *args, warm_start=warm_start, **kwargs)

    monkeypatch.setattr(shard_codec, "encode_image", spy)
    images = [_kodak_crop(), np.ascontiguousarray(_kodak_crop()[::-1])]
    shard = encode_shard(images, replace(TINY_PRESET, iterations=5), sharing="own")
    assert calls == [None, shard.members[0]]


def _own_and_shared(images: list[np.ndarray]) -> tuple[EncodedShard, EncodedShard]:
    own = encode_shard(images, TINY_PRESET, quality=60, bases=2, sharing="own", seed=2)
    shared = encode_shard(images, TINY_PRESET, quality=60, bases=2, sharing="shared", seed=2)
    return own, shared


def test_auto_keeps_whichever_of_own_and_shared_networks_costs_less() -> None:
    images = _cifar(3, 5, 8)
    own, shared = _own_and_shared(images)
    kept = encode_shard(images, TINY_PRESET, quality=60, bases=2, seed=2)
    job = EncodeJob(images[0], TINY_PRESET, 60, "cpu", None, tuple(images[1:]), 2)
    costs = {
        "own": shard_rate_distortion(job, pack_shard(own)),
        "shared": shard_rate_distortion(job, pack_shard(shared)),
    }
    assert costs["own"] != costs["shared"]
    cheaper = own if costs["own"] < costs["shared"] else shared
    assert (kept.header, kept.members) == (cheaper.header, cheaper.members)


def test_auto_weighs_a_spread_of_members_and_completes_the_winner(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    images = _cifar(3, 5, 8, 9, 11)
    monkeypatch.setattr(shard_codec, "TRIAL_MEMBERS", 2)
    encoded: list[int] = []
    real = shard_codec.encode_image

    def spy(image: np.ndarray, *args: object, **kwargs: object) -> bytes:
        encoded.append(next(i for i, x in enumerate(images) if np.array_equal(x, image)))
        return real(image, *args, **kwargs)

    monkeypatch.setattr(shard_codec, "encode_image", spy)
    outcomes = set()
    for quality in (20, 60):  # shared networks win at the low rate here, own at the high one
        encoded.clear()
        kept = encode_shard(images, TINY_PRESET, quality=quality, bases=2, seed=2)
        header = read_shard_header(kept.header)
        outcomes.add(header.header.own_networks)
        assert encoded[:2] == [0, 4]  # the trial: the first and the last member
        if header.header.own_networks:
            assert encoded[2:] == [1, 2, 3]  # the trial's members are not encoded again
        else:
            assert len(encoded) == 2
        for image, member in zip(images, kept.members, strict=True):
            assert psnr(image, decode_member(header, member)) > 20
    assert outcomes == {True, False}


def test_shared_networks_widen_when_the_shard_holds_as_many_pixels_as_a_large_image(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert image_architecture(32, 32, 3, 0).head_hidden == COMPACT_WIDTHS["head_hidden"]
    wide = image_architecture(32, 32, 3, 0, network_pixels=architecture.COMPACT_BELOW_PIXELS)
    assert wide.head_hidden == Architecture.head_hidden
    images, preset = _cifar(3, 5), replace(TINY_PRESET, iterations=2)
    widths = {}
    for threshold in (2 * 32 * 32 + 1, 2 * 32 * 32):  # above the shard's pixels, then at them
        monkeypatch.setattr(architecture, "COMPACT_BELOW_PIXELS", threshold)
        shard = encode_shard(images, preset, sharing="shared", bases=2)
        widths[threshold] = read_shard_header(shard.header).header.template.aru_hidden
    assert widths == {2049: COMPACT_WIDTHS["aru_hidden"], 2048: Architecture.aru_hidden}


def test_a_shard_warm_started_from_fitting_shared_networks_keeps_them_without_a_trial(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A dataset's later shard starts from the latest shard's header: when that header's
    shared networks fit the new shard (same architecture and K), its choice is kept and no
    member is encoded with its own networks; a header that does not fit runs the trial, and a
    damaged one is ignored."""
    images = _cifar(3, 5, 8, 9)
    first = encode_shard(images, TINY_PRESET, quality=20, bases=2, sharing="shared")
    own = encode_shard(images[:1], TINY_PRESET, quality=20)
    trials: list[int] = []
    real = shard_codec.encode_image

    def spy(image: np.ndarray, *args: object, **kwargs: object) -> bytes:
        trials.append(1)
        return real(image, *args, **kwargs)

    monkeypatch.setattr(shard_codec, "encode_image", spy)
    later = encode_shard(
        _cifar(0, 1, 2, 11), TINY_PRESET, quality=20, bases=2, warm_start=first.header
    )
    assert trials == [] and later.warm_started
    assert not read_shard_header(later.header).header.own_networks
    for warm in (own.header, first.header):  # own networks; K = 2 against K = 3
        trials.clear()
        bases = 2 if warm is own.header else 3
        encode_shard(images, TINY_PRESET, quality=20, bases=bases, warm_start=warm)
        assert trials
    damaged = bytearray(first.header)
    damaged[len(damaged) // 2] ^= 0xFF  # fails the header's CRC: ignored, the shard starts cold
    cold = encode_shard(
        images[:2], TINY_PRESET, quality=20, bases=2, sharing="shared", warm_start=bytes(damaged)
    )
    assert not cold.warm_started
