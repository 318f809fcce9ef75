"""The shard codec: many images, one independently decodable record each; the members
share weight bases (and, for frames of one camera, latent grids), or each has its own
networks (a single-image bitstream).

``encode_shard(images) → EncodedShard(header, members)``; ``decode_member(header, member)``
needs the shard header and that member's record only. The decode path imports no training
code.
"""

from __future__ import annotations

import dataclasses
import functools
import struct
import time
from collections.abc import Callable, Hashable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import constriction
import numpy as np
import torch

from inrstore.models.bitstream.errors import BitstreamError
from inrstore.models.bitstream.image_format import (
    MAX_TENSOR_SCALE_CODE,
    ModuleCoding,
    present_modules,
    tensor_names,
)
from inrstore.models.bitstream.parameters import (
    decode_parameters,
    encode_parameters,
    range_decoder,
    read_parameters,
    scale_code,
    write_parameters,
)
from inrstore.models.bitstream.shard_format import (
    MEMBER_VERSION,
    MemberHeader,
    ShardHeader,
    header_tag,
    member_arch,
    pack_header,
    pack_member,
    unpack_header,
    unpack_member,
)
from inrstore.models.codec import (
    as_pixels,
    decode_image,
    encode_image,
    fixed_entropy_model,
    render_members,
)
from inrstore.models.core.architecture import Architecture, levels_for
from inrstore.models.core.mixture import member_modules, members_modules
from inrstore.models.core.quantized import QuantizedModule, select_members
from inrstore.models.entropy.batched import (
    StackedEntropyModel,
    batchable,
    read_latents_batched,
)
from inrstore.models.entropy.coding import CodingError, read_latents, write_latents
from inrstore.models.metrics import mse
from inrstore.models.render import Crop, check_decode_memory

if TYPE_CHECKING:
    from inrstore.models.fit.candidates import EncodeJob
    from inrstore.models.fit.presets import Preset
    from inrstore.models.fit.shard_quantization import QuantizedShard
    from inrstore.models.fit.train import TrainingStatus

__all__ = [
    "DecodedHeader",
    "EncodedShard",
    "decode_member",
    "decode_members",
    "describe_networks",
    "encode_shard",
    "member_latents",
    "read_shard_header",
]


@dataclass(frozen=True)
class EncodedShard:
    """A shard's bytes: the header every member needs and one record per image (in order).

    ``steps`` training steps took ``seconds``; ``warm_started`` says whether the bases started
    from the ``warm_start`` header passed in.
    """

    header: bytes
    members: list[bytes]
    steps: int
    seconds: float
    warm_started: bool

    def header_share(self) -> float:
        """Header bytes per member."""
        return len(self.header) / len(self.members)


@dataclass(frozen=True)
class DecodedHeader:
    """A parsed shard header with its integer bases (worth caching across member decodes)."""

    header: ShardHeader
    bases: dict[str, QuantizedModule]
    tag: int
    shared_grids: list[np.ndarray] | None = None
    """The shared latents' integer grids (float64, finest first), if the members have them."""


SHARING_MODES = ("auto", "own", "shared", "latents")
"""What ``encode_shard`` may be told to share: ``own`` networks per member, ``shared``
networks (K bases, or plain sharing at K = 1), ``latents`` (one set of shared networks and
shared latent grids, :mod:`~inrstore.models.fit.shared_latents`; members of one size), or
``auto`` (:func:`choose_sharing`)."""
SHARED_BELOW_PIXELS = 64 * 64 + 1
"""``auto`` weighs shared networks only when every member has fewer pixels than this."""
TRIAL_MEMBERS = 4
"""Members ``auto`` encodes with their own networks to weigh them against shared ones."""
LATENTS_TRIAL_MEMBERS = 8
"""Members ``latents`` encodes with and without shared latents to choose for a new shard."""


def choose_sharing(images: Sequence[np.ndarray]) -> str:
    """What ``auto`` does with ``images``: ``own`` networks for a single image or when a
    member has more than 64×64 pixels, ``compare`` otherwise (:func:`_encode_compared`).

    On photos a member's networks are a few per cent of its bytes and networks fitted to one
    image beat shared ones by more than a dB at equal bytes (``bench/HISTORY.md``), so a
    trial, which costs the shard's whole encode again, is not run; on small images the
    networks may cost more than the latents, and which wins depends on the member count.
    """
    small = all(image.shape[0] * image.shape[1] < SHARED_BELOW_PIXELS for image in images)
    return "compare" if small and len(images) > 1 else "own"


