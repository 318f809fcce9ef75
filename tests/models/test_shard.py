"""Shards: shared bases, per-member coefficients, independent member decoding, hostile bytes."""

from __future__ import annotations

import hashlib
import json
import os
import struct
import subprocess
import sys
import zlib
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from inrstore.models import shard_codec
from inrstore.models.bitstream.errors import BitstreamError
from inrstore.models.bitstream.image_format import ModuleCoding, present_modules, tensor_names
from inrstore.models.bitstream.shard_format import (
    HEADER_PREFIX,
    MEMBER_PREFIX,
    NETWORKS_PREFIX,
    pack_header,
    unpack_header,
    unpack_member,
)
from inrstore.models.core.mixture import mix_integers
from inrstore.models.core.quantized import QuantizedModule
from inrstore.models.metrics import psnr
from inrstore.models.shard_codec import decode_member, encode_shard, read_shard_header
from tests.conftest import SAMPLES

from .conftest import TINY_PRESET, assert_scale_two_and_crop, moving_square_frames

SHARD_PRESET = replace(TINY_PRESET, iterations=80)


def _images() -> list[np.ndarray]:
    """Two 32×32 CIFAR images and a 24×40 Kodak crop: two size groups."""
    cifar = [
        np.asarray(Image.open(SAMPLES / "cifar10" / f"000{i}.png").convert("RGB")) for i in (3, 5)
    ]
    kodak = np.asarray(Image.open(SAMPLES / "kodak" / "kodim23-128.png").convert("RGB"))
    return [*cifar, np.ascontiguousarray(kodak[40:64, 50:90])]


@pytest.fixture(scope="module")
def images() -> list[np.ndarray]:
    return _images()


@pytest.fixture(scope="module", params=[1, 3], ids=["K=1", "K=N"])
def shard(request, images):
    return encode_shard(images, SHARD_PRESET, quality=70, sharing="shared", bases=request.param)


def test_every_member_decodes_from_the_header_and_its_own_record(shard, images) -> None:
    for index, image in enumerate(images):
        decoded = decode_member(shard.header, shard.members[index])
        assert decoded.shape == image.shape
        assert psnr(image, decoded) > 22.0


def test_plain_sharing_stores_no_coefficients_and_k_n_stores_k_each(shard, images) -> None:
    header = read_shard_header(shard.header).header
    assert header.bases in (1, len(images))
    assert (header.coefficients is None) == (header.bases == 1)
    for member in shard.members:
        _, payload = unpack_member(member, header.template)
        assert len(payload) % 4 == 0 and len(member) == MEMBER_PREFIX.size + len(payload) + 2


def test_member_decodes_at_any_scale_and_crop(shard) -> None:
    assert_scale_two_and_crop(read_shard_header(shard.header), shard.members[2])


def test_a_member_refuses_another_shards_header(shard, images) -> None:
    other = encode_shard(images[:1], SHARD_PRESET, quality=70, sharing="shared", bases=1, seed=1)
    with pytest.raises(BitstreamError, match="does not belong to this shard header"):
        decode_member(other.header, shard.members[0])


