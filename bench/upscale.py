"""Quality of decoding at scale 2 against bicubic upscaling of the scale-1 decode.

Usage: ``python -m inrstore.bench.upscale KODAK_DIR --out FILE.json [--limit N]``. Each image is
downscaled ×2 (Lanczos), encoded, then (a) decoded at scale 2 and (b) decoded at scale 1 and
upscaled ×2 with Pillow's bicubic filter; both are compared with the original full-size image.
(c) bicubic upscaling of the uncompressed small image is reported as a reference.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np
from PIL import Image

from inrstore.bench.run import load_bench_images, write_report
from inrstore.models.codec import decode_image, encode_image
from inrstore.models.metrics import bpp, psnr


def _resize(pixels: np.ndarray, size: tuple[int, int], method: Image.Resampling) -> np.ndarray:
    return np.asarray(Image.fromarray(pixels).resize(size, method))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--preset", default="fast")
    parser.add_argument("--quality", type=float, default=60.0)
    args = parser.parse_args()
    images, _ = load_bench_images(args.folder, limit=args.limit)
    rows = []
    for image in images:
        height, width = image.pixels.shape[:2]
        small = _resize(image.pixels, (width // 2, height // 2), Image.Resampling.LANCZOS)
        start = time.perf_counter()
        data = encode_image(small, args.preset, args.quality)
        seconds = time.perf_counter() - start
        at_two = decode_image(data, 2.0)
        at_one = _resize(decode_image(data), (width, height), Image.Resampling.BICUBIC)
        reference = _resize(small, (width, height), Image.Resampling.BICUBIC)
        rows.append(
            {
                "image": image.name,
                "bpp_of_small": bpp(len(data), height // 2, width // 2),
                "psnr_small": psnr(small, decode_image(data)),
                "psnr_decode_at_2": psnr(image.pixels, at_two),
                "psnr_bicubic_of_decode": psnr(image.pixels, at_one),
                "psnr_bicubic_of_uncompressed": psnr(image.pixels, reference),
                "encode_seconds": seconds,
            }
        )
        print(json.dumps(rows[-1]))
    keys = [k for k in rows[0] if k != "image"]
    summary = {k: statistics.fmean(row[k] for row in rows) for k in keys}
    report = {"preset": args.preset, "quality": args.quality, "mean": summary, "images": rows}
    write_report(args.out, report)
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