def encode_shard(
    images: Sequence[np.ndarray],
    preset: str | Preset = "fast",
    quality: float = 50.0,
    *,
    bases: int = 4,
    sharing: str = "auto",
    batch_pixels: int = 1 << 20,
    device: str = "cpu",
    time_limit: float | None = None,
    seed: int = 0,
    warm_start: bytes | None = None,
    on_status: Callable | None = None,
) -> EncodedShard:
    """Compress ``images`` (``uint8 (H, W, C)``, any sizes, one channel count) as a shard.

    ``sharing`` (:data:`SHARING_MODES`) says what the members share (``auto``:
    :func:`choose_sharing`; a comparison spends its trial members' budgets on top of the
    shard's time limit). With own networks each member is
    :func:`~inrstore.models.codec.encode_image`'s bitstream, the preset's single-image
    recipe and budget unchanged. With shared networks ``bases`` K is clipped to the
    number of images (K = 1 is plain weight sharing) and a training step evaluates at most
    ``batch_pixels`` pixels (and at least one image). ``time_limit`` defaults to the sum of
    the preset's single-image budgets. ``warm_start`` (an earlier shard's header) starts
    shared bases from its own when the networks match, and then trains for
    :attr:`~inrstore.models.fit.shard_train.ShardSettings.warm_fraction` of the schedule; a
    damaged one (:func:`read_shard_header` refuses it) is ignored: the shard starts cold.
    """
    from inrstore.models.fit.candidates import EncodeJob
    from inrstore.models.fit.presets import preset as find_preset

    pixels = [as_pixels(image) for image in images]
    if not pixels:
        raise ValueError("a shard needs at least one image")
    channels = {p.shape[2] for p in pixels}
    if len(channels) > 1:
        raise ValueError(f"a shard's images must share one channel count, got {sorted(channels)}")
    if sharing not in SHARING_MODES:
        raise ValueError(f"sharing must be one of {', '.join(SHARING_MODES)}, not {sharing!r}")
    chosen = find_preset(preset) if isinstance(preset, str) else preset
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was asked for but no CUDA device is available")
    budgets = [chosen.time_budget(p.shape[0] * p.shape[1]) for p in pixels]
    if time_limit is None and chosen.crop_seconds is not None:
        time_limit = sum(budgets)
    if warm_start is not None and not _readable(warm_start):
        warm_start = None
    if sharing == "auto":
        sharing = choose_sharing(pixels)
    latents = sharing == "latents"
    if latents and len({p.shape[:2] for p in pixels}) > 1:
        raise ValueError("shared latents need images of one size")
    job = EncodeJob(
        pixels[0], chosen, quality, device, time_limit, tuple(pixels[1:]),
        1 if latents else min(bases, len(pixels)), batch_pixels, warm_start, latents,
    )  # fmt: skip
    if sharing == "own":
        return _encode_own(job, budgets, seed, on_status)
    if sharing == "shared":
        return _encode_shared(job, seed, on_status)
    if sharing == "latents":
        return _encode_latents(job, seed, on_status)
    return _encode_compared(job, budgets, seed, on_status)


def _encode_shared(job: EncodeJob, seed: int, on_status: Callable | None) -> EncodedShard:
    """The shard with shared networks: the least D + λR of the preset's candidate seeds."""
    from inrstore.models.fit.candidates import best_candidate, candidate_count

    count = candidate_count(job)
    if count == 1:
        return unpack_shard(encode_shared_seed(job, seed, on_status))
    seeds = range(seed, seed + count)
    best = best_candidate(encode_shared_seed, shard_rate_distortion, job, seeds, on_status)
    return unpack_shard(best)


