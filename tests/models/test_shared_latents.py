"""Shared latents: frames of one scene code the grids they share once, in the shard header."""

from __future__ import annotations

import struct
import zlib
from dataclasses import replace

import numpy as np
import pytest
from PIL import Image

from inrstore.models import shard_codec
from inrstore.models.bitstream.errors import BitstreamError
from inrstore.models.bitstream.shard_format import (
    HEADER_PREFIX,
    MEMBER_PREFIX,
    unpack_header,
)
from inrstore.models.core.architecture import image_architecture
from inrstore.models.fit.shard_quantization import quantize_shard
from inrstore.models.fit.shard_train import ShardSettings, fit_shard
from inrstore.models.metrics import psnr
from inrstore.models.shard_codec import (
    decode_member,
    decode_members,
    describe_networks,
    encode_shard,
    member_latents,
    read_shard_header,
    write_shard,
)
from tests.conftest import SAMPLES

from .conftest import TINY_PRESET, assert_scale_two_and_crop, moving_square_frames

PRESET = replace(TINY_PRESET, iterations=80)


@pytest.fixture(scope="module")
def frames() -> list[np.ndarray]:
    return moving_square_frames()


@pytest.fixture(scope="module")
def shard(frames):
    return encode_shard(frames, PRESET, quality=70, sharing="latents")


def _with_header_field(header: bytes, cut: int, insert: bytes) -> bytes:
    """The header with ``insert`` in place of its bytes from ``cut`` to the CRC, resealed."""
    body = header[:cut] + insert
    return body + struct.pack(">I", zlib.crc32(body))


def test_members_decode_the_grids_they_were_trained_to(frames) -> None:
    template = image_architecture(*frames[0].shape, PRESET.arm_levels, 0, False, True, "refine")
    settings = ShardSettings(bases=1, shared_latents=True)
    fitted = fit_shard(
        frames, replace(template, height=1, width=1), PRESET, 0.01, settings, [0, 0, 0]
    )
    quantized = quantize_shard(fitted, frames)
    header, members = write_shard(quantized)
    assert quantized.shared is not None and any(np.any(g) for g in quantized.shared.grids)
    decoded = member_latents(header, members)
    for own, grids in zip(quantized.grids, decoded, strict=True):
        expected = [a + b for a, b in zip(own, quantized.shared.grids, strict=True)]
        assert all(np.array_equal(e, g) for e, g in zip(expected, grids, strict=True))


def test_a_shard_with_shared_latents_decodes_each_member_alone_and_together(shard, frames) -> None:
    assert describe_networks(shard.header) == "shared networks and latents"
    header = read_shard_header(shard.header)
    assert header.header.version == 3 and header.shared_grids is not None
    together = decode_members(header, shard.members)
    for frame, member, pixels in zip(frames, shard.members, together, strict=True):
        alone = decode_member(shard.header, member)
        assert np.array_equal(alone, pixels) and psnr(frame, alone) > 22.0


def test_shared_latents_decode_at_scale_two_and_in_crops(shard) -> None:
    assert_scale_two_and_crop(read_shard_header(shard.header), shard.members[1])


def test_shards_without_shared_latents_stay_version_two(frames) -> None:
    plain = encode_shard(frames[:2], PRESET, quality=70, sharing="shared", bases=1)
    header = read_shard_header(plain.header)
    assert header.header.version == 2 and header.shared_grids is None


def test_shared_latents_refuse_several_sizes_and_bases(frames) -> None:
    with pytest.raises(ValueError, match="one size"):
        encode_shard([frames[0], frames[1][:16]], PRESET, sharing="latents")
    with pytest.raises(ValueError, match="bases 1"):
        ShardSettings(bases=2, shared_latents=True)