def test_truncated_and_flipped_bytes_raise_clear_errors(shard) -> None:
    rng = np.random.default_rng(0)
    header, member = shard.header, shard.members[1]
    for cut in range(0, len(header), max(1, len(header) // 40)):
        with pytest.raises(BitstreamError):
            decode_member(header[:cut], member)
    for cut in range(len(member)):
        with pytest.raises(BitstreamError):
            decode_member(header, member[:cut])
    for _ in range(40):
        for target in ("header", "member"):
            data = bytearray(header if target == "header" else member)
            position = int(rng.integers(len(data)))
            data[position] ^= 1 << int(rng.integers(8))
            pair = (bytes(data), member) if target == "header" else (header, bytes(data))
            with pytest.raises(BitstreamError):
                decode_member(*pair)


def _reseal(data: bytes, offset: int, layout: str, value: int) -> bytes:
    forged = bytearray(data[:-4])
    struct.pack_into(layout, forged, offset, value)
    return bytes(forged) + struct.pack(">I", zlib.crc32(bytes(forged)))


def test_forged_header_fields_with_valid_checksums_are_refused(shard) -> None:
    bases_offset = HEADER_PREFIX.size + NETWORKS_PREFIX.size - 2
    with pytest.raises(BitstreamError, match="too many basis weights"):
        read_shard_header(_reseal(shard.header, bases_offset, ">H", 4000))
    with pytest.raises(BitstreamError, match="bases=0 is out of range"):
        read_shard_header(_reseal(shard.header, bases_offset, ">H", 0))
    with pytest.raises(BitstreamError, match="unsupported shard header format version"):
        read_shard_header(_reseal(shard.header, 4, ">B", 9))
    with pytest.raises(BitstreamError, match="sharing=2 is out of range"):
        read_shard_header(_reseal(shard.header, 5, ">B", 2))
    settings = HEADER_PREFIX.size + NETWORKS_PREFIX.size
    for position, message in enumerate(["ARM neighbourhood", "pre-filter kind", "synthesis kind"]):
        with pytest.raises(BitstreamError, match=f"unknown {message} 200"):
            read_shard_header(_reseal(shard.header, settings + position, ">B", 200))
    first_tensor = settings + 3
    with pytest.raises(BitstreamError, match="invalid quantization of parameter"):
        read_shard_header(_reseal(shard.header, first_tensor, ">H", 31 << 11 | 5))
    with pytest.raises(BitstreamError, match="invalid quantization of parameter"):
        read_shard_header(_reseal(shard.header, first_tensor, ">H", 3 << 11))


def test_a_shard_header_declares_every_architecture_setting(shard) -> None:
    header, bases = unpack_header(shard.header)
    assert pack_header(header, bases) == shard.header
    for field, setting in [("arm_context", 24), ("prefilter", True), ("synthesis_kind", "refine")]:
        other = replace(header, template=replace(header.template, **{field: setting}))
        tensors = {name: ModuleCoding(8, 16) for name in tensor_names(other.template)}
        other = replace(other, tensors=tensors)
        coefficients = None
        if other.coefficients is not None:
            coefficients = {m: ModuleCoding(8, 16) for m in present_modules(other.template)}
        other = replace(other, coefficients=coefficients)
        parsed, _ = unpack_header(pack_header(other, b""))
        assert parsed == other


def test_mixed_channel_counts_are_refused(images) -> None:
    gray = images[0][:, :, :1]
    with pytest.raises(ValueError, match="share one channel count"):
        encode_shard([images[0], gray], SHARD_PRESET)


@pytest.mark.parametrize("count", [5, 4096])  # up to the most bases a header may declare
def test_integer_mixing_matches_big_integer_arithmetic(count: int) -> None:
    rng = np.random.default_rng(1)
    integers = rng.integers(-(2**15), 2**15, (count, 7, 3))
    integers[:, 0, 0] = -(2**15)  # with every third α at -2**15: a sum near 2**40
    bases = QuantizedModule(9, {"w": torch.from_numpy(integers)})
    alpha = rng.integers(-(2**15), 2**15, count)
    alpha[:] = np.where(np.arange(count) % 3 == 0, -(2**15), alpha)
    mixed = mix_integers(bases, alpha, 11).integers["w"].numpy()
    stacked = bases.integers["w"].tolist()
    for row, col in np.ndindex(7, 3):
        total = sum(int(a) * stacked[k][row][col] for k, a in enumerate(alpha))
        expected = max(-(2**15), min(2**15 - 1, (total + 2**10) >> 11))
        assert mixed[row, col] == expected


_DECODE_MEMBER = """
import hashlib, sys, torch
torch.set_num_threads(1)
from inrstore.models.shard_codec import decode_member
header, member = open(sys.argv[1], "rb").read(), open(sys.argv[2], "rb").read()
print(hashlib.sha256(decode_member(header, member).tobytes()).hexdigest())
print(sorted(m for m in sys.modules if m.startswith("inrstore.models.fit")))
"""


def test_member_encoded_with_two_threads_decodes_identically_in_a_fresh_process(
    tmp_path: Path,
) -> None:
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        shard = encode_shard(
            _images()[:2], replace(SHARD_PRESET, iterations=30), sharing="shared", bases=2
        )
    finally:
        torch.set_num_threads(threads)
    (tmp_path / "h").write_bytes(shard.header)
    (tmp_path / "m").write_bytes(shard.members[1])
    here = hashlib.sha256(decode_member(shard.header, shard.members[1]).tobytes()).hexdigest()
    result = subprocess.run(
        [sys.executable, "-c", _DECODE_MEMBER, str(tmp_path / "h"), str(tmp_path / "m")],
        capture_output=True,
        text=True,
        check=True,
    )
    digest, training_modules = result.stdout.splitlines()
    assert digest == here
    assert training_modules == "[]"


def test_warm_start_reuses_matching_bases_and_runs_half_the_schedule(images) -> None:
    first = encode_shard(images[:2], SHARD_PRESET, quality=70, sharing="shared", bases=2)
    warm = encode_shard(
        images[1:], SHARD_PRESET, quality=70, sharing="shared", bases=2, warm_start=first.header
    )
    cold = encode_shard(
        images[1:], SHARD_PRESET, quality=70, sharing="shared", bases=1, warm_start=first.header
    )
    assert warm.warm_started and not cold.warm_started  # K = 1 does not match the K = 2 bases
    assert cold.steps == 2 * SHARD_PRESET.iterations  # two sizes: two chunks
    assert warm.steps == cold.steps // 2
    assert psnr(images[2], decode_member(warm.header, warm.members[1])) > 22.0


@pytest.mark.parametrize("version", [1, 2])
def test_members_of_earlier_formats_still_decode(images, monkeypatch, version: int) -> None:
    """A member whose latents use an earlier format's coding (1: a QuantizedLaplace per
    symbol; 2: tables, pass 1 at every pixel) decodes to the same pixels as the same member
    in the current format."""
    aru = replace(SHARD_PRESET, arm_levels=0)  # the ARU, whose coding versions 2 and 3 change
    current = encode_shard(images[:1], aru, quality=70, sharing="shared", bases=1)
    monkeypatch.setattr(shard_codec, "MEMBER_VERSION", version)
    old = encode_shard(images[:1], aru, quality=70, sharing="shared", bases=1)
    assert old.header == current.header and old.members[0] != current.members[0]
    record = bytearray(old.members[0][:-2])
    record[len(MEMBER_PREFIX.magic)] = version  # the version byte
    record += struct.pack(">H", zlib.crc32(bytes(record)) & 0xFFFF)
    template = read_shard_header(old.header).header.template
    assert unpack_member(bytes(record), template)[0].version == version
    expected = decode_member(current.header, current.members[0])
    assert np.array_equal(decode_member(old.header, bytes(record)), expected)


GOLDEN = Path(__file__).parent / "golden"


WRITTEN_NOW = ("shard-v2m4-shared", "shard-v2-own", "shard-v3m4-latents")
"""The golden shards of the versions the encoder writes (regenerated on request): header
version after ``v``, member version after ``m`` where it is not 3."""


@pytest.mark.parametrize("name", ["shard-v1", "shard-v2-shared", "shard-v3-latents", *WRITTEN_NOW])
def test_golden_shards_of_every_header_version_still_decode(name: str) -> None:
    header_path, member_path = GOLDEN / f"{name}.header", GOLDEN / f"{name}.member"
    expected_path = GOLDEN / f"{name}.json"
    regenerate = os.environ.get("INRSTORE_REGENERATE_GOLDEN") and name in WRITTEN_NOW
    if regenerate:
        sharing = name.rsplit("-", 1)[1]
        images = moving_square_frames(2) if sharing == "latents" else _images()[1:]
        shard = encode_shard(images, SHARD_PRESET, quality=60, bases=2, sharing=sharing)
        header_path.write_bytes(shard.header)
        member_path.write_bytes(shard.members[1])
    header, member = header_path.read_bytes(), member_path.read_bytes()
    digests = {
        "pixels": hashlib.sha256(decode_member(header, member).tobytes()).hexdigest(),
        "pixels scale 2": hashlib.sha256(decode_member(header, member, 2.0).tobytes()).hexdigest(),
    }
    if regenerate:
        expected_path.write_text(json.dumps(digests, indent=2) + "\n")
        pytest.skip("golden shard regenerated")
    assert read_shard_header(header).header.version == int(name[7])
    if "m4" in name:
        assert member[:3] == b"IM\x04"
    assert digests == json.loads(expected_path.read_text())