def _encode_latents(job: EncodeJob, seed: int, on_status: Callable | None) -> EncodedShard:
    """Shared networks with shared latents or without, whichever has the less D + λR.

    A shard that starts from an earlier header of one set of shared networks takes that
    header's choice (shared latents when it has them at this size) without a trial, so a
    camera's later shards pay for one encode each. Otherwise both are encoded on up to
    :data:`LATENTS_TRIAL_MEMBERS` members spread over the shard, each within those members'
    share of the time limit; a longer shard is then encoded whole with the winner's choice,
    starting from the winner's header as a later shard would (progress: with, without, the
    shard).
    """
    from inrstore.models.fit.shard_train import ShardSettings

    inherited = _inherited_latents(job.warm_start, job.pixels.shape[:2])
    if inherited is not None:
        return _encode_shared(replace(job, shared_latents=inherited), seed, on_status)
    start = time.perf_counter()
    count = len(job.images)
    sample = _spread_members(count, LATENTS_TRIAL_MEMBERS)
    trial_job = _job_of_members(job, sample)
    share = len(sample) / count
    split = 1.0 if share == 1 else 2 * share / (2 * share + ShardSettings.latents_warm_fraction)
    trials = {
        latents: _encode_shared(
            replace(trial_job, shared_latents=latents), seed, _phase(on_status, *span)
        )
        for latents, span in ((True, (0.0, split / 2)), (False, (split / 2, split)))
    }
    latents, best = min(
        trials.items(), key=lambda item: shard_rate_distortion(trial_job, pack_shard(item[1]))
    )
    if share < 1:
        whole = replace(job, shared_latents=latents, warm_start=best.header)
        chosen = _encode_shared(whole, seed, _phase(on_status, split, 1.0))
        best = replace(chosen, warm_started=best.warm_started)
    return replace(best, seconds=time.perf_counter() - start)


def _job_of_members(job: EncodeJob, indices: Sequence[int]) -> EncodeJob:
    """``job`` restricted to the images at ``indices``, with their pixels' share of its time
    limit."""
    images = job.images
    chosen = [images[i] for i in indices]
    if len(chosen) == len(images):
        return job
    pixels = [image.shape[0] * image.shape[1] for image in images]
    limit = job.time_limit
    if limit is not None:
        limit *= sum(pixels[i] for i in indices) / sum(pixels)
    return replace(job, pixels=chosen[0], others=tuple(chosen[1:]), time_limit=limit)


def _inherited_latents(warm_start: bytes | None, size: tuple[int, int]) -> bool | None:
    """Whether an earlier (readable) header of one set of shared networks had shared latents
    of ``size``; None without such a header."""
    earlier = _earlier_shared(warm_start)
    if earlier is None or earlier.bases != 1:
        return None
    if earlier.latents is None:
        return False
    own = unpack_member(earlier.latents, earlier.template)[0]
    return (own.height, own.width) == size


def _readable(header: bytes) -> bool:
    """Whether :func:`read_shard_header` reads ``header``."""
    try:
        read_shard_header(header)
    except BitstreamError:
        return False
    return True


def _earlier_shared(warm_start: bytes | None) -> ShardHeader | None:
    """The (readable) header ``warm_start`` when it is one of shared networks; None without
    one."""
    if warm_start is None:
        return None
    earlier = unpack_header(warm_start)[0]
    return None if earlier.own_networks else earlier


def _encode_compared(
    job: EncodeJob, budgets: list[float | None], seed: int, on_status: Callable | None
) -> EncodedShard:
    """Shared networks or each member's own, whichever has the less D + λR.

    A shard that starts from an earlier header of shared networks that fit it keeps that
    choice without a trial (:func:`_continues_shared`), as a dataset's later shards do.
    Otherwise up to :data:`TRIAL_MEMBERS` members, spread over the shard, are encoded with
    their own networks, then the shard with shared ones; both are weighed on those members
    (their records plus their pixels' share of the header). When own networks win, the other
    members are encoded too, reusing the trial's. Progress: the trial, then the shard.
    """
    from inrstore.models.fit.presets import quality_to_lambda

    if _continues_shared(job):
        return _encode_shared(job, seed, on_status)
    start = time.perf_counter()
    images = job.images
    trial = _spread_members(len(images), TRIAL_MEMBERS)
    pixels = [image.shape[0] * image.shape[1] for image in images]
    sampled = sum(pixels[i] for i in trial) / sum(pixels)
    before = sampled / (1 + sampled)
    own = _encode_own(job, budgets, seed, _phase(on_status, 0.0, before), trial)
    shared = _encode_shared(job, seed, _phase(on_status, before, 1.0))
    costs = member_costs(job, shared)
    lam_bits = quality_to_lambda(job.quality) * 8
    shared_cost = sum(costs[i] for i in trial) + lam_bits * len(shared.header) * sampled
    own_cost = sum(member_costs(job, own, trial)) + lam_bits * len(own.header) * sampled
    if own_cost >= shared_cost:
        chosen = shared
    elif len(trial) == len(images):
        chosen = own
    else:
        done = dict(zip(trial, own.members, strict=True))
        chosen = _encode_own(job, budgets, seed, _phase(on_status, before, 1.0), done=done)
    return replace(chosen, seconds=time.perf_counter() - start)