def test_hostile_shared_latents_raise_clear_errors(shard) -> None:
    header = shard.header
    parsed, _ = unpack_header(header)
    latents = parsed.latents
    assert latents is not None
    start = len(header) - 4 - len(latents) - 4  # the latents' length field
    # A length that runs past the end, a length of zero, a record that is not one.
    for insert in (
        struct.pack(">I", len(latents) + 9) + latents,
        struct.pack(">I", 0),
        struct.pack(">I", 6) + b"IM\x03\x00\x00\x00",
    ):
        with pytest.raises(BitstreamError):
            read_shard_header(_with_header_field(header, start, insert))
    # A record with a header tag, and one whose payload is damaged (all ones, resealed: its
    # symbols escape past the latent range).
    tagged = bytearray(latents)
    tagged[MEMBER_PREFIX.size - 2 : MEMBER_PREFIX.size] = b"\x00\x01"
    damaged = bytearray(latents)
    damaged[MEMBER_PREFIX.size : -2] = b"\xff" * (len(damaged) - MEMBER_PREFIX.size - 2)
    for record in (tagged, damaged):
        record[-2:] = struct.pack(">H", zlib.crc32(bytes(record[:-2])) & 0xFFFF)
        insert = struct.pack(">I", len(record)) + bytes(record)
        with pytest.raises(BitstreamError):
            read_shard_header(_with_header_field(header, start, insert))
    # Every flipped byte is caught by the header's CRC.
    for position in range(HEADER_PREFIX.size, len(header), 7):
        flipped = bytearray(header)
        flipped[position] ^= 0x55
        with pytest.raises(BitstreamError):
            read_shard_header(bytes(flipped))


def test_a_member_of_another_size_than_the_shared_latents_is_refused(shard, frames) -> None:
    other = encode_shard([frames[0][:16]], PRESET, quality=70, sharing="shared", bases=1)
    header = read_shard_header(shard.header)
    record = bytearray(other.members[0])
    # Give it this shard's tag: only the size check is left to catch it.
    tag_at = MEMBER_PREFIX.size - 2
    record[tag_at : tag_at + 2] = struct.pack(">H", header.tag)
    record[-2:] = struct.pack(">H", zlib.crc32(bytes(record[:-2])) & 0xFFFF)
    with pytest.raises(BitstreamError, match="size differs"):
        decode_member(header, bytes(record))


def test_unrelated_images_do_not_share_latents() -> None:
    """The encoder weighs the shard with and without shared latents by D + λR: three
    unrelated CIFAR images do better without them."""
    images = [
        np.asarray(Image.open(SAMPLES / "cifar10" / f"000{i}.png").convert("RGB"))
        for i in (0, 1, 2)
    ]
    shard = encode_shard(images, PRESET, quality=70, sharing="latents")
    header = read_shard_header(shard.header)
    assert header.header.version == 2 and header.shared_grids is None
    assert describe_networks(shard.header) == "shared networks"


def test_a_warm_started_shard_takes_its_earlier_headers_choice_without_a_trial(
    shard, frames, monkeypatch
) -> None:
    plain = encode_shard(frames[:2], PRESET, quality=70, sharing="shared", bases=1)
    calls = []
    real = shard_codec._encode_shared

    def counted(job, seed, on_status):
        calls.append(job.shared_latents)
        return real(job, seed, on_status)

    monkeypatch.setattr(shard_codec, "_encode_shared", counted)
    later = encode_shard(frames, PRESET, quality=70, sharing="latents", warm_start=shard.header)
    assert calls == [True] and later.warm_started
    assert read_shard_header(later.header).shared_grids is not None
    encode_shard(frames, PRESET, quality=70, sharing="latents", warm_start=plain.header)
    assert calls == [True, False]
    encode_shard(frames, PRESET, quality=70, sharing="latents")
    assert calls == [True, False, True, False]


def test_a_new_shard_longer_than_the_trial_chooses_on_a_few_members_then_encodes_whole(
    frames, monkeypatch
) -> None:
    """Both choices are encoded on members spread over the shard; the whole shard is then
    encoded once, with the winner's choice, starting from the winner's header."""
    monkeypatch.setattr(shard_codec, "LATENTS_TRIAL_MEMBERS", 2)
    calls = []
    real = shard_codec._encode_shared

    def counted(job, seed, on_status):
        calls.append((len(job.images), job.shared_latents, job.warm_start))
        return real(job, seed, on_status)

    monkeypatch.setattr(shard_codec, "_encode_shared", counted)
    shard = encode_shard(frames, PRESET, quality=70, sharing="latents")
    assert [call[:2] for call in calls] == [(2, True), (2, False), (3, calls[2][1])]
    assert calls[0][2] is None and calls[1][2] is None and calls[2][2] is not None
    chosen = unpack_header(calls[2][2])[0]
    assert (chosen.latents is not None) == calls[2][1]
    assert (read_shard_header(shard.header).shared_grids is not None) == calls[2][1]
    assert len(shard.members) == 3 and not shard.warm_started
    for index, frame in enumerate(frames):
        assert psnr(frame, decode_member(shard.header, shard.members[index])) > 20
