"""Random access: decoding one member of a large shard vs one single-image bitstream.

Usage: ``python -m inrstore.bench.member_decode CIFAR_DIR --out FILE.json [--limit 1000]``.
The images go into one shard of ``--limit`` members (short training: decode cost does not
depend on how long the encoder trained). For members spread over the shard it measures
``Store.get`` with the shard header already in the store's cache and with a freshly opened
store (the header parsed again), the bytes such a get reads (member record + shard header),
and the single-image codec on the same images (``decode_image`` of bytes in memory). One
thread; medians.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from inrstore.bench.run import write_report
from inrstore.datasets import load_image, scan_images
from inrstore.models.codec import decode_image, encode_image
from inrstore.models.fit.presets import Preset
from inrstore.store import Store

SPEED_PRESET = Preset("speed", iterations=30, arm_levels=0)


def _median_ms(samples: list[float]) -> float:
    return 1000 * statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--limit", type=int, default=1000)
    parser.add_argument("--samples", type=int, default=20)
    args = parser.parse_args()
    paths = [found.path for found in scan_images(args.folder).images][: args.limit]
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "store"
        began = time.perf_counter()
        with Store.open(path, create=True) as store:
            store.add(paths, preset=SPEED_PRESET, shard_size=len(paths), workers=1)
        encode_seconds = time.perf_counter() - began
        with Store.open(path, readonly=True) as store:
            ids = store.ids()
            chosen = [ids[i] for i in np.linspace(0, len(ids) - 1, args.samples).astype(int)]
            infos = [store.info(i) for i in chosen]
            store.get(chosen[0])
            cached = []
            for ident in chosen:
                start = time.perf_counter()
                store.get(ident)
                cached.append(time.perf_counter() - start)
        fresh = []
        for ident in chosen:
            start = time.perf_counter()
            with Store.open(path, readonly=True) as store:
                store.get(ident)
            fresh.append(time.perf_counter() - start)
    single_times, single_bytes = [], []
    for info in infos[: min(5, len(infos))]:
        pixels = load_image(next(p for p in paths if p.name == Path(info.name).name)).pixels
        data = encode_image(pixels, SPEED_PRESET)
        decode_image(data)
        start = time.perf_counter()
        decode_image(data)
        single_times.append(time.perf_counter() - start)
        single_bytes.append(len(data))
    header_bytes = round(infos[0].header_share * len(ids))
    report = {
        "members": len(ids),
        "shard_encode_seconds": encode_seconds,
        "member_bytes_median": statistics.median(i.stored_bytes for i in infos),
        "header_bytes": header_bytes,
        "bytes_read_per_get": statistics.median(i.stored_bytes for i in infos) + header_bytes,
        "get_ms_header_cached": _median_ms(cached),
        "get_ms_fresh_store": _median_ms(fresh),
        "single_image_bytes_median": statistics.median(single_bytes),
        "single_image_decode_ms": _median_ms(single_times),
        "threads": 1,
    }
    write_report(args.out, report)
    for key, value in report.items():
        print(f"{key:28s} {value}")


if __name__ == "__main__":
    main()