def _continues_shared(job: EncodeJob) -> bool:
    """Whether ``job`` starts from an earlier header of shared networks that its own shared
    networks would start from (same architecture and K): that shard's choice is kept without
    a trial."""
    earlier = _earlier_shared(job.warm_start)
    if earlier is None or earlier.bases != job.bases:
        return False
    return earlier.template == _shared_template(job)[0]


def _spread_members(count: int, wanted: int) -> list[int]:
    """Indices of ``wanted`` members (or all), evenly spread over ``count``."""
    if count <= wanted:
        return list(range(count))
    return sorted({round(i * (count - 1) / (wanted - 1)) for i in range(wanted)})


def _encode_own(
    job: EncodeJob,
    budgets: list[float | None],
    seed: int,
    on_status: Callable | None,
    indices: Sequence[int] | None = None,
    done: dict[int, bytes] | None = None,
) -> EncodedShard:
    """Members ``indices`` (default: all) each encoded alone, within its share of the time
    limit (its own budget's share of the sum, or its pixels' where the preset has no budget),
    its networks starting from the previous member's where they match (``bench/HISTORY.md``:
    2% fewer bytes on kodim01–08); members in ``done`` keep the bitstream given there."""
    start = time.perf_counter()
    members: list[bytes] = []
    images = job.images
    indices = range(len(images)) if indices is None else indices
    done = done or {}
    weights = budgets if None not in budgets else [p.shape[0] * p.shape[1] for p in images]
    previous = None
    for position, index in enumerate(indices):
        if index in done:
            members.append(done[index])
            previous = members[-1]
            continue
        limit = None if job.time_limit is None else job.time_limit * weights[index] / sum(weights)
        report = None
        if on_status is not None:
            report = functools.partial(_member_status, on_status, position, len(indices))
        members.append(
            encode_image(
                images[index],
                job.preset,
                job.quality,
                device=job.device,
                time_limit=limit,
                seed=seed,
                on_status=report,
                warm_start=previous,
            )
        )
        previous = members[-1]
    header = pack_header(ShardHeader(None, 0, {}, None), b"")
    return EncodedShard(header, members, 0, time.perf_counter() - start, False)


def encode_shared_seed(job: EncodeJob, seed: int, on_status: Callable | None = None) -> bytes:
    """One encode of a shard of shared networks from ``seed`` (K bases, or one set at
    K = 1), with the preset's architecture settings, the finest-grid rule per member and the
    offline warm start when no earlier shard fits: train, quantize, code. Returns the shard
    packed for :func:`~inrstore.models.fit.candidates.best_candidate`."""
    from inrstore.models.fit.shard_quantization import quantize_shard
    from inrstore.models.fit.shard_train import ShardSettings, fit_shard

    pixels, chosen = job.images, job.preset
    template, zero_levels, lam = _shared_template(job)
    settings = ShardSettings(
        bases=job.bases, batch_pixels=job.batch_pixels, shared_latents=job.shared_latents
    )
    earlier = None if job.warm_start is None else read_shard_header(job.warm_start)
    warm = _warm_bases(earlier, template, settings.bases)
    warm_latents = None
    if warm is not None and job.shared_latents:
        warm_latents = _warm_latents(earlier, pixels[0].shape[:2])
    fitted = fit_shard(
        pixels,
        template,
        chosen,
        lam,
        settings,
        zero_levels,
        device=job.device,
        time_limit=job.time_limit,
        seed=seed,
        warm_bases=warm,
        warm_latents=warm_latents,
        on_status=on_status,
    )
    header, members = write_shard(quantize_shard(fitted, pixels, chosen.weight_deadzones))
    return pack_shard(EncodedShard(header, members, fitted.steps, fitted.seconds, warm is not None))


