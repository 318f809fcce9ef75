"""The frames of one camera as one video: HEVC and AV1 bytes at a store's mean PSNR.

A reference only (a video gives up random access and any-scale decoding): the frames, in
name order, are encoded as one stream by PyAV's libx265 (4:4:4) and SVT-AV1 (4:2:0, the only
sampling it codes), each frame converted from RGB by swscale (BT.601). For every store result
given (``inrstore bench-store`` JSON of the same frames), each codec's CRF is bisected to the
store's mean per-frame RGB PSNR and the video's bytes are interpolated, log-linearly in PSNR,
between the two neighbouring CRFs that bracket it. Bytes are the encoded packets' (parameter
sets included, no container).

Usage: ``python -m inrstore.bench.video_reference FRAMES_DIR --stores STORE.json ... --out
FOLDER`` (writes ``FOLDER/video.json`` and ``FOLDER/rd-psnr.png``).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np

from inrstore.bench.report import plot_rd
from inrstore.bench.run import load_bench_images, write_report
from inrstore.bench.store_bench import bracket_psnr
from inrstore.models.metrics import bpp, psnr


@dataclass(frozen=True)
class VideoCodec:
    """An FFmpeg encoder and decoder pair (PyAV names) and the CRFs the bisection searches."""

    name: str
    encoder: str
    decoder: str
    pixel_format: str
    crf_range: tuple[int, int]
    options: dict[str, str] = field(default_factory=dict)


CODECS = (
    VideoCodec(
        "hevc",
        "libx265",
        "hevc",
        "yuv444p",
        (10, 45),
        {"preset": "slow", "x265-params": "log-level=error"},
    ),
    VideoCodec("av1", "libsvtav1", "libdav1d", "yuv420p", (10, 63), {"preset": "4"}),
)


@dataclass(frozen=True)
class VideoPoint:
    """One encode of all frames: its CRF, bytes, mean per-frame RGB PSNR (dB) and encode
    seconds (wall)."""

    crf: int
    bytes: int
    mean_psnr: float
    encode_seconds: float


def encode_video(frames: Sequence[np.ndarray], codec: VideoCodec, crf: int) -> VideoPoint:
    """Encode ``frames`` (``uint8 (H, W, 3)`` each, one size, even sides) as one stream at
    ``crf``, decode it, and measure it against the frames."""
    import av

    height, width = frames[0].shape[:2]
    if height % 2 or width % 2:
        raise ValueError(f"frames of {width}x{height} pixels: video needs even sides")
    encoder = av.CodecContext.create(codec.encoder, "w")
    encoder.width, encoder.height, encoder.pix_fmt = width, height, codec.pixel_format
    encoder.time_base, encoder.framerate = Fraction(1, 25), Fraction(25, 1)
    encoder.options = {**codec.options, "crf": str(crf)}
    start = time.perf_counter()
    packets = []
    for number, pixels in enumerate(frames):
        frame = av.VideoFrame.from_ndarray(pixels, format="rgb24").reformat(
            format=codec.pixel_format
        )
        frame.pts = number
        packets.extend(bytes(packet) for packet in encoder.encode(frame))
    packets.extend(bytes(packet) for packet in encoder.encode(None))
    seconds = time.perf_counter() - start
    decoder = av.CodecContext.create(codec.decoder, "r")
    decoded = [frame for data in packets for frame in decoder.decode(av.Packet(data))]
    decoded.extend(decoder.decode(None))
    if len(decoded) != len(frames):
        raise RuntimeError(f"{codec.name}: {len(decoded)} frames decoded of {len(frames)}")
    quality = [
        psnr(original, frame.to_ndarray(format="rgb24"))
        for original, frame in zip(frames, decoded, strict=True)
    ]
    return VideoPoint(crf, sum(map(len, packets)), float(np.mean(quality)), seconds)


class CrfSweep:
    """The encodes of some frames by one codec, each CRF encoded once (when first asked)."""

    def __init__(self, frames: Sequence[np.ndarray], codec: VideoCodec) -> None:
        self.frames, self.codec = frames, codec
        self.points: dict[int, VideoPoint] = {}

    def __call__(self, crf: int) -> VideoPoint:
        if crf not in self.points:
            self.points[crf] = encode_video(self.frames, self.codec, crf)
            print(self.codec.name, json.dumps(asdict(self.points[crf])), flush=True)
        return self.points[crf]


def bytes_at_psnr(
    point_at: Callable[[int], VideoPoint], target: float, crf_range: tuple[int, int]
) -> dict[str, object] | None:
    """The bytes at mean PSNR ``target``: CRFs bisected in ``crf_range`` (PSNR falls as CRF
    rises) for neighbours ``c`` (PSNR ≥ target) and ``c + 1`` (below), bytes interpolated
    log-linearly in PSNR between them. None when the range does not bracket ``target``."""

    def point(crf: int) -> tuple[int, float]:
        found = point_at(crf)
        return found.bytes, found.mean_psnr

    low, high = crf_range
    found = bracket_psnr(point, target, worst=high, best=low)
    if found is None:
        return None
    (bytes_below, psnr_below), (bytes_above, psnr_above) = point(found[0]), point(found[1])
    share = (psnr_above - target) / (psnr_above - psnr_below)
    log_bytes = math.log(bytes_above) + share * (math.log(bytes_below) - math.log(bytes_above))
    return {"bytes": math.exp(log_bytes), "crfs": [found[1], found[0]]}


def _store_result(path: Path, names: list[str]) -> dict:
    """A store benchmark's settings and totals, checked to cover exactly ``names``."""
    result = json.loads(path.read_text())
    stored = sorted(image["name"] for image in result["images"])
    if stored != names:
        raise SystemExit(f"{path}: its images are not the frames given")
    settings = result["settings"]
    return {
        "result": str(path),
        "preset": settings["preset"],
        "shard_size": settings["shard_size"],
        "commit": result["commit"],
        "mean_psnr": result["totals"]["mean_psnr"],
        "stored_bytes": result["totals"]["stored_bytes"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--stores", type=Path, nargs="+", required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    os.environ.setdefault("SVT_LOG", "1")  # SVT-AV1's errors only, not its configuration
    images, problems = load_bench_images(args.folder)
    if problems:
        raise SystemExit(f"{len(problems)} unreadable frames, first: {problems[0]}")
    images.sort(key=lambda image: image.name)
    frames = [image.pixels for image in images]
    stores = [_store_result(path, [image.name for image in images]) for path in args.stores]
    height, width = frames[0].shape[:2]
    codecs: dict[str, dict] = {}
    for codec in CODECS:
        sweep = CrfSweep(frames, codec)
        for store in stores:
            found = bytes_at_psnr(sweep, store["mean_psnr"], codec.crf_range)
            store[f"{codec.name}_bytes"] = None if found is None else found["bytes"]
            store[f"{codec.name}_crfs"] = None if found is None else found["crfs"]
            store[f"store_over_{codec.name}"] = (
                None if found is None else store["stored_bytes"] / found["bytes"]
            )
        codecs[codec.name] = asdict(codec) | {
            "points": [asdict(sweep.points[crf]) for crf in sorted(sweep.points)]
        }
    report = {
        "name": "video-reference",
        "description": f"{len(frames)} frames of {args.folder.name} as one video",
        "frames": len(frames),
        "height": height,
        "width": width,
        "codecs": codecs,
        "stores": stores,
    }
    write_report(args.out / "video.json", report, {"folder": str(args.folder)})
    pixels = len(frames) * height * width

    def curve(points: list[dict]) -> dict[str, list[float]]:
        ordered = sorted(points, key=lambda point: point["bytes"])
        return {
            "bpp": [bpp(point["bytes"], 1, pixels) for point in ordered],
            "psnr-rgb": [point["mean_psnr"] for point in ordered],
        }

    curves = {
        f"{name} ({codec['encoder']}, {codec['pixel_format']})": curve(codec["points"])
        for name, codec in codecs.items()
    } | {
        f"store {store['preset']}, shards of {store['shard_size']}": {
            "bpp": [bpp(store["stored_bytes"], 1, pixels)],
            "psnr-rgb": [store["mean_psnr"]],
        }
        for store in stores
    }
    plot_rd(curves, args.out / "rd-psnr.png", report["description"])
    print(json.dumps(stores, indent=2))


if __name__ == "__main__":
    main()