def shard_rate_distortion(job: EncodeJob, data: bytes) -> float:
    """D + λR of a packed shard of ``job``: the members' squared error per pixel (in [0, 1]
    units) plus λ × the shard's bits per pixel, header included."""
    from inrstore.models.fit.presets import quality_to_lambda

    shard = unpack_shard(data)
    pixels = sum(image.shape[0] * image.shape[1] for image in job.images)
    header_cost = quality_to_lambda(job.quality) * len(shard.header) * 8
    return (sum(member_costs(job, shard)) + header_cost) / pixels


def member_costs(
    job: EncodeJob, shard: EncodedShard, indices: Sequence[int] | None = None
) -> list[float]:
    """Per member of ``shard``: its summed squared error (in [0, 1] units) plus λ × its
    record's bits, header excluded; ``indices`` picks the images of ``job`` it holds."""
    from inrstore.models.fit.presets import quality_to_lambda

    images = job.images
    chosen = [images[i] for i in indices] if indices is not None else images
    decoded = decode_members(shard.header, shard.members)
    lam = quality_to_lambda(job.quality)
    return [
        mse(image, pixels) / 255.0**2 * image.shape[0] * image.shape[1] + lam * len(member) * 8
        for image, pixels, member in zip(chosen, decoded, shard.members, strict=True)
    ]


_PACKED = struct.Struct(">IdBI")
_PART = struct.Struct(">I")


def pack_shard(shard: EncodedShard) -> bytes:
    """An encoded shard as bytes between processes: steps, seconds, warm flag, member count,
    then the header and each member after its length (big-endian)."""
    parts = [_PACKED.pack(shard.steps, shard.seconds, shard.warm_started, len(shard.members))]
    for part in (shard.header, *shard.members):
        parts += [_PART.pack(len(part)), part]
    return b"".join(parts)


def unpack_shard(data: bytes) -> EncodedShard:
    """The shard :func:`pack_shard` packed."""
    steps, seconds, warm, count = _PACKED.unpack_from(data)
    offset, parts = _PACKED.size, []
    for _ in range(count + 1):
        (length,) = _PART.unpack_from(data, offset)
        parts.append(data[offset + _PART.size : offset + _PART.size + length])
        offset += _PART.size + length
    return EncodedShard(parts[0], parts[1:], steps, seconds, bool(warm))


def _shared_template(job: EncodeJob) -> tuple[Architecture, list[int], float]:
    """The architecture (at unit size) of ``job``'s shared networks, each member's number
    of finest grids held at zero, and λ."""
    from inrstore.models.core.architecture import image_architecture
    from inrstore.models.fit.finest_grid import zero_levels_for
    from inrstore.models.fit.presets import quality_to_lambda

    pixels, chosen = job.images, job.preset
    lam = quality_to_lambda(job.quality)
    largest = max(pixels, key=lambda p: (levels_for(*p.shape[:2]), p.shape[0] * p.shape[1]))
    levels = levels_for(*largest.shape[:2])
    zero_levels = [zero_levels_for(chosen, p, lam, levels) for p in pixels]
    template = image_architecture(
        *largest.shape,
        chosen.arm_levels,
        min(zero_levels),
        chosen.wide_arm,
        chosen.prefilter,
        chosen.compact_synthesis,
        network_pixels=sum(p.shape[0] * p.shape[1] for p in pixels),
    )
    return replace(template, height=1, width=1), zero_levels, lam


def _warm_bases(
    earlier: DecodedHeader | None, template: Architecture, bases: int
) -> dict[str, torch.Tensor] | None:
    """Float bases ``(K, *shape)`` of an earlier header whose networks match, else None."""
    if earlier is None or earlier.header.template != template or earlier.header.bases != bases:
        return None
    result: dict[str, torch.Tensor] = {}
    for module in earlier.bases.values():
        result |= module.dequantized()
    return result


def _warm_latents(earlier: DecodedHeader, size: tuple[int, int]) -> list[torch.Tensor] | None:
    """The shared latents of an earlier header whose members have ``size``, else None."""
    grids = earlier.shared_grids
    if grids is None or grids[0].shape != size:
        return None
    return [torch.from_numpy(grid).float() for grid in grids]


def _member_status(on_status: Callable, index: int, count: int, status: TrainingStatus) -> None:
    """Member ``index``'s training status as the shard's progress."""
    on_status(dataclasses.replace(status, progress=(index + status.progress) / count))


def _phase(on_status: Callable | None, low: float, high: float) -> Callable | None:
    """``on_status`` for a phase that spans ``[low, high]`` of the shard's progress."""
    if on_status is None:
        return None

    def report(status: TrainingStatus) -> None:
        on_status(dataclasses.replace(status, progress=low + (high - low) * status.progress))

    return report


def write_shard(shard: QuantizedShard) -> tuple[bytes, list[bytes]]:
    """Entropy-code a quantized shard of shared networks: its header and its member records.

    A shard with shared latents is also coded with them folded into every member's grids
    (the same pixels, nothing shared): the fewer bytes of the two are kept, so shared latents
    stay only where they pay."""
    coded = _write_shard(shard)
    folded = shard.folded()
    if folded is not None:
        alone = _write_shard(folded)
        if _total_bytes(alone) < _total_bytes(coded):
            return alone
    return coded


def _total_bytes(coded: tuple[bytes, list[bytes]]) -> int:
    return len(coded[0]) + sum(len(member) for member in coded[1])


def _write_shard(shard: QuantizedShard) -> tuple[bytes, list[bytes]]:
    names = present_modules(shard.template)
    integers = {
        name: value for module in shard.bases.values() for name, value in module.integers.items()
    }
    exponents = {
        name: module.exponent_of(name)
        for module in shard.bases.values()
        for name in module.integers
    }
    tensors = tensor_names(shard.template)
    flats = [integers[name].reshape(-1).numpy() for name in tensors]
    codes = [scale_code(flat, MAX_TENSOR_SCALE_CODE) for flat in flats]
    alpha_codes = None
    if shard.coefficients is not None:
        alpha_codes = {
            name: scale_code(np.concatenate([member[name] for member in shard.coefficients]))
            for name in names
        }
    latents = None
    if shard.shared is not None:
        height, width = shard.shared.grids[0].shape
        arch = member_arch(shard.template, height, width)
        model = fixed_entropy_model(arch, shard.member_modules(0), shard.shared.prior_index)
        encoder = constriction.stream.queue.RangeEncoder()
        zero_flags = write_latents(encoder, model, shard.shared.grids, MEMBER_VERSION)
        own = MemberHeader(height, width, shard.shared.prior_index, zero_flags, 0)
        latents = pack_member(own, encoder.get_compressed().tobytes())
    header = ShardHeader(
        shard.template,
        shard.basis_count,
        {
            name: ModuleCoding(exponents[name], code)
            for name, code in zip(tensors, codes, strict=True)
        },
        None
        if alpha_codes is None
        else {
            name: ModuleCoding(shard.coefficient_exponents[name], alpha_codes[name])
            for name in names
        },
        latents=latents,
    )
    header_bytes = pack_header(header, encode_parameters(list(zip(flats, codes, strict=True))))
    tag = header_tag(header_bytes)
    members = []
    for index, grids in enumerate(shard.grids):
        height, width = grids[0].shape
        arch = member_arch(shard.template, height, width)
        encoder = constriction.stream.queue.RangeEncoder()
        if shard.coefficients is not None:
            own = shard.coefficients[index]
            write_parameters(encoder, [(own[name], alpha_codes[name]) for name in names])
        model = fixed_entropy_model(arch, shard.member_modules(index), shard.prior_indices[index])
        zero_flags = write_latents(encoder, model, grids, MEMBER_VERSION)
        member = MemberHeader(height, width, shard.prior_indices[index], zero_flags, tag)
        members.append(pack_member(member, encoder.get_compressed().tobytes()))
    return header_bytes, members


def describe_networks(data: bytes) -> str:
    """What a shard header's members share, in words: ``own networks``, ``shared networks``
    (K = 1) or ``K shared bases``. Raises ``BitstreamError`` for a malformed header."""
    header = unpack_header(data)[0]
    if header.own_networks:
        return "own networks"
    if header.latents is not None:
        return "shared networks and latents"
    return "shared networks" if header.bases == 1 else f"{header.bases} shared bases"


def read_shard_header(data: bytes) -> DecodedHeader:
    """Validate a shard header and decode its bases (none for own networks) and its shared
    latents, if it has them."""
    header, section = unpack_header(data)
    if header.own_networks:
        return DecodedHeader(header, {}, header_tag(bytes(data)))
    template = header.template
    names = tensor_names(template)
    flats = decode_parameters(
        section,
        [
            (count, header.tensors[name].scale_code)
            for count, name in zip(header.basis_counts(), names, strict=True)
        ],
    )
    shapes = template.parameter_shapes()
    integers = {
        name: torch.from_numpy(flat).reshape(header.bases, *shapes[name])
        for name, flat in zip(names, flats, strict=True)
    }
    bases = {
        module: QuantizedModule.with_tensor_steps(
            {name: integers[name] for name in module_shapes},
            {name: header.tensors[name].exponent for name in module_shapes},
        )
        for module, module_shapes in template.modules().items()
    }
    return DecodedHeader(header, bases, header_tag(bytes(data)), _shared_grids(header, bases))


def _shared_grids(
    header: ShardHeader, bases: dict[str, QuantizedModule]
) -> list[np.ndarray] | None:
    """Decode the shared latents a header carries (None if it has none)."""
    if header.latents is None:
        return None
    own, payload = unpack_member(header.latents, header.template)
    if own.header_tag != 0:
        raise BitstreamError("the shard header's shared latents carry a header tag")
    arch = own.arch(header.template)
    check_decode_memory(arch, 1.0)
    model = fixed_entropy_model(arch, member_modules(bases, None, None), own.prior_index)
    decoder = range_decoder(payload, "shared latents payload")
    try:
        return read_latents(decoder, model, own.zero_flags, own.version)
    except CodingError as err:
        raise BitstreamError(f"shared latents: {err}") from None


def decode_member(
    header: bytes | DecodedHeader,
    member: bytes,
    scale: float = 1.0,
    crop: Crop | None = None,
) -> np.ndarray:
    """Decode one member from its shard header (bytes, or parsed once with
    :func:`read_shard_header`) and its own record: ``uint8 (round(s H), round(s W), C)``."""
    return decode_members(header, [member], scale, crop)[0]


def decode_members(
    header: bytes | DecodedHeader,
    members: Sequence[bytes],
    scale: float = 1.0,
    crop: Crop | None = None,
) -> list[np.ndarray]:
    """Decode several members of one shard (each inside ``crop``, if given), in order.
    Members of one size and coding whose entropy model allows it
    (:func:`~inrstore.models.entropy.batched.batchable`) have their grids decoded together
    (whatever their zero flags), bit for bit as alone."""
    shared = header if isinstance(header, DecodedHeader) else read_shard_header(header)
    if shared.header.own_networks:
        return [decode_image(member, scale, crop) for member in members]
    parsed, modules, grids = _decode_latents(shared, members, scale)
    images: list = [None] * len(parsed)
    for arch, indices in _indices_by(parsed, lambda member: member.arch).items():
        rendered = render_members(
            arch, select_members(modules, indices), [grids[i] for i in indices], scale, crop
        )
        for index, image in zip(indices, rendered, strict=True):
            images[index] = image
    return images


def member_latents(
    header: bytes | DecodedHeader, members: Sequence[bytes]
) -> list[list[np.ndarray]]:
    """The integer grids (float64, finest first) each member's synthesis reads: its own,
    plus the shard's shared latents where it has them. Shards of shared networks only."""
    shared = header if isinstance(header, DecodedHeader) else read_shard_header(header)
    if shared.header.own_networks:
        raise ValueError("members with their own networks are single-image bitstreams")
    return _decode_latents(shared, members, 1.0)[2]


def _decode_latents(shared: DecodedHeader, members: Sequence[bytes], scale: float):
    """Parsed members, their mixed networks (integers ``(members, *shape)``) and their grids
    (with the shared latents)."""
    parsed = [_parse_member(shared, member, scale) for member in members]
    if shared.shared_grids is not None:
        size = shared.shared_grids[0].shape
        if any((member.own.height, member.own.width) != size for member in parsed):
            raise BitstreamError("a member's size differs from its shard's shared latents")
    coefficients = None if shared.header.coefficients is None else [m.coefficients for m in parsed]
    exponents = _coefficient_exponents(shared)
    modules = members_modules(shared.bases, coefficients, exponents, len(parsed))
    groups = _indices_by(parsed, lambda member: (member.arch, member.own.version))
    grids: list = [None] * len(parsed)
    try:
        for (arch, coding), indices in _batches(groups):
            decoders = [parsed[i].decoder for i in indices]
            priors = [parsed[i].own.prior_index for i in indices]
            flags = [parsed[i].own.zero_flags for i in indices]
            if len(indices) > 1 and batchable(arch, coding):
                together = select_members(modules, indices)
                model = StackedEntropyModel.of_members(arch, together, priors)
                decoded = read_latents_batched(decoders, model, flags, coding)
            else:
                decoded = [
                    read_latents(
                        decoder,
                        fixed_entropy_model(arch, select_members(modules, i), prior),
                        zero_flags,
                        coding,
                    )
                    for decoder, i, prior, zero_flags in zip(
                        decoders, indices, priors, flags, strict=True
                    )
                ]
            for index, member_grids in zip(indices, decoded, strict=True):
                grids[index] = member_grids
    except CodingError as err:
        raise BitstreamError(str(err)) from None
    if shared.shared_grids is not None:
        grids = [
            [mine + common for mine, common in zip(own, shared.shared_grids, strict=True)]
            for own in grids
        ]
    return parsed, modules, grids


def _indices_by(parsed: Sequence[_ParsedMember], key: Callable) -> dict[Hashable, list[int]]:
    """The members' indices grouped by ``key(member)``, in order."""
    groups: dict[Hashable, list[int]] = {}
    for index, member in enumerate(parsed):
        groups.setdefault(key(member), []).append(index)
    return groups


BATCH_DECODE_PIXELS = 1 << 20
"""Pixels of the members whose grids :func:`decode_members` decodes in one batch (each ARU
layer's float64 activations take 4 × its width bytes per pixel)."""


def _batches(groups: dict[tuple, list[int]]) -> Iterator[tuple[tuple, list[int]]]:
    """Each group's members in batches of at most :data:`BATCH_DECODE_PIXELS` pixels."""
    for key, indices in groups.items():
        size = max(1, BATCH_DECODE_PIXELS // (key[0].height * key[0].width))
        for start in range(0, len(indices), size):
            yield key, indices[start : start + size]


@dataclass(frozen=True)
class _ParsedMember:
    """A member record read up to its latents: its header, size, range decoder positioned at
    the latents and its coefficients per module (None for plain sharing)."""

    own: MemberHeader
    arch: Architecture
    decoder: constriction.stream.queue.RangeDecoder
    coefficients: dict[str, np.ndarray] | None


def _parse_member(shared: DecodedHeader, member: bytes, scale: float) -> _ParsedMember:
    """Check a member record against its shard header and read its coefficients."""
    template = shared.header.template
    own, payload = unpack_member(member, template)
    if own.header_tag != shared.tag:
        raise BitstreamError("this member record does not belong to this shard header")
    arch = own.arch(template)
    check_decode_memory(arch, scale)
    decoder = range_decoder(payload, "shard member payload")
    coefficients = None
    if shared.header.coefficients is not None:
        names = present_modules(template)
        codes = [(shared.header.bases, shared.header.coefficients[n].scale_code) for n in names]
        coefficients = dict(zip(names, read_parameters(decoder, codes), strict=True))
    return _ParsedMember(own, arch, decoder, coefficients)


def _coefficient_exponents(shared: DecodedHeader) -> dict[str, int] | None:
    """Each module's coefficient exponent (None for plain sharing)."""
    if shared.header.coefficients is None:
        return None
    return {name: coding.exponent for name, coding in shared.header.coefficients.items()}
